#include "models/safetensors.hpp"
#include "runtime/files.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fcntl.h>
#include <unistd.h>

#include "runtime/codec.hpp"
#include "runtime/json.hpp"

namespace fedsp {

namespace {

constexpr std::uint64_t max_header = 100u << 20; // as the reference implementation

struct dtype_name {
  st_dtype dtype;
  const char* name;
  std::size_t size;
};

constexpr dtype_name dtypes[] = {
  {st_dtype::f32, "F32", 4}, {st_dtype::f16, "F16", 2},   {st_dtype::bf16, "BF16", 2},
  {st_dtype::f64, "F64", 8}, {st_dtype::i64, "I64", 8},   {st_dtype::i32, "I32", 4},
  {st_dtype::u8, "U8", 1},   {st_dtype::boolean, "BOOL", 1}};

} // namespace

const char* to_string(st_dtype d) {
  for (auto& x : dtypes)
    if (x.dtype == d)
      return x.name;
  return "?";
}

std::size_t element_size(st_dtype d) {
  for (auto& x : dtypes)
    if (x.dtype == d)
      return x.size;
  return 0;
}

std::int64_t st_tensor::numel() const {
  std::int64_t n = 1;
  for (auto d : shape)
    n *= d;
  return n;
}

result<std::vector<float>> st_tensor::to_floats(const std::string& name) const {
  auto n = static_cast<std::size_t>(numel());
  std::vector<float> out(n);
  switch (dtype) {
    case st_dtype::f32: std::memcpy(out.data(), data.data(), n * 4); break;
    case st_dtype::f16:
    case st_dtype::bf16:
      for (std::size_t i = 0; i < n; ++i) {
        std::uint16_t h;
        std::memcpy(&h, data.data() + 2 * i, 2);
        out[i] = dtype == st_dtype::f16 ? f16_to_float(h) : bf16_to_float(h);
      }
      break;
    case st_dtype::f64:
      for (std::size_t i = 0; i < n; ++i) {
        double d;
        std::memcpy(&d, data.data() + 8 * i, 8);
        out[i] = static_cast<float>(d);
      }
      break;
    default:
      return error{errc::malformed, "tensor '" + name + "' has dtype " + to_string(dtype)
                                      + ", expected a floating-point type"};
  }
  return out;
}

st_tensor st_tensor::from_floats(std::vector<std::int64_t> shape, const float* values) {
  st_tensor t;
  t.dtype = st_dtype::f32;
  t.shape = std::move(shape);
  auto n = static_cast<std::size_t>(t.numel());
  t.data.resize(n * 4);
  std::memcpy(t.data.data(), values, n * 4);
  return t;
}

result<st_file> parse_safetensors(const std::string& bytes, const std::string& where) {
  auto fail = [&](const std::string& what) {
    return error{errc::malformed, where + ": " + what};
  };
  if (bytes.size() < 8)
    return fail("shorter than the 8-byte header length (truncated?)");
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i)
    n = (n << 8) | static_cast<unsigned char>(bytes[static_cast<std::size_t>(i)]);
  if (n > max_header)
    return fail("header length " + std::to_string(n) + " exceeds 100 MB (not a safetensors file?)");
  if (n > bytes.size() - 8)
    return fail("header length " + std::to_string(n) + " runs past the end of the "
                + std::to_string(bytes.size()) + "-byte file (truncated?)");
  auto header = json::parse(std::string_view(bytes).substr(8, n));
  if (!header)
    return fail("header is not JSON: " + header.err().text);
  if (!header.value().is_object())
    return fail("header is not a JSON object");
  std::size_t data_start = 8 + n, data_size = bytes.size() - data_start;
  st_file out;
  std::vector<std::pair<std::uint64_t, std::string>> spans; // (begin, name), for overlaps
  std::vector<std::uint64_t> ends;
  for (auto& [name, entry] : header.value().as_object()) {
    if (name == "__metadata__") {
      if (!entry.is_object())
        return fail("__metadata__ is not an object of strings");
      for (auto& [k, v] : entry.as_object()) {
        if (!v.is_string())
          return fail("__metadata__ '" + k + "' is not a string");
        out.metadata[k] = v.as_string();
      }
      continue;
    }
    auto bad = [&](const std::string& what) { return fail("tensor '" + name + "': " + what); };
    auto* dt = entry.find("dtype");
    auto* shape = entry.find("shape");
    auto* offsets = entry.find("data_offsets");
    if (dt == nullptr || !dt->is_string())
      return bad("missing dtype");
    st_tensor t;
    bool known = false;
    for (auto& x : dtypes)
      if (dt->as_string() == x.name)
        t.dtype = x.dtype, known = true;
    if (!known)
      return bad("unsupported dtype '" + dt->as_string() + "'");
    if (shape == nullptr || !shape->is_array())
      return bad("missing shape");
    std::uint64_t numel = 1;
    for (auto& d : shape->as_array()) {
      if (!d.is_number() || d.as_number() < 0 || d.as_number() != std::floor(d.as_number())
          || d.as_number() > 1e12)
        return bad("shape holds a value that is not a dimension");
      t.shape.push_back(static_cast<std::int64_t>(d.as_number()));
      numel *= static_cast<std::uint64_t>(d.as_number());
      if (numel > bytes.size())
        return bad("shape has more elements than the file has bytes");
    }
    if (offsets == nullptr || !offsets->is_array() || offsets->as_array().size() != 2
        || !offsets->as_array()[0].is_number() || !offsets->as_array()[1].is_number())
      return bad("missing data_offsets [begin, end]");
    double b = offsets->as_array()[0].as_number(), e = offsets->as_array()[1].as_number();
    if (b < 0 || e < b || e > static_cast<double>(data_size))
      return bad("data_offsets [" + std::to_string(static_cast<long long>(b)) + ", "
                 + std::to_string(static_cast<long long>(e)) + "] fall outside the "
                 + std::to_string(data_size) + " data bytes (truncated?)");
    auto begin = static_cast<std::uint64_t>(b), end = static_cast<std::uint64_t>(e);
    if (end - begin != numel * element_size(t.dtype))
      return bad("holds " + std::to_string(end - begin) + " bytes, shape and dtype need "
                 + std::to_string(numel * element_size(t.dtype)));
    t.data.assign(bytes.begin() + static_cast<std::ptrdiff_t>(data_start + begin),
                  bytes.begin() + static_cast<std::ptrdiff_t>(data_start + end));
    spans.emplace_back(begin, name);
    ends.push_back(end);
    out.tensors.emplace(name, std::move(t));
  }
  // No two tensors may share bytes.
  std::vector<std::size_t> order(spans.size());
  for (std::size_t i = 0; i < order.size(); ++i)
    order[i] = i;
  std::sort(order.begin(), order.end(), [&](auto a, auto b) { return spans[a] < spans[b]; });
  for (std::size_t i = 1; i < order.size(); ++i)
    if (spans[order[i]].first < ends[order[i - 1]] && ends[order[i]] > spans[order[i]].first)
      return fail("tensors '" + spans[order[i - 1]].second + "' and '"
                  + spans[order[i]].second + "' overlap");
  return out;
}

