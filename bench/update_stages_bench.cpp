// Where the time of one update goes in one process, stage by stage, for
// bench/overhead.sh: the path a large update takes through fedsp's actors,
// each stage timed alone on the real code, medians over many updates.
//
//   fedsp_update_stages [FLOATS] [REPS]      (defaults 1035010, 60)
//
// Stages, in the order an update meets them:
//   encode task    the server's Task: the version's prompts referenced, not copied
//   hop            a wire_buffer from one actor to another and back, halved
//   decode task    the client copies the prompts out for its trainer, checking them
//   train (null)   the null trainer hands them back (moved, not copied)
//   encode update  the client's Update: the trainer's output referenced
//   view update    the aggregator reads the Update in place and checks it
//   fold           the update added to the running sum (a flush of 16, per update)
//   event          the `update` event line written to events.jsonl
// and, for scale, a memcpy of the same bytes.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <caf/all.hpp>
#include <malloc.h>
#include <unistd.h>

#include "actors/wire.hpp"
#include "runtime/codec.hpp"
#include "runtime/events.hpp"
#include "runtime/strategy.hpp"

namespace {

using clock_type = std::chrono::steady_clock;

double us_since(clock_type::time_point t0) {
  return std::chrono::duration<double, std::micro>(clock_type::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

} // namespace

int main(int argc, char** argv) {
  using namespace fedsp;
  long floats = argc > 1 ? std::strtol(argv[1], nullptr, 10) : 1035010;
  long reps = argc > 2 ? std::strtol(argv[2], nullptr, 10) : 60;
  if (floats <= 0 || reps <= 0) {
    std::fprintf(stderr, "usage: fedsp_update_stages [FLOATS] [REPS]\n");
    return 2;
  }
  // The allocator as `fedsp` sets it (cli/main.cpp): freed message and
  // prompt buffers are reused, not handed back to the kernel.
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  auto n = static_cast<std::size_t>(floats);
  prompt_set version;
  version.version = 7;
  version.tensors.push_back({"params", {static_cast<std::uint32_t>(n)}, std::vector<float>(n)});
  for (std::size_t i = 0; i < n; ++i)
    version.tensors[0].data[i] = static_cast<float>(i % 1000) * 1e-3f;
  auto shared = std::make_shared<const prompt_set>(version);

  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys};
  auto echo = sys.spawn([]() -> caf::behavior {
    return {[](wire_buffer& b) { return std::move(b); }};
  });

  auto dir = std::filesystem::temp_directory_path()
             / ("fedsp_update_stages_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  event_log events((dir / "events.jsonl").string());

  std::vector<double> t_enc_task, t_hop, t_dec_task, t_train, t_enc_up, t_view, t_fold, t_event,
    t_memcpy;
  fold_accumulator sum;
  auto stale = parse_staleness("constant").value();
  std::vector<float> scratch(n);
  for (long r = 0; r < reps + 3; ++r) {
    bool keep = r >= 3; // warm-up
    auto t0 = clock_type::now();
    task_msg task;
    task.task_id = static_cast<std::uint64_t>(r) + 1;
    task.base_version = version.version;
    task.shared_prompts = shared;
    task.learning_rate = 0.1;
    auto task_buf = encode(envelope{"server", task});
    double enc_task = us_since(t0);

    t0 = clock_type::now();
    self->request(echo, caf::infinite, std::move(task_buf))
      .receive([&](wire_buffer& b) { task_buf = std::move(b); }, [](caf::error&) { std::abort(); });
    double hop = us_since(t0) / 2;

    t0 = clock_type::now();
    auto got = decode(task_buf);
    if (!got)
      std::abort();
    auto prompts = std::move(std::get<task_msg>(got.value().body).prompts);
    double dec_task = us_since(t0);

    t0 = clock_type::now();
    prompt_set trained = std::move(prompts); // the null trainer
    double train = us_since(t0);

    t0 = clock_type::now();
    auto up_buf = encode(envelope{"client-0", update_msg{task.task_id, 0, version.version,
                                                         std::move(trained), 32, {}}});
    double enc_up = us_since(t0);

    t0 = clock_type::now();
    auto view = decode_update_in_place(up_buf);
    if (!view)
      std::abort();
    double viewed = us_since(t0);

    t0 = clock_type::now();
    auto keep_alive = std::make_shared<const wire_buffer>(std::move(up_buf));
    if (sum.add_in_place(task.task_id, 32, 0, shared, view.value().msg.prompts,
                         std::move(view.value().data), keep_alive, stale))
      std::abort();
    if (sum.count() == 16) { // a flush's cost, shared by its 16 updates
      auto out = sum.apply(version);
      sum.clear();
    }
    double fold = us_since(t0);

    t0 = clock_type::now();
    events.write("update", 1.0, json::object{{"task", task.task_id}, {"client", 0}, {"round", 1},
                                             {"base_version", 7}, {"staleness", 0},
                                             {"num_samples", 32}, {"loss_before", 0.5},
                                             {"loss_after", 0.4}});
    double event = us_since(t0);

    t0 = clock_type::now();
    std::memcpy(scratch.data(), version.tensors[0].data.data(), n * 4);
    double mc = us_since(t0);
    if (!keep)
      continue;
    t_enc_task.push_back(enc_task);
    t_hop.push_back(hop);
    t_dec_task.push_back(dec_task);
    t_train.push_back(train);
    t_enc_up.push_back(enc_up);
    t_view.push_back(viewed);
    t_fold.push_back(fold);
    t_event.push_back(event);
    t_memcpy.push_back(mc);
  }
  self->send_exit(echo, caf::exit_reason::user_shutdown);
  std::filesystem::remove_all(dir);
  // The fold's flushes land on every 16th update: its mean, not its median.
  double fold_mean = 0;
  for (auto v : t_fold)
    fold_mean += v;
  fold_mean /= static_cast<double>(t_fold.size());
  double total = median(t_enc_task) + median(t_hop) + median(t_dec_task) + median(t_train)
                 + median(t_enc_up) + median(t_view) + fold_mean + median(t_event);
  std::printf("one update of %zu floats (%.1f MB), medians of %ld (fold: mean)\n", n,
              static_cast<double>(n) * 4 / 1e6, reps);
  std::printf("| stage | µs |\n|---|---|\n");
  std::printf("| encode task (prompts referenced) | %.1f |\n", median(t_enc_task));
  std::printf("| hop (actor to actor) | %.1f |\n", median(t_hop));
  std::printf("| decode task (copied out, checked) | %.1f |\n", median(t_dec_task));
  std::printf("| train (null: moved) | %.1f |\n", median(t_train));
  std::printf("| encode update (prompts referenced) | %.1f |\n", median(t_enc_up));
  std::printf("| view update (in place, checked) | %.1f |\n", median(t_view));
  std::printf("| fold (into the running sum) | %.1f |\n", fold_mean);
  std::printf("| event | %.1f |\n", median(t_event));
  std::printf("| **total** | **%.1f** |\n", total);
  std::printf("| memcpy of the same bytes, for scale | %.1f |\n", median(t_memcpy));
  return 0;
}
