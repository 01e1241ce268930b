// Each trial's objective at every step it reported (the journal's curve): one plot with a
// line per trial, and a small one per trial for the trials table. Drawn here as SVG, like
// the objective and parallel-coordinates plots: nothing is fetched by the browser.
#include <algorithm>
#include <cmath>
#include <iomanip>
#include <sstream>

#include "dashboard/dashboard.hpp"
#include "dashboard/html.hpp"
#include "tuner/sampler.hpp"

namespace cohort::dashboard {
namespace {

// Steps and values of every curve, mapped onto a box of w × h from (left, top).
struct Scale {
  double step_lo = 0, step_hi = 0, lo = 0, hi = 0;
  double left = 0, top = 0, w = 0, h = 0;

  void add(const std::vector<std::pair<long long, double>>& curve, bool first) {
    for (const auto& [s, v] : curve) {
      if (first) step_lo = step_hi = static_cast<double>(s), lo = hi = v, first = false;
      step_lo = std::min(step_lo, static_cast<double>(s)), step_hi = std::max(step_hi, static_cast<double>(s));
      lo = std::min(lo, v), hi = std::max(hi, v);
    }
  }
  double x(long long s) const { return left + (step_hi == step_lo ? w / 2 : w * (s - step_lo) / (step_hi - step_lo)); }
  double y(double v) const { return top + (hi == lo ? h / 2 : h * (1 - (v - lo) / (hi - lo))); }
  std::string points(const std::vector<std::pair<long long, double>>& curve) const {
    std::ostringstream out;
    out << std::fixed << std::setprecision(1);
    for (const auto& [s, v] : curve) out << x(s) << "," << y(v) << " ";
    return out.str();
  }
};

bool drawable(const tuner::Trial& t) {
  return !t.curve.empty() && std::all_of(t.curve.begin(), t.curve.end(), [](const auto& p) { return std::isfinite(p.second); });
}

const char* colour(tuner::TrialState s) {
  switch (s) {
    case tuner::TrialState::succeeded: return "#1565c0";
    case tuner::TrialState::early_stopped: return "#ef6c00";
    case tuner::TrialState::failed: case tuner::TrialState::killed: return "#c62828";
    case tuner::TrialState::running: break;
  }
  return "#78909c";
}

std::string number(double v) { return tuner::format_number(std::round(v * 1e4) / 1e4); }

}  // namespace

std::string metric_curves_svg(const tuner::Experiment& x, const tuner::JournalState& state) {
  Scale scale{.left = 70, .top = 40, .w = 640 - 70 - 20, .h = 400 - 40 - 50};
  bool any = false;
  for (const auto& t : state.trials) {
    if (drawable(t)) scale.add(t.curve, !any), any = true;
  }
  if (!any) return "";
  const tuner::Trial* best = state.best(x.objective);
  std::ostringstream svg;
  svg << std::fixed << std::setprecision(1);
  svg << "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"curves\" width=\"640\" height=\"400\" font-family=\"sans-serif\" "
         "font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"70\" y=\"24\" font-size=\"14\">"
      << html_escape(x.objective.metric) << " at each step, a line per trial</text>\n";
  const double bottom = scale.top + scale.h, right = scale.left + scale.w;
  svg << "<line x1=\"70\" y1=\"" << bottom << "\" x2=\"" << right << "\" y2=\"" << bottom << "\" stroke=\"black\"/>\n"
      << "<line x1=\"70\" y1=\"40\" x2=\"70\" y2=\"" << bottom << "\" stroke=\"black\"/>\n";
  for (double v : {scale.lo, scale.hi}) {
    svg << "<text x=\"64\" y=\"" << scale.y(v) + 4 << "\" text-anchor=\"end\">" << number(v) << "</text>\n";
  }
  svg << "<text x=\"" << (scale.left + right) / 2 << "\" y=\"" << bottom + 38 << "\" text-anchor=\"middle\">step ("
      << number(scale.step_lo) << "-" << number(scale.step_hi) << ")</text>\n";
  // The best trial last, so that it is drawn over the others.
  std::vector<const tuner::Trial*> order;
  for (const auto& t : state.trials) {
    if (drawable(t) && &t != best) order.push_back(&t);
  }
  if (best && drawable(*best)) order.push_back(best);
  for (const auto* t : order) {
    svg << "<polyline class=\"curve\" fill=\"none\" stroke=\"" << (t == best ? "#2e7d32" : colour(t->state))
        << "\" stroke-width=\"" << (t == best ? 2.5 : 1.0) << "\" stroke-opacity=\"" << (t == best ? 1.0 : 0.6)
        << "\" points=\"" << scale.points(t->curve) << "\"><title>trial " << t->id << " (" << tuner::to_string(t->state)
        << "): " << t->curve.size() << " steps, last " << number(t->curve.back().second) << "</title></polyline>\n";
  }
  if (best) svg << "<text x=\"" << right << "\" y=\"34\" text-anchor=\"end\" fill=\"#2e7d32\">trial " << best->id << ", the best</text>\n";
  svg << "</svg>\n";
  return svg.str();
}

std::string trial_curve_svg(const tuner::Trial& t) {
  if (!drawable(t)) return "";
  Scale scale{.left = 2, .top = 2, .w = 96, .h = 20};
  scale.add(t.curve, true);
  std::ostringstream svg;
  svg << "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"spark\" width=\"100\" height=\"24\"><polyline fill=\"none\" stroke=\""
      << colour(t.state) << "\" points=\"" << scale.points(t.curve) << "\"/><title>" << number(t.curve.front().second)
      << " to " << number(t.curve.back().second) << " over " << t.curve.size() << " steps</title></svg>";
  return svg.str();
}

}  // namespace cohort::dashboard
