#include "runtime/report.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>

namespace fedsp {

namespace {

double num(const json& j, const char* key, double fallback = NAN) {
  auto* v = j.find(key);
  return v != nullptr && v->is_number() ? v->as_number() : fallback;
}

std::string str(const json& j, const char* key) {
  auto* v = j.find(key);
  return v != nullptr && v->is_string() ? v->as_string() : "";
}

std::string fmt(double v, int digits = 4) {
  if (std::isnan(v))
    return "";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*g", digits, v);
  return buf;
}

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s)
    switch (c) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  return out;
}

struct point {
  double x, y;
};

/// Rows of (version, t, acc, acc_norm): version 0 and every scored version.
std::vector<std::array<double, 4>> accuracy_rows(const json& summary) {
  std::vector<std::array<double, 4>> rows;
  if (auto* init = summary.find("initial"); init != nullptr)
    if (auto* g = init->find("global"); g != nullptr)
      rows.push_back({0, 0, num(*g, "test_acc"), num(*g, "test_acc_norm")});
  if (auto* per = summary.find("per_round"); per != nullptr && per->is_array())
    for (auto& r : per->as_array())
      if (!std::isnan(num(r, "test_acc")))
        rows.push_back({num(r, "version"), num(r, "t", 0), num(r, "test_acc"),
                        num(r, "test_acc_norm")});
  return rows;
}

/// Axis ticks at round numbers (1, 2 or 5 times a power of ten) covering
/// [lo, hi]; the axis then runs from the first tick to the last.
std::vector<double> nice_ticks(double lo, double hi, int target = 5) {
  if (!(hi > lo))
    hi = lo + 1;
  double raw = (hi - lo) / target;
  double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * mag >= raw) {
      step = m * mag;
      break;
    }
  std::vector<double> ticks;
  double first = std::floor(lo / step + 1e-9) * step;
  for (double v = first; v < hi + step * 0.999; v += step)
    ticks.push_back(std::abs(v) < step * 1e-9 ? 0.0 : v);
  return ticks;
}

/// A tick label: no more digits than the tick step needs.
std::string tick_label(double v, double step) {
  int decimals = step >= 1 ? 0 : static_cast<int>(std::ceil(-std::log10(step) - 1e-9));
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", std::min(decimals, 6), v);
  return buf;
}

enum class y_axis { fraction, free };

/// A line plot with axes, ticks at round numbers and a legend. `fraction`
/// keeps the y axis inside [0, 1] (accuracies).
std::string line_plot(const std::string& title, const std::string& xlabel,
                      const std::vector<std::pair<std::string, std::vector<point>>>& series,
                      y_axis kind = y_axis::fraction, const std::string& ylabel = "") {
  const double W = 520, H = 260, L = 56, R = 16, T = 28, B = 40;
  double x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  bool any = false;
  for (auto& [name, pts] : series)
    for (auto& p : pts) {
      if (std::isnan(p.y) || std::isnan(p.x))
        continue;
      if (!any) {
        x0 = x1 = p.x;
        y0 = y1 = p.y;
        any = true;
      }
      x0 = std::min(x0, p.x), x1 = std::max(x1, p.x);
      y0 = std::min(y0, p.y), y1 = std::max(y1, p.y);
    }
  if (kind == y_axis::fraction) {
    y0 = std::max(0.0, std::floor(y0 * 10) / 10);
    y1 = std::min(1.0, std::ceil(y1 * 10) / 10);
    if (y1 - y0 < 0.1)
      y1 = std::min(1.0, y0 + 0.1), y0 = y1 - 0.1;
  }
  auto xt = nice_ticks(x0, x1), yt = nice_ticks(y0, y1, 4);
  x0 = xt.front(), x1 = xt.back(), y0 = yt.front(), y1 = yt.back();
  double xstep = xt.size() > 1 ? xt[1] - xt[0] : 1, ystep = yt.size() > 1 ? yt[1] - yt[0] : 1;
  auto sx = [&](double x) { return L + (x - x0) / (x1 - x0) * (W - L - R); };
  auto sy = [&](double y) { return H - B - (y - y0) / (y1 - y0) * (H - T - B); };
  std::ostringstream o;
  o << "<svg xmlns='http://www.w3.org/2000/svg' width='" << W << "' height='" << H
    << "' font-family='sans-serif' font-size='11'>";
  o << "<text x='" << L << "' y='16' font-size='13'>" << escape(title) << "</text>";
  o << "<rect x='" << L << "' y='" << T << "' width='" << W - L - R << "' height='" << H - T - B
    << "' fill='none' stroke='#999'/>";
  for (double y : yt)
    o << "<text x='" << L - 6 << "' y='" << sy(y) + 4 << "' text-anchor='end'>"
      << tick_label(y, ystep) << "</text><line x1='" << L << "' x2='" << W - R << "' y1='"
      << sy(y) << "' y2='" << sy(y) << "' stroke='#eee'/>";
  for (double x : xt)
    o << "<text x='" << sx(x) << "' y='" << H - B + 14 << "' text-anchor='middle'>"
      << tick_label(x, xstep) << "</text>";
  o << "<text x='" << (L + W - R) / 2 << "' y='" << H - 6 << "' text-anchor='middle'>"
    << escape(xlabel) << "</text>";
  if (!ylabel.empty())
    o << "<text x='12' y='" << (T + H - B) / 2 << "' text-anchor='middle' transform='rotate(-90 12 "
      << (T + H - B) / 2 << ")'>" << escape(ylabel) << "</text>";
  const char* colors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"};
  std::size_t k = 0;
  for (auto& [name, pts] : series) {
    auto color = colors[k % 4];
    std::string path;
    for (auto& p : pts)
      if (!std::isnan(p.y))
        path += (path.empty() ? "M" : " L") + fmt(sx(p.x), 6) + " " + fmt(sy(p.y), 6);
    o << "<path d='" << path << "' fill='none' stroke='" << color << "' stroke-width='1.5'/>";
    for (auto& p : pts)
      if (!std::isnan(p.y))
        o << "<circle cx='" << sx(p.x) << "' cy='" << sy(p.y) << "' r='2.5' fill='" << color
          << "'><title>" << fmt(p.x) << ": " << fmt(p.y) << "</title></circle>";
    o << "<text x='" << W - R - 4 << "' y='" << T + 14 + 14 * k << "' text-anchor='end' fill='"
      << color << "'>" << escape(name) << "</text>";
    ++k;
  }
  o << "</svg>";
  return o.str();
}

