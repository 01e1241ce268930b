// `cohort serve job DIR`: what runs as a service's sbatch job. It starts each replica as a
// job step (`srun cohort serve start` on the step's CPUs and GPUs), serves the router in
// this process, keeps the registry, restarts a replica whose step ends, and on SIGTERM
// drains the router, then the replicas. On Slurm's warning signal (submit asks for SIGUSR1
// before the time limit or a preemption) it drains the same way and requeues the job; a job
// that Slurm requeues (scontrol requeue, preemption) is left "requeued" rather than
// "stopped", and its next run serves again at the same name. Between minReplicas and
// maxReplicas it scales on the router's load (serve/autoscaler.hpp): a replica more is a
// step more in the allocation's idle resources (submit sized it for maxReplicas); a replica
// less is taken out of the router, then drained.
#include <poll.h>
#include <unistd.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <functional>
#include <iostream>
#include <mutex>
#include <string_view>
#include <thread>
#include <utility>

#include "common/environment.hpp"
#include "common/error.hpp"
#include "common/fd.hpp"
#include "common/json.hpp"
#include "common/process.hpp"
#include "common/slurm.hpp"
#include "common/text.hpp"
#include "serve/autoscaler.hpp"
#include "serve/isvc.hpp"
#include "serve/registry.hpp"
#include "serve/router.hpp"
#include "serve/serve_command.hpp"
#include "serve/server.hpp"
#include "serve/service_commands.hpp"

namespace cohort::serve {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr auto kStartDeadline = std::chrono::seconds(120);

// An address of `node` that clients outside the allocation can reach: the first IPv4
// address it resolves to here, on one of its nodes.
std::string address_of(const std::string& node) {
  boost::asio::io_context io;
  boost::asio::ip::tcp::resolver resolver(io);
  boost::system::error_code ec;
  const auto found = resolver.resolve(boost::asio::ip::tcp::v4(), node, "0", ec);
  if (ec || found.empty()) throw Error("cannot resolve node " + node + " (" + ec.message() + ")");
  return found.begin()->endpoint().address().to_string();
}

// Lines from a child's stdout until one holds `until`, or the deadline passes.
std::string read_until(Fd& out, const std::string& until, Clock::time_point deadline) {
  std::string text;
  while (text.find(until) == std::string::npos || text.back() != '\n') {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) throw Error("no '" + until + "' line within " + std::to_string(kStartDeadline.count()) + " s");
    pollfd p{out.get(), POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) < 0 && errno != EINTR) throw Error(system_message("poll", errno));
    if (!(p.revents & (POLLIN | POLLHUP))) continue;
    char buf[4096];
    const auto n = ::read(out.get(), buf, sizeof buf);
    if (n == 0) throw Error("it ended before it listened: " + text);
    if (n > 0) text.append(buf, static_cast<std::size_t>(n));
  }
  return text;
}

std::string field_after(const std::string& text, const std::string& key) {
  const auto at = text.find(key);
  if (at == std::string::npos) return {};
  const auto start = at + key.size();
  return text.substr(start, text.find_first_of(" )\n", start) - start);
}

// This process's environment without the service job's own Slurm variables: srun reads
// SLURM_JOB_ID, SLURM_NTASKS and the like as defaults, which would size a companion job's
// step like this job, or put it here.
std::vector<std::string> outside_this_job() {
  std::vector<std::string> env;
  for (char** e = environ; e && *e; ++e) {
    const std::string_view v(*e);
    if ((v.starts_with("SLURM_") && !v.starts_with("SLURM_CONF=")) || v.starts_with("SLURMD_")) continue;
    env.emplace_back(v);
  }
  return env;
}

// Empty also while Slurm cannot say: the caller asks again on its next look.
std::string job_state(const std::string& job) { return slurm_job_state(job).value_or(""); }

void cancel_job(const std::string& job) {
  if (!job.empty()) run_process({"scancel", job});
}

struct ReplicaProcess {
  RegistryReplica entry;
  Process step;
};

