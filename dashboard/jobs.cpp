// A launch's page: its run directory (ranks' placement, state, heartbeats, attempts), its
// last checkpoint from the lineage store, and the tail of each rank's log.
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "common/error.hpp"
#include "common/fd.hpp"
#include "common/text.hpp"
#include "dashboard/data.hpp"
#include "lineage/report.hpp"

namespace cohort::dashboard {
namespace {

namespace fs = std::filesystem;

// Ranks whose logs a page shows: a gang of thousands would make a page nobody reads.
constexpr int kLogRanks = 16;

double wall_clock() {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// Length of the valid UTF-8 sequence at text[i], 0 when there is none.
std::size_t utf8_length(std::string_view text, std::size_t i) {
  const auto c = static_cast<unsigned char>(text[i]);
  const std::size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
  if (n == 0 || i + n > text.size() || (n == 2 && c < 0xc2)) return 0;
  for (std::size_t k = 1; k < n; ++k) {
    if ((static_cast<unsigned char>(text[i + k]) & 0xc0) != 0x80) return 0;
  }
  return n;
}

// Logs hold what programs print: terminal escapes, binary, a multi-byte character cut by
// the tail's start. What a page or a JSON string cannot hold shows as U+FFFD.
std::string printable(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size();) {
    const std::size_t n = utf8_length(text, i);
    const auto c = static_cast<unsigned char>(text[i]);
    if (n == 0 || (n == 1 && c < 0x20 && c != '\n' && c != '\t') || c == 0x7f) {
      out += "\xef\xbf\xbd";
      i += n == 0 ? 1 : n;
    } else {
      out.append(text.substr(i, n));
      i += n;
    }
  }
  return out;
}

// The last checkpoint the launch committed: the newest Checkpoint among its outputs.
std::optional<lineage::Artifact> last_checkpoint(const lineage::Store& store, std::int64_t launch) {
  std::optional<lineage::Artifact> last;
  for (const auto& ev : store.events_of_execution(launch)) {
    if (ev.type != lineage::EventType::output) continue;
    auto a = store.artifact(ev.artifact);
    if (a && a->type == "Checkpoint" && (!last || a->created >= last->created)) last = std::move(a);
  }
  return last;
}

// The ranks of the newest attempt, or every rank-R.log in the output directory when the
// run directory is gone.
std::vector<int> ranks_with_logs(const JobView& v) {
  std::vector<int> ranks;
  if (v.run && !v.run->attempts.empty()) {
    for (const auto& r : v.run->attempts.back().ranks) ranks.push_back(r.rank);
  } else {
    std::error_code ec;
    for (fs::directory_iterator it(v.output_dir, ec), end; !ec && it != end; it.increment(ec)) {
      const std::string name = it->path().filename().string();
      if (!name.starts_with("rank-") || !name.ends_with(".log")) continue;
      if (auto r = parse_integer(std::string_view(name).substr(5, name.size() - 9), 0, 1 << 20)) ranks.push_back(static_cast<int>(*r));
    }
    std::sort(ranks.begin(), ranks.end());
  }
  if (ranks.size() > static_cast<std::size_t>(kLogRanks)) ranks.resize(kLogRanks);
  return ranks;
}

}  // namespace

LogTail read_tail(const fs::path& path) {
  LogTail t{.path = path.string()};
  try {
    // Regular files only: a link could lead anywhere, a FIFO would block the page for ever.
    const RegularFile f = open_regular(path);
    const std::uint64_t from = f.size > kTailBytes ? f.size - kTailBytes : 0;
    std::string data(static_cast<std::size_t>(f.size - from), '\0');
    std::size_t got = 0;
    while (got < data.size()) {
      const ssize_t n = ::pread(f.fd.get(), data.data() + got, data.size() - got, static_cast<off_t>(from + got));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw Error(path.string() + ": " + std::strerror(errno));
      if (n == 0) break;  // it shrank since: what is there is the tail
      got += static_cast<std::size_t>(n);
    }
    data.resize(got);
    std::string_view view = data;
    t.cut = from > 0;
    if (t.cut) {  // the first line is a piece of one
      const auto nl = view.find('\n');
      view.remove_prefix(nl == std::string_view::npos ? view.size() : nl + 1);
    }
    // Counted from the end: `end` is where the line being counted ends.
    std::size_t end = view.size(), lines = 0;
    if (end > 0 && view[end - 1] == '\n') --end;
    while (true) {
      const auto nl = end == 0 ? std::string_view::npos : view.rfind('\n', end - 1);
      if (++lines > kTailLines) {
        view.remove_prefix(end + 1);
        t.cut = true;
        break;
      }
      if (nl == std::string_view::npos) break;
      end = nl;
    }
    t.text = printable(view);
  } catch (const Error& e) {
    t.error = e.what();
  }
  return t;
}

JobView load_job(const lineage::Store& store, std::int64_t id) {
  auto launch = store.execution(id);
  if (!launch || launch->type != "Launch") {
    throw HttpError{404, "the lineage store " + store.path().string() + " holds no launch " + std::to_string(id)};
  }
  JobView v{.launch = std::move(*launch)};
  v.run_dir = text_property(v.launch.properties, "run_dir");
  v.output_dir = text_property(v.launch.properties, "output_dir");
  if (v.run_dir.empty()) {
    v.run_error = "the launch did not record its run directory (it was started by a cohort older than the dashboard)";
  } else {
    try {
      v.run = launcher::read_run_dir(v.run_dir, wall_clock());
    } catch (const Error& e) {
      v.run_error = std::string(e.what()) +
                    (v.launch.state == "RUNNING" ? "" : ": cohort launch removes the run directory it made itself when "
                                                        "the launch ends; give it --run-dir DIR to keep one");
    }
  }
  v.checkpoint = last_checkpoint(store, id);
  if (v.run) {
    const auto most = static_cast<std::size_t>(kLogRanks);
    for (auto a = v.run->attempts.rbegin(); a != v.run->attempts.rend() && v.stacks.size() < most; ++a) {
      for (const auto& r : a->ranks) {
        if (v.stacks.size() >= most) break;
        if (r.stack_file.empty()) continue;
        v.stacks.emplace_back(a->number, read_tail(r.stack_file));
        v.stacks.back().second.rank = r.rank;
      }
    }
  }
  if (!v.output_dir.empty()) {
    for (int r : ranks_with_logs(v)) {
      v.logs.push_back(read_tail(fs::path(v.output_dir) / ("rank-" + std::to_string(r) + ".log")));
      v.logs.back().rank = r;
    }
  }
  return v;
}

std::vector<LaunchRow> launch_rows(const lineage::Store& store) {
  std::vector<LaunchRow> rows;
  const double now = wall_clock();
  for (auto& x : store.executions("Launch")) {
    LaunchRow r{.launch = std::move(x)};
    const std::string run_dir = text_property(r.launch.properties, "run_dir");
    if (r.launch.state == "RUNNING" && !run_dir.empty()) r.heartbeat_age = launcher::newest_heartbeat_age(run_dir, now);
    r.checkpoint = last_checkpoint(store, r.launch.id);
    rows.push_back(std::move(r));
  }
  return rows;
}

namespace {

json::Value tail_json(const LogTail& t) {
  json::Value o(json::Object{{"rank", t.rank}, {"path", t.path}, {"tail", t.text}, {"cut", t.cut}});
  if (!t.error.empty()) o.set("error", t.error);
  return o;
}

}  // namespace

json::Value job_json(const JobView& v) {
  json::Value o = lineage::to_json(v.launch);
  o.set("run_dir", v.run_dir);
  o.set("output_dir", v.output_dir);
  if (!v.run_error.empty()) o.set("run_error", v.run_error);
  json::Value attempts = json::Value::array();
  if (v.run) {
    for (const auto& a : v.run->attempts) {
      json::Value ranks = json::Value::array();
      for (const auto& r : a.ranks) {
        ranks.push(json::Value(json::Object{
            {"rank", r.rank}, {"host", r.host}, {"cpus", r.cpus}, {"gpus", r.gpus}, {"nics", r.nics}, {"numa", r.numa},
            {"state", r.state}, {"failed", r.failed},
            {"heartbeat_age", r.heartbeat_age ? json::Value(*r.heartbeat_age) : json::Value()}}));
      }
      attempts.push(json::Value(json::Object{{"attempt", a.number}, {"why_ended", a.why_ended}, {"ranks", std::move(ranks)}}));
    }
    o.set("checkpoint_requested", v.run->checkpoint_requested);
  }
  o.set("attempts", std::move(attempts));
  o.set("checkpoint", v.checkpoint ? lineage::to_json(*v.checkpoint) : json::Value());
  json::Value logs = json::Value::array();
  for (const auto& t : v.logs) logs.push(tail_json(t));
  o.set("logs", std::move(logs));
  json::Value stacks = json::Value::array();
  for (const auto& [attempt, t] : v.stacks) {
    json::Value s = tail_json(t);
    s.set("attempt", attempt);
    stacks.push(std::move(s));
  }
  o.set("stacks", std::move(stacks));
  if (v.batch_log) {
    json::Value b(json::Object{{"path", v.batch_log->path}, {"tail", v.batch_log->text}, {"cut", v.batch_log->cut}});
    if (!v.batch_log->error.empty()) b.set("error", v.batch_log->error);
    o.set("batch_log", std::move(b));
  } else if (!v.batch_error.empty()) {
    o.set("batch_log", json::Object{{"error", v.batch_error}});
  }
  return o;
}

}  // namespace cohort::dashboard
