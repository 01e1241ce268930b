#include "dashboard/slurm.hpp"

#include <set>
#include <sstream>

#include "common/process.hpp"
#include "common/text.hpp"

namespace cohort::dashboard {
namespace {

constexpr std::chrono::seconds kSlurmTimeout{10};  // a hung slurmctld costs a page this, not forever

// Each line "F1|F2|…" as an object with `names`; lines with another count of fields skipped.
void add_rows(json::Value& jobs, std::set<std::string>& seen, const std::string& out,
              const std::vector<std::string>& names) {
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) {
    const auto fields = split(line, '|');
    if (fields.size() != names.size() || fields[0].empty() || !seen.insert(std::string(fields[0])).second) continue;
    json::Value row = json::Value::object();
    for (std::size_t i = 0; i < names.size(); ++i) row.set(names[i], std::string(fields[i]));
    jobs.push(std::move(row));
  }
}

}  // namespace

json::Value SlurmCache::ask() const {
  json::Value o = json::Value::object();
  json::Value jobs = json::Value::array(), errors = json::Value::array();
  o.set("available", find_program("squeue").has_value());
  if (!find_program("squeue")) {
    o.set("jobs", std::move(jobs));
    o.set("errors", std::move(errors));
    return o;
  }
  RunOptions run{.timeout = kSlurmTimeout};
  std::set<std::string> seen;
  const std::vector<std::string> names{"job", "name", "state", "elapsed", "nodes", "reason"};
  // Only this user's jobs: the dashboard answers its owner, and shows nobody else's work.
  auto q = run_process({"squeue", "-h", "-u", user_, "-o", "%i|%j|%T|%M|%D|%R"}, run);
  if (q.ok()) add_rows(jobs, seen, q.out, names);
  else errors.push("squeue: " + (q.err.empty() ? std::string("failed") : q.err.substr(0, q.err.find('\n'))));
  if (find_program("sacct")) {
    auto a = run_process({"sacct", "-X", "-n", "-P", "-u", user_, "-S", "now-1days", "-o",
                          "JobID,JobName,State,Elapsed,NNodes,Reason"}, run);
    if (a.ok()) add_rows(jobs, seen, a.out, names);
    else errors.push("sacct: " + (a.err.empty() ? std::string("failed") : a.err.substr(0, a.err.find('\n'))));
  }
  o.set("jobs", std::move(jobs));
  o.set("errors", std::move(errors));
  return o;
}

json::Value SlurmCache::jobs() {
  // One ask at a time, under the lock: pages that arrive while it runs wait for its answer
  // instead of asking Slurm themselves.
  std::lock_guard lock(mutex_);
  const auto now = std::chrono::steady_clock::now();
  if (!asked_ || now - *asked_ >= every_) {
    answer_ = ask();
    answer_.set("asked", std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count());
    asked_ = now;
    ++queries_;
  }
  return answer_;
}

SlurmCache::BatchOutput SlurmCache::batch_output(const std::string& job) {
  if (job.empty() || job.find_first_not_of("0123456789_+") != std::string::npos) {
    return {.path = {}, .error = "'" + job.substr(0, 64) + "' is not a Slurm job id"};
  }
  if (!find_program("scontrol")) return {.path = {}, .error = "Slurm's scontrol is not installed here"};
  // Under the lock while Slurm is asked, as in jobs(): loads of the same page wait for one answer.
  std::lock_guard lock(batch_mutex_);
  const auto now = std::chrono::steady_clock::now();
  if (const auto it = batch_.find(job); it != batch_.end() && now - it->second.at < every_) return it->second.answer;
  // Answers past their interval go, so that what is kept is bounded by the jobs asked lately.
  std::erase_if(batch_, [&](const auto& kept) { return now - kept.second.at >= every_; });
  return (batch_[job] = Asked{.at = now, .answer = ask_batch_output(job)}).answer;
}

SlurmCache::BatchOutput SlurmCache::ask_batch_output(const std::string& job) const {
  const auto r = run_process({"scontrol", "show", "job", "-o", job}, RunOptions{.timeout = kSlurmTimeout});
  if (!r.ok()) {
    return {.path = {}, .error = "Slurm no longer knows job " + job + " (it forgets ended jobs after a few minutes)"};
  }
  std::string path, owner;
  std::istringstream fields(r.out.substr(0, r.out.find('\n')));
  for (std::string field; fields >> field;) {
    if (field.starts_with("StdOut=")) path = field.substr(7);
    if (field.starts_with("UserId=")) owner = field.substr(7, field.find('(') - 7);
  }
  // Only the owner's own output: the dashboard shows nobody else's work.
  if (owner != user_) return {.path = {}, .error = "job " + job + " is not yours"};
  if (path.empty()) return {.path = {}, .error = "Slurm does not say where job " + job + " writes its output"};
  return {.path = path, .error = {}};
}

int SlurmCache::queries() const {
  std::lock_guard lock(mutex_);
  return queries_;
}

}  // namespace cohort::dashboard