class ServiceJob {
 public:
  explicit ServiceJob(fs::path dir)
      : dir_(std::move(dir)), isvc_(read_inference_service_file((dir_ / "spec.yaml").string())),
        token_(read_or_create_token(dir_ / "token")), registry_(read_registry(dir_)) {
    registry_.job = env_or("SLURM_JOB_ID", registry_.job);
    registry_.requeues = static_cast<int>(parse_integer(env_or("SLURM_RESTART_COUNT", "0"), 0, 1 << 30).value_or(0));
    RouterOptions o;
    o.replica_token = token_;
    o.threads = 2;
    o.replica_concurrency = isvc_.container_concurrency;
    router_ = std::make_unique<Router>(o);
    if (isvc_.max_replicas > isvc_.min_replicas) autoscaler_.emplace(autoscaler_options(isvc_));
    start_count_ = replicas_to_start(registry_.state, registry_.desired, isvc_.min_replicas, isvc_.max_replicas);
    registry_.min_replicas = isvc_.min_replicas;
    registry_.max_replicas = isvc_.max_replicas;
    registry_.desired = start_count_;
  }

  int run();

 private:
  void start_replica(ReplicaProcess& r);
  void watch();
  void restart_dead();
  void apply_rollout();  // a request that 'cohort serve update', 'promote' or 'rollback' left
  void autoscale();
  // Every replica the allocation has room for runs (submit sized it for maxReplicas).
  bool full() const { return static_cast<int>(replicas_.size()) >= isvc_.max_replicas; }
  void scale(const ScaleDecision& d);
  void report_first_answers();
  void stop_replicas(const std::function<bool(const RegistryReplica&)>& which);
  void add_replica(const std::string& version);
  // A replica of `version` in, then replica `id` out; the other way round when the allocation
  // has no idle room, the others answering meanwhile.
  void replace(int id, const std::string& version);
  void publish();  // the registry and the router's replicas, from replicas_
  std::string resume_version();
  void watch_signals();
  void drain();
  std::string end_state();  // stopped, or requeued when Slurm will run the job again
  std::vector<std::string> step_argv(const RegistryReplica& entry) const;
  // Replicas that the service's own job holds; the others run in companion jobs.
  int in_own_job() const {
    return static_cast<int>(std::ranges::count_if(replicas_, [](const ReplicaProcess& r) { return r.entry.job.empty(); }));
  }
  std::string submit_companion(int id) const;

  fs::path dir_;
  InferenceService isvc_;
  std::string token_;
  std::mutex mutex_;  // guards registry_ and replicas_
  Registry registry_;
  std::vector<ReplicaProcess> replicas_;
  std::unique_ptr<Router> router_;
  std::atomic<bool> stopping_{false};
  int before_canary_ = 0;  // the replicas the service had when its canary started
  int start_count_ = 1;  // minReplicas, or the count a requeued run had reached
  std::atomic<bool> warned_{false};  // Slurm's warning signal came: requeue once drained
  boost::asio::io_context signals_io_;
  std::condition_variable stop_cv_;
  std::optional<Autoscaler> autoscaler_;
  struct ScaledUp {
    int id;
    Clock::time_point decided;
  };
  std::vector<ScaledUp> awaiting_first_answer_;  // replicas the autoscaler started
};

std::vector<std::string> ServiceJob::step_argv(const RegistryReplica& entry) const {
  std::vector<std::string> argv{"srun", "--ntasks=1", "--nodes=1", "--exact", "--kill-on-bad-exit=1",
                                "--cpus-per-task=" + std::to_string(isvc_.cpus),
                                "--job-name=" + isvc_.name + ".replica-" + std::to_string(entry.id),
                                "--error=" + (dir_ / ("replica-" + std::to_string(entry.id) + ".log")).string()};
  if (isvc_.gpus > 0) argv.push_back("--gpus-per-task=" + std::to_string(isvc_.gpus));
  if (!entry.job.empty()) argv.push_back("--jobid=" + entry.job);  // in its companion job
  // The step says where it runs and its server's pid, then becomes the server.
  argv.insert(argv.end(), {"sh", "-c", "echo \"node=$SLURMD_NODENAME pid=$$\"; exec \"$0\" \"$@\"",
                           cohort_executable(), "serve", "start", "--address", "0.0.0.0", "--port", "0", "--threads",
                           std::to_string(std::max(1, isvc_.cpus)), "--token-file", (dir_ / "token").string()});
  const auto it = registry_.storage.find(entry.version);
  const fs::path storage = it != registry_.storage.end() ? fs::path(it->second) : isvc_.storage;
  if (fs::is_directory(storage)) argv.insert(argv.end(), {"--repository", storage.string()});
  else argv.insert(argv.end(), {"--model", isvc_.name + "=" + storage.string()});
  return argv;
}

