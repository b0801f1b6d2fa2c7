#include "actors/run_setup.hpp"

#include <atomic>
#include <cstdio>

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "runtime/dataset.hpp"
#include "runtime/rng.hpp"

namespace fedsp {

namespace {

/// The clients' shards of the training data, as the scenario partitions it.
result<std::vector<std::vector<std::size_t>>> partition(const scenario& sc,
                                                        const std::vector<mc_example>& train,
                                                        std::uint32_t clients) {
  auto seed = mix_seed(sc.seed, 11);
  if (sc.clients.partition == "dirichlet") {
    std::vector<int> labels;
    for (auto& ex : train)
      labels.push_back(ex.label);
    return partition_dirichlet(labels, clients, sc.clients.alpha, seed);
  }
  if (sc.clients.partition == "group") {
    std::vector<std::string> groups;
    for (auto& ex : train)
      groups.push_back(ex.group);
    return partition_by_group(groups, clients);
  }
  return partition_iid(train.size(), clients, seed);
}

} // namespace

result<shard_list> shard_data(const scenario& sc, const task_split& data) {
  // Centralised training: one party holds the union of the clients' data.
  auto clients_n = sc.method.name == "centralized" ? 1u : sc.clients.count;
  if (data.train.size() < clients_n)
    return error{errc::bad_scenario, "the training split has " + std::to_string(data.train.size())
                                       + " examples, fewer than the " + std::to_string(clients_n)
                                       + " clients"};
  auto parts = partition(sc, data.train, clients_n);
  if (!parts)
    return error{errc::bad_scenario, parts.err().text};
  shard_list out;
  for (auto& idx : parts.value()) {
    auto shard = std::make_shared<std::vector<mc_example>>();
    for (auto i : idx)
      shard->push_back(data.train[i]);
    out.push_back(std::move(shard));
  }
  return out;
}

std::shared_ptr<spdlog::logger> make_run_logger(const std::string& name, const std::string& dir,
                                                bool console) {
  std::vector<spdlog::sink_ptr> sinks;
  // (The terminal first: a file sink that fails, a full disk, ends spdlog's
  // loop over the sinks for that line.)
  if (console)
    sinks.push_back(std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
  sinks.push_back(std::make_shared<spdlog::sinks::basic_file_sink_mt>(dir + "/fedsp.log", true));
  auto log = std::make_shared<spdlog::logger>(name, sinks.begin(), sinks.end());
  log->set_pattern("[%H:%M:%S.%e] [%^%l%$] %v");
  // One line about a failing log file, not one per log line.
  auto told = std::make_shared<std::atomic<bool>>(false);
  log->set_error_handler([told, path = dir + "/fedsp.log"](const std::string& msg) {
    if (!told->exchange(true))
      std::fprintf(stderr, "fedsp: cannot write %s: %s (further errors of this file are not "
                           "shown)\n", path.c_str(), msg.c_str());
  });
  log->flush_on(spdlog::level::info);
  return log;
}

result<shard_list> client_shards(const scenario& sc) {
  auto data = load_task_split(sc);
  if (!data)
    return data.err();
  return shard_data(sc, data.value());
}

} // namespace fedsp
