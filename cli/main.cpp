// The `fedsp` command: finds the command in one table (help and dispatch
// both read it), hands it its arguments, nothing else. The commands live in
// cli/federation_commands.cpp and cli/tool_commands.cpp; how they read
// their flags, in cli/flags.hpp.
#include <malloc.h>

#include <cstdio>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include "cli/commands.hpp"

namespace fedsp::cli {

int fail(const std::string& msg, int code) {
  std::cerr << "fedsp: " << msg << "\n";
  return code;
}

const std::vector<command>& commands() {
  static const std::vector<command> all = [] {
    auto v = federation_commands();
    for (auto& c : tool_commands())
      v.push_back(std::move(c));
    return v;
  }();
  return all;
}

namespace {

std::string main_usage() {
  std::string text = "usage: fedsp <command> [options]\n\n"
                     "fedsp - federated soft-prompt tuning as actors\n\ncommands:\n";
  auto line = [&](const char* what, const char* does) {
    char buf[256];
    std::snprintf(buf, sizeof buf, "  %-21s %s\n", what, does);
    text += buf;
  };
  for (auto& c : commands())
    for (auto& [what, does] : c.listing)
      line(what.c_str(), does.c_str());
  line("help [command]", "show help for a command");
  return text + "\nRun 'fedsp <command> --help' for a command's options.\n";
}

const command* find_command(const std::string& name) {
  for (auto& c : commands())
    if (name == c.name)
      return &c;
  return nullptr;
}

/// A group's commands ("prepare" for "prepare jsonl", ...): their names
/// after the group's, comma-separated; "" when `name` is not a group.
std::string group_members(const std::string& name) {
  std::string members;
  for (auto& c : commands())
    if (c.name.rfind(name + " ", 0) == 0)
      members += (members.empty() ? "" : ", ") + c.name.substr(name.size() + 1);
  return members;
}

/// The usage of a command or of a group (its members share one); null when
/// neither.
const char* usage_of(const std::string& name) {
  if (auto* c = find_command(name))
    return c->usage;
  for (auto& c : commands())
    if (c.name.rfind(name + " ", 0) == 0)
      return c.usage;
  return nullptr;
}

bool wants_help(const std::vector<std::string>& args) {
  for (auto& a : args)
    if (a == "--help" || a == "-h")
      return true;
  return false;
}

int dispatch(int argc, char** argv) {
  // Messages of tens of kilobytes to megabytes are allocated and freed at a
  // high rate; keep freed memory in the process instead of returning it to
  // the kernel and faulting it back in (bench/README.md, "Runtime overhead").
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) {
    std::cerr << main_usage();
    return 2;
  }
  if (args[0] == "--help" || args[0] == "-h") {
    std::cout << main_usage();
    return 0;
  }
  std::vector<std::string> rest(args.begin() + 1, args.end());
  if (args[0] == "help") {
    if (rest.empty()) {
      std::cout << main_usage();
      return 0;
    }
    auto* usage = usage_of(rest[0]);
    if (usage == nullptr)
      return fail("help: unknown command '" + rest[0] + "'");
    std::cout << usage;
    return 0;
  }
  auto* c = find_command(args[0]);
  if (c == nullptr) {
    auto members = group_members(args[0]);
    if (members.empty())
      return fail("unknown command '" + args[0] + "' (see 'fedsp --help')");
    if (rest.empty() || wants_help(rest)) { // "fedsp prepare": what it can prepare
      std::cout << usage_of(args[0]);
      return rest.empty() ? 2 : 0;
    }
    c = find_command(args[0] + " " + rest[0]);
    if (c == nullptr)
      return fail(args[0] + ": unknown data set '" + rest[0] + "' (known: " + members + ")");
    rest.erase(rest.begin());
  }
  if (wants_help(rest)) {
    std::cout << c->usage;
    return 0;
  }
  arguments parsed;
  if (auto err = arguments::parse(c->name, c->flags, rest, parsed))
    return fail(*err);
  return c->run(parsed);
}

} // namespace
} // namespace fedsp::cli

/// The last resort (issue 15): an exception that escaped every command's own
/// checks ends the process with its message and exit 1, never an abort.
/// Each such escape is a bug to fix where it was thrown.
int main(int argc, char** argv) {
  try {
    return fedsp::cli::dispatch(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fedsp: internal error (a bug; please report it): %s\n", e.what());
  } catch (...) {
    std::fprintf(stderr, "fedsp: internal error (a bug; please report it): unknown exception\n");
  }
  return 1;
}