// A job of one replica's resources, for a replica above what the service's own job holds.
// Its batch script only waits: the replica runs in it as a step that this job starts (srun
// --jobid), watched, restarted and drained like the others. The script ends once the
// service's job has not been running for three looks 5 s apart, so that a companion never
// outlives a service killed before it could cancel it. Throws when the job does not start
// within kStartDeadline; it is cancelled then, and the autoscaler asks again.
std::string ServiceJob::submit_companion(int id) const {
  const std::string name = "replica-" + std::to_string(id);
  std::vector<std::string> argv{"sbatch", "--parsable", "--job-name=" + isvc_.name + "." + name,
                                "--output=" + (dir_ / (name + ".companion.log")).string()};
  const auto resources = sbatch_resources(isvc_, 1);
  argv.insert(argv.end(), resources.begin(), resources.end());
  argv.push_back("--wrap=misses=0; while [ $misses -lt 3 ]; do if squeue -h -t RUNNING -o %i -j " + registry_.job +
                 " | grep -q .; then misses=0; else misses=$((misses + 1)); fi; sleep 5; done");
  RunOptions o;
  o.timeout = std::chrono::seconds(60);
  const auto submitted = run_process(argv, o);
  if (!submitted.ok()) {
    throw Error("sbatch of a companion job for " + name + " failed: " + (submitted.err.empty() ? submitted.out : submitted.err));
  }
  const std::string job = submitted.out.substr(0, submitted.out.find_first_of(";\n"));
  std::cerr << "cohort serve job: " << name << " goes in companion job " << job << " (the service's job holds "
            << isvc_.slurm.allocate << ")\n" << std::flush;
  const auto deadline = Clock::now() + kStartDeadline;
  std::string state;
  while (Clock::now() < deadline && !stopping_) {  // a drain does not wait for it
    state = job_state(job);
    if (state.starts_with("RUNNING")) return job;
    if (!state.starts_with("PENDING") && !state.starts_with("CONFIGURING")) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  cancel_job(job);
  if (stopping_) throw Error("companion job " + job + " for " + name + " cancelled: the service is draining");
  throw Error("companion job " + job + " for " + name + " did not start within " +
              std::to_string(kStartDeadline.count()) + " s (" + (state.empty() ? "gone" : state) + "); cancelled");
}

void ServiceJob::start_replica(ReplicaProcess& r) {
  SpawnOptions o;
  o.out = Stream::pipe();
  if (!r.entry.job.empty()) o.environment = outside_this_job();
  r.entry.state = "starting";
  r.step = spawn(step_argv(r.entry), o);
  const std::string text = read_until(r.step.out(), "listening on", Clock::now() + kStartDeadline);
  r.entry.node = field_after(text, "node=");
  r.entry.pid = parse_integer(field_after(text, "pid="), 1, 1LL << 31).value_or(0);
  r.entry.port = static_cast<int>(parse_integer(field_after(text, "(port "), 1, 65535).value_or(0));
  r.entry.host = address_of(r.entry.node.empty() ? host_name() : r.entry.node);
  r.entry.state = "ready";
  std::cerr << "cohort serve job: replica " << r.entry.id << " listening on " << r.entry.host << ":" << r.entry.port
            << " (node " << r.entry.node << ")\n";
}

void ServiceJob::publish() {
  std::vector<ReplicaAddress> addresses;
  registry_.replicas.clear();
  for (const auto& r : replicas_) {
    registry_.replicas.push_back(r.entry);
    if (r.entry.state == "ready") addresses.push_back({r.entry.host, r.entry.port, r.entry.version});
  }
  router_->set_replicas(addresses);
  router_->set_traffic(registry_.traffic);
  write_registry(dir_, registry_);
}

void ServiceJob::watch() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    restart_dead();
    try {
      apply_rollout();
    } catch (const Error& e) {
      std::cerr << "cohort serve job: rollout: " << e.what() << "\n";
    }
    try {
      autoscale();
    } catch (const Error& e) {
      std::cerr << "cohort serve job: autoscale: " << e.what() << "\n";
    }
    stop_cv_.wait_for(lock, std::chrono::milliseconds(200), [&] { return stopping_.load(); });
  }
}

// In the service's own job while it holds a free slot, else in a companion job. A replica
// that does not start is taken out again, its companion cancelled.
void ServiceJob::add_replica(const std::string& version) {
  int id = 0;
  for (const auto& r : replicas_) id = std::max(id, r.entry.id + 1);
  RegistryReplica entry{.id = id, .version = version};
  if (in_own_job() >= isvc_.slurm.allocate) entry.job = submit_companion(id);
  replicas_.push_back({entry, Process()});
  try {
    start_replica(replicas_.back());
  } catch (const Error&) {
    cancel_job(replicas_.back().entry.job);
    replicas_.pop_back();
    publish();
    throw;
  }
  publish();
}

