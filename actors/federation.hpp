// One whole federated run in this process: data, workers, server (with its
// aggregator and evaluator) and clients, wired together and run to the end.
// The CLI's `fedsp run` and the integration tests call this.
#pragma once

#include <string>

#include "runtime/error.hpp"
#include "runtime/json.hpp"
#include "runtime/scenario.hpp"

namespace fedsp {

struct run_options {
  std::string out_dir;       // run directory: events.jsonl, summary.json, fedsp.log
  std::string dump_dir;      // non-empty: write every message there
  bool console = true;       // also log to the terminal
};

/// Runs the scenario; returns the summary written to out_dir/summary.json.
/// Errors: bad data files, an unwritable run directory, a failed actor.
result<json> run_federation(const scenario& sc, const run_options& opts);

} // namespace fedsp
