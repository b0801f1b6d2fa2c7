#include "runtime/message_dump.hpp"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace fedsp {

message_dump::message_dump(std::string dir) : dir_(std::move(dir)) {
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  if (ec)
    throw std::runtime_error("cannot create message dump folder '" + dir_
                             + "': " + ec.message());
}

std::string message_dump::write(const char* kind, const std::string& sender,
                                const wire_buffer& buf) {
  auto n = ++seq_;
  char prefix[16];
  std::snprintf(prefix, sizeof prefix, "%06zu", n);
  std::string safe;
  for (char c : sender)
    safe += std::isalnum(static_cast<unsigned char>(c)) || c == '-' ? c : '_';
  auto path = dir_ + "/" + prefix + "-" + kind + "-" + safe + ".bin";
  std::ofstream out(path, std::ios::binary);
  buf.for_each_piece([&](const char* p, std::size_t n) { // (shared segments too)
    out.write(p, static_cast<std::streamsize>(n));
  });
  return out ? path : std::string();
}

} // namespace fedsp