void ServiceJob::replace(int id, const std::string& version) {
  const bool out_first = full();
  if (out_first) stop_replicas([&](const RegistryReplica& e) { return e.id == id; });
  add_replica(version);
  if (!out_first) stop_replicas([&](const RegistryReplica& e) { return e.id == id; });
}

// Out of the router first, then drained: requests under way on them finish.
void ServiceJob::stop_replicas(const std::function<bool(const RegistryReplica&)>& which) {
  std::vector<ReplicaProcess> leaving;
  for (auto it = replicas_.begin(); it != replicas_.end();) {
    if (which(it->entry)) {
      leaving.push_back(std::move(*it));
      it = replicas_.erase(it);
    } else {
      ++it;
    }
  }
  publish();
  for (auto& r : leaving) r.step.signal(SIGTERM);
  for (auto& r : leaving) {
    r.step.wait();
    cancel_job(r.entry.job);
  }
}

// rollout.json: {"action": "update", "version", "canary"} or {"action": "promote" | "rollback"}.
// Taken once: the file is removed before it is acted on.
void ServiceJob::apply_rollout() {
  const fs::path file = dir_ / "rollout.json";
  const auto text = read_file(file.string());
  if (!text) return;
  fs::remove(file);
  const auto request = json::parse(*text, file.string());
  const std::string action = request.at("action").as_string();
  if (action == "update") {
    const std::string version = request.at("version").as_string();
    registry_.storage[version] = request.at("storage").as_string();
    registry_.newest_version = std::max(registry_.newest_version, std::stoll(version));
  }
  // The newest version and the one before it; versions are whole numbers, in order.
  std::vector<long long> versions;
  for (const auto& [version, _] : registry_.storage) versions.push_back(std::stoll(version));
  std::sort(versions.begin(), versions.end());
  if (versions.size() < 2) throw Error(action + ": the service serves one version only; nothing to roll");
  const std::string new_version = std::to_string(versions.back());
  const std::string old_version = std::to_string(versions[versions.size() - 2]);
  std::cerr << "cohort serve job: rollout: " << action << " (version " << old_version << " -> " << new_version << ")\n";
  if (action == "update") {
    const int canary = static_cast<int>(request.at("canary").as_int());
    if (canary > 0) {
      before_canary_ = static_cast<int>(replicas_.size());
      // With no idle room in the allocation (the autoscaler took it all) the canary takes an
      // old replica's place: a step more would wait for resources that never free.
      if (full()) {
        const int newest = std::ranges::max_element(replicas_, {}, [](const ReplicaProcess& r) { return r.entry.id; })->entry.id;
        stop_replicas([&](const RegistryReplica& e) { return e.id == newest; });
      }
      add_replica(new_version);
      registry_.traffic = {{old_version, 100 - canary}, {new_version, canary}};
      return publish();
    }
    // A rolling update: one replica at a time.
    std::vector<int> old_ids;
    for (const auto& r : replicas_) old_ids.push_back(r.entry.id);
    registry_.traffic.clear();
    for (int id : old_ids) replace(id, new_version);
    registry_.traffic = {{new_version, 100}};
    registry_.storage.erase(old_version);
    return publish();
  }
  const bool promote = action == "promote";
  const std::string keep = promote ? new_version : old_version;
  const std::string drop = promote ? old_version : new_version;
  registry_.traffic = {{keep, 100}};
  publish();
  std::vector<int> dropped;
  for (const auto& r : replicas_) {
    if (r.entry.version == drop) dropped.push_back(r.entry.id);
  }
  // The version kept takes the other's places replica by replica until the service has the
  // count it had before the canary, so that it keeps its capacity under load: a promotion
  // replaces the old replicas; a rollback at maxReplicas, where the canary took an old
  // replica's place, gives that place back.
  const auto keeping = [&] {
    return std::ranges::count_if(replicas_, [&](const ReplicaProcess& r) { return r.entry.version == keep; });
  };
  const long long wanted = std::max(isvc_.min_replicas, before_canary_);
  for (int id : dropped) {
    if (keeping() < wanted) replace(id, keep);
    else stop_replicas([&](const RegistryReplica& e) { return e.id == id; });
  }
  registry_.storage.erase(drop);
  while (static_cast<int>(replicas_.size()) < isvc_.min_replicas) add_replica(keep);
  publish();
}

