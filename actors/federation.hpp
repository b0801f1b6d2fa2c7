// One whole federated run in this process: data, workers, server (with its
// aggregator and evaluator) and clients, wired together and run to the end.
// The CLI's `fedsp run` and the integration tests call this.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "actors/network.hpp"
#include "models/federated.hpp"
#include "runtime/error.hpp"
#include "runtime/json.hpp"
#include "runtime/scenario.hpp"

namespace fedsp {

struct run_options {
  std::string out_dir;       // run directory: events.jsonl, summary.json, fedsp.log
  std::string dump_dir;      // non-empty: write every message there
  bool console = true;       // also log to the terminal
  bool resume = false;       // go on from out_dir's checkpoint and log
                             // (fedsp resume); events.jsonl is appended to
  bool salvage = false;      // resume: go on past a damaged log, recording
                             // the acknowledged updates it lost (updates_lost)
  double downtime_s = 0;     // resuming after a server_crash fault: the time
                             // the server was down (added to the clock)
  std::optional<network_options> serve; // fedsp serve: listen here for join
                                        // nodes instead of spawning clients
};

/// What `fedsp resume <run-dir>` needs: the scenario and options the run
/// was started with (recorded in run-dir/run.json), with resume set.
/// Errors: no run.json, a scenario file that is gone or has changed since.
result<std::pair<scenario, run_options>> load_run(const std::string& run_dir);

/// Runs the scenario; returns the summary written to out_dir/summary.json.
/// Errors: bad data files, an unwritable run directory, a failed actor.
result<json> run_federation(const scenario& sc, const run_options& opts);

} // namespace fedsp