/// Seconds as a person reads them: "42.5 s", "12 min 3 s", "2 h 5 min".
std::string duration_text(double s) {
  if (std::isnan(s))
    return "";
  char buf[64];
  if (s < 60)
    std::snprintf(buf, sizeof buf, "%.1f s", s);
  else if (s < 3600)
    std::snprintf(buf, sizeof buf, "%d min %d s", static_cast<int>(s / 60),
                  static_cast<int>(std::lround(s)) % 60);
  else
    std::snprintf(buf, sizeof buf, "%d h %d min", static_cast<int>(s / 3600),
                  static_cast<int>(std::lround(s / 60)) % 60);
  return buf;
}

struct bar {
  double start = 0, end = NAN;
  std::string outcome = "pending"; // accepted, stale, late, rejected, dropout, failed, pending
  std::uint64_t task = 0;
};

/// The per-client timeline: one row per client, one bar per task.
std::string timeline_plot(const std::vector<json>& events, std::size_t max_clients,
                          std::size_t& shown, std::size_t& total) {
  std::map<std::uint64_t, std::pair<std::uint32_t, bar>> tasks; // task -> (client, bar)
  std::vector<double> publishes;
  double t_end = 0;
  for (auto& e : events) {
    auto type = str(e, "type");
    double t = num(e, "t", 0);
    t_end = std::max(t_end, t);
    auto task = static_cast<std::uint64_t>(num(e, "task", 0));
    if (type == "task") {
      bar b;
      b.task = task;
      b.start = num(e, "start", t);
      b.end = num(e, "finish", NAN);
      if (!std::isnan(num(e, "leaves")))
        b.end = num(e, "leaves");
      tasks[task] = {static_cast<std::uint32_t>(num(e, "client", 0)), b};
      continue;
    }
    auto it = tasks.find(task);
    if (type == "publish")
      publishes.push_back(t);
    if (it == tasks.end() || task == 0)
      continue;
    auto& b = it->second.second;
    if (type == "update") {
      b.outcome = num(e, "staleness", 0) > 0 ? "stale" : "accepted";
      b.end = t;
    } else if (type == "reject" && b.outcome == "pending") {
      b.outcome = str(e, "reason") == "task_closed" ? "late" : "rejected";
      b.end = t;
    } else if (type == "dropout") {
      b.outcome = "dropout";
      b.end = t;
    } else if (type == "task_failed") {
      b.outcome = "failed";
      b.end = t;
    }
  }
  std::map<std::uint32_t, std::vector<bar>> rows;
  for (auto& [task, cb] : tasks) {
    auto& b = cb.second;
    if (std::isnan(b.end))
      b.end = t_end;
    t_end = std::max(t_end, b.end);
    rows[cb.first].push_back(b);
  }
  total = rows.size();
  shown = std::min(max_clients, rows.size());
  const double W = 900, L = 70, R = 16, T = 20, rowh = 12;
  double H = T + rowh * static_cast<double>(shown) + 30;
  double span = t_end > 0 ? t_end : 1;
  auto sx = [&](double x) { return L + x / span * (W - L - R); };
  std::map<std::string, const char*> color{{"accepted", "#2ca02c"}, {"stale", "#ff7f0e"},
                                           {"late", "#d62728"},     {"rejected", "#9467bd"},
                                           {"dropout", "#7f7f7f"},  {"failed", "#000000"},
                                           {"pending", "#c7c7c7"}};
  std::ostringstream o;
  o << "<svg xmlns='http://www.w3.org/2000/svg' width='" << W << "' height='" << H
    << "' font-family='sans-serif' font-size='10'>";
  for (auto t : publishes)
    o << "<line x1='" << sx(t) << "' x2='" << sx(t) << "' y1='" << T << "' y2='" << H - 30
      << "' stroke='#1f77b4' stroke-opacity='0.25'/>";
  std::size_t r = 0;
  for (auto& [client, bars] : rows) {
    if (r >= shown)
      break;
    double y = T + rowh * static_cast<double>(r);
    o << "<text x='" << L - 6 << "' y='" << y + rowh - 3 << "' text-anchor='end'>client "
      << client << "</text>";
    for (auto& b : bars)
      o << "<rect x='" << sx(b.start) << "' y='" << y + 1 << "' width='"
        << std::max(1.0, sx(b.end) - sx(b.start)) << "' height='" << rowh - 2 << "' fill='"
        << color[b.outcome] << "'><title>task " << b.task << ": " << b.outcome << ", "
        << fmt(b.start) << "-" << fmt(b.end) << " s</title></rect>";
    ++r;
  }
  double ly = H - 12;
  double lx = L;
  for (auto& [name, c] : color) {
    o << "<rect x='" << lx << "' y='" << ly - 8 << "' width='10' height='8' fill='" << c
      << "'/><text x='" << lx + 13 << "' y='" << ly << "'>" << name << "</text>";
    lx += 85;
  }
  o << "<text x='" << W - R << "' y='" << ly << "' text-anchor='end'>0 to " << duration_text(span)
    << "; blue lines: versions published</text></svg>";
  return o.str();
}

} // namespace