// One look at the router's load; a decision is acted on at once. Not while a canary runs:
// its replicas are counted by version, and promote or rollback settles the count.
void ServiceJob::autoscale() {
  if (!autoscaler_) return;
  report_first_answers();
  if (registry_.storage.size() != 1) return;
  const RouterLoad load = router_->load();
  const ScaleDecision d =
      autoscaler_->observe({Clock::now(), load.outstanding, load.requests}, static_cast<int>(replicas_.size()));
  if (!d.changed()) return;
  const auto unix_now = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch());
  registry_.desired = d.to;
  registry_.decision = std::string(d.to > d.from ? "up " : "down ") + std::to_string(d.from) + " -> " +
                       std::to_string(d.to) + ": " + d.reason;
  registry_.decided_at = unix_now.count();
  std::cerr << "cohort serve job: autoscale: " << registry_.decision << "\n" << std::flush;
  scale(d);
}

// Up: new steps, each of the version all traffic goes to. Down: the newest replicas leave
// the router first and then drain, so that the requests under way on them finish.
void ServiceJob::scale(const ScaleDecision& d) {
  const std::string version = registry_.storage.begin()->first;
  const auto decided = Clock::now();
  while (static_cast<int>(replicas_.size()) < d.to) {
    add_replica(version);
    awaiting_first_answer_.push_back({replicas_.back().entry.id, decided});
  }
  if (static_cast<int>(replicas_.size()) <= d.to) return;
  std::vector<int> ids;
  for (const auto& r : replicas_) ids.push_back(r.entry.id);
  std::sort(ids.begin(), ids.end());
  ids.erase(ids.begin(), ids.begin() + d.to);
  for (int id : ids) std::cerr << "cohort serve job: autoscale: draining replica " << id << "\n";
  stop_replicas([&](const RegistryReplica& e) { return std::ranges::find(ids, e.id) != ids.end(); });
  std::erase_if(awaiting_first_answer_, [&](const ScaledUp& s) { return std::ranges::find(ids, s.id) != ids.end(); });
}

// How long a scale-up took to be of use: from the decision to the new replica's first answer.
void ServiceJob::report_first_answers() {
  if (awaiting_first_answer_.empty()) return;
  const auto stats = router_->stats();
  std::erase_if(awaiting_first_answer_, [&](const ScaledUp& s) {
    const auto r = std::ranges::find_if(replicas_, [&](const ReplicaProcess& p) { return p.entry.id == s.id; });
    if (r == replicas_.end()) return true;
    const std::string name = r->entry.host + ":" + std::to_string(r->entry.port);
    for (const auto& st : stats) {
      if (st.address.name() != name || !st.first_answer) continue;
      std::cerr << "cohort serve job: autoscale: replica " << s.id << " answered its first request "
                << std::chrono::duration<double>(*st.first_answer - s.decided).count()
                << " s after the decision to scale up\n" << std::flush;
      return true;
    }
    return false;
  });
}

// A replica whose step ended is restarted, unless the service is stopping.
void ServiceJob::restart_dead() {
  {
    for (auto& r : replicas_) {
      if (stopping_ || !r.step.poll()) continue;
      std::cerr << "cohort serve job: replica " << r.entry.id << " ended; restarting it\n";
      r.entry.state = "dead";
      ++r.entry.restarts;
      publish();
      try {
        // A companion job that ended (time limit, preemption) is replaced by a new one.
        if (!r.entry.job.empty() && !job_state(r.entry.job).starts_with("RUNNING")) {
          const std::string fresh = submit_companion(r.entry.id);
          cancel_job(std::exchange(r.entry.job, fresh));
        }
        start_replica(r);
      } catch (const Error& e) {
        std::cerr << "cohort serve job: replica " << r.entry.id << " did not restart: " << e.what() << "\n";
      }
      publish();
    }
  }
}

// The version a run starts with: the one taking the most traffic when the last run ended
// (the newest on a tie). A canary that a requeue interrupted is dropped: update it again.
std::string ServiceJob::resume_version() {
  if (registry_.storage.empty()) return "1";
  const auto share = [&](const std::string& version) {
    const auto it = registry_.traffic.find(version);
    return it == registry_.traffic.end() ? 0 : it->second;
  };
  std::string best = registry_.storage.begin()->first;
  for (const auto& [version, _] : registry_.storage) {
    if (std::pair(share(version), std::stoll(version)) > std::pair(share(best), std::stoll(best))) best = version;
  }
  std::erase_if(registry_.storage, [&](const auto& entry) { return entry.first != best; });
  return best;
}

