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

/// Axis ticks at round numbers (1, 2 or 5 times a power of ten, at least
/// min_step apart) covering [lo, hi]; the axis then runs from the first
/// tick to the last.
std::vector<double> nice_ticks(double lo, double hi, int target = 5, double min_step = 0) {
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
  step = std::max(step, min_step);
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

/// One line of a plot: its points, optionally a band (lo..hi at the same
/// x, e.g. the spread over seeds) and dashes (a level, not a curve).
struct plot_series {
  plot_series(std::string n, std::vector<point> p) : name(std::move(n)), pts(std::move(p)) {}
  std::string name;
  std::vector<point> pts;
  std::vector<point> lo, hi;
  bool dashed = false;
};

/// Canvas size; the legend sits in the right margin when it is wide.
struct plot_frame {
  double width = 520, height = 260, right = 16;
  bool integer_x = false; // x ticks at whole numbers (versions, rounds)
  bool log_x = false;     // x on a log10 scale, ticks at powers of ten (x > 0)
};

const char* const palette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728",
                               "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"};

/// A whole number with thousands separators: 100000 -> "100,000".
std::string thousands(double v) {
  auto s = std::to_string(static_cast<long long>(std::llround(v)));
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3)
    s.insert(static_cast<std::size_t>(i), ",");
  return s;
}