std::string metrics_csv(const json& summary) {
  std::string out = "version,round,t,test_acc,test_acc_norm,test_loss,aux_test_acc,updates,"
                    "stale_updates,mean_loss_before,mean_loss_after\n";
  auto row = [&](const json& r, const json* g) {
    out += fmt(num(r, "version", 0), 10) + "," + fmt(num(r, "round", 0), 10) + ","
           + fmt(num(r, "t", 0), 10) + ",";
    if (g != nullptr)
      out += fmt(num(*g, "test_acc"), 6) + "," + fmt(num(*g, "test_acc_norm"), 6) + ","
             + fmt(num(*g, "test_loss"), 6) + "," + fmt(num(r, "aux_test_acc"), 6);
    else
      out += fmt(num(r, "test_acc"), 6) + "," + fmt(num(r, "test_acc_norm"), 6) + ","
             + fmt(num(r, "test_loss"), 6) + "," + fmt(num(r, "aux_test_acc"), 6);
    out += "," + fmt(num(r, "updates"), 10) + "," + fmt(num(r, "stale_updates"), 10) + ","
           + fmt(num(r, "mean_loss_before"), 6) + "," + fmt(num(r, "mean_loss_after"), 6) + "\n";
  };
  if (auto* init = summary.find("initial"); init != nullptr && init->find("global") != nullptr) {
    json r = json::object{{"version", 0}, {"round", 0}, {"t", 0}};
    if (auto* aux = init->find("aux"); aux != nullptr)
      r.set("aux_test_acc", num(*aux, "test_acc"));
    row(r, init->find("global"));
  }
  if (auto* per = summary.find("per_round"); per != nullptr && per->is_array())
    for (auto& r : per->as_array())
      row(r, nullptr);
  return out;
}