result<st_file> read_safetensors(const std::string& path) {
  auto bytes = read_bounded_file(path, limits::model_bytes, "weights file");
  if (!bytes)
    return bytes.err();
  return parse_safetensors(bytes.value(), path);
}

result<std::string> encode_safetensors(const st_file& file) {
  json header = json::object{};
  if (!file.metadata.empty()) {
    json meta = json::object{};
    for (auto& [k, v] : file.metadata)
      meta.set(k, v);
    header.set("__metadata__", meta);
  }
  std::uint64_t offset = 0;
  for (auto& [name, t] : file.tensors) {
    if (t.data.size() != static_cast<std::size_t>(t.numel()) * element_size(t.dtype))
      return error{errc::bad_argument, "tensor '" + name + "': data size does not match shape"};
    json::array dims;
    dims.reserve(t.shape.size());
    for (auto d : t.shape)
      dims.emplace_back(static_cast<double>(d));
    header.set(name, json::object{{"dtype", to_string(t.dtype)},
                                  {"shape", json(std::move(dims))},
                                  {"data_offsets", json::array{offset, offset + t.data.size()}}});
    offset += t.data.size();
  }
  auto text = header.dump();
  text.append((8 - (8 + text.size()) % 8) % 8, ' '); // data starts 8-byte aligned
  std::string out(8, '\0');
  std::uint64_t n = text.size();
  for (int i = 0; i < 8; ++i)
    out[static_cast<std::size_t>(i)] = static_cast<char>(n >> (8 * i));
  out += text;
  out.reserve(out.size() + offset);
  for (auto& [name, t] : file.tensors)
    out.append(reinterpret_cast<const char*>(t.data.data()), t.data.size());
  return out;
}

std::optional<error> write_safetensors(const std::string& path, const st_file& file) {
  auto bytes = encode_safetensors(file);
  if (!bytes)
    return bytes.err();
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0)
    return error{errc::io, "cannot write '" + tmp + "': " + std::strerror(errno)};
  const char* c = bytes.value().data();
  std::size_t left = bytes.value().size();
  bool ok = true;
  while (ok && left > 0) {
    auto w = ::write(fd, c, left);
    ok = w > 0;
    if (ok) {
      c += w;
      left -= static_cast<std::size_t>(w);
    }
  }
  ok = ok && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    return error{errc::io, "cannot write '" + path + "': " + std::strerror(errno)};
  }
  return std::nullopt;
}

} // namespace fedsp
