#include "tuner/report.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <iomanip>
#include <sstream>

#include "tuner/runner.hpp"
#include "tuner/sampler.hpp"

namespace cohort::tuner {
namespace {

double now() { return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count(); }

}  // namespace

std::optional<double> metric_of(const Trial& t, const std::string& name) {
  for (const auto& [k, v] : t.metrics) {
    if (k == name) return v;
  }
  return std::nullopt;
}

json::Value trial_json(const Trial& t) {
  json::Value o = json::Value::object();
  o.set("trial", t.id);
  o.set("state", to_string(t.state));
  json::Value p = json::Value::object();
  for (const auto& [k, v] : t.parameters) p.set(k, v);
  o.set("parameters", std::move(p));
  o.set("objective", t.objective ? json::Value(*t.objective) : json::Value());
  json::Value m = json::Value::object();
  for (const auto& [k, v] : t.metrics) m.set(k, v);
  o.set("metrics", std::move(m));
  double end = t.state == TrialState::running ? now() : t.ended;
  o.set("duration", t.started > 0 ? json::Value(std::round(std::max(0.0, end - t.started) * 1000) / 1000) : json::Value());
  o.set("job", t.job.empty() ? json::Value() : json::Value(t.job));
  o.set("reason", t.reason.empty() ? json::Value() : json::Value(t.reason));
  return o;
}

json::Value best_json(const Trial& t) {
  json::Value o = json::Value::object();
  o.set("trial", t.id);
  json::Value p = json::Value::object();
  for (const auto& [k, v] : t.parameters) p.set(k, v);
  o.set("parameters", std::move(p));
  o.set("objective", *t.objective);
  json::Value m = json::Value::object();
  for (const auto& [k, v] : t.metrics) m.set(k, v);
  o.set("metrics", std::move(m));
  return o;
}

json::Value status_json(const Experiment& e, const JournalState& state) {
  const Trial* best = state.best(e.objective);
  json::Value o = json::Value::object();
  o.set("experiment", e.name);
  o.set("state", to_string(state.state));
  o.set("reason", state.reason.empty() ? json::Value() : json::Value(state.reason));
  o.set("algorithm", e.algorithm);
  json::Value obj = json::Value::object();
  obj.set("metric", e.objective.metric);
  obj.set("type", to_string(e.objective.type));
  obj.set("goal", e.objective.goal ? json::Value(*e.objective.goal) : json::Value());
  o.set("objective", std::move(obj));
  o.set("maxTrialCount", trial_budget(e));
  o.set("arrayJob", state.array_job.empty() ? json::Value() : json::Value(state.array_job));
  json::Value trials = json::Value::array();
  for (const auto& t : state.trials) trials.push(trial_json(t));
  o.set("trials", std::move(trials));
  o.set("best", best ? best_json(*best) : json::Value());
  o.set("damagedRecords", state.damaged_records);
  return o;
}

std::string svg_escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '&') out += "&amp;";
    else out += c;
  }
  return out;
}

std::string objective_plot_svg(const Experiment& e, const JournalState& state) {
  std::vector<std::pair<int, double>> points;
  for (const auto& t : state.trials) {
    if (auto v = metric_of(t, e.objective.metric); v && t.state != TrialState::running) points.emplace_back(t.id, *v);
  }
  if (points.empty()) return "";
  const double W = 640, H = 400, L = 70, R = 20, T = 40, B = 50;
  double lo = points[0].second, hi = lo;
  int last = 0;
  for (const auto& [id, v] : points) lo = std::min(lo, v), hi = std::max(hi, v), last = std::max(last, id);
  if (hi == lo) hi = lo + 1;
  auto x = [&](int id) { return L + (W - L - R) * (last ? static_cast<double>(id) / last : 0.5); };
  auto y = [&](double v) { return T + (H - T - B) * (1 - (v - lo) / (hi - lo)); };
  std::ostringstream svg;
  svg << std::fixed << std::setprecision(1);
  svg << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H << "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  svg << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  svg << "<text x=\"" << L << "\" y=\"24\" font-size=\"14\">" << svg_escape(e.name) << ": " << svg_escape(e.objective.metric)
      << " per trial (" << to_string(e.objective.type) << ")</text>\n";
  svg << "<line x1=\"" << L << "\" y1=\"" << H - B << "\" x2=\"" << W - R << "\" y2=\"" << H - B << "\" stroke=\"black\"/>\n";
  svg << "<line x1=\"" << L << "\" y1=\"" << T << "\" x2=\"" << L << "\" y2=\"" << H - B << "\" stroke=\"black\"/>\n";
  for (int i = 0; i <= 4; ++i) {
    double v = lo + (hi - lo) * i / 4;
    svg << "<text x=\"" << L - 6 << "\" y=\"" << y(v) + 4 << "\" text-anchor=\"end\">" << format_number(std::round(v * 1e4) / 1e4) << "</text>\n";
  }
  svg << "<text x=\"" << (L + W - R) / 2 << "\" y=\"" << H - 12 << "\" text-anchor=\"middle\">trial (0-" << last << ")</text>\n";
  svg << "<polyline fill=\"none\" stroke=\"#d62728\" stroke-width=\"2\" points=\"";
  double best = points[0].second;
  for (size_t i = 0; i < points.size(); ++i) {
    if (e.objective.better(points[i].second, best)) best = points[i].second;
    if (i) svg << " " << x(points[i].first) << "," << y(best) << " ";  // a step: flat until improved
    svg << x(points[i].first) << "," << y(best);
  }
  svg << "\"/>\n";
  for (const auto& [id, v] : points) {
    svg << "<circle cx=\"" << x(id) << "\" cy=\"" << y(v) << "\" r=\"3\" fill=\"#1f77b4\"><title>trial " << id << ": "
        << format_number(v) << "</title></circle>\n";
  }
  svg << "<text x=\"" << W - R << "\" y=\"" << T - 6 << "\" text-anchor=\"end\" fill=\"#d62728\">best so far</text>\n";
  svg << "</svg>\n";
  return svg.str();
}

}  // namespace cohort::tuner
