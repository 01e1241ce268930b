#include "dashboard/html.hpp"

#include <time.h>

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <map>
#include <sstream>

#include "common/error.hpp"
#include "common/text.hpp"
#include "dashboard/dashboard.hpp"
#include "dashboard/traffic.hpp"
#include "lineage/report.hpp"
#include "tuner/report.hpp"
#include "tuner/sampler.hpp"

namespace cohort::dashboard {
namespace {

std::string e(std::string_view text) { return html_escape(text); }

std::string when(double seconds) {
  if (seconds <= 0) return "";
  const time_t t = static_cast<time_t>(seconds);
  struct tm tm {};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

std::string state_cell(const std::string& state) {
  return "<td class=\"state state-" + e(state) + "\">" + e(state) + "</td>";
}

// A table: the header row's names, then rows whose cells are HTML already (escaped by
// whoever made them).
std::string table(const std::vector<std::string>& head, const std::vector<std::string>& rows, const std::string& id = {}) {
  std::string out = "<table" + (id.empty() ? std::string() : " id=\"" + e(id) + "\"") + "><thead><tr>";
  for (const auto& h : head) out += "<th>" + e(h) + "</th>";
  out += "</tr></thead><tbody>\n";
  for (const auto& r : rows) out += "<tr>" + r + "</tr>\n";
  return out + "</tbody></table>\n";
}

std::string page(std::string_view title, std::string_view here, const std::string& body, int refresh = 0) {
  static constexpr std::pair<std::string_view, std::string_view> kNav[] = {
      {"jobs", "Jobs"}, {"sweeps", "Sweeps"}, {"pipelines", "Pipelines"}, {"models", "Models"}, {"endpoints", "Endpoints"}};
  std::string out = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>" + e(title) +
                    " · cohort</title><link rel=\"stylesheet\" href=\"/assets/style.css\"></head>\n<body data-refresh=\"" +
                    std::to_string(refresh) + "\"><header><a class=\"brand\" href=\"/\">cohort</a>";
  for (const auto& [path, name] : kNav) {
    out += "<a href=\"/" + std::string(path) + "\"" + (path == here ? " class=\"here\"" : "") + ">" + std::string(name) + "</a>";
  }
  if (refresh > 0) out += "<a id=\"refresh\" href=\"#\"></a>";
  out += "</header><main>\n<h1>" + e(title) + "</h1>\n" + body + "</main><script src=\"/assets/app.js\"></script></body></html>\n";
  return out;
}

// Graphviz's SVG without its XML prolog, to sit inside a page; a note when dot cannot draw.
std::string inline_svg(const std::string& dot) {
  try {
    const std::string svg = lineage::to_svg(dot);
    const auto at = svg.find("<svg");
    return "<div class=\"graph\">" + (at == std::string::npos ? svg : svg.substr(at)) + "</div>";
  } catch (const Error& err) {
    return "<p class=\"note\">no graph: " + e(err.what()) + "</p>";
  }
}

std::string trial_row(const tuner::Experiment& x, const tuner::Trial& t) {
  std::string r = "<td class=\"num\">" + std::to_string(t.id) + "</td>" + state_cell(tuner::to_string(t.state));
  for (const auto& p : x.parameters) {
    auto it = std::find_if(t.parameters.begin(), t.parameters.end(), [&](const auto& kv) { return kv.first == p.name; });
    r += "<td>" + (it == t.parameters.end() ? std::string() : e(it->second)) + "</td>";
  }
  r += "<td class=\"num\">" + (t.objective ? e(tuner::format_number(*t.objective)) : std::string()) + "</td>";
  return r + "<td>" + trial_curve_svg(t) + "</td><td>" + e(t.job) + "</td><td>" + e(t.reason) + "</td>";
}

}  // namespace

std::string html_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string error_page(int status, const std::string& message) {
  return page(std::to_string(status) == "404" ? "Not found" : "Error " + std::to_string(status), "",
              "<p>" + e(message) + "</p><p><a href=\"/\">back to the overview</a></p>");
}

std::string overview_page(const lineage::Store& store, const std::filesystem::path& services_root) {
  const auto count = [](std::size_t n, std::string_view what, std::string_view href) {
    return "<li><a href=\"" + std::string(href) + "\">" + std::to_string(n) + " " + std::string(what) + "</a></li>";
  };
  std::string body = "<p>From the lineage store <code>" + e(store.path().string()) + "</code>:</p><ul>";
  body += count(store.executions("Launch").size(), "launches", "/jobs");
  body += count(sweep_contexts(store).size(), "sweeps", "/sweeps");
  body += count(pipeline_contexts(store).size(), "pipeline runs", "/pipelines");
  body += count(store.artifacts().size(), "artifacts", "/models");
  body += count(endpoints(store).size(), "servers", "/endpoints");
  body += count(services(services_root).size(), "services", "/endpoints");
  body += "</ul><p class=\"note\">The same data as JSON: <a href=\"/api/\">/api/</a>.</p>";
  return page("Overview", "", body);
}

std::string sweeps_page(const lineage::Store& store) {
  std::vector<std::string> rows;
  const json::Value all = sweeps_json(store);
  for (const auto& s : all.at("sweeps").as_array()) {
    const std::string id = std::to_string(s.at("id").as_int());
    std::string r = "<td><a href=\"/sweeps/" + id + "\">" + id + "</a></td><td>" + e(s.at("dir").as_string()) + "</td>";
    if (const auto* err = s.find("error")) {
      rows.push_back(r + "<td colspan=\"5\">" + e(err->as_string()) + "</td>");
      continue;
    }
    const auto* best = s.find("best");
    r += "<td>" + e(s.at("experiment").as_string()) + "</td>" + state_cell(s.at("state").as_string()) +
         "<td class=\"num\">" + std::to_string(s.at("trials").as_int()) + "</td><td class=\"num\">" +
         std::to_string(s.at("succeeded").as_int()) + "</td><td class=\"num\">" +
         (best && !best->is_null() ? e(tuner::format_number(best->at("objective").as_double())) : std::string()) + "</td>";
    rows.push_back(std::move(r));
  }
  const std::string body = rows.empty() ? "<p>No sweep is recorded in the lineage store yet.</p>"
                                        : table({"id", "directory", "experiment", "state", "trials", "succeeded", "best"}, rows, "sweeps");
  return page("Sweeps", "sweeps", body, 10);
}

std::string sweep_page(const SweepView& v) {
  const auto& x = v.experiment;
  std::string body = "<p>Directory <code>" + e(v.dir.string()) + "</code>, algorithm " + e(x.algorithm) + ", " +
                     e(x.objective.metric) + " (" + e(tuner::to_string(x.objective.type)) + "). State <span id=\"state\">" +
                     e(tuner::to_string(v.state.state)) + "</span>, <span id=\"trial-count\">" +
                     std::to_string(v.state.trials.size()) + "</span> trials.</p>";
  if (const tuner::Trial* best = v.state.best(x.objective)) {
    std::string params;
    for (const auto& [k, val] : best->parameters) params += " " + e(k) + "=" + e(val);
    body += "<div class=\"best\">Best: trial <span id=\"best-trial\">" + std::to_string(best->id) + "</span>, " +
            e(x.objective.metric) + " = <span id=\"best-value\">" + e(tuner::format_number(*best->objective)) +
            "</span>;" + params + "</div>";
  }
  body += "<div class=\"plots\">" + tuner::objective_plot_svg(x, v.state) + parallel_coordinates_svg(x, v.state) +
          metric_curves_svg(x, v.state) + "</div>";
  std::vector<std::string> head{"trial", "state"};
  for (const auto& p : x.parameters) head.push_back(p.name);
  head.insert(head.end(), {x.objective.metric, "curve", "job", "reason"});
  std::vector<std::string> rows;
  rows.reserve(v.state.trials.size());
  for (const auto& t : v.state.trials) rows.push_back(trial_row(x, t));
  body += table(head, rows, "trials");
  return page("Sweep " + x.name, "sweeps", body, v.state.state == tuner::ExperimentState::running ? 10 : 0);
}

std::string pipelines_page(const lineage::Store& store) {
  std::vector<std::string> rows;
  const json::Value all = pipelines_json(store);
  for (const auto& p : all.at("pipelines").as_array()) {
    const std::string id = std::to_string(p.at("id").as_int());
    std::string r = "<td><a href=\"/pipelines/" + id + "\">" + id + "</a></td><td>" + e(p.at("run").as_string()) +
                    "</td><td>" + e(p.at("pipeline").as_string()) + "</td>";
    if (const auto* err = p.find("error")) {
      rows.push_back(r + "<td colspan=\"3\">" + e(err->as_string()) + "</td>");
      continue;
    }
    std::map<std::string, int> counts;
    for (const auto& [task, state] : p.at("tasks").as_object()) ++counts[state.as_string()];
    std::string tasks;
    for (const auto& [state, n] : counts) tasks += (tasks.empty() ? "" : ", ") + std::to_string(n) + " " + e(state);
    rows.push_back(r + state_cell(p.at("state").as_string()) + "<td>" + tasks + "</td><td>" +
                   e(when(p.at("created").as_double())) + "</td>");
  }
  const std::string body = rows.empty() ? "<p>No pipeline run is recorded in the lineage store yet.</p>"
                                        : table({"id", "run", "pipeline", "state", "tasks", "created (UTC)"}, rows, "pipelines");
  return page("Pipelines", "pipelines", body, 10);
}

std::string pipeline_page(const PipelineView& v) {
  static const std::map<std::string, std::string> kFill{
      {"succeeded", "#c8e6c9"}, {"cached", "#dcedc8"}, {"running", "#bbdefb"}, {"retrying", "#ffe0b2"},
      {"failed", "#ffcdd2"}, {"skipped", "#eeeeee"}, {"cancelled", "#eeeeee"}, {"pending", "#ffffff"}};
  std::ostringstream dot;
  dot << "digraph run {\n  rankdir=LR;\n  node [shape=box, style=\"rounded,filled\", fontname=\"sans-serif\", fontsize=10];\n";
  std::vector<std::string> rows;
  for (const auto& t : v.status.tasks) {
    const auto fill = kFill.find(t.state);
    dot << "  " << lineage::dot_quote(t.name) << " [label=" << lineage::dot_quote(t.name + "\n" + t.state)
        << ", fillcolor=\"" << (fill == kFill.end() ? "#ffffff" : fill->second) << "\"];\n";
    for (const auto& a : t.after) dot << "  " << lineage::dot_quote(a) << " -> " << lineage::dot_quote(t.name) << ";\n";
    std::string outputs;
    for (const auto& [k, val] : t.outputs.parameters) outputs += e(k) + "=" + e(val) + "<br>";
    for (const auto& [k, a] : t.outputs.artifacts) outputs += e(k) + ": <code>" + e(a.first) + "</code><br>";
    rows.push_back("<td>" + e(t.name) + "</td>" + state_cell(t.state) + "<td>" + e(join(t.after, ", ")) + "</td><td>" +
                   e(t.job) + "</td><td class=\"num\">" + std::to_string(t.attempt) + "</td><td>" + e(t.reason) +
                   "</td><td>" + outputs + "</td><td><code>" + e(t.log) + "</code></td>");
  }
  dot << "}\n";
  std::string body = "<p>Pipeline " + e(v.status.pipeline) + ", " + e(v.status.mode) + ", state <span id=\"state\">" +
                     e(v.status.state) + "</span>; directory <code>" + e(v.status.dir.string()) + "</code>.</p>" +
                     inline_svg(dot.str()) +
                     table({"task", "state", "after", "job", "attempt", "reason", "outputs", "log"}, rows, "tasks");
  for (const auto& n : v.status.notes) body += "<p class=\"note\">" + e(n) + "</p>";
  return page("Run " + v.status.run, "pipelines", body, v.status.state == "Running" ? 5 : 0);
}

std::string models_page(const lineage::Store& store) {
  std::vector<std::string> rows;
  for (const auto& a : store.artifacts()) {
    const std::string id = std::to_string(a.id);
    rows.push_back("<td><a href=\"/models/" + id + "\">" + id + "</a></td><td>" + e(a.type) + "</td><td><code>" +
                   e(a.uri) + "</code></td><td>" + e(a.digest) + "</td><td>" + e(when(a.created)) + "</td>");
  }
  const std::string body = rows.empty() ? "<p>No artifact is recorded in the lineage store yet.</p>"
                                        : table({"id", "type", "uri", "digest", "recorded (UTC)"}, rows, "artifacts");
  return page("Models and artifacts", "models", body);
}

std::string model_page(const lineage::Store& store, std::int64_t artifact) {
  const auto a = store.artifact(artifact);
  if (!a) throw HttpError{404, "the lineage store holds no artifact " + std::to_string(artifact)};
  lineage::Graph graph;
  graph.add(store.ancestry(artifact));
  const std::string dot = lineage::to_dot(graph, [](char kind, std::int64_t id) {
    return kind == 'a' ? "/models/" + std::to_string(id) : std::string();
  });
  std::string props;
  for (const auto& [k, v] : a->properties) props += "<li>" + e(k) + " = " + e(lineage::to_text(v)) + "</li>";
  std::vector<std::string> used;
  for (const auto& c : store.consumers(artifact)) {
    // What the consumer made: the way down the lineage, as the graph is the way up.
    std::string made;
    for (const auto& ev : store.events_of_execution(c.id)) {
      if (ev.type != lineage::EventType::output) continue;
      const std::string id = std::to_string(ev.artifact);
      made += "<a href=\"/models/" + id + "\">" + (ev.path.empty() ? id : e(ev.path)) + "</a> ";
    }
    used.push_back("<td>" + e(c.type) + "</td><td>" + e(c.name) + "</td>" + state_cell(c.state) + "<td>" + made + "</td>");
  }
  std::string body = "<p>" + e(a->type) + " <code>" + e(a->uri) + "</code> " + e(a->digest) + "</p><ul>" + props +
                     "</ul><h2>History</h2><p class=\"note\">Each artifact in the graph links to its own page.</p>" +
                     inline_svg(dot);
  if (!used.empty()) body += "<h2>Used by</h2>" + table({"type", "name", "state", "made"}, used);
  return page("Artifact " + std::to_string(artifact), "models", body);
}

namespace {

std::string fixed(double v, int decimals) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(decimals) << v;
  return out.str();
}

// Cells for a load: requests/s, p50, p99 ("-" where not known yet: a rate needs two scrapes).
std::string load_cells(const Load& l) {
  auto ms = [](const std::optional<double>& v) -> std::string {
    if (!v) return "-";
    return std::isfinite(*v) ? "&le; " + fixed(*v * 1000, 1) + " ms" : "&gt; the largest bucket";
  };
  return "<td class=\"num\">" + (l.rate ? fixed(*l.rate, 1) : std::string("-")) + "</td><td class=\"num\">" + ms(l.p50) +
         "</td><td class=\"num\">" + ms(l.p99) + "</td>";
}

// The line under a service's name that says what its metrics said, and when.
std::string load_line(const ServiceLoad& l) {
  if (!l.scraped) return "<p class=\"load\">Load: not asked (the service is not ready).</p>";
  const std::string at = " <span class=\"note\">(asked " + e(when(l.at)) + " UTC)</span>";
  if (!l.answered) return "<p class=\"load no-answer\">Load: no answer: " + e(l.problem) + "." + at + "</p>";
  return "<table class=\"load\"><thead><tr><th>requests/s</th><th>p50</th><th>p99</th></tr></thead><tbody><tr>" +
         load_cells(l.all) + "</tr></tbody></table>" + at;
}

// A submitted service: its state and traffic split, its load, the model of each version and
// its load, its replicas.
std::string service_section(const Service& s, const ServiceLoad& load) {
  if (!s.registry) {
    return "<h3>" + e(s.dir.filename().string()) + "</h3><p class=\"note\">" + e(s.error) + "</p>";
  }
  const serve::Registry& r = *s.registry;
  std::string split;
  for (const auto& [version, percent] : r.traffic) {
    split += (split.empty() ? "" : ", ") + std::string("version ") + e(version) + ": " + std::to_string(percent) + "%";
  }
  std::vector<std::string> versions, replicas;
  for (const auto& [version, path] : r.storage) {
    const auto t = r.traffic.find(version);
    const auto l = load.versions.find(version);
    versions.push_back("<td>" + e(version) + "</td><td class=\"num\">" +
                       (t == r.traffic.end() ? std::string("0") : std::to_string(t->second)) + "%</td>" +
                       load_cells(l == load.versions.end() ? Load{} : l->second) + "<td><code>" + e(path) + "</code></td>");
  }
  for (const auto& x : r.replicas) {
    replicas.push_back("<td class=\"num\">" + std::to_string(x.id) + "</td><td>" + e(x.node) + "</td><td><code>" + e(x.host) +
                       ":" + std::to_string(x.port) + "</code></td><td>" + e(x.version) + "</td>" + state_cell(x.state) +
                       "<td class=\"num\">" + std::to_string(x.restarts) + "</td>");
  }
  std::string out = "<h3 class=\"service\">" + e(r.name) + "</h3><p>State <span class=\"state state-" + e(r.state) + "\">" +
                    e(r.state) + "</span>" + (r.message.empty() ? "" : " (" + e(r.message) + ")") + ", Slurm job " +
                    e(r.job) + (r.url.empty() ? std::string() : ", router <code>" + e(r.url) + "</code>") +
                    "; traffic " + (split.empty() ? std::string("none") : split) + ".</p>";
  out += load_line(load) + table({"version", "traffic", "requests/s", "p50", "p99", "model"}, versions);
  return out + table({"replica", "node", "address", "version", "state", "restarts"}, replicas);
}

}  // namespace

std::string endpoints_page(const lineage::Store& store, const std::filesystem::path& services_root, TrafficCache& traffic) {
  std::vector<std::string> rows;
  for (const auto& p : endpoints(store)) {
    rows.push_back("<td>" + e(p.name) + "</td>" + state_cell(p.state) + "<td><code>" + e(p.url) + "</code></td><td>" +
                   e(p.host) + "</td><td>" + e(join(p.models, ", ")) + "</td><td>" + e(when(p.started)) + "</td>");
  }
  std::string body = "<h2>Services</h2>";
  const auto submitted = services(services_root);
  if (submitted.empty()) {
    body += "<p>No service submitted with cohort serve submit" +
            (services_root.empty() ? std::string() : " in <code>" + e(services_root.string()) + "</code>") + ".</p>";
  }
  for (const auto& s : submitted) {
    body += s.registry ? service_section(s, traffic.load(s, TrafficCache::Clock::now())) : service_section(s, {});
  }
  body += "<h2>Servers</h2>";
  body += rows.empty() ? "<p>No model server is recorded in the lineage store yet.</p>"
                       : table({"server", "state", "url", "host", "models", "started (UTC)"}, rows, "endpoints");
  return page("Endpoints", "endpoints", body, 10);
}

std::string jobs_page(const lineage::Store& store, const json::Value& slurm) {
  std::vector<std::string> launches;
  for (const auto& row : launch_rows(store)) {
    const auto& x = row.launch;
    const auto prop = [&](const std::string& k) { return text_property(x.properties, k); };
    const std::string beat = row.heartbeat_age ? e(tuner::format_number(std::round(*row.heartbeat_age))) + " s ago" : "-";
    const std::string checkpoint = row.checkpoint ? "<a class=\"checkpoint\" href=\"/models/" + std::to_string(row.checkpoint->id) +
                                                        "\">" + e(row.checkpoint->name.empty() ? row.checkpoint->uri : row.checkpoint->name) + "</a>"
                                                  : "-";
    launches.push_back("<td><a href=\"/jobs/" + std::to_string(x.id) + "\">" + e(x.name) + "</a></td>" + state_cell(x.state) + "<td>" + e(prop("job_id")) + "</td><td>" +
                       e(prop("outcome")) + "</td><td class=\"num\">" + e(prop("restarts")) + "</td><td class=\"num\">" + beat +
                       "</td><td>" + checkpoint + "</td><td><code>" + e(prop("command")) + "</code></td><td>" + e(when(x.updated)) + "</td>");
  }
  std::string body = "<h2>Launches</h2>" +
                     (launches.empty() ? std::string("<p>No launch is recorded in the lineage store yet.</p>")
                                       : table({"launch", "state", "job", "outcome", "restarts", "heartbeat", "last checkpoint", "command", "updated (UTC)"},
                                               launches, "launches"));
  body += "<h2>Slurm</h2>";
  if (!slurm.at("available").as_bool()) return page("Jobs", "jobs", body + "<p>Slurm is not installed here.</p>", 10);
  std::vector<std::string> rows;
  for (const auto& j : slurm.at("jobs").as_array()) {
    rows.push_back("<td>" + e(j.at("job").as_string()) + "</td><td>" + e(j.at("name").as_string()) + "</td>" +
                   state_cell(j.at("state").as_string()) + "<td>" + e(j.at("elapsed").as_string()) + "</td><td>" +
                   e(j.at("nodes").as_string()) + "</td><td>" + e(j.at("reason").as_string()) + "</td>");
  }
  body += table({"job", "name", "state", "elapsed", "nodes", "reason"}, rows, "slurm-jobs");
  for (const auto& err : slurm.at("errors").as_array()) body += "<p class=\"note\">" + e(err.as_string()) + "</p>";
  body += "<p class=\"note\">As Slurm said at " + e(when(slurm.at("asked").as_double())) + " UTC.</p>";
  return page("Jobs", "jobs", body, 10);
}

namespace {

std::string heartbeat_cell(const launcher::RankReport& r) {
  if (r.heartbeat_age) return "<td class=\"num\">" + e(tuner::format_number(std::round(*r.heartbeat_age))) + " s ago</td>";
  return std::string("<td>") + (r.beats && (r.state == "running" || r.state == "starting") ? "not yet" : "") + "</td>";
}

// The newest attempt's ranks, and every attempt with why it ended: the launch's restarts.
std::string run_tables(const launcher::RunReport& run) {
  if (run.attempts.empty()) return "<p>No rank has started yet.</p>";
  std::vector<std::string> ranks, attempts;
  for (const auto& r : run.attempts.back().ranks) {
    ranks.push_back("<td class=\"num\">" + std::to_string(r.rank) + "</td><td>" + e(r.host) + "</td><td>" + e(r.cpus) +
                    "</td><td>" + e(r.gpus) + "</td><td>" + e(r.nics) + "</td><td>" + e(r.numa) + "</td>" +
                    "<td class=\"state state-" + (r.failed ? "failed" : r.state == "running" || r.state == "starting" ? "running" : "succeeded") +
                    "\">" + e(r.state) + "</td>" + heartbeat_cell(r));
  }
  for (const auto& a : run.attempts) {
    attempts.push_back("<td class=\"num\">" + std::to_string(a.number) + "</td><td class=\"num\">" +
                       std::to_string(a.ranks.size()) + "</td><td>" + e(a.why_ended) + "</td>");
  }
  std::string out = "<h2>Ranks</h2>" + table({"rank", "host", "CPUs", "GPUs", "NICs", "NUMA", "state", "heartbeat"}, ranks, "ranks");
  out += "<h2>Attempts</h2><p class=\"note\">Each restart or requeue is a new attempt; it began because the one "
         "before it ended as said.</p>" + table({"attempt", "ranks", "ended because"}, attempts, "attempts");
  if (run.checkpoint_requested) out += "<p>Preemption asked the ranks to checkpoint; the job is requeued.</p>";
  return out;
}

// A file's tail under its heading: its path, whether it was cut, and its text or why not.
std::string tail_block(const std::string& heading, const LogTail& t, const std::string& id) {
  return "<h3>" + heading + "</h3><p class=\"note\"><code>" + e(t.path) + "</code>" +
         (t.cut ? ", its last " + std::to_string(kTailLines) + " lines at most" : std::string()) + "</p>" +
         (t.error.empty() ? "<pre class=\"log\" id=\"" + id + "\">" + e(t.text) + "</pre>"
                          : "<p class=\"note\">" + e(t.error) + "</p>");
}

std::string log_tails(const JobView& v) {
  if (v.output_dir.empty()) {
    const std::string hint = "The ranks' output went to the launch's own output, each line prefixed by its rank: give "
                             "cohort launch --output-dir DIR to keep a log per rank that this page shows.";
    if (!v.batch_log) return "<p class=\"note\">" + hint + (v.batch_error.empty() ? "" : " " + e(v.batch_error) + ".") + "</p>";
    const LogTail& t = *v.batch_log;
    return "<h3>Batch output</h3><p class=\"note\">" + hint + " Slurm's output file <code>" + e(t.path) + "</code>" +
           (t.cut ? ", its last " + std::to_string(kTailLines) + " lines at most" : std::string()) + ":</p>" +
           (t.error.empty() ? "<pre class=\"log\" id=\"batch-log\">" + e(t.text) + "</pre>" : "<p class=\"note\">" + e(t.error) + "</p>");
  }
  std::string out;
  for (const auto& t : v.logs) out += tail_block("Rank " + std::to_string(t.rank), t, "log-" + std::to_string(t.rank));
  return out.empty() ? "<p>No rank has written a log yet.</p>" : out;
}

// What a hung rank was doing when its watcher ended it.
std::string stack_dumps(const JobView& v) {
  if (v.stacks.empty()) return "";
  std::string out = "<h2>Stacks of hung ranks</h2>";
  for (const auto& [attempt, t] : v.stacks) {
    out += tail_block("Attempt " + std::to_string(attempt) + ", rank " + std::to_string(t.rank), t,
                      "stack-" + std::to_string(attempt) + "-" + std::to_string(t.rank));
  }
  return out;
}

}  // namespace

std::string job_page(const JobView& v) {
  const auto& x = v.launch;
  const auto prop = [&](const char* key) { return e(text_property(x.properties, key)); };
  std::string body = "<p>State <span id=\"state\">" + e(x.state) + "</span>" +
                     (prop("outcome").empty() ? "" : " (" + prop("outcome") + ")") + ", Slurm job " +
                     (prop("job_id").empty() ? "none (local)" : prop("job_id")) + ", restarts " +
                     (prop("restarts").empty() ? "0" : prop("restarts")) + "; on " + prop("host") + " in <code>" +
                     prop("cwd") + "</code>, updated " + e(when(x.updated)) + " UTC.</p><p>Command <code>" +
                     prop("command") + "</code></p><p>Run directory <code>" + e(v.run_dir) + "</code></p>";
  if (v.checkpoint) {
    body += "<p>Last checkpoint: <a id=\"checkpoint\" href=\"/models/" + std::to_string(v.checkpoint->id) + "\">" +
            e(v.checkpoint->name) + "</a> <code>" + e(v.checkpoint->uri) + "</code>, " + e(when(v.checkpoint->created)) +
            " UTC.</p>";
  } else {
    body += "<p>No checkpoint recorded.</p>";
  }
  if (v.run) body += run_tables(*v.run);
  else body += "<p class=\"note\" id=\"run-error\">" + e(v.run_error) + "</p>";
  body += stack_dumps(v) + "<h2>Logs</h2>" + log_tails(v);
  return page("Launch " + x.name, "jobs", body, x.state == "RUNNING" ? 5 : 0);
}

}  // namespace cohort::dashboard
