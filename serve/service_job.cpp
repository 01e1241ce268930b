// `cohort serve job DIR`: what runs as a service's sbatch job. It starts each replica as a
// job step (`srun cohort serve start` on the step's CPUs and GPUs), serves the router in
// this process, keeps the registry, restarts a replica whose step ends, and on SIGTERM
// drains the router, then the replicas.
#include <poll.h>
#include <unistd.h>

#include <boost/asio/ip/tcp.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <iostream>
#include <mutex>
#include <thread>

#include "common/environment.hpp"
#include "common/error.hpp"
#include "common/fd.hpp"
#include "common/process.hpp"
#include "common/text.hpp"
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
    RouterOptions o;
    o.replica_token = token_;
    o.threads = 2;
    router_ = std::make_unique<Router>(o);
  }

  int run();

 private:
  void start_replica(ReplicaProcess& r);
  void watch();
  void publish();  // the registry and the router's replicas, from replicas_
  std::vector<std::string> step_argv(const RegistryReplica& entry) const;

  fs::path dir_;
  InferenceService isvc_;
  std::string token_;
  std::mutex mutex_;  // guards registry_ and replicas_
  Registry registry_;
  std::vector<ReplicaProcess> replicas_;
  std::unique_ptr<Router> router_;
  std::atomic<bool> stopping_{false};
  std::condition_variable stop_cv_;
};

std::vector<std::string> ServiceJob::step_argv(const RegistryReplica& entry) const {
  std::vector<std::string> argv{"srun", "--ntasks=1", "--nodes=1", "--exact", "--kill-on-bad-exit=1",
                                "--cpus-per-task=" + std::to_string(isvc_.cpus),
                                "--job-name=" + isvc_.name + ".replica-" + std::to_string(entry.id),
                                "--error=" + (dir_ / ("replica-" + std::to_string(entry.id) + ".log")).string()};
  if (isvc_.gpus > 0) argv.push_back("--gpus-per-task=" + std::to_string(isvc_.gpus));
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

void ServiceJob::start_replica(ReplicaProcess& r) {
  SpawnOptions o;
  o.out = Stream::pipe();
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

// A replica whose step ended is restarted, unless the service is stopping.
void ServiceJob::watch() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    for (auto& r : replicas_) {
      if (stopping_ || !r.step.poll()) continue;
      std::cerr << "cohort serve job: replica " << r.entry.id << " ended; restarting it\n";
      r.entry.state = "dead";
      ++r.entry.restarts;
      publish();
      try {
        start_replica(r);
      } catch (const Error& e) {
        std::cerr << "cohort serve job: replica " << r.entry.id << " did not restart: " << e.what() << "\n";
      }
      publish();
    }
    stop_cv_.wait_for(lock, std::chrono::milliseconds(200), [&] { return stopping_.load(); });
  }
}

int ServiceJob::run() {
  {
    std::lock_guard lock(mutex_);
    registry_.state = "starting";
    registry_.traffic = {{"1", 100}};
    write_registry(dir_, registry_);
    for (int i = 0; i < isvc_.min_replicas; ++i) {
      replicas_.push_back({RegistryReplica{.id = i, .version = "1"}, Process()});
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
  });
  stopping_ = true;
  stop_cv_.notify_all();
  watcher.join();
  std::lock_guard lock(mutex_);
  registry_.state = "draining";
  for (auto& r : replicas_) r.entry.state = "draining";
  publish();
  for (auto& r : replicas_) r.step.signal(SIGTERM);
  for (auto& r : replicas_) {
    r.step.wait();
    r.entry.state = "stopped";
  }
  registry_.state = "stopped";
  publish();
  std::cerr << "cohort serve job: drained; exiting\n";
  return 0;
}

}  // namespace

int job_command(const std::vector<std::string>& args) {
  if (args.size() != 1) throw input_error("serve job: expected the service's folder (it is run by 'cohort serve submit')");
  ServiceJob job(args[0]);
  return job.run();
}

}  // namespace cohort::serve
