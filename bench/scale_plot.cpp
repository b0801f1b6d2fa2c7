// Draws bench/scale.sh's figures with fedsp's own plotting (runtime/report.hpp):
//
//   fedsp_scale_plot CSV TIME_SVG MEMORY_SVG
//
// CSV lines: series,clients,us_per_update,peak_rss_mb (a header line is
// skipped; an empty or "-" field leaves that point out of its plot).
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "runtime/report.hpp"

namespace {

bool number(const std::string& text, double& out) {
  if (text.empty() || text == "-")
    return false;
  std::size_t used = 0;
  try {
    out = std::stod(text, &used);
  } catch (...) {
    return false;
  }
  return used == text.size();
}

} // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: fedsp_scale_plot CSV TIME_SVG MEMORY_SVG\n");
    return 2;
  }
  std::ifstream in(argv[1]);
  if (!in) {
    std::fprintf(stderr, "fedsp_scale_plot: cannot read %s\n", argv[1]);
    return 1;
  }
  std::map<std::string, fedsp::scale_series> time, memory;
  std::vector<std::string> order;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (n == 1 && line.rfind("series,", 0) == 0)
      continue;
    std::vector<std::string> f;
    std::stringstream ss(line);
    for (std::string cell; std::getline(ss, cell, ',');)
      f.push_back(cell);
    double clients = 0, us = 0, mb = 0;
    if (f.size() != 4 || !number(f[1], clients)) {
      std::fprintf(stderr, "fedsp_scale_plot: %s:%d: expected series,clients,us,mb\n", argv[1], n);
      return 1;
    }
    if (!time.count(f[0]))
      order.push_back(f[0]);
    time[f[0]].name = memory[f[0]].name = f[0];
    if (number(f[2], us))
      time[f[0]].points.emplace_back(clients, us);
    if (number(f[3], mb))
      memory[f[0]].points.emplace_back(clients, mb);
  }
  std::vector<fedsp::scale_series> t, m;
  for (auto& name : order) {
    if (!time[name].points.empty())
      t.push_back(time[name]);
    if (!memory[name].points.empty())
      m.push_back(memory[name]);
  }
  std::ofstream(argv[2]) << fedsp::scale_svg("Time per update against clients", "µs per update",
                                             t)
                         << "\n";
  std::ofstream(argv[3]) << fedsp::scale_svg("Peak memory against clients", "peak RSS (MB)", m)
                         << "\n";
  return 0;
}