// SIGTERM (scancel, scontrol requeue, the time limit) or SIGUSR1 (the warning that submit
// asks Slurm for): no replica is restarted from here on, and the server is made to drain.
void ServiceJob::watch_signals() {
  auto set = std::make_shared<boost::asio::signal_set>(signals_io_, SIGTERM, SIGUSR1);
  set->async_wait([this, set](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    if (sig == SIGUSR1) {
      warned_ = true;
      std::cerr << "cohort serve job: Slurm's warning signal: draining, then requeueing\n" << std::flush;
    }
    stopping_ = true;
    stop_cv_.notify_all();
    if (sig == SIGUSR1) ::kill(::getpid(), SIGTERM);  // the server drains on SIGTERM
  });
}

// Readiness off at the router (it has drained already), then each replica drains.
void ServiceJob::drain() {
  std::lock_guard lock(mutex_);
  registry_.state = "draining";
  for (auto& r : replicas_) r.entry.state = "draining";
  publish();
  for (auto& r : replicas_) r.step.signal(SIGTERM);
  for (auto& r : replicas_) {
    r.step.wait();
    cancel_job(r.entry.job);
    r.entry.state = "stopped";
  }
}

// Slurm counts a requeue in the job's Restarts as soon as it is asked for, while this run
// still ends: more than this run's SLURM_RESTART_COUNT means the job will run again.
std::string ServiceJob::end_state() {
  if (warned_) {
    const auto r = run_process({"scontrol", "requeue", registry_.job});
    if (r.ok()) return "requeued";
    registry_.message = "scontrol requeue " + registry_.job + " failed: " + r.err;
    std::cerr << "cohort serve job: " << registry_.message << "\n";
    return "stopped";
  }
  const auto r = run_process({"scontrol", "show", "job", registry_.job, "-o"});
  const auto restarts = parse_integer(field_after(r.out, "Restarts="), 0, 1 << 30);
  return r.ok() && restarts && *restarts > registry_.requeues ? "requeued" : "stopped";
}

int ServiceJob::run() {
  watch_signals();
  std::thread signals([this] { signals_io_.run(); });
  // Joined however run() ends, a replica that does not start included.
  struct Join {
    boost::asio::io_context& io;
    std::thread& thread;
    ~Join() {
      io.stop();
      thread.join();
    }
  } join{signals_io_, signals};
  {
    std::lock_guard lock(mutex_);
    const std::string version = resume_version();
    registry_.state = "starting";
    registry_.url.clear();  // a requeued run's router is somewhere else
    registry_.message.clear();
    registry_.replicas.clear();
    registry_.traffic = {{version, 100}};
    write_registry(dir_, registry_);
    if (start_count_ > isvc_.min_replicas) {
      std::cerr << "cohort serve job: the run before the requeue had reached " << start_count_
                << " replicas; starting " << start_count_ << "\n";
    }
    for (int i = 0; i < start_count_; ++i) {
      replicas_.push_back({RegistryReplica{.id = i, .version = version}, Process()});
      start_replica(replicas_.back());
    }
    publish();
  }
  std::thread watcher([this] { watch(); });
  ServerOptions server;
  server.address = "0.0.0.0";
  server.port = 0;
  server.threads = 2;
  server.token = token_;
  run_server(*router_, server, [&](int port) {
    std::lock_guard lock(mutex_);
    registry_.url = "http://" + address_of(host_name()) + ":" + std::to_string(port) + "/v2";
    registry_.state = "ready";
    write_registry(dir_, registry_);
    std::cerr << "cohort serve job: " << registry_.name << " ready at " << registry_.url << "\n";
    if (stopping_) ::kill(::getpid(), SIGTERM);  // signalled before the server listened
  });
  stopping_ = true;
  stop_cv_.notify_all();
  watcher.join();
  drain();
  std::lock_guard lock(mutex_);
  registry_.state = end_state();
  registry_.url.clear();
  publish();
  std::cerr << "cohort serve job: drained; " << (registry_.state == "requeued" ? "requeued" : "exiting") << "\n";
  return 0;
}

}  // namespace

int job_command(const std::vector<std::string>& args) {
  if (args.size() != 1) throw input_error("serve job: expected the service's folder (it is run by 'cohort serve submit')");
  ServiceJob job(args[0]);
  return job.run();
}

}  // namespace cohort::serve