/// A line plot with axes, ticks at round numbers and a legend. `fraction`
/// keeps the y axis inside [0, 1] (accuracies).
std::string line_plot(const std::string& title, const std::string& xlabel,
                      const std::vector<plot_series>& series, y_axis kind = y_axis::fraction,
                      const std::string& ylabel = "", const plot_frame& frame = {}) {
  const double W = frame.width, H = frame.height, L = 56, R = frame.right, T = 28, B = 40;
  double x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  bool any = false;
  // On a log axis everything below works on log10(x); labels say x.
  auto lx = [&](double x) { return frame.log_x ? std::log10(x) : x; };
  auto extend = [&](const point& p) {
    if (std::isnan(p.y) || std::isnan(p.x) || (frame.log_x && !(p.x > 0)))
      return;
    if (!any) {
      x0 = x1 = lx(p.x);
      y0 = y1 = p.y;
      any = true;
    }
    x0 = std::min(x0, lx(p.x)), x1 = std::max(x1, lx(p.x));
    y0 = std::min(y0, p.y), y1 = std::max(y1, p.y);
  };
  for (auto& s : series)
    for (auto* pts : {&s.pts, &s.lo, &s.hi})
      for (auto& p : *pts)
        extend(p);
  if (kind == y_axis::fraction) {
    y0 = std::max(0.0, std::floor(y0 * 10) / 10);
    y1 = std::min(1.0, std::ceil(y1 * 10) / 10);
    if (y1 - y0 < 0.1)
      y1 = std::min(1.0, y0 + 0.1), y0 = y1 - 0.1;
  }
  auto xt = nice_ticks(x0, x1, 5, frame.integer_x || frame.log_x ? 1.0 : 0.0),
       yt = nice_ticks(y0, y1, 4);
  x0 = xt.front(), x1 = xt.back(), y0 = yt.front(), y1 = yt.back();
  double xstep = xt.size() > 1 ? xt[1] - xt[0] : 1, ystep = yt.size() > 1 ? yt[1] - yt[0] : 1;
  auto sx = [&](double x) { return L + (lx(x) - x0) / (x1 - x0) * (W - L - R); };
  auto sy = [&](double y) { return H - B - (y - y0) / (y1 - y0) * (H - T - B); };
  std::ostringstream o;
  o << "<svg xmlns='http://www.w3.org/2000/svg' width='" << W << "' height='" << H
    << "' font-family='sans-serif' font-size='11'>";
  o << "<rect width='" << W << "' height='" << H << "' fill='white'/>";
  o << "<text x='" << L << "' y='16' font-size='13'>" << escape(title) << "</text>";
  o << "<rect x='" << L << "' y='" << T << "' width='" << W - L - R << "' height='" << H - T - B
    << "' fill='none' stroke='#999'/>";
  for (double y : yt)
    o << "<text x='" << L - 6 << "' y='" << sy(y) + 4 << "' text-anchor='end'>"
      << tick_label(y, ystep) << "</text><line x1='" << L << "' x2='" << W - R << "' y1='"
      << sy(y) << "' y2='" << sy(y) << "' stroke='#eee'/>";
  for (double x : xt) {
    double at = frame.log_x ? std::pow(10.0, x) : x; // (sx takes x itself)
    o << "<text x='" << sx(at) << "' y='" << H - B + 14 << "' text-anchor='middle'>"
      << (frame.log_x ? thousands(at) : tick_label(x, xstep)) << "</text>";
  }
  o << "<text x='" << (L + W - R) / 2 << "' y='" << H - 6 << "' text-anchor='middle'>"
    << escape(xlabel) << "</text>";
  if (!ylabel.empty())
    o << "<text x='12' y='" << (T + H - B) / 2 << "' text-anchor='middle' transform='rotate(-90 12 "
      << (T + H - B) / 2 << ")'>" << escape(ylabel) << "</text>";
  bool legend_outside = R > 100;
  // (a point with no value, or one a log axis has no place for, is skipped)
  auto drawable = [&](const point& p) { return !std::isnan(p.y) && !(frame.log_x && !(p.x > 0)); };
  std::size_t k = 0;
  for (auto& s : series) {
    auto color = palette[k % (sizeof palette / sizeof palette[0])];
    // The band: along lo, back along hi.
    std::string band;
    for (auto& p : s.lo)
      if (drawable(p))
        band += (band.empty() ? "M" : " L") + fmt(sx(p.x), 6) + " " + fmt(sy(p.y), 6);
    for (auto it = s.hi.rbegin(); it != s.hi.rend(); ++it)
      if (drawable(*it))
        band += " L" + fmt(sx(it->x), 6) + " " + fmt(sy(it->y), 6);
    if (!band.empty())
      o << "<path d='" << band << " Z' fill='" << color << "' fill-opacity='0.15' stroke='none'/>";
    std::string path;
    for (auto& p : s.pts)
      if (drawable(p))
        path += (path.empty() ? "M" : " L") + fmt(sx(p.x), 6) + " " + fmt(sy(p.y), 6);
    o << "<path d='" << path << "' fill='none' stroke='" << color << "' stroke-width='1.5'"
      << (s.dashed ? " stroke-dasharray='5 3'" : "") << "/>";
    if (!s.dashed)
      for (auto& p : s.pts)
        if (drawable(p))
          o << "<circle cx='" << sx(p.x) << "' cy='" << sy(p.y) << "' r='2.5' fill='" << color
            << "'><title>" << escape(s.name) << " "
            << (frame.log_x ? thousands(p.x) : fmt(p.x)) << ": " << fmt(p.y)
            << "</title></circle>";
    if (legend_outside)
      o << "<line x1='" << W - R + 10 << "' x2='" << W - R + 28 << "' y1='" << T + 10 + 16 * k
        << "' y2='" << T + 10 + 16 * k << "' stroke='" << color << "' stroke-width='2'"
        << (s.dashed ? " stroke-dasharray='5 3'" : "") << "/><text x='" << W - R + 33
        << "' y='" << T + 14 + 16 * k << "'>" << escape(s.name) << "</text>";
    else
      o << "<text x='" << W - R - 4 << "' y='" << T + 14 + 14 * k << "' text-anchor='end' fill='"
        << color << "'>" << escape(s.name) << "</text>";
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
  plot_frame by_version_frame;
  by_version_frame.integer_x = true;
  o << "<h2>Accuracy</h2>"
    << line_plot("test accuracy against time", "time on the run clock (s)",
                 {{"accuracy", by_time}, {"length-normalised accuracy", by_time_norm}})
    << line_plot("test accuracy against version", "version",
                 {{"accuracy", by_version}, {"length-normalised accuracy", by_version_norm}},
                 y_axis::fraction, "", by_version_frame);
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
  std::vector<plot_series> losses;
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
                   "nats per answer token", by_version_frame);
  o << "<h2>Clients</h2><p>Each bar is a task, from its start to its result (or the moment "
       "its client left). ";
  if (shown < total)
    o << "The first " << shown << " of " << total << " clients are shown.";
  o << "</p>" << tl << "</body></html>\n";
  return o.str();
}