std::string report_html(const json& summary, const std::vector<json>& events,
                        std::size_t max_clients) {
  auto rows = accuracy_rows(summary);
  std::vector<point> by_time, by_time_norm, by_version, by_version_norm;
  for (auto& r : rows) {
    by_time.push_back({r[1], r[2]});
    by_time_norm.push_back({r[1], r[3]});
    by_version.push_back({r[0], r[2]});
    by_version_norm.push_back({r[0], r[3]});
  }
  std::size_t shown = 0, total = 0;
  auto tl = timeline_plot(events, max_clients, shown, total);
  std::ostringstream o;
  auto name = str(summary, "scenario");
  o << "<!DOCTYPE html><html><head><meta charset='utf-8'><title>fedsp run " << escape(name)
    << "</title><style>body{font-family:sans-serif;margin:24px;max-width:960px}"
       "td,th{padding:2px 10px;text-align:left}</style></head><body>";
  o << "<h1>fedsp run: " << escape(name) << "</h1><table>";
  auto fact = [&](const char* label, const std::string& v) {
    o << "<tr><th>" << label << "</th><td>" << escape(v) << "</td></tr>";
  };
  fact("method", str(summary, "method"));
  fact("mode / aggregator / clock",
       str(summary, "mode") + " / " + str(summary, "aggregator") + " / " + str(summary, "clock"));
  fact("seed", fmt(num(summary, "seed"), 20));
  fact("clients", fmt(num(summary, "clients"), 10));
  fact("versions published", fmt(num(summary, "final_version"), 10));
  fact("run time (on the run clock)", duration_text(num(summary, "t_end")));
  if (!rows.empty())
    fact("test accuracy first / last", fmt(rows.front()[2], 3) + " / " + fmt(rows.back()[2], 3));
  static const std::pair<const char*, const char*> counters[] = {
    {"tasks_sent", "tasks sent"},
    {"updates_accepted", "updates accepted"},
    {"updates_rejected", "updates rejected"},
    {"updates_late", "updates too late (dropped)"},
    {"updates_stale", "stale updates (folded)"},
    {"updates_aggregated", "updates aggregated"},
    {"updates_pending", "updates pending at the end"},
    {"tasks_pending", "tasks pending at the end"},
    {"dropouts", "client dropouts"},
    {"tasks_failed", "tasks failed"}};
  for (auto& [key, label] : counters)
    fact(label, fmt(num(summary, key), 10));
  o << "</table>";
  o << "<h2>Accuracy</h2>"
    << line_plot("test accuracy against time", "time on the run clock (s)",
                 {{"accuracy", by_time}, {"length-normalised accuracy", by_time_norm}})
    << line_plot("test accuracy against version", "version",
                 {{"accuracy", by_version}, {"length-normalised accuracy", by_version_norm}});
  // Losses per version: the clients' before and after their local training
  // (mean over the version's updates, on each client's probe examples) and
  // the server step's before and after (FedSP).
  std::vector<point> before, after, server_before, server_after;
  if (auto* per = summary.find("per_round"); per != nullptr && per->is_array())
    for (auto& r : per->as_array()) {
      double v = num(r, "version");
      before.push_back({v, num(r, "mean_loss_before")});
      after.push_back({v, num(r, "mean_loss_after")});
      server_before.push_back({v, num(r, "server_loss_before")});
      server_after.push_back({v, num(r, "server_loss_after")});
    }
  std::vector<std::pair<std::string, std::vector<point>>> losses;
  auto add = [&](const char* label, std::vector<point>& pts) {
    if (std::any_of(pts.begin(), pts.end(), [](auto& p) { return !std::isnan(p.y); }))
      losses.emplace_back(label, pts);
  };
  add("clients, before local training", before);
  add("clients, after local training", after);
  add("server step, before", server_before);
  add("server step, after", server_after);
  if (!losses.empty())
    o << "<h2>Training loss</h2>"
      << line_plot("loss on the answer against version", "version", losses, y_axis::free,
                   "nats per answer token");
  o << "<h2>Clients</h2><p>Each bar is a task, from its start to its result (or the moment "
       "its client left). ";
  if (shown < total)
    o << "The first " << shown << " of " << total << " clients are shown.";
  o << "</p>" << tl << "</body></html>\n";
  return o.str();
}

std::optional<error> write_run_report(const std::string& dir) {
  std::ifstream sin(dir + "/summary.json");
  if (!sin)
    return error{errc::io, "cannot read " + dir + "/summary.json"};
  std::stringstream ss;
  ss << sin.rdbuf();
  auto summary = json::parse(ss.str());
  if (!summary)
    return error{errc::malformed, dir + "/summary.json: " + summary.err().text};
  std::vector<json> events;
  std::ifstream ein(dir + "/events.jsonl");
  if (!ein)
    return error{errc::io, "cannot read " + dir + "/events.jsonl"};
  std::string line;
  for (int n = 1; std::getline(ein, line); ++n) {
    if (line.empty())
      continue;
    auto e = json::parse(line);
    if (!e)
      return error{errc::malformed, dir + "/events.jsonl:" + std::to_string(n) + ": "
                                      + e.err().text};
    events.push_back(std::move(e).value());
  }
  for (auto& [file, text] : {std::pair<std::string, std::string>{"metrics.csv",
                                                                  metrics_csv(summary.value())},
                             {"report.html", report_html(summary.value(), events)}}) {
    std::ofstream out(dir + "/" + file);
    out << text;
    if (!out)
      return error{errc::io, "cannot write " + dir + "/" + file};
  }
  return std::nullopt;
}

} // namespace fedsp
