#include "runtime/codec.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <set>
#include <sstream>

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/exception.h>
#include <kj/io.h>

#include "schemas/federation.capnp.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#  error "fedsp's codec copies tensor data as little-endian host memory"
#endif

namespace fedsp {

// errc's codes up to outlier are RejectReason's values, one to one; a
// code added to either without the other stops the build here.
#define FEDSP_SAME(code, reason)                                                          \
  static_assert(static_cast<int>(errc::code) == static_cast<int>(wire::RejectReason::reason), \
                "errc::" #code " and RejectReason::" #reason " differ")
FEDSP_SAME(unknown, UNKNOWN);
FEDSP_SAME(malformed, MALFORMED);
FEDSP_SAME(unsupported_version, UNSUPPORTED_VERSION);
FEDSP_SAME(unsupported, UNSUPPORTED);
FEDSP_SAME(unknown_sender, UNKNOWN_SENDER);
FEDSP_SAME(unknown_task, UNKNOWN_TASK);
FEDSP_SAME(wrong_client, WRONG_CLIENT);
FEDSP_SAME(duplicate, DUPLICATE);
FEDSP_SAME(shape_mismatch, SHAPE_MISMATCH);
FEDSP_SAME(non_finite, NON_FINITE);
FEDSP_SAME(future_version, FUTURE_VERSION);
FEDSP_SAME(task_closed, TASK_CLOSED);
FEDSP_SAME(too_large, TOO_LARGE);
FEDSP_SAME(outlier, OUTLIER);
#undef FEDSP_SAME

namespace w = fedsp::wire;

std::uint16_t protocol_version() {
  return w::PROTOCOL_VERSION;
}

// -- half precision -------------------------------------------------------------

std::uint16_t float_to_bf16(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  if (std::isnan(f))
    return static_cast<std::uint16_t>((u >> 16) | 0x40); // keep it a NaN
  // Round to nearest, ties to even, on the 16 dropped bits.
  u += 0x7FFF + ((u >> 16) & 1);
  return static_cast<std::uint16_t>(u >> 16);
}

float bf16_to_float(std::uint16_t h) {
  std::uint32_t u = static_cast<std::uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

std::uint16_t float_to_f16(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  std::uint32_t sign = (u >> 16) & 0x8000;
  std::uint32_t exp = (u >> 23) & 0xFF;
  std::uint32_t man = u & 0x7FFFFF;
  if (exp == 0xFF) // inf or NaN
    return static_cast<std::uint16_t>(sign | 0x7C00 | (man ? 0x200 : 0));
  int e = static_cast<int>(exp) - 127 + 15;
  if (e >= 31) // overflow: infinity
    return static_cast<std::uint16_t>(sign | 0x7C00);
  if (e <= 0) { // subnormal or zero
    if (e < -10)
      return static_cast<std::uint16_t>(sign);
    man |= 0x800000;
    int shift = 14 - e;
    std::uint32_t half = man >> shift;
    std::uint32_t rem = man & ((1u << shift) - 1);
    std::uint32_t mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1)))
      ++half;
    return static_cast<std::uint16_t>(sign | half);
  }
  std::uint32_t half = sign | (static_cast<std::uint32_t>(e) << 10) | (man >> 13);
  std::uint32_t rem = man & 0x1FFF;
  if (rem > 0x1000 || (rem == 0x1000 && (half & 1)))
    ++half; // may carry into the exponent, which is the right rounding
  return static_cast<std::uint16_t>(half);
}

