// What a run leaves besides events.jsonl and summary.json: metrics.csv (one
// row per published version) and report.html, a self-contained page with
// SVG plots drawn here (no scripts, no external files): test accuracy against
// virtual time and against version, and a per-client timeline of tasks,
// stragglers, dropouts, late and stale updates.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "runtime/error.hpp"
#include "runtime/json.hpp"

namespace fedsp {

/// metrics.csv from summary.json's `per_round` records (plus version 0).
/// Columns: version, round, t, test_acc, test_acc_norm, test_loss,
/// aux_test_acc, updates, stale_updates, mean_loss_before, mean_loss_after.
std::string metrics_csv(const json& summary);

/// report.html from the summary and the events (the parsed events.jsonl).
/// Shows at most `max_clients` timeline rows (the first clients by id).
std::string report_html(const json& summary, const std::vector<json>& events,
                        std::size_t max_clients = 60);

/// One line of a comparison: a label and its runs' folders (one per seed).
struct compared_method {
  std::string label;
  std::vector<std::string> dirs;
};

/// An SVG (fedsp compare) of test accuracy against version for several
/// methods: per method the mean over its runs, a band from the lowest to
/// the highest run, and for a method scored only at version 0 (zero-shot) a
/// dashed level across. `table`, when given, gets one line per method: runs,
/// final accuracy mean +- sd (sample), min and max. Errors name the folder
/// whose summary.json cannot be read or holds no scored version.
result<std::string> comparison_svg(const std::vector<compared_method>& methods,
                                   const std::string& title, std::string* table = nullptr);

/// One line of scale_svg: (clients, value) points.
struct scale_series {
  std::string name;
  std::vector<std::pair<double, double>> points;
};

/// An SVG line plot of values against the number of clients on a log10 x
/// axis with ticks at powers of ten (bench/scale.sh: time per update and
/// peak memory from 10 to 100,000 clients). Points with x <= 0 are left out.
std::string scale_svg(const std::string& title, const std::string& ylabel,
                      const std::vector<scale_series>& series);

/// Reads DIR/summary.json and DIR/events.jsonl, writes DIR/metrics.csv and
/// DIR/report.html. Errors name the file that could not be read or written.
std::optional<error> write_run_report(const std::string& dir);

} // namespace fedsp
