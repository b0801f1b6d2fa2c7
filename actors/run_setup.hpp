// What a run in this process (actors/federation.cpp) and a join node
// (actors/network.cpp) both set up: the clients' shards of the data and the
// run's log. Its own file so that neither of the two includes the other.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "models/federated.hpp"
#include "runtime/error.hpp"
#include "runtime/scenario.hpp"

namespace spdlog {
class logger;
}

namespace fedsp {

using shard_list = std::vector<std::shared_ptr<const std::vector<mc_example>>>;

/// The clients' private shards of the training data, as the scenario
/// partitions it (iid, dirichlet or group; one shard for centralized).
/// Errors: fewer examples than clients, a partition that cannot be made.
result<shard_list> shard_data(const scenario& sc, const task_split& data);

/// The same from the scenario's data files (the same in every process: a
/// join node computes its own clients' shards). Errors: the data, as above.
result<shard_list> client_shards(const scenario& sc);

/// The log of a run or a join node: DIR/fedsp.log, and the terminal
/// (stderr) when `console`.
std::shared_ptr<spdlog::logger> make_run_logger(const std::string& name, const std::string& dir,
                                                bool console);

} // namespace fedsp
