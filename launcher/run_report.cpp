#include "launcher/run_report.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <sstream>
#include <system_error>

#include "common/error.hpp"
#include "common/text.hpp"
#include "launcher/run_dir.hpp"

namespace cohort::launcher {
namespace {

namespace fs = std::filesystem;

// The number in NAME = PREFIX + digits + SUFFIX, or nothing.
std::optional<int> numbered(const std::string& name, std::string_view prefix, std::string_view suffix) {
  if (!name.starts_with(prefix) || !name.ends_with(suffix) || name.size() <= prefix.size() + suffix.size()) return {};
  const auto n = parse_integer(std::string_view(name).substr(prefix.size(), name.size() - prefix.size() - suffix.size()),
                               0, 1 << 20);
  return n ? std::optional<int>(static_cast<int>(*n)) : std::nullopt;
}

RankReport& rank_in(std::map<int, RankReport>& ranks, int rank) {
  auto [it, added] = ranks.try_emplace(rank);
  if (added) it->second.rank = rank, it->second.state = "starting";
  return it->second;
}

void add_placement(std::map<int, RankReport>& ranks, int rank, const std::string& text) {
  RankReport& r = rank_in(ranks, rank);
  for (const auto& [key, value] : key_values(text)) {
    if (key == "host") r.host = value;
    else if (key == "cpus") r.cpus = value;
    else if (key == "gpus") r.gpus = value;
    else if (key == "nics") r.nics = value;
    else if (key == "numa") r.numa = value;
  }
  r.state = "running";
}

// A heartbeat file's age: its mtime is the last beat; the wrapper dates a new one to the
// epoch, which means "not beaten yet".
void add_heartbeat(std::map<int, RankReport>& ranks, int rank, const std::string& path, double now) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return;  // it ended between the listing and now
  RankReport& r = rank_in(ranks, rank);
  r.beats = true;
  if (st.st_mtim.tv_sec > 0) r.heartbeat_age = std::max(0.0, now - (st.st_mtim.tv_sec + st.st_mtim.tv_nsec / 1e9));
}

// The supervisor's `heartbeats` file: "RANK SECONDS" a line, each rank's last beat as its
// watcher passed it on (0: watched, not beaten yet).
std::map<int, double> read_beats(const fs::path& attempt) {
  std::map<int, double> beats;
  std::istringstream lines(read_small_file((attempt / "heartbeats").string()));
  int rank = 0;
  double at = 0;
  while (lines >> rank >> at) beats[rank] = at;
  return beats;
}

AttemptReport read_attempt(const fs::path& dir, int number, bool current, double now) {
  std::map<int, RankReport> ranks;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (auto r = numbered(name, "rank-", ".placement")) add_placement(ranks, *r, read_small_file(it->path().string()));
    else if (auto h = numbered(name, "heartbeat-", "")) add_heartbeat(ranks, *h, it->path().string(), now);
    else if (auto s = numbered(name, "rank-", ".stack")) rank_in(ranks, *s).stack_file = it->path().string();
  }
  for (const auto& [rank, at] : read_beats(dir)) {
    RankReport& r = rank_in(ranks, rank);
    r.beats = true;
    if (at > 0) r.heartbeat_age = std::max(0.0, now - at);
  }
  const std::vector<RankOutcome> outcomes = read_outcomes(dir.string());
  const RankOutcome* first = nullptr;
  for (const auto& o : outcomes) {
    RankReport& r = rank_in(ranks, o.rank);
    if (r.host.empty()) r.host = o.host;
    r.state = describe(o);
    r.failed = failed(o);
    r.heartbeat_age.reset();
    if (r.failed && (!first || o.ended_ns < first->ended_ns)) first = &o;
  }
  AttemptReport a{.number = number};
  for (auto& [rank, r] : ranks) {
    // A rank of an attempt that is over, which never said how it ended, was ended with it.
    if (!current && (r.state == "running" || r.state == "starting")) r.state = "killed in teardown", r.failed = true;
    if (!current) r.heartbeat_age.reset();
    a.ranks.push_back(std::move(r));
  }
  // The supervisor's word first: it heard every rank, even those torn down before they wrote.
  const std::string ended = read_small_file((dir / "ended").string());
  a.why_ended = ended.substr(0, ended.find('\n'));
  if (a.why_ended.empty() && first) {
    a.why_ended = "rank " + std::to_string(first->rank) + " (" + first->host + ") " + describe(*first) + " first";
  }
  return a;
}

}  // namespace

std::optional<double> newest_heartbeat_age(const std::string& dir, double now, std::size_t max_entries) {
  std::error_code ec;
  std::optional<int> newest;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (auto n = numbered(it->path().filename().string(), "attempt-", "")) newest = std::max(newest.value_or(*n), *n);
  }
  if (!newest) return std::nullopt;
  std::optional<double> age;
  std::size_t seen = 0;
  const fs::path attempt = fs::path(dir) / ("attempt-" + std::to_string(*newest));
  for (const auto& [rank, at] : read_beats(attempt)) {
    if (at > 0) age = std::min(age.value_or(now - at), std::max(0.0, now - at));
  }
  for (fs::directory_iterator it(attempt, ec), end; !ec && it != end && seen++ < max_entries; it.increment(ec)) {
    if (!numbered(it->path().filename().string(), "heartbeat-", "")) continue;
    struct stat st {};
    // An mtime at the epoch is a heartbeat file made but not yet beaten.
    if (::stat(it->path().c_str(), &st) != 0 || st.st_mtim.tv_sec <= 0) continue;
    const double a = std::max(0.0, now - (st.st_mtim.tv_sec + st.st_mtim.tv_nsec / 1e9));
    age = std::min(age.value_or(a), a);
  }
  return age;
}

RunReport read_run_dir(const std::string& dir, double now) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    throw Error("the run directory " + dir + (fs::exists(dir, ec) ? " is not a directory" : " is not there"));
  }
  RunReport report{.dir = dir, .checkpoint_requested = fs::exists(fs::path(dir) / "checkpoint-request", ec)};
  std::vector<int> numbers;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (auto n = numbered(it->path().filename().string(), "attempt-", "")) numbers.push_back(*n);
  }
  if (ec) throw Error("the run directory " + dir + " cannot be read: " + ec.message());
  std::sort(numbers.begin(), numbers.end());
  for (int n : numbers) {
    report.attempts.push_back(read_attempt(fs::path(dir) / ("attempt-" + std::to_string(n)), n, n == numbers.back(), now));
  }
  return report;
}

}  // namespace cohort::launcher
