// The run clock: the time `t` of every event and of task deadlines.
//
// Two clocks behind one interface (docs/architecture.md "The clock"): real_clock below
// (seconds since the run started, times a scale factor) and the virtual,
// discrete-event clock of runtime/timeline.hpp.
#pragma once

#include <chrono>

namespace fedsp {

class run_clock {
public:
  virtual ~run_clock() = default;
  /// Seconds since the start of the run.
  virtual double now() const = 0;
};

class real_clock final : public run_clock {
public:
  /// `offset`: the time it starts at (a resumed run goes on from its
  /// checkpoint's time).
  explicit real_clock(double scale = 1.0, double offset = 0.0)
    : start_(std::chrono::steady_clock::now()), scale_(scale), offset_(offset) {}

  double now() const override {
    std::chrono::duration<double> d = std::chrono::steady_clock::now() - start_;
    return offset_ + d.count() * scale_;
  }

private:
  std::chrono::steady_clock::time_point start_;
  double scale_;
  double offset_;
};

} // namespace fedsp