namespace {

result<json> read_summary(const std::string& dir) {
  std::ifstream sin(dir + "/summary.json");
  if (!sin)
    return error{errc::io, "cannot read " + dir + "/summary.json"};
  std::stringstream ss;
  ss << sin.rdbuf();
  auto summary = json::parse(ss.str());
  if (!summary)
    return error{errc::malformed, dir + "/summary.json: " + summary.err().text};
  if (!summary.value().is_object())
    return error{errc::malformed, dir + "/summary.json: not a JSON object"};
  return summary;
}

double mean_of(const std::vector<double>& xs) {
  double t = 0;
  for (double x : xs)
    t += x;
  return t / static_cast<double>(xs.size());
}

double sd_of(const std::vector<double>& xs) {
  if (xs.size() < 2)
    return 0;
  double m = mean_of(xs), t = 0;
  for (double x : xs)
    t += (x - m) * (x - m);
  return std::sqrt(t / static_cast<double>(xs.size() - 1));
}

} // namespace

std::string scale_svg(const std::string& title, const std::string& ylabel,
                      const std::vector<scale_series>& series) {
  std::vector<plot_series> lines;
  for (auto& sr : series) {
    plot_series ps(sr.name, {});
    for (auto& [x, y] : sr.points)
      ps.pts.push_back({x, y});
    lines.push_back(std::move(ps));
  }
  plot_frame frame;
  frame.log_x = true;
  frame.right = 150; // the legend to the right
  frame.width = 640;
  return line_plot(title, "clients (log scale)", lines, y_axis::free, ylabel, frame);
}

result<std::string> comparison_svg(const std::vector<compared_method>& methods,
                                   const std::string& title, std::string* table) {
  if (methods.empty())
    return error{errc::bad_argument, "nothing to compare: give at least one LABEL=DIR"};
  std::vector<plot_series> series;
  std::ostringstream tab;
  double last_version = 0;
  std::vector<std::size_t> levels; // series with only version 0: drawn across
  for (auto& m : methods) {
    if (m.dirs.empty())
      return error{errc::bad_argument, "'" + m.label + "' names no run folder"};
    std::map<double, std::vector<double>> by_version;
    std::vector<double> finals;
    for (auto& dir : m.dirs) {
      auto summary = read_summary(dir);
      if (!summary)
        return summary.err();
      auto rows = accuracy_rows(summary.value());
      if (rows.empty())
        return error{errc::malformed, dir + "/summary.json: no scored version (no test_acc)"};
      for (auto& r : rows)
        by_version[r[0]].push_back(r[2]);
      finals.push_back(rows.back()[2]);
    }
    plot_series s(m.label, {});
    for (auto& [v, accs] : by_version) {
      s.pts.push_back({v, mean_of(accs)});
      s.lo.push_back({v, *std::min_element(accs.begin(), accs.end())});
      s.hi.push_back({v, *std::max_element(accs.begin(), accs.end())});
      last_version = std::max(last_version, v);
    }
    if (m.dirs.size() < 2)
      s.lo.clear(), s.hi.clear();
    if (by_version.size() == 1)
      levels.push_back(series.size());
    series.push_back(std::move(s));
    char line[256];
    std::snprintf(line, sizeof line, "%-40s runs %zu  final test acc %.3f +- %.3f  (min %.3f, max %.3f)\n",
                  m.label.c_str(), finals.size(), mean_of(finals), sd_of(finals),
                  *std::min_element(finals.begin(), finals.end()),
                  *std::max_element(finals.begin(), finals.end()));
    tab << line;
  }
  // A method without rounds (zero-shot) is a level: a dashed line across.
  for (auto i : levels) {
    auto& s = series[i];
    s.dashed = true;
    auto at = s.pts.front();
    s.pts = {{0, at.y}, {last_version, at.y}};
    if (!s.lo.empty())
      s.lo = {{0, s.lo.front().y}, {last_version, s.lo.front().y}},
      s.hi = {{0, s.hi.front().y}, {last_version, s.hi.front().y}};
  }
  if (table)
    *table = tab.str();
  plot_frame frame;
  frame.width = 760, frame.height = 340, frame.right = 230, frame.integer_x = true;
  return line_plot(title, "version (round)", series, y_axis::fraction,
                   "test accuracy (mean; band: lowest to highest run)", frame)
         + "\n";
}

std::optional<error> write_run_report(const std::string& dir) {
  auto summary = read_summary(dir);
  if (!summary)
    return summary.err();
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
