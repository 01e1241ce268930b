// The parallel-coordinates plot of a sweep: one vertical axis per parameter and one for the
// objective, each trial a line through its values. Numbers sit on a linear axis (a
// logarithmic one for log-scaled parameters); categories are spread evenly in their order.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <iomanip>
#include <sstream>

#include "dashboard/dashboard.hpp"
#include "dashboard/html.hpp"
#include "tuner/report.hpp"
#include "tuner/sampler.hpp"

namespace cohort::dashboard {
namespace {

struct Axis {
  std::string name;
  bool categorical = false, log = false;
  std::vector<std::string> categories;
  double lo = 0, hi = 0;

  // 0 (bottom) .. 1 (top), nothing for a value the axis cannot place.
  std::optional<double> place(const std::string& text) const {
    if (categorical) {
      auto it = std::find(categories.begin(), categories.end(), text);
      if (it == categories.end()) return std::nullopt;
      return categories.size() < 2 ? 0.5 : static_cast<double>(it - categories.begin()) / (categories.size() - 1);
    }
    char* end = nullptr;
    double v = std::strtod(text.c_str(), &end);
    if (end == text.c_str() || *end || !std::isfinite(v)) return std::nullopt;
    return place(v);
  }
  double place(double v) const {
    double a = lo, b = hi;
    if (log && lo > 0 && v > 0) a = std::log(lo), b = std::log(hi), v = std::log(v);
    return b == a ? 0.5 : std::clamp((v - a) / (b - a), 0.0, 1.0);
  }
};

std::vector<Axis> axes_of(const tuner::Experiment& x, const std::vector<const tuner::Trial*>& trials) {
  std::vector<Axis> axes;
  for (const auto& p : x.parameters) {
    Axis a{.name = p.name, .categorical = p.type == tuner::ParameterType::categorical, .log = p.log_scale()};
    if (a.categorical) {
      a.categories = p.list;
    } else if (p.list.empty()) {
      a.lo = p.min, a.hi = p.max;
    } else {  // discrete: its values' span
      a.lo = a.hi = std::strtod(p.list.front().c_str(), nullptr);
      for (const auto& s : p.list) a.lo = std::min(a.lo, std::strtod(s.c_str(), nullptr)), a.hi = std::max(a.hi, std::strtod(s.c_str(), nullptr));
    }
    axes.push_back(std::move(a));
  }
  Axis objective{.name = x.objective.metric};
  objective.lo = objective.hi = *trials.front()->objective;
  for (const auto* t : trials) objective.lo = std::min(objective.lo, *t->objective), objective.hi = std::max(objective.hi, *t->objective);
  axes.push_back(std::move(objective));
  return axes;
}

std::string label(const Axis& a, double at) {
  if (a.categorical) return "";
  double v = a.log && a.lo > 0 ? std::exp(std::log(a.lo) + (std::log(a.hi) - std::log(a.lo)) * at) : a.lo + (a.hi - a.lo) * at;
  return tuner::format_number(std::round(v * 1e4) / 1e4);
}

}  // namespace

std::string parallel_coordinates_svg(const tuner::Experiment& x, const tuner::JournalState& state) {
  std::vector<const tuner::Trial*> trials;
  for (const auto& t : state.trials) {
    if (t.objective && std::isfinite(*t.objective)) trials.push_back(&t);
  }
  if (trials.empty()) return "";
  const std::vector<Axis> axes = axes_of(x, trials);
  const double W = 640, H = 400, L = 60, R = 60, T = 40, B = 50;
  const auto ax = [&](std::size_t i) { return axes.size() < 2 ? W / 2 : L + (W - L - R) * i / (axes.size() - 1); };
  const auto ay = [&](double at) { return T + (H - T - B) * (1 - at); };
  std::ostringstream svg;
  svg << std::fixed << std::setprecision(1);
  svg << "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"parallel\" width=\"" << W << "\" height=\"" << H
      << "\" font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      << "<text x=\"" << L << "\" y=\"22\" font-size=\"14\">parameters and " << html_escape(x.objective.metric)
      << " (darker: better)</text>\n";
  const Axis& objective = axes.back();
  for (const auto* t : trials) {
    // Better trials darker and drawn last, so that they sit on top.
    double quality = objective.place(*t->objective);
    if (x.objective.type == tuner::Goal::minimize) quality = 1 - quality;
    svg << "<polyline fill=\"none\" stroke=\"#1565c0\" stroke-opacity=\"" << std::setprecision(2) << 0.15 + 0.75 * quality
        << std::setprecision(1) << "\" points=\"";
    for (std::size_t i = 0; i + 1 < axes.size(); ++i) {
      auto it = std::find_if(t->parameters.begin(), t->parameters.end(), [&](const auto& kv) { return kv.first == axes[i].name; });
      auto at = it == t->parameters.end() ? std::nullopt : axes[i].place(it->second);
      if (at) svg << ax(i) << "," << ay(*at) << " ";
    }
    svg << ax(axes.size() - 1) << "," << ay(objective.place(*t->objective)) << "\"><title>trial " << t->id << "</title></polyline>\n";
  }
  for (std::size_t i = 0; i < axes.size(); ++i) {
    const Axis& a = axes[i];
    svg << "<line x1=\"" << ax(i) << "\" y1=\"" << T << "\" x2=\"" << ax(i) << "\" y2=\"" << H - B << "\" stroke=\"black\"/>\n"
        << "<text x=\"" << ax(i) << "\" y=\"" << H - B + 18 << "\" text-anchor=\"middle\">" << html_escape(a.name) << "</text>\n";
    for (std::size_t k = 0; k < a.categories.size(); ++k) {
      const double at = a.categories.size() < 2 ? 0.5 : static_cast<double>(k) / (a.categories.size() - 1);
      svg << "<text x=\"" << ax(i) + 4 << "\" y=\"" << ay(at) + 4 << "\">" << html_escape(a.categories[k]) << "</text>\n";
    }
    if (!a.categorical) {
      svg << "<text x=\"" << ax(i) + 4 << "\" y=\"" << ay(1) + 4 << "\">" << label(a, 1) << "</text>\n"
          << "<text x=\"" << ax(i) + 4 << "\" y=\"" << ay(0) + 4 << "\">" << label(a, 0) << "</text>\n";
    }
  }
  svg << "</svg>\n";
  return svg.str();
}

}  // namespace cohort::dashboard