float f16_to_float(std::uint16_t h) {
  std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000) << 16;
  std::uint32_t exp = (h >> 10) & 0x1F;
  std::uint32_t man = h & 0x3FF;
  std::uint32_t u;
  if (exp == 0) {
    if (man == 0) {
      u = sign;
    } else { // subnormal: normalise
      int e = -1;
      do {
        ++e;
        man <<= 1;
      } while ((man & 0x400) == 0);
      u = sign | (static_cast<std::uint32_t>(127 - 15 - e) << 23)
          | ((man & 0x3FF) << 13);
    }
  } else if (exp == 0x1F) {
    u = sign | 0x7F800000 | (man << 13);
  } else {
    u = sign | ((exp - 15 + 127) << 23) | (man << 13);
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

namespace {

template <class... Fs>
struct overload : Fs... {
  using Fs::operator()...;
};
template <class... Fs>
overload(Fs...) -> overload<Fs...>;

// -- encoding ---------------------------------------------------------------------

/// Where write_prompts may reference tensor data instead of copying it:
/// the data's owner (kept by the encoded buffer) and the message's orphanage.
/// `refs` collects the referenced ranges, which become shared segments.
struct external_data {
  std::shared_ptr<const void> owner;
  capnp::Orphanage orphanage;
  std::vector<const void*> refs;
};

/// Tensors smaller than this are copied even where they could be
/// referenced: a segment of their own costs more than the copy.
constexpr std::size_t min_referenced_bytes = 4096;

void write_prompts(w::PromptSet::Builder out, const prompt_set& ps,
                   wire_dtype dtype, bool layout_only, external_data* ext = nullptr) {
  out.setVersion(ps.version);
  auto tensors = out.initTensors(static_cast<unsigned>(ps.tensors.size()));
  for (unsigned i = 0; i < ps.tensors.size(); ++i) {
    auto& src = ps.tensors[i];
    auto t = tensors[i];
    t.setName(src.name);
    auto shape = t.initShape(static_cast<unsigned>(src.shape.size()));
    for (unsigned d = 0; d < src.shape.size(); ++d)
      shape.set(d, src.shape[d]);
    if (layout_only) {
      t.setDtype(w::DType::F32);
      continue;
    }
    auto n = src.data.size();
    switch (dtype) {
      case wire_dtype::f32: {
        t.setDtype(w::DType::F32);
        // Referenced in place: word-aligned (operator new's vectors are) and
        // a whole number of words, so the segment holds exactly the data.
        if (ext != nullptr && n * 4 >= min_referenced_bytes && n * 4 % 8 == 0
            && reinterpret_cast<std::uintptr_t>(src.data.data()) % 8 == 0) {
          auto* p = reinterpret_cast<const kj::byte*>(src.data.data());
          t.adoptData(ext->orphanage.referenceExternalData(capnp::Data::Reader(p, n * 4)));
          ext->refs.push_back(p);
          break;
        }
        auto bytes = t.initData(static_cast<unsigned>(n * 4));
        std::memcpy(bytes.begin(), src.data.data(), n * 4);
        break;
      }
      case wire_dtype::f16:
      case wire_dtype::bf16: {
        bool f16 = dtype == wire_dtype::f16;
        t.setDtype(f16 ? w::DType::F16 : w::DType::BF16);
        auto bytes = t.initData(static_cast<unsigned>(n * 2));
        for (std::size_t k = 0; k < n; ++k) {
          auto h = f16 ? float_to_f16(src.data[k]) : float_to_bf16(src.data[k]);
          std::memcpy(bytes.begin() + 2 * k, &h, 2);
        }
        break;
      }
    }
  }
}

template <class Builder>
void write_metrics(Builder&& list_init, const metric_list& ms) {
  auto list = list_init(static_cast<unsigned>(ms.size()));
  for (unsigned i = 0; i < ms.size(); ++i) {
    list[i].setName(ms[i].first);
    list[i].setValue(ms[i].second);
  }
}

// -- decoding ---------------------------------------------------------------------

error malformed(std::string text) {
  return error{errc::malformed, std::move(text)};
}

// Caps on list lengths (docs/protocol.md, "Validation").
constexpr unsigned max_tensors = 4096;
constexpr unsigned max_rank = 16;
constexpr unsigned max_metrics = 1024;

/// With `in_place`, f32 tensors are not copied: their data stays empty and
/// `*in_place` gets a pointer per tensor into the message (checked finite);
/// prompts in another dtype are `unsupported` then.
result<prompt_set> read_prompts(w::PromptSet::Reader in, const char* where,
                                std::size_t max_bytes, bool layout_only,
                                std::vector<const float*>* in_place = nullptr) {
  prompt_set ps;
  ps.version = in.getVersion();
  auto tensors = in.getTensors();
  // A list of zero-sized elements costs its sender nothing but its length:
  // every list is capped before anything is allocated for it.
  if (tensors.size() > max_tensors)
    return malformed(std::string(where) + ": " + std::to_string(tensors.size())
                     + " tensors, at most " + std::to_string(max_tensors));
  ps.tensors.reserve(tensors.size());
  for (unsigned i = 0; i < tensors.size(); ++i) {
    auto t = tensors[i];
    tensor_buffer buf;
    buf.name = t.getName().cStr();
    std::string label = std::string(where) + " tensor '" + buf.name + "'";
    auto shape = t.getShape();
    if (shape.size() > max_rank)
      return malformed(label + ": rank " + std::to_string(shape.size()) + ", at most "
                       + std::to_string(max_rank));
    std::uint64_t numel = 1;
    for (unsigned d = 0; d < shape.size(); ++d) {
      buf.shape.push_back(shape[d]);
      numel *= shape[d];
      if (numel > max_bytes) // also guards the multiplication against overflow
        return error{errc::too_large, label + ": shape has more elements than "
                                        + "the message size limit allows"};
    }
    if (layout_only) {
      ps.tensors.push_back(std::move(buf));
      continue;
    }
    auto data = t.getData();
    std::size_t elem = 0;
    switch (t.getDtype()) {
      case w::DType::F32: elem = 4; break;
      case w::DType::F16:
      case w::DType::BF16: elem = 2; break;
      default:
        return malformed(label + ": unknown dtype "
                         + std::to_string(static_cast<int>(t.getDtype())));
    }
    if (data.size() != numel * elem)
      return error{errc::shape_mismatch,
                   label + ": shape " + describe_shape(buf) + " needs "
                     + std::to_string(numel * elem) + " bytes, data has "
                     + std::to_string(data.size())};
    bool aligned = reinterpret_cast<std::uintptr_t>(data.begin()) % alignof(float) == 0;
    if (in_place != nullptr) {
      if (elem != 4 || !aligned)
        return error{errc::unsupported, label + ": not f32 in place"};
      auto* f = reinterpret_cast<const float*>(data.begin());
      if (auto err = check_finite(buf.name, f, numel)) {
        err->text = std::string(where) + ": " + err->text;
        return *err;
      }
      in_place->push_back(f);
    } else if (elem == 4 && aligned) {
      // Copied and checked a block at a time, while the block is in cache:
      // one pass over memory, not two.
      auto* f = reinterpret_cast<const float*>(data.begin());
      buf.data.reserve(numel); // (no zero-fill first)
      constexpr std::size_t block = 8192;
      for (std::size_t lo = 0; lo < numel; lo += block) {
        auto n = std::min<std::size_t>(block, numel - lo);
        buf.data.insert(buf.data.end(), f + lo, f + lo + n);
        if (check_finite(buf.name, buf.data.data() + lo, n)) {
          auto err = *check_finite(buf.name, f, numel); // (names the element in the tensor)
          err.text = std::string(where) + ": " + err.text;
          return err;
        }
      }
    } else if (elem == 4) {
      buf.data.resize(numel);
      std::memcpy(buf.data.data(), data.begin(), numel * 4);
    } else {
      buf.data.resize(numel);
      bool f16 = t.getDtype() == w::DType::F16;
      for (std::size_t k = 0; k < numel; ++k) {
        std::uint16_t h;
        std::memcpy(&h, data.begin() + 2 * k, 2);
        buf.data[k] = f16 ? f16_to_float(h) : bf16_to_float(h);
      }
    }
    if (in_place == nullptr && !(elem == 4 && aligned)) // (the block copy checked its own)
      if (auto err = check_finite(buf.name, buf.data.data(), buf.data.size())) {
        err->text = std::string(where) + ": " + err->text;
        return *err;
      }
    ps.tensors.push_back(std::move(buf));
  }
  // Values are checked above, tensor by tensor; names here.
  std::set<std::string> names;
  for (auto& t : ps.tensors)
    if (!names.insert(t.name).second)
      return malformed(std::string(where) + ": duplicate tensor name '" + t.name + "'");
  return ps;
}

result<metric_list> read_metrics(capnp::List<w::Metric>::Reader in) {
  if (in.size() > max_metrics)
    return malformed(std::to_string(in.size()) + " metrics, at most "
                     + std::to_string(max_metrics));
  metric_list out;
  for (auto m : in) {
    if (!std::isfinite(m.getValue())) // a metric is a measurement: never NaN or infinite
      return malformed("metric '" + std::string(m.getName().cStr()).substr(0, 64) + "' is "
                       + (std::isnan(m.getValue()) ? "NaN" : "infinite"));
    out.emplace_back(m.getName().cStr(), m.getValue());
  }
  return out;
}

result<envelope> decode_root(w::Envelope::Reader root, std::size_t max_bytes,
                             std::vector<const float*>* in_place = nullptr) {
  if (root.getProtocolVersion() != w::PROTOCOL_VERSION)
    return error{errc::unsupported_version,
                 "protocol version " + std::to_string(root.getProtocolVersion())
                   + ", this build speaks "
                   + std::to_string(w::PROTOCOL_VERSION)};
  envelope env;
  env.sender = root.getSender().cStr();
  auto body = root.getBody();
  switch (body.which()) {
    case w::Envelope::Body::JOIN: {
      auto m = body.getJoin();
      env.body = join_msg{m.getClientId(), m.getNumSamples()};
      break;
    }
    case w::Envelope::Body::WELCOME: {
      auto m = body.getWelcome();
      welcome_msg out{m.getClientId(), m.getCurrentVersion(), {},
                      m.getModelId().cStr(), m.getModelBytes(), m.getModelChunks()};
      if (m.getPromptShapes().size() > max_tensors)
        return malformed("welcome: " + std::to_string(m.getPromptShapes().size())
                         + " tensors, at most " + std::to_string(max_tensors));
      for (auto t : m.getPromptShapes()) {
        tensor_buffer buf;
        buf.name = t.getName().cStr();
        if (t.getShape().size() > max_rank)
          return malformed("welcome tensor '" + buf.name + "': rank "
                           + std::to_string(t.getShape().size()) + ", at most "
                           + std::to_string(max_rank));
        for (auto d : t.getShape())
          buf.shape.push_back(d);
        out.prompt_shapes.tensors.push_back(std::move(buf));
      }
      env.body = std::move(out);
      break;
    }
    case w::Envelope::Body::TASK: {
      auto m = body.getTask();
      auto ps = read_prompts(m.getPrompts(), "task prompts", max_bytes, false);
      if (!ps)
        return ps.err();
      task_msg out;
      out.task_id = m.getTaskId();
      out.client_id = m.getClientId();
      out.base_version = m.getBaseVersion();
      out.prompts = std::move(ps).value();
      out.local_steps = m.getLocalSteps();
      out.learning_rate = m.getLearningRate();
      out.batch_size = m.getBatchSize();
      out.seed = m.getSeed();
      out.deadline = m.getDeadline();
      out.round = m.getRound();
      if (!std::isfinite(out.learning_rate) || !std::isfinite(out.deadline))
        return error{errc::non_finite, "task learning rate or deadline"};
      env.body = std::move(out);
      break;
    }
    case w::Envelope::Body::UPDATE: {
      auto m = body.getUpdate();
      auto ps = read_prompts(m.getPrompts(), "update prompts", max_bytes, false, in_place);
      if (!ps)
        return ps.err();
      update_msg out;
      out.task_id = m.getTaskId();
      out.client_id = m.getClientId();
      out.base_version = m.getBaseVersion();
      out.prompts = std::move(ps).value();
      out.num_samples = m.getNumSamples();
      auto metrics = read_metrics(m.getMetrics());
      if (!metrics)
        return metrics.err();
      out.metrics = std::move(metrics).value();
      env.body = std::move(out);
      break;
    }
    case w::Envelope::Body::EVAL_REQUEST: {
      auto m = body.getEvalRequest();
      auto ps = read_prompts(m.getPrompts(), "eval prompts", max_bytes, false);
      if (!ps)
        return ps.err();
      env.body = eval_request_msg{m.getVersion(), std::move(ps).value(),
                                  m.getSplit().cStr()};
      break;
    }
    case w::Envelope::Body::EVAL_REPORT: {
      auto m = body.getEvalReport();
      auto metrics = read_metrics(m.getMetrics());
      if (!metrics)
        return metrics.err();
      env.body = eval_report_msg{m.getVersion(), m.getSplit().cStr(), std::move(metrics).value(),
                                 m.getNumExamples()};
      break;
    }
    case w::Envelope::Body::REJECT: {
      auto m = body.getReject();
      auto raw = static_cast<int>(m.getReason());
      auto reason = raw >= 0 && raw <= static_cast<int>(errc::outlier)
                      ? static_cast<errc>(raw)
                      : errc::unknown;
      env.body = reject_msg{reason, m.getText().cStr(), m.getTaskId()};
      break;
    }
    case w::Envelope::Body::HEARTBEAT: {
      auto m = body.getHeartbeat();
      auto list = m.getTasks();
      if (list.size() > max_tensors)
        return error{errc::too_large, "heartbeat lists " + std::to_string(list.size())
                                        + " tasks, more than " + std::to_string(max_tensors)};
      heartbeat_msg hb{m.getTime(), {}};
      for (auto t : list)
        hb.tasks.push_back(t);
      env.body = std::move(hb);
      break;
    }
    case w::Envelope::Body::ACK:
      env.body = ack_msg{body.getAck().getTaskId()};
      break;
    case w::Envelope::Body::SHUTDOWN:
      env.body = shutdown_msg{body.getShutdown().getReason().cStr()};
      break;
    case w::Envelope::Body::MODEL_CHUNK: {
      auto m = body.getModelChunk();
      auto data = m.getData();
      env.body = model_chunk_msg{m.getModelId().cStr(), m.getIndex(), m.getCount(),
                                 m.getTotalBytes(), m.getCrc32(),
                                 std::string(reinterpret_cast<const char*>(data.begin()),
                                             data.size())};
      break;
    }
    case w::Envelope::Body::RESUME:
      return error{errc::unsupported,
                   "resume is reserved and not implemented by this build"};
    default:
      return error{errc::unsupported,
                   "unknown message variant "
                     + std::to_string(static_cast<int>(body.which()))};
  }
  return env;
}

/// Words of prompt data a message will carry: sizes the first segment so a
/// large message is built in one allocation instead of a chain of growing ones.
std::size_t payload_words(const message_body& body, wire_dtype dtype) {
  const prompt_set* ps = std::visit(
    overload{[](const task_msg& m) { return m.shared_prompts ? m.shared_prompts.get() : &m.prompts; },
             [](const update_msg& m) { return &m.prompts; },
             [](const eval_request_msg& m) { return &m.prompts; },
             [](const auto&) -> const prompt_set* { return nullptr; }},
    body);
  if (auto* chunk = std::get_if<model_chunk_msg>(&body))
    return chunk->data.size() / 8 + 16;
  std::size_t elem = dtype == wire_dtype::f32 ? 4 : 2;
  return ps == nullptr ? 0 : ps->numel() * elem / 8 + 8 * ps->tensors.size();
}

/// The builder's segments as a wire_buffer: the table and segment 0 in
/// `words`; the rest shared, each referenced range with `owner`, any other
/// (a builder segment beyond the first) copied once into its own keeping.
wire_buffer assemble(capnp::MessageBuilder& mb, const external_data& ext) {
  auto segs = mb.getSegmentsForOutput();
  wire_buffer out;
  if (segs.size() == 1 || ext.refs.empty()) {
    // Serialise straight into the output words (no intermediate flat array).
    out.words.resize(capnp::computeSerializedSizeInWords(mb));
    kj::ArrayOutputStream stream(kj::arrayPtr(
      reinterpret_cast<kj::byte*>(out.words.data()), out.words.size() * 8));
    capnp::writeMessage(stream, mb);
    return out;
  }
  auto n = segs.size();
  auto table_words = n / 2 + 1;
  out.words.assign(table_words + segs[0].size(), 0);
  auto* table = reinterpret_cast<std::uint32_t*>(out.words.data());
  table[0] = static_cast<std::uint32_t>(n - 1);
  for (std::size_t i = 0; i < n; ++i)
    table[1 + i] = static_cast<std::uint32_t>(segs[i].size());
  std::memcpy(out.words.data() + table_words, segs[0].begin(), segs[0].size() * 8);
  for (std::size_t i = 1; i < n; ++i) {
    auto* begin = reinterpret_cast<const std::uint64_t*>(segs[i].begin());
    bool referenced = std::find(ext.refs.begin(), ext.refs.end(),
                                static_cast<const void*>(begin)) != ext.refs.end();
    if (referenced) {
      out.shared.push_back({ext.owner, begin, segs[i].size()});
    } else {
      auto copy = std::make_shared<std::vector<std::uint64_t>>(begin, begin + segs[i].size());
      out.shared.push_back({copy, copy->data(), copy->size()});
    }
  }
  return out;
}

/// encode, with `owner` keeping an update's or evaluation request's prompts
/// alive where they are referenced (null: they are copied); `moved`, where
/// set, holds those prompts (the envelope's were moved into it).
wire_buffer encode_with(const envelope& env, wire_dtype dtype,
                        std::shared_ptr<const void> owner, const prompt_set* moved = nullptr) {
  auto* task = std::get_if<task_msg>(&env.body);
  if (task != nullptr && task->shared_prompts)
    owner = task->shared_prompts;
  bool referencing = owner != nullptr && dtype == wire_dtype::f32;
  capnp::MallocMessageBuilder mb(static_cast<unsigned>(std::min<std::size_t>(
    (referencing ? 0 : payload_words(env.body, dtype)) + 256, std::size_t{1} << 28)));
  external_data ext{owner, mb.getOrphanage(), {}};
  auto* refs = referencing ? &ext : nullptr;
  auto root = mb.initRoot<w::Envelope>();
  root.setProtocolVersion(w::PROTOCOL_VERSION);
  root.setSender(env.sender);
  auto body = root.initBody();
  std::visit(
    overload{
      [&](const join_msg& m) {
        auto b = body.initJoin();
        b.setClientId(m.client_id);
        b.setNumSamples(m.num_samples);
      },
      [&](const welcome_msg& m) {
        auto b = body.initWelcome();
        b.setClientId(m.client_id);
        b.setCurrentVersion(m.current_version);
        b.setModelId(m.model_id);
        b.setModelBytes(m.model_bytes);
        b.setModelChunks(m.model_chunks);
        auto shapes = b.initPromptShapes(
          static_cast<unsigned>(m.prompt_shapes.tensors.size()));
        for (unsigned i = 0; i < m.prompt_shapes.tensors.size(); ++i) {
          auto& src = m.prompt_shapes.tensors[i];
          shapes[i].setName(src.name);
          auto s = shapes[i].initShape(static_cast<unsigned>(src.shape.size()));
          for (unsigned d = 0; d < src.shape.size(); ++d)
            s.set(d, src.shape[d]);
        }
      },
      [&](const task_msg& m) {
        auto b = body.initTask();
        b.setTaskId(m.task_id);
        b.setClientId(m.client_id);
        b.setBaseVersion(m.base_version);
        write_prompts(b.initPrompts(), m.shared_prompts ? *m.shared_prompts : m.prompts, dtype,
                      false, m.shared_prompts ? refs : nullptr);
        b.setLocalSteps(m.local_steps);
        b.setLearningRate(m.learning_rate);
        b.setBatchSize(m.batch_size);
        b.setSeed(m.seed);
        b.setDeadline(m.deadline);
        b.setRound(m.round);
      },
      [&](const update_msg& m) {
        auto b = body.initUpdate();
        b.setTaskId(m.task_id);
        b.setClientId(m.client_id);
        b.setBaseVersion(m.base_version);
        write_prompts(b.initPrompts(), moved ? *moved : m.prompts, dtype, false, refs);
        b.setNumSamples(m.num_samples);
        write_metrics([&](unsigned n) { return b.initMetrics(n); }, m.metrics);
      },
      [&](const eval_request_msg& m) {
        auto b = body.initEvalRequest();
        b.setVersion(m.version);
        write_prompts(b.initPrompts(), moved ? *moved : m.prompts, dtype, false, refs);
        b.setSplit(m.split);
      },
      [&](const eval_report_msg& m) {
        auto b = body.initEvalReport();
        b.setVersion(m.version);
        b.setSplit(m.split);
        write_metrics([&](unsigned n) { return b.initMetrics(n); }, m.metrics);
        b.setNumExamples(m.num_examples);
      },
      [&](const reject_msg& m) {
        // errc's wire values are RejectReason's, in the same order (checked
        // below); codes that are not on the wire go as `unknown`.
        auto b = body.initReject();
        auto code = m.reason <= errc::outlier ? m.reason : errc::unknown;
        b.setReason(static_cast<w::RejectReason>(static_cast<int>(code)));
        b.setText(m.text);
        b.setTaskId(m.task_id);
      },
      [&](const heartbeat_msg& m) {
        auto hb = body.initHeartbeat();
        hb.setTime(m.time);
        auto list = hb.initTasks(static_cast<unsigned>(m.tasks.size()));
        for (unsigned i = 0; i < m.tasks.size(); ++i)
          list.set(i, m.tasks[i]);
      },
      [&](const ack_msg& m) { body.initAck().setTaskId(m.task_id); },
      [&](const shutdown_msg& m) { body.initShutdown().setReason(m.reason); },
      [&](const model_chunk_msg& m) {
        auto b = body.initModelChunk();
        b.setModelId(m.model_id);
        b.setIndex(m.index);
        b.setCount(m.count);
        b.setTotalBytes(m.total_bytes);
        b.setCrc32(m.crc32);
        auto d = b.initData(static_cast<unsigned>(m.data.size()));
        std::memcpy(d.begin(), m.data.data(), m.data.size());
      },
    },
    env.body);
  return assemble(mb, ext);
}

} // namespace

wire_buffer encode(const envelope& env, wire_dtype dtype) {
  return encode_with(env, dtype, nullptr);
}

wire_buffer encode(envelope&& env, wire_dtype dtype) {
  // The prompts move into a holder the message keeps and references.
  prompt_set* ps = nullptr;
  if (auto* up = std::get_if<update_msg>(&env.body))
    ps = &up->prompts;
  else if (auto* ev = std::get_if<eval_request_msg>(&env.body))
    ps = &ev->prompts;
  if (ps == nullptr || dtype != wire_dtype::f32)
    return encode_with(env, dtype, nullptr);
  auto held = std::make_shared<const prompt_set>(std::move(*ps));
  return encode_with(env, dtype, held, held.get());
}

/// The segment table of a single-array Cap'n Proto message, checked as the
/// stock `capnp` tool checks it, before the reader sees it: a segment count
/// in [1, 512] (its 32-bit field would wrap at 2^32), a table that fits, and
/// segments that together fit in the words that follow.
std::optional<error> check_segment_table(const std::vector<std::uint64_t>& words) {
  auto n = static_cast<std::uint64_t>(static_cast<std::uint32_t>(words[0])) + 1;
  if (n > 512)
    return malformed("segment table declares " + std::to_string(n)
                     + " segments, at most 512 are taken");
  auto table_words = n / 2 + 1; // (u32 count, n u32 sizes, padded to a word)
  if (table_words > words.size())
    return malformed("message ends inside its segment table");
  std::uint64_t total = 0;
  for (std::uint64_t i = 0; i < n; ++i) {
    auto at = i + 1; // u32 index of segment i's size
    auto w = words[at / 2];
    total += at % 2 == 0 ? static_cast<std::uint32_t>(w) : static_cast<std::uint32_t>(w >> 32);
  }
  if (total > words.size() - table_words)
    return malformed("segment table declares " + std::to_string(total)
                     + " words, the message holds " + std::to_string(words.size() - table_words));
  return std::nullopt;
}

/// The segments of a buffer with shared segments, as the reader takes them:
/// its table must declare segment 0 as exactly the rest of `words`, and one
/// segment of the stated size per shared segment.
result<std::vector<kj::ArrayPtr<const capnp::word>>> segments_of(const wire_buffer& buf) {
  auto& words = buf.words;
  auto n = static_cast<std::uint64_t>(static_cast<std::uint32_t>(words[0])) + 1;
  auto table_words = n / 2 + 1;
  if (n != buf.shared.size() + 1 || table_words > words.size())
    return malformed("segment table declares " + std::to_string(n) + " segments, the buffer holds "
                     + std::to_string(buf.shared.size() + 1));
  auto size_of = [&](std::uint64_t i) {
    auto at = i + 1;
    auto w = words[at / 2];
    return static_cast<std::uint64_t>(at % 2 == 0 ? static_cast<std::uint32_t>(w)
                                                  : static_cast<std::uint32_t>(w >> 32));
  };
  std::vector<kj::ArrayPtr<const capnp::word>> out;
  if (size_of(0) != words.size() - table_words)
    return malformed("segment 0 is declared with " + std::to_string(size_of(0)) + " words, holds "
                     + std::to_string(words.size() - table_words));
  out.emplace_back(reinterpret_cast<const capnp::word*>(words.data() + table_words), size_of(0));
  for (std::uint64_t i = 1; i < n; ++i) {
    auto& seg = buf.shared[i - 1];
    if (size_of(i) != seg.words)
      return malformed("segment " + std::to_string(i) + " is declared with "
                       + std::to_string(size_of(i)) + " words, holds "
                       + std::to_string(seg.words));
    out.emplace_back(reinterpret_cast<const capnp::word*>(seg.data), seg.words);
  }
  return out;
}

/// Checks the size, opens `buf` as a Cap'n Proto message within `limits`
/// and hands its root to `read`; exceptions of the reader are `malformed`.
/// A buffer with shared segments is read where they lie.
template <class T, class Read>
result<T> with_root(const wire_buffer& buf, const decode_limits& limits, Read read) {
  if (buf.size_bytes() > limits.max_bytes)
    return error{errc::too_large,
                 "message of " + std::to_string(buf.size_bytes())
                   + " bytes exceeds the limit of "
                   + std::to_string(limits.max_bytes)};
  if (buf.words.empty())
    return malformed("empty message");
  std::vector<kj::ArrayPtr<const capnp::word>> segments;
  if (buf.is_flat()) {
    if (auto err = check_segment_table(buf.words))
      return *err;
  } else {
    auto segs = segments_of(buf);
    if (!segs)
      return segs.err();
    segments = std::move(segs).value();
  }
  try {
    capnp::ReaderOptions opts;
    opts.traversalLimitInWords = limits.traversal_limit_words;
    opts.nestingLimit = limits.nesting_limit;
    if (!buf.is_flat()) {
      capnp::SegmentArrayMessageReader reader(
        kj::ArrayPtr<const kj::ArrayPtr<const capnp::word>>(segments.data(), segments.size()),
        opts);
      return read(reader.getRoot<w::Envelope>());
    }
    kj::ArrayPtr<const capnp::word> words(
      reinterpret_cast<const capnp::word*>(buf.words.data()), buf.words.size());
    capnp::FlatArrayMessageReader reader(words, opts);
    return read(reader.getRoot<w::Envelope>());
  } catch (const kj::Exception& e) {
    return malformed(e.getDescription().cStr());
  } catch (const std::exception& e) {
    return malformed(e.what());
  }
}

result<envelope> decode(const wire_buffer& buf, const decode_limits& limits) {
  return with_root<envelope>(buf, limits, [&](w::Envelope::Reader root) {
    return decode_root(root, limits.max_bytes);
  });
}

result<update_in_place> decode_update_in_place(const wire_buffer& buf,
                                               const decode_limits& limits) {
  update_in_place out;
  auto env = with_root<envelope>(buf, limits, [&](w::Envelope::Reader root) -> result<envelope> {
    if (root.getBody().which() != w::Envelope::Body::UPDATE)
      return error{errc::unsupported, "not an update"};
    return decode_root(root, limits.max_bytes, &out.data);
  });
  if (!env)
    return env.err();
  out.sender = std::move(env.value().sender);
  out.msg = std::move(std::get<update_msg>(env.value().body));
  return out;
}

void wire_buffer::flatten() {
  if (shared.empty())
    return;
  std::size_t n = words.size();
  for (auto& s : shared)
    n += s.words;
  words.reserve(n);
  for (auto& s : shared)
    words.insert(words.end(), s.data, s.data + s.words);
  shared.clear();
}

const unsigned char* wire_buffer::bytes() const {
  if (!shared.empty()) {
    std::fprintf(stderr, "fedsp: bug: the bytes of a wire_buffer with shared segments were read "
                         "without flattening it\n");
    std::abort();
  }
  return reinterpret_cast<const unsigned char*>(words.data());
}

bool operator==(const wire_buffer& a, const wire_buffer& b) {
  if (a.size_bytes() != b.size_bytes())
    return false;
  auto fa = a, fb = b;
  fa.flatten();
  fb.flatten();
  return fa.words == fb.words;
}

result<envelope_head> peek(const wire_buffer& buf, const decode_limits& limits) {
  return with_root<envelope_head>(buf, limits, [](w::Envelope::Reader root)
                                                 -> result<envelope_head> {
    if (root.getProtocolVersion() != w::PROTOCOL_VERSION)
      return error{errc::unsupported_version,
                   "protocol version " + std::to_string(root.getProtocolVersion())
                     + ", this build speaks " + std::to_string(w::PROTOCOL_VERSION)};
    envelope_head head;
    head.sender = root.getSender().cStr();
    auto body = root.getBody();
    if (body.which() == w::Envelope::Body::UPDATE) {
      auto m = body.getUpdate();
      head.is_update = true;
      head.task_id = m.getTaskId();
      head.client_id = m.getClientId();
    }
    return head;
  });
}

result<envelope> decode_bytes(const void* data, std::size_t size,
                              const decode_limits& limits) {
  if (size > limits.max_bytes)
    return error{errc::too_large, "message of " + std::to_string(size)
                                    + " bytes exceeds the limit of "
                                    + std::to_string(limits.max_bytes)};
  if (size % 8 != 0)
    return malformed("length " + std::to_string(size)
                     + " is not a whole number of 8-byte words (truncated?)");
  wire_buffer buf;
  buf.words.resize(size / 8);
  std::memcpy(buf.words.data(), data, size);
  return decode(buf, limits);
}

// -- describe ---------------------------------------------------------------------

namespace {

void describe_prompts(std::ostringstream& os, const prompt_set& ps) {
  os << "  prompts: version " << ps.version << ", " << ps.tensors.size()
     << " tensor(s), " << ps.numel() << " values\n";
  for (auto& t : ps.tensors) {
    os << "    " << describe_shape(t);
    if (!t.data.empty()) {
      auto [lo, hi] = std::minmax_element(t.data.begin(), t.data.end());
      double sum = 0;
      for (float v : t.data)
        sum += v;
      os << " min " << *lo << " max " << *hi << " mean "
         << sum / static_cast<double>(t.data.size());
    }
    os << "\n";
  }
}

void describe_metrics(std::ostringstream& os, const metric_list& ms) {
  for (auto& [k, v] : ms)
    os << "  metric " << k << ": " << v << "\n";
}

} // namespace

std::string describe(const envelope& env) {
  std::ostringstream os;
  os << kind_name(env.body) << " from '" << env.sender << "' (protocol "
     << protocol_version() << ")\n";
  std::visit(
    overload{
      [&](const join_msg& m) {
        os << "  client_id: " << m.client_id << "\n  num_samples: "
           << m.num_samples << "\n";
      },
      [&](const welcome_msg& m) {
        os << "  client_id: " << m.client_id << "\n  current_version: "
           << m.current_version << "\n  model: '" << m.model_id << "', " << m.model_bytes
           << " bytes in " << m.model_chunks << " chunk(s)\n";
        for (auto& t : m.prompt_shapes.tensors)
          os << "  prompt layout: " << describe_shape(t) << "\n";
      },
      [&](const task_msg& m) {
        os << "  task_id: " << m.task_id << "\n  client_id: " << m.client_id
           << "\n  round: " << m.round << "\n  base_version: "
           << m.base_version << "\n  local_steps: " << m.local_steps
           << "\n  learning_rate: " << m.learning_rate
           << "\n  batch_size: " << m.batch_size << "\n  seed: " << m.seed
           << "\n  deadline: " << m.deadline << "\n";
        describe_prompts(os, m.prompts);
      },
      [&](const update_msg& m) {
        os << "  task_id: " << m.task_id << "\n  client_id: " << m.client_id
           << "\n  base_version: " << m.base_version
           << "\n  num_samples: " << m.num_samples << "\n";
        describe_metrics(os, m.metrics);
        describe_prompts(os, m.prompts);
      },
      [&](const eval_request_msg& m) {
        os << "  version: " << m.version << "\n  split: " << m.split << "\n";
        describe_prompts(os, m.prompts);
      },
      [&](const eval_report_msg& m) {
        os << "  version: " << m.version << "\n  split: " << m.split
           << "\n  num_examples: " << m.num_examples << "\n";
        describe_metrics(os, m.metrics);
      },
      [&](const reject_msg& m) {
        os << "  reason: " << to_string(m.reason) << "\n  task_id: "
           << m.task_id << "\n  text: " << m.text << "\n";
      },
      [&](const heartbeat_msg& m) {
        os << "  time: " << m.time << "\n  tasks:";
        for (auto t : m.tasks)
          os << " " << t;
        os << "\n";
      },
      [&](const ack_msg& m) { os << "  task_id: " << m.task_id << "\n"; },
      [&](const shutdown_msg& m) { os << "  reason: " << m.reason << "\n"; },
      [&](const model_chunk_msg& m) {
        os << "  model_id: " << m.model_id << "\n  chunk: " << m.index + 1 << " of " << m.count
           << "\n  bytes: " << m.data.size() << " of " << m.total_bytes << "\n  crc32: " << m.crc32
           << "\n";
      },
    },
    env.body);
  return os.str();
}

} // namespace fedsp
