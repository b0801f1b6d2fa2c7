// The `fedsp` commands: one table that help and dispatch both read
// (cli/main.cpp). Each entry holds the command's name, its lines in the
// main help, its usage text, its flags and its handler; dispatch prints the
// usage for --help, parses the flags (cli/flags.hpp) and then calls the
// handler, so no command reads its command line itself.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "cli/flags.hpp"

namespace fedsp::cli {

struct command {
  /// What follows `fedsp`: one word, or two for a command of a group
  /// ("prepare jsonl"), whose usage `fedsp help prepare` prints.
  std::string name;
  /// Its lines of the main help: what to type, what it does.
  std::vector<std::pair<std::string, std::string>> listing;
  const char* usage;
  flag_spec flags;
  int (*run)(const arguments& args);
};

/// Every command, in the order the main help lists them.
const std::vector<command>& commands();

/// "fedsp: <msg>" on stderr; returns `code` (2: the command line is wrong).
int fail(const std::string& msg, int code = 2);

// The table's entries, by file.
// cli/federation_commands.cpp
std::vector<command> federation_commands();
// cli/tool_commands.cpp
std::vector<command> tool_commands();

} // namespace fedsp::cli
