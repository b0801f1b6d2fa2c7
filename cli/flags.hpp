// One way every `fedsp` command reads its arguments: the flags it knows,
// each a switch or taking one value, and its positional arguments. Errors
// name the command and the flag, in the same words for every command. The
// flags of each command are declared in its entry of the command table
// (cli/commands.hpp); dispatch parses before the command runs.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace fedsp::cli {

struct flag {
  std::string name;         // "--out"
  bool takes_value = true;  // false: a switch (--quiet)
  bool repeatable = false;  // --set KEY=VALUE ...
};

/// A command's arguments: which flags, how many positional arguments (and
/// what they are called, for the message about one too many).
struct flag_spec {
  std::vector<flag> flags;
  std::size_t positional = 0;
  std::string what = "argument";
};

/// What a command was given, and the checks of its values. Every message is
/// "<command>: ...", without the "fedsp: " prefix.
class arguments {
public:
  /// Parses `args` for command `cmd` ("run", "prepare jsonl"); the error
  /// message on a mistake ("run: unknown option '--fast' (see 'fedsp run --help')").
  static std::optional<std::string> parse(const std::string& cmd, const flag_spec& spec,
                                          const std::vector<std::string>& args, arguments& out);

  bool has(const std::string& name) const { return values_.count(name) != 0; }
  /// The flag's value (its last one when repeated); `fallback` when absent
  /// or given empty (`--out ''` means the default, as it always did).
  std::string get(const std::string& name, const std::string& fallback = "") const;
  /// Every value of a repeatable flag, in order.
  std::vector<std::string> all(const std::string& name) const;
  const std::vector<std::string>& positional() const { return positional_; }
  const std::string& command() const { return cmd_; }

  /// An integer flag in [lo, hi] into `out` (untouched when absent).
  std::optional<std::string> integer(const std::string& name, std::uint64_t lo, std::uint64_t hi,
                                     std::uint64_t& out) const;
  /// A finite number into `out` (untouched when absent); what range it must
  /// be in is for the command's library to say.
  std::optional<std::string> real(const std::string& name, double& out) const;

private:
  std::string cmd_;
  std::map<std::string, std::vector<std::string>> values_;
  std::vector<std::string> positional_;
};

} // namespace fedsp::cli
