#include "launcher/supervisor.hpp"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <functional>
#include <iomanip>
#include <iostream>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <variant>

#include "common/environment.hpp"
#include "common/error.hpp"
#include "common/process.hpp"
#include "common/text.hpp"
#include "launcher/agent_link.hpp"
#include "launcher/contract.hpp"
#include "common/json.hpp"
#include "launcher/hostlist.hpp"
#include "launcher/job_spec.hpp"
#include "launcher/lost_nodes.hpp"
#include "launcher/node_local.hpp"
#include "launcher/placement_env.hpp"
#include "topology/placement.hpp"
#include "topology/topology.hpp"
#include "launcher/run_dir.hpp"

extern char** environ;

namespace cohort::launcher {
namespace {

// How long a teardown waits for watchers to end their ranks when asked before it kills
// them: they answer in milliseconds, and the gang's end must stay within 2 s.
constexpr int kStopAnswerMs = 1000;

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// A count Slurm exports (SLURM_NTASKS, SLURM_HET_SIZE, …), or `fallback` when unset.
int env_count(const std::string& name, int fallback) {
  const std::string text = env_or(name.c_str());
  if (text.empty()) return fallback;
  const auto n = parse_integer(text, 0, 1'000'000);
  if (!n) throw input_error(name + "='" + text + "' is not a count: is this a Slurm allocation?");
  return static_cast<int>(*n);
}

std::string signal_name(int sig) {
  const char* abbrev = ::sigabbrev_np(sig);
  return abbrev ? std::string("SIG") + abbrev : "signal " + std::to_string(sig);
}

// Owns the signalfd through which the supervisor hears about children and signals; the
// signals stay blocked for as long as it lives and are restored after.
class SignalWatch {
 public:
  explicit SignalWatch(std::vector<int> signals) {
    sigset_t set;
    sigemptyset(&set);
    for (int s : signals) sigaddset(&set, s);
    ::sigprocmask(SIG_BLOCK, &set, &previous_);
    fd_ = ::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (fd_ < 0) throw Error(system_message("signalfd", errno));
  }
  ~SignalWatch() {
    ::close(fd_);
    ::sigprocmask(SIG_SETMASK, &previous_, nullptr);
  }
  SignalWatch(const SignalWatch&) = delete;
  SignalWatch& operator=(const SignalWatch&) = delete;

  int fd() const { return fd_; }
  const sigset_t& previous_mask() const { return previous_; }
  // Signals received since the last call, in order.
  std::vector<int> drain() {
    std::vector<int> got;
    signalfd_siginfo info{};
    while (::read(fd_, &info, sizeof info) == static_cast<ssize_t>(sizeof info)) got.push_back(static_cast<int>(info.ssi_signo));
    return got;
  }

 private:
  int fd_ = -1;
  sigset_t previous_{};
};

struct Child {
  Process process;
  int rank = -1;  // local mode: the rank this wrapper runs; Slurm mode: -1 (srun)
  LineSplitter out_lines, err_lines;
};

// Starts `argv` with `env`, stdout/stderr to pipes (when capture) or to `log_file`, in its
// own process group, so the whole rank — wrapper, program and the program's children — can
// be signalled at once.
enum class Capture { none, both, err };

Child start_child(const std::vector<std::string>& argv, std::vector<std::string> env, Capture capture,
                  const std::string& log_file, const sigset_t& child_mask) {
  SpawnOptions o;
  o.environment = std::move(env);
  o.own_process_group = true;
  o.signal_mask = child_mask;
  if (capture == Capture::both) {
    o.out = Stream::pipe();
    o.err = Stream::pipe();
  } else if (capture == Capture::err) {
    o.err = Stream::pipe();
  } else if (!log_file.empty()) {
    o.out = Stream::file(log_file, /*append=*/true);
    o.err = Stream::same_as_stdout();
  }
  Child c;
  c.process = spawn(argv, o);
  // Read until empty on every round of the supervisor's loop, never waited on.
  for (Fd* fd : {&c.process.out(), &c.process.err()}) {
    if (*fd) ::fcntl(fd->get(), F_SETFL, O_NONBLOCK);
  }
  return c;
}

// Copies what a rank printed to our stdout/stderr, each complete line prefixed "R: " as
// srun --label does; srun's own (rank -1) as it is, less the lines `drop` names.
void relay(Fd& fd, LineSplitter& lines, int rank, std::ostream& sink, bool final,
           const std::function<bool(std::string_view)>& drop = {}) {
  if (!fd) return;
  auto put = [&](std::string_view line) {
    if (rank >= 0) sink << rank << ": " << line << "\n";
    else if (!drop || !drop(line)) sink << line << "\n";
  };
  char buf[65536];
  while (true) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n > 0) {
      lines.feed(std::string_view(buf, static_cast<size_t>(n)), put);
      continue;
    }
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
      fd.reset();
      final = true;
    }
    break;
  }
  if (final) lines.finish(put);
  sink.flush();
}

std::vector<std::string> base_environment() {
  std::vector<std::string> env;
  for (char** e = environ; e && *e; ++e) env.emplace_back(*e);
  return env;
}

int free_local_port() {
  int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) throw Error(system_message("socket", errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(s, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    int err = errno;
    ::close(s);
    throw Error(system_message("cannot find a free port", err));
  }
  ::close(s);
  return ntohs(addr.sin_port);
}

bool resolves(const std::string& host) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  addrinfo* res = nullptr;
  int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &res);
  if (res) ::freeaddrinfo(res);
  return rc == 0;
}

// The rendezvous address: the first node's name when it resolves here, else the address
// Slurm knows the node by.
std::string master_address(const std::string& first_node) {
  if (resolves(first_node)) return first_node;
  auto r = run_process({"scontrol", "show", "node", "-o", first_node});
  std::istringstream fields(r.out);
  std::string field;
  while (fields >> field) {
    if (field.rfind("NodeAddr=", 0) == 0) return field.substr(9);
  }
  throw Error("cannot find an address for node " + first_node +
              ": it does not resolve and 'scontrol show node' gives no NodeAddr");
}

// "ranks 0-2,5: killed in teardown; rank 3: exited with 1"
std::string summarize_ranks(const std::vector<RankOutcome>& outcomes) {
  std::map<std::string, std::vector<int>> by_outcome;
  std::vector<std::string> order;
  for (const auto& o : outcomes) {
    auto d = describe(o);
    if (!by_outcome.count(d)) order.push_back(d);
    by_outcome[d].push_back(o.rank);
  }
  std::string out;
  for (const auto& d : order) {
    const auto& ranks = by_outcome[d];
    std::vector<std::string> names;
    for (int r : ranks) names.push_back(std::to_string(r));
    std::string list = compress_hostlist(names);
    if (list.front() == '[') list = list.substr(1, list.size() - 2);
    if (!out.empty()) out += "; ";
    out += (ranks.size() == 1 ? "rank " : "ranks ") + list + ": " + d;
  }
  return out;
}

// Local mode places its ranks as the SPANK plugin places a step's tasks: the planner over
// this machine (or COHORT_TOPOLOGY_XML), one placement per rank. A node the planner
// cannot place on leaves the ranks unplaced, and says why.
std::vector<Environment> local_placements(int ranks) {
  std::vector<Environment> out(static_cast<size_t>(ranks));
  try {
    const std::string xml = env_or("COHORT_TOPOLOGY_XML");
    topology::Node node = !xml.empty() ? topology::Node::from_xml_file(xml) : topology::Node::from_this_machine();
    topology::PlanRequest request;
    request.ranks = ranks;
    auto plan = topology::plan(node, request);
    for (const auto& p : plan) {
      for (const auto& why : p.broken) {
        std::cerr << "cohort: launch: placement of rank " << p.local_rank << ": " << why << "\n";
      }
      out[static_cast<size_t>(p.local_rank)] = placement_environment(node, p);
    }
  } catch (const Error& e) {
    // No placements at all, so that no rank is bound to what it merely inherited.
    std::cerr << "cohort: launch: placement: " << e.what() << "; ranks run unplaced\n";
    return {};
  }
  return out;
}

enum class Ending { succeeded, failed, preempted, interrupted, deadline };

struct Attempt {
  Ending ending = Ending::failed;
  int interrupt_signal = 0;
  std::vector<RankOutcome> outcomes;  // one per rank, in rank order
  double teardown_s = -1;             // from the first failure to the last rank gone
};

class Gang {
 public:
  Gang(const LaunchOptions& options, SignalWatch& signals, Clock::time_point began)
      : options_(options), signals_(signals), began_(began) {
    if (options.local) {
      remove_abandoned_local_launches();
      local_dir_ = std::make_unique<NodeLocalDir>(local_launch_tag());
    }
    spec_ = options.spec.get();
    if (spec_ && spec_->elastic) spec_ = sized_to_allocation(*spec_);
    // An MPIJob's launcher runs here, in the batch step; its mpirun reaches the workers.
    slurm_ = !options.local && !(spec_ && spec_->kind == JobKind::mpi);
    if (!options.local) job_id_ = env_or("SLURM_JOB_ID");
    het_components_ = options.local ? 0 : env_count("SLURM_HET_SIZE", 0);
    if (spec_) {
      world_ = spec_->world_size();
      if (slurm_) check_allocation();
      decide_success_ranks();
      if (options.local && options.bind) placements_ = local_placements(world_);
      open_hub();
      return;
    }
    if (slurm_) {
      job_id_ = env_or("SLURM_JOB_ID");
      if (job_id_.empty()) {
        throw input_error("not inside a Slurm allocation (SLURM_JOB_ID is unset): run it from an sbatch "
                          "script or salloc, or use --local --nproc N");
      }
      world_ = env_count("SLURM_NTASKS", env_count("SLURM_JOB_NUM_NODES", 1));
      auto nodes = expand_hostlist(env_or("SLURM_JOB_NODELIST"));
      if (nodes.empty()) throw input_error("SLURM_JOB_NODELIST is unset or empty");
      master_addr_ = master_address(nodes.front());
    } else {
      world_ = options.nproc;
      master_addr_ = "127.0.0.1";
    }
    decide_success_ranks();
    if (options.local && options.bind) placements_ = local_placements(world_);
    open_hub();
  }

  // The rank of `rank`'s role, for per-role restart policies; empty without roles.
  const Role* role_of(int rank) const {
    if (!spec_) return nullptr;
    for (const auto& r : spec_->roles) {
      int offset = spec_->offset_of(r.name);
      if (!r.command.empty() && rank >= offset && rank < offset + r.replicas) return &r;
    }
    return nullptr;
  }

  int world() const { return world_; }
  // An elastic job on Slurm, whose Workers are the nodes it still has.
  bool elastic() const { return slurm_ && elastic_spec_.has_value(); }
  const ElasticPolicy& elastic_policy() const { return *spec_->elastic; }

  // Goes on without the nodes Slurm lost: the Workers are the nodes left, their count returned.
  int drop_nodes(const std::vector<LostNode>& lost) {
    std::erase_if(elastic_nodes_, [&](const std::string& node) {
      return std::any_of(lost.begin(), lost.end(), [&](const LostNode& l) { return l.name == node; });
    });
    world_ = static_cast<int>(elastic_nodes_.size());
    elastic_spec_->roles.front().replicas = std::max(world_, 1);
    decide_success_ranks();
    return world_;
  }
  const std::string& job_id() const { return job_id_; }

  Attempt run(const std::string& attempt_dir, int restart_count) {
    attempt_dir_ = attempt_dir;
    make_directories(attempt_dir, 0700);
    children_.clear();
    tearing_down_ = step_outlived_teardown_ = false;
    hub_->begin_attempt();
    reported_.clear();
    running_.clear();
    beats_.clear();  // an attempt's file holds its own ranks' beats, written from its start
    hangs_.clear();
    beats_written_.clear();
    beats_written_when_ = 0;
    std::vector<std::string> env = base_environment();
    auto set = [&env](const std::string& k, const std::string& v) { set_variable(env, k, v); };
    set("COHORT_LAUNCH_RUN_DIR", attempt_dir);
    set("COHORT_LAUNCH_MODE", slurm_ ? "slurm" : "local");
    set("COHORT_LAUNCH_LOCAL_DIR", local_dir_ ? local_dir_->path() : "");
    set("COHORT_LAUNCH_AGENT", hub_address_);
    set("COHORT_LAUNCH_SECRET", hub_->secret());
    // A node's wrappers share its agent's connection where every node's tasks are numbered
    // from 0 in one step; a heterogeneous step numbers each component's on its own. The
    // token names the agent's folder apart from any other launch's whose job and step
    // numbers agree (two clusters' jobs sharing a /tmp).
    set("COHORT_LAUNCH_NODE_AGENT", slurm_ && (!spec_ || packed()) ? unguessable_name(8) : "");
    std::ostringstream timeout;
    if (options_.heartbeat_timeout) timeout << *options_.heartbeat_timeout;
    else timeout << "first-beat";
    set("COHORT_LAUNCH_HEARTBEAT_TIMEOUT", timeout.str());
    std::vector<std::string> rank_argv{options_.self, "launch", "--as-rank", "--"};
    rank_argv.insert(rank_argv.end(), options_.command.begin(), options_.command.end());
    // What the launcher decides for every rank; each rank's own place is added per rank
    // here in local mode, and by Slurm in a step.
    Contract gang;
    gang.restart_count = restart_count;
    gang.checkpoint_request = options_.run_dir + "/checkpoint-request";
    started_ = Clock::now();
    if (spec_) return run_roles(env, set, gang);

    gang.master_addr = master_addr_;
    if (slurm_) {
      for (const auto& [k, v] : gang_environment(gang)) set(k, v);
      std::vector<std::string> argv{resolve_program("srun"), "--kill-on-bad-exit=1"};
      add_output_options(argv);
      argv.insert(argv.end(), rank_argv.begin(), rank_argv.end());
      children_.push_back(start_child(argv, env, Capture::err, "", signals_.previous_mask()));
    } else {
      gang.master_port = free_local_port();
      for (int r = 0; r < world_; ++r) spawn_local_rank(r, rank_argv, env, gang);
    }
    return monitor();
  }

  // Local mode: rank r with the launch contract, its placement (when there is one), and
  // its output to its log file or prefixed on ours.
  void spawn_local_rank(int r, const std::vector<std::string>& argv, std::vector<std::string> env,
                        const Contract& gang) {
    Contract contract = gang;
    contract.rank = contract.local_rank = r;
    contract.world_size = contract.local_world_size = world_;
    contract.group_rank = 0;
    for (const auto& [k, v] : contract.to_environment()) set_variable(env, k, v);
    if (!placements_.empty()) {
      for (const auto& [k, v] : placements_[static_cast<size_t>(r)]) set_variable(env, k, v);
      set_variable(env, "COHORT_LAUNCH_BIND", "1");
    }
    std::string log = options_.output_dir.empty() ? "" : options_.output_dir + "/rank-" + std::to_string(r) + ".log";
    Child c = start_child(argv, std::move(env), options_.output_dir.empty() ? Capture::both : Capture::none, log,
                          signals_.previous_mask());
    c.rank = r;
    children_.push_back(std::move(c));
  }

  // A job with roles: every replica gets its role, index and (TFJob) TF_CONFIG; on
  // Slurm each role runs in its heterogeneous component.
  template <typename Set>
  Attempt run_roles(std::vector<std::string>& env, Set& set, Contract gang) {
    std::string table;
    for (const auto& r : spec_->roles) {
      if (r.command.empty()) continue;
      table += (table.empty() ? "" : ",") + r.name + ":" + std::to_string(spec_->offset_of(r.name)) + ":" +
               std::to_string(r.replicas);
    }
    set("COHORT_LAUNCH_ROLES", table);
    // Every replica's address, in rank order: its node's name and a port of its own.
    std::vector<std::string> hosts = replica_hosts();
    int base = 0;
    if (slurm_) {
      const auto job = parse_integer(job_id_, 0, std::numeric_limits<long>::max());
      if (!job) throw input_error("SLURM_JOB_ID='" + job_id_ + "' is not a job number");
      base = derive_master_port(static_cast<long>(*job), 1000 + gang.restart_count, 29500, 2000);
      if (base + world_ > 65535) {
        throw input_error(std::to_string(world_) + " replicas need a port each from " + std::to_string(base + 1) +
                          ", past 65535: run fewer replicas in one job");
      }
    }
    std::vector<int> ports;
    for (int r = 0; r < world_; ++r) ports.push_back(slurm_ ? base + 1 + r : free_local_port());
    master_addr_ = gang.master_addr = hosts.front();
    gang.master_port = ports.front();
    set_torchrun_environment(set, gang.master_port);
    if (spec_->kind == JobKind::tensorflow) {
      json::Value cluster = json::Value::object();
      for (const auto& role : spec_->roles) {
        json::Value list = json::Value::array();
        int offset = spec_->offset_of(role.name);
        for (int i = 0; i < role.replicas; ++i) {
          list.push(hosts[static_cast<size_t>(offset + i)] + ":" + std::to_string(ports[static_cast<size_t>(offset + i)]));
        }
        cluster.set(role.name, std::move(list));
      }
      set("COHORT_LAUNCH_TF_CLUSTER", json::write(cluster));
    }
    if (spec_->kind == JobKind::mpi) {
      std::string hostfile = options_.run_dir + "/hostfile";
      write_file_atomically(hostfile, mpi_hostfile());
      set("COHORT_HOSTFILE", hostfile);
    }

    auto wrapper = [&](const Role& role) {
      std::vector<std::string> argv{options_.self, "launch", "--as-rank", "--role", role.name, "--"};
      argv.insert(argv.end(), role.command.begin(), role.command.end());
      return argv;
    };
    if (slurm_) {
      std::vector<std::string> argv{resolve_program("srun"), "--kill-on-bad-exit=1"};
      add_output_options(argv);
      if (packed()) {
        // One step of every replica; each wrapper finds its role and command by its rank.
        set("COHORT_LAUNCH_COMMANDS", role_commands());
        argv.insert(argv.end(), {"--ntasks=" + std::to_string(world_), options_.self, "launch", "--as-rank", "--role",
                                 kRoleByRank});
      } else {
        int group = 0;
        for (const auto& role : spec_->roles) {
          if (group > 0) argv.push_back(":");
          if (het_components_ > 0) argv.push_back("--het-group=" + std::to_string(group));
          argv.push_back("--ntasks=" + std::to_string(role.replicas));
          if (spec_->elastic) argv.push_back("--ntasks-per-node=1");  // a Worker is a node of torchrun's
          if (elastic()) {  // on the nodes the job still has
            argv.insert(argv.end(), {"--nodes=" + std::to_string(world_), "--nodelist=" + compress_hostlist(elastic_nodes_)});
          }
          auto w = wrapper(role);
          argv.insert(argv.end(), w.begin(), w.end());
          ++group;
        }
      }
      set("COHORT_LAUNCH_MODE", "slurm");
      for (const auto& [k, v] : gang_environment(gang)) set(k, v);
      children_.push_back(start_child(argv, env, Capture::err, "", signals_.previous_mask()));
      return monitor();
    }
    set("COHORT_LAUNCH_MODE", "local");
    for (int r = 0; r < world_; ++r) spawn_local_rank(r, wrapper(*role_of(r)), env, gang);
    return monitor();
  }

  // Asks the ranks to checkpoint: the flag file always, the signal when configured.
  void request_checkpoint() {
    write_file_atomically(options_.run_dir + "/checkpoint-request", std::to_string(wall_clock_ns()) + "\n");
    if (options_.checkpoint_signal) signal_gang(options_.checkpoint_signal);
  }

  // Waits until the gang ends by itself or `seconds` pass; true when it ended.
  bool wait_for_end(double seconds) {
    auto deadline = Clock::now() + std::chrono::duration<double>(seconds);
    while (!all_exited() && Clock::now() < deadline) pump(100);
    return all_exited();
  }

  void teardown() {
    if (all_exited()) return;
    // Connections that end from here on are the teardown's doing, not failures. The step
    // is ended through Slurm, which also tells the supervisor when a node's ranks cannot
    // be killed (a lost node) before it restarts the gang.
    hub_->set_closing(true);
    tearing_down_ = true;
    // Local watchers kill their ranks themselves when asked, and so get to clean up after
    // them (their node-local folders); the signal is for those that do not answer in time.
    // A step is killed through Slurm alone: a watcher on a node whose slurmd is gone would
    // end its rank, and the step would seem gone while Slurm cannot start one there.
    if (!slurm_) {
      hub_->stop_all();
      auto asked = Clock::now() + std::chrono::milliseconds(kStopAnswerMs);
      while (!all_exited() && Clock::now() < asked) pump(20);
    }
    signal_gang(SIGKILL);
    // srun exits once its tasks are gone; a stuck srun is ended after a few seconds.
    auto deadline = Clock::now() + std::chrono::seconds(5);
    while (!all_exited() && Clock::now() < deadline) pump(50);
    step_outlived_teardown_ = slurm_ && !all_exited();
    for (auto& c : children_) c.process.signal_group(SIGKILL);
    while (!all_exited()) pump(50);
  }

  std::vector<RankOutcome> outcomes() const {
    std::vector<RankOutcome> all(static_cast<size_t>(world_));
    for (int r = 0; r < world_; ++r) all[static_cast<size_t>(r)].rank = r;
    for (const auto& o : reported_) {
      if (o.rank >= 0 && o.rank < world_) all[static_cast<size_t>(o.rank)] = o;
    }
    return all;
  }

  // Whether every deciding rank has succeeded, each before any rank failed: a failure that
  // came later does not undo a finished job (Kubeflow's success policy), even when one
  // poll finds both.
  bool deciders_succeeded_first(const std::vector<RankOutcome>& reported) const {
    if (success_ranks_.empty()) return false;
    long long first_failure = 0;
    for (const auto& o : reported) {
      if (failed(o) && (first_failure == 0 || o.ended_ns < first_failure)) first_failure = o.ended_ns;
    }
    return std::all_of(success_ranks_.begin(), success_ranks_.end(), [&](int r) {
      return std::any_of(reported.begin(), reported.end(), [&](const RankOutcome& o) {
        return o.rank == r && !failed(o) && (first_failure == 0 || o.ended_ns < first_failure);
      });
    });
  }

  double seconds_to_all_started() const { return first_all_started_; }

  // Whether the last teardown had to kill srun: some ranks' end was not confirmed in time,
  // as when their node's slurmd is gone and Slurm has not noticed yet.
  bool step_outlived_teardown() const { return step_outlived_teardown_; }

  // Whether Slurm still runs a step of this job besides the batch script; nothing when
  // Slurm cannot be asked.
  std::optional<bool> steps_alive() const {
    RunOptions o;
    o.timeout = std::chrono::seconds(30);
    try {
      const auto r = run_process({"squeue", "-h", "-s", "-j", job_id_, "-o", "%i"}, o);
      if (!r.ok()) return std::nullopt;
      for (const auto line : split(r.out, '\n')) {
        const auto dot = line.rfind('.');  // JOB.STEP: a numbered step, not JOB.batch or JOB.extern
        if (dot != std::string_view::npos && parse_integer(line.substr(dot + 1), 0, INT32_MAX)) return true;
      }
      return false;
    } catch (const Error&) {
      return std::nullopt;
    }
  }

  // The allocation's nodes that Slurm has lost; none in local mode or when Slurm cannot
  // be asked (the failure at hand is reported either way).
  std::vector<LostNode> lost_nodes() const {
    if (options_.local) return {};
    // An elastic job has gone on without the nodes it lost before: they are not its news.
    std::vector<std::string> nodes = elastic() ? elastic_nodes_ : expand_hostlist(env_or("SLURM_JOB_NODELIST"));
    for (int i = 0; i < het_components_; ++i) {
      for (auto& n : expand_hostlist(env_or(("SLURM_JOB_NODELIST_HET_GROUP_" + std::to_string(i)).c_str()))) {
        if (std::find(nodes.begin(), nodes.end(), n) == nodes.end()) nodes.push_back(std::move(n));
      }
    }
    if (nodes.empty()) return {};
    try {
      RunOptions o;
      o.timeout = std::chrono::seconds(30);
      auto r = run_process({"scontrol", "show", "node", "-o", compress_hostlist(nodes)}, o);
      return r.ok() ? launcher::lost_nodes(r.out) : std::vector<LostNode>{};
    } catch (const Error&) {
      return {};
    }
  }

 private:
  std::string resolve_program(const std::string& name) {
    if (auto path = find_program(name)) return *path;
    throw Error(name + " not found on PATH: is Slurm's client installed on this node?");
  }

  // The ranks' output: on the launch's own, each line labelled with its rank; or a file
  // per rank, appended to at every restart so that a failed attempt's lines stay, as they
  // do in local mode.
  void add_output_options(std::vector<std::string>& argv) const {
    if (options_.output_dir.empty()) return argv.push_back("--label");
    argv.push_back("--output=" + options_.output_dir + "/rank-%t.log");
    argv.push_back("--open-mode=append");
  }

  // An elastic job's Workers: as many as the nodes Slurm granted, between minReplicas and
  // maxReplicas; in local mode, the spec's replicas.
  const JobSpec* sized_to_allocation(const JobSpec& spec) {
    elastic_spec_ = spec;
    const ElasticPolicy& e = *spec.elastic;
    if (!options_.local) {
      const int granted = env_count("SLURM_JOB_NUM_NODES", 0);
      if (granted < e.min_nodes) {
        throw input_error("the elastic job needs at least minReplicas (" + std::to_string(e.min_nodes) +
                          ") nodes but the allocation has " + std::to_string(granted) +
                          ": submit the script 'cohort launch --spec FILE --emit-sbatch' prints");
      }
      elastic_spec_->roles.front().replicas = std::min(granted, e.max_nodes);  // an elastic job is all Workers
      elastic_nodes_ = expand_hostlist(env_or("SLURM_JOB_NODELIST"));
      elastic_nodes_.resize(std::min(elastic_nodes_.size(), static_cast<size_t>(elastic_spec_->roles.front().replicas)));
    }
    return &*elastic_spec_;
  }

  // torchrun's PET_* variables, job-wide, and what each replica's wrapper adds of its own:
  // WORLD_SIZE counting every process torchrun starts, and without elastic rendezvous the
  // replica's PET_NODE_RANK.
  template <typename Set>
  void set_torchrun_environment(Set& set, int master_port) {
    const std::string rdzv_id = job_id_.empty() ? spec_->name + "-" + std::to_string(::getpid()) : job_id_;
    for (const auto& [k, v] : torchrun_environment(*spec_, world_, master_addr_, master_port, rdzv_id)) set(k, v);
    if (spec_->nproc_per_node) set("COHORT_LAUNCH_NPROC", std::to_string(*spec_->nproc_per_node));
    if (spec_->nproc_per_node && !spec_->elastic) set("COHORT_LAUNCH_NODE_RANK", "1");
  }

  // Each role's command, as a JSON object of argv arrays (COHORT_LAUNCH_COMMANDS).
  std::string role_commands() const {
    json::Value commands = json::Value::object();
    for (const auto& role : spec_->roles) {
      json::Value words = json::Value::array();
      for (const auto& w : role.command) words.push(w);
      commands.set(role.name, std::move(words));
    }
    return json::write(commands);
  }

  // Every role in one plain allocation: `cohort launch --emit-sbatch` packs the roles so
  // when a heterogeneous job, which gives each role nodes of its own, could never start.
  bool packed() const { return slurm_ && spec_ && het_components_ == 0 && spec_->roles.size() > 1; }

  // Does this allocation hold the spec? One heterogeneous component per role, each with
  // at least the role's replicas as tasks; or, packed, a task for every replica.
  void check_allocation() {
    if (packed()) {
      const int tasks = env_count("SLURM_NTASKS", env_count("SLURM_JOB_NUM_NODES", 1));
      if (tasks < world_) {
        throw input_error("the spec's roles need " + std::to_string(world_) + " tasks, one a replica, but the allocation has " +
                          std::to_string(tasks) + ": submit the script 'cohort launch --spec FILE --emit-sbatch' prints");
      }
      return;
    }
    const bool het = het_components_ > 0;
    const int components = het ? het_components_ : 1;
    if (components != static_cast<int>(spec_->roles.size())) {
      throw input_error("the allocation has " + std::to_string(components) + " component(s) but the spec has " +
                        std::to_string(spec_->roles.size()) +
                        " roles: submit the script 'cohort launch --spec FILE --emit-sbatch' prints");
    }
    for (size_t i = 0; i < spec_->roles.size(); ++i) {
      const Role& role = spec_->roles[i];
      const std::string suffix = het ? "_HET_GROUP_" + std::to_string(i) : "";
      const int tasks = env_count("SLURM_NTASKS" + suffix, env_count("SLURM_JOB_NUM_NODES" + suffix, 1));
      if (tasks < role.replicas) {
        throw input_error("role " + role.name + " needs " + std::to_string(role.replicas) +
                          " tasks but its component of the allocation has " + std::to_string(tasks) +
                          ": submit the script 'cohort launch --spec FILE --emit-sbatch' prints");
      }
    }
  }

  // Each replica's host, in rank order. Slurm places a component's tasks in blocks:
  // the first node's tasks first.
  std::vector<std::string> replica_hosts() {
    std::vector<std::string> hosts;
    if (!slurm_) {
      hosts.assign(static_cast<size_t>(std::max(world_, 1)), "127.0.0.1");
      return hosts;
    }
    // Packed, the roles' replicas follow one another over the allocation's nodes.
    const size_t components = elastic() ? 0 : packed() ? 1 : spec_->roles.size();
    if (elastic()) hosts = elastic_nodes_;
    for (size_t i = 0; i < components; ++i) {
      std::string suffix = het_components_ > 0 ? "_HET_GROUP_" + std::to_string(i) : "";
      auto nodes = expand_hostlist(env_or(("SLURM_JOB_NODELIST" + suffix).c_str()));
      auto per_node = expand_tasks_per_node(env_or(("SLURM_TASKS_PER_NODE" + suffix).c_str(), "1"));
      int left = packed() ? world_ : spec_->roles[i].replicas;
      for (size_t n = 0; n < nodes.size() && left > 0; ++n) {
        int here = std::min(left, n < per_node.size() ? per_node[n] : 1);
        for (int k = 0; k < here; ++k) hosts.push_back(nodes[n]);
        left -= here;
      }
      while (left-- > 0) hosts.push_back(nodes.empty() ? "localhost" : nodes.back());
    }
    // Names that do not resolve here are replaced by the address Slurm knows the node by.
    std::map<std::string, std::string> resolved;
    for (auto& h : hosts) {
      if (!resolved.count(h)) resolved[h] = master_address(h);
      h = resolved[h];
    }
    return hosts;
  }

  // Open MPI's hostfile of the workers' nodes: "node slots=N" per line.
  std::string mpi_hostfile() {
    std::string out;
    if (options_.local) return "localhost slots=" + std::to_string(spec_->find("worker")->replicas) + "\n";
    auto nodes = expand_hostlist(env_or("SLURM_JOB_NODELIST"));
    auto per_node = expand_tasks_per_node(env_or("SLURM_TASKS_PER_NODE", "1"));
    for (size_t n = 0; n < nodes.size(); ++n) {
      out += nodes[n] + " slots=" + std::to_string(n < per_node.size() ? per_node[n] : 1) + "\n";
    }
    return out;
  }

  // Kubeflow's success policies: the ranks whose clean exit completes the job.
  void decide_success_ranks() {
    success_ranks_.clear();
    auto ranks_of = [&](const std::string& role) {
      const Role* r = spec_->find(role);
      int offset = spec_->offset_of(role);
      for (int i = 0; r && i < r->replicas; ++i) success_ranks_.push_back(offset + i);
    };
    if (spec_ && spec_->kind == JobKind::pytorch && spec_->find("master")) ranks_of("master");
    else if (spec_ && spec_->kind == JobKind::tensorflow && spec_->all_workers_succeed) ranks_of("worker");
    else if (spec_ && spec_->kind == JobKind::tensorflow && spec_->find("chief")) ranks_of("chief");
    else if (spec_ && spec_->kind == JobKind::tensorflow) success_ranks_.push_back(spec_->offset_of("worker"));
    else if (spec_ && spec_->kind == JobKind::pytorch) ranks_of("worker");
    else for (int r = 0; r < world_; ++r) success_ranks_.push_back(r);
  }

  bool all_exited() const {
    return std::all_of(children_.begin(), children_.end(), [](const Child& c) { return c.process.reaped(); });
  }

  void signal_gang(int sig) {
    if (slurm_) {
      std::string step = read_small_file(attempt_dir_ + "/step");
      step.erase(std::remove(step.begin(), step.end(), '\n'), step.end());
      if (!step.empty()) {
        // A heterogeneous step is one step per component job: signal each of them.
        std::vector<std::string> argv{"scancel", "--quiet", "--signal=" + std::to_string(sig)};
        for (int i = 0; i < het_components_; ++i) {
          argv.push_back(env_or(("SLURM_JOB_ID_HET_GROUP_" + std::to_string(i)).c_str(), job_id_) + "." + step);
        }
        if (het_components_ == 0) argv.push_back(job_id_ + "." + step);
        run_process(argv);
        return;
      }
      // No rank has started yet: srun itself relays what it gets to the step.
      for (auto& c : children_) c.process.signal(sig);
      return;
    }
    for (auto& c : children_) {
      // A wrapper that died (killed, crashed) leaves its program in its group, which outlives
      // it: the group, not the reaped wrapper, is what must end. Its id cannot be reused
      // while a process is in it.
      if (c.process.reaped()) {
        if (c.process.pid() > 0) ::kill(-c.process.pid(), sig);
      } else {
        c.process.signal_group(sig);
      }
    }
  }

  std::vector<int> pending_signals_;

  // Watchers on other nodes reach the supervisor at the address Slurm knows its node by.
  void open_hub() {
    hub_ = std::make_unique<EventHub>(options_.local);
    std::string host = "127.0.0.1";
    if (!options_.local) host = master_address(env_or("SLURMD_NODENAME", host_name()));
    hub_address_ = host + ":" + std::to_string(hub_->port());
  }

  void record(RankOutcome o) {
    auto at = std::lower_bound(reported_.begin(), reported_.end(), o.rank,
                               [](const RankOutcome& a, int rank) { return a.rank < rank; });
    if (at != reported_.end() && at->rank == o.rank) return;  // one end per rank: the first
    if (auto h = hangs_.find(o.rank); h != hangs_.end() && o.hung) {
      o.hang_why = h->second.why;
      o.stack_file = h->second.stack_file;
    }
    reported_.insert(at, std::move(o));
  }

  // A rank taken for hung, while its watcher dumps its stack (gdb may take a while). Where
  // the ranks' output goes to files, the job's own output says so at once; otherwise the
  // watcher's own line is already there.
  void suspect(const RankEvent& e) {
    hangs_[e.outcome.rank].why = e.note;
    if (options_.output_dir.empty()) return;
    std::cerr << "cohort: launch: rank " << e.outcome.rank << " on " << e.outcome.host << ": " << e.note
              << "; dumping its stack, then ending it\n";
  }

  // Ranks' news from their watchers. A watcher lost after some rank already failed is most
  // likely one the step's own teardown ended (srun --kill-on-bad-exit): its ranks count as
  // killed in teardown, not as a failure of their own.
  void take_events() {
    std::vector<RankOutcome> lost;
    for (auto& e : hub_->service()) {
      if (e.kind == RankEvent::Kind::started) running_.insert(e.outcome.rank);
      else if (e.kind == RankEvent::Kind::beat) beats_[e.outcome.rank] = e.beat_at;
      else if (e.kind == RankEvent::Kind::hang) suspect(e);
      else if (e.kind == RankEvent::Kind::dumped) hangs_[e.outcome.rank].stack_file = e.note;
      else if (e.outcome.lost) lost.push_back(e.outcome);
      else record(e.outcome);
    }
    write_beats();
    if (lost.empty() || std::any_of(reported_.begin(), reported_.end(), [](const RankOutcome& o) { return failed(o); })) {
      return;
    }
    // One line per node: in a Slurm step a node's ranks share their agent's connection.
    std::map<std::string, std::vector<int>> by_host;
    for (const auto& o : lost) {
      by_host[o.host].push_back(o.rank);
      record(o);
    }
    for (const auto& [host, ranks] : by_host) {
      std::cerr << "cohort: launch: lost the watcher of " << (ranks.size() == 1 ? "rank " : "ranks ")
                << join(ranks, ", ", [](int r) { return std::to_string(r); })
                << " on " << host << ": its connection ended while " << (ranks.size() == 1 ? "the rank" : "they") << " ran\n";
    }
  }

  // The ranks' last heartbeats, for people watching the run (cohort dashboard): one small
  // file per attempt, rewritten at most every kBeatReportSeconds when a beat moved, in place
  // of a file per rank that readers would have to list and stat on the shared filesystem.
  void write_beats() {
    const double now = static_cast<double>(wall_clock_ns()) / 1e9;
    if (beats_ == beats_written_ || now - beats_written_when_ < kBeatReportSeconds) return;
    std::ostringstream text;
    text.precision(15);
    for (const auto& [rank, at] : beats_) text << rank << " " << at << "\n";
    try {
      write_file_atomically(attempt_dir_ + "/heartbeats", text.str());
    } catch (const Error& e) {
      std::cerr << "cohort: launch: warning: " << e.what() << "\n";
    }
    beats_written_ = beats_;
    beats_written_when_ = now;
  }

  // Once every process of the step is gone, what their watchers sent is all there is:
  // read it to the end (a node gone silent is given a bound).
  void drain_hub() {
    const auto deadline = Clock::now() + std::chrono::seconds(5);
    while (hub_->connections() > 0 && Clock::now() < deadline) {
      std::vector<pollfd> fds;
      hub_->add_poll_fds(fds);
      ::poll(fds.data(), fds.size(), 50);
      take_events();
    }
  }

  // One round of waiting: output, child exits and signals.
  void pump(int timeout_ms) {
    std::vector<pollfd> fds{{signals_.fd(), POLLIN, 0}};
    for (auto& c : children_) {
      if (c.process.out()) fds.push_back({c.process.out().get(), POLLIN, 0});
      if (c.process.err()) fds.push_back({c.process.err().get(), POLLIN, 0});
    }
    hub_->add_poll_fds(fds);
    ::poll(fds.data(), fds.size(), timeout_ms);
    take_events();
    const auto ours = [this](std::string_view line) { return tearing_down_ && is_teardown_report(line); };
    for (auto& c : children_) {
      relay(c.process.out(), c.out_lines, c.rank, std::cout, false);
      relay(c.process.err(), c.err_lines, c.rank, std::cerr, false, ours);
    }
    for (int s : signals_.drain()) {
      if (s != SIGCHLD) pending_signals_.push_back(s);
    }
    for (auto& c : children_) {
      if (c.process.reaped()) continue;
      if (c.process.poll()) {
        relay(c.process.out(), c.out_lines, c.rank, std::cout, true);
        relay(c.process.err(), c.err_lines, c.rank, std::cerr, true, ours);
      }
    }
    if (first_all_started_ < 0 && static_cast<int>(running_.size()) >= world_) {
      first_all_started_ = seconds_since(started_);
      std::cerr << "cohort: launch: all " << world_ << " ranks running after " << std::fixed << std::setprecision(2)
                << first_all_started_ << " s, reporting over " << hub_->connections()
                << (hub_->connections() == 1 ? " connection\n" : " connections\n");
      std::cerr.unsetf(std::ios::floatfield);
    }
  }

  Attempt monitor() {
    first_all_started_ = -1;
    pending_signals_.clear();
    Attempt a;
    while (true) {
      pump(100);
      for (int s : pending_signals_) {
        if (s == options_.preempt_signal) {
          a.ending = Ending::preempted;
          pending_signals_.clear();
          return a;
        }
        a.ending = Ending::interrupted;
        a.interrupt_signal = s;
        teardown();
        a.outcomes = outcomes();
        return a;
      }
      if (spec_ && spec_->active_deadline_seconds && seconds_since(began_) > *spec_->active_deadline_seconds) {
        teardown();
        a.ending = Ending::deadline;
        a.outcomes = outcomes();
        return a;
      }
      if (all_exited()) drain_hub();
      const auto& reported = reported_;
      bool any_failed = std::any_of(reported.begin(), reported.end(), [](const RankOutcome& o) { return failed(o); });
      // The job is done once its deciding ranks are: a TFJob's parameter servers never
      // finish by themselves.
      if (spec_ && !all_exited() && deciders_succeeded_first(reported)) {
        teardown();
        a.ending = Ending::succeeded;
        a.outcomes = outcomes();
        return a;
      }
      if (any_failed) {
        teardown();
        long long first_ns = 0;
        for (const auto& o : reported) {
          if (failed(o) && (first_ns == 0 || o.ended_ns < first_ns)) first_ns = o.ended_ns;
        }
        a.teardown_s = static_cast<double>(wall_clock_ns() - first_ns) / 1e9;
        a.ending = Ending::failed;
        a.outcomes = outcomes();
        return a;
      }
      if (all_exited()) {
        a.outcomes = outcomes();
        bool ok = std::none_of(a.outcomes.begin(), a.outcomes.end(), [](const RankOutcome& o) { return failed(o); });
        // srun's own failure (bad options, allocation gone) leaves no rank reports.
        for (const auto& c : children_) ok = ok && WIFEXITED(*c.process.status()) && WEXITSTATUS(*c.process.status()) == 0;
        a.ending = ok ? Ending::succeeded : Ending::failed;
        return a;
      }
    }
  }

  const LaunchOptions& options_;
  SignalWatch& signals_;
  Clock::time_point began_;
  const JobSpec* spec_ = nullptr;
  std::optional<JobSpec> elastic_spec_;  // an elastic spec, its Workers counted from the allocation
  std::vector<std::string> elastic_nodes_;  // Slurm, elastic: the nodes the Workers run on
  std::vector<int> success_ranks_;
  std::vector<Environment> placements_;  // local mode: each rank's placement variables
  int het_components_ = 0;                // SLURM_HET_SIZE: 0 outside a heterogeneous job
  bool slurm_ = true;
  std::string job_id_;
  int world_ = 1;
  std::string master_addr_;
  std::string attempt_dir_;
  std::map<int, double> beats_, beats_written_;  // rank -> its last heartbeat (epoch seconds)
  struct Hang {
    std::string why, stack_file;
  };
  std::map<int, Hang> hangs_;  // ranks taken for hung in this attempt, as their watchers said
  double beats_written_when_ = 0;
  std::vector<Child> children_;
  bool tearing_down_ = false;  // this attempt's teardown has begun: srun's reports of it are ours to give
  bool step_outlived_teardown_ = false;
  Clock::time_point started_;
  double first_all_started_ = -1;
  std::unique_ptr<EventHub> hub_;
  std::unique_ptr<NodeLocalDir> local_dir_;  // local mode: holds the watchers' folders
  std::string hub_address_;            // where the watchers reach hub_: HOST:PORT
  std::vector<RankOutcome> reported_;  // this attempt's ended ranks, in rank order
  std::set<int> running_;              // ranks whose start was reported this attempt
};

const RankOutcome* first_failure(const std::vector<RankOutcome>& outcomes) {
  const RankOutcome* first = nullptr;
  for (const auto& o : outcomes) {
    if (!o.reported || !failed(o)) continue;
    if (!first || o.ended_ns < first->ended_ns) first = &o;
  }
  return first;
}

bool retryable(RestartPolicy policy, const RankOutcome* first) {
  switch (policy) {
    case RestartPolicy::never:
      return false;
    case RestartPolicy::on_failure:
      return true;
    case RestartPolicy::exit_code:
      // Kubeflow's ExitCode policy: 1-127 are the program's own verdict (permanent);
      // 128-255 mean it was killed (retryable). Hangs, signals and lost nodes count as killed.
      if (!first) return true;
      if (first->hung || first->term_signal || first->lost) return true;
      return first->exit_code >= 128;
  }
  return false;
}

std::string plural(int n, const char* word) {
  return std::to_string(n) + " " + word + (n == 1 ? "" : "s");
}

std::string wall(double seconds, int digits = 1) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(digits) << seconds << " s";
  return s.str();
}

// Sleeps `seconds` unless a signal stops the launcher; then its exit status.
std::optional<int> pause(SignalWatch& signals, double seconds, const char* waiting, const std::string& tail) {
  auto deadline = Clock::now() + std::chrono::duration<double>(seconds);
  while (Clock::now() < deadline) {
    pollfd p{signals.fd(), POLLIN, 0};
    ::poll(&p, 1, 100);
    for (int s : signals.drain()) {
      if (s == SIGCHLD) continue;
      std::cerr << "cohort: launch: stopped by " << signal_name(s) << " while " << waiting << "; " << tail << "\n";
      return 128 + s;
    }
  }
  return std::nullopt;
}

// "rank 3 (node2) exited with 1 first", and the nodes Slurm has lost, if any.
std::string culprit_of(const RankOutcome* first, const std::vector<LostNode>& lost) {
  // A watcher's connection that ended beside a node Slurm lost is the step's end on that
  // node's account (srun cancels the step's other tasks): the node is the culprit.
  if (first && first->lost && !lost.empty()) first = nullptr;
  const std::string lost_text = lost.empty() ? "" : describe(lost) + ": ranks there can be neither killed nor started";
  std::string culprit = first ? "rank " + std::to_string(first->rank) + " (" + first->host + ") " + describe(*first) + " first"
                        : lost.empty() ? "the step failed before any rank reported"
                                       : lost_text;
  if (first && first->hung && !first->stack_file.empty()) culprit += "; its stack in " + first->stack_file;
  if (first && !lost.empty()) culprit += "; " + lost_text;
  return culprit;
}

// A restart cannot start on a lost node (srun fails, or waits for the CPUs its unkillable
// ranks hold), and Slurm has the last word on the node: it answers again, or Slurm ends the
// job (NODE_FAIL, requeued when the job allows it). `restart` says which restart waits; an
// exit status when a signal stops the launcher meanwhile.
std::optional<int> wait_for_lost_nodes(const Gang& gang, SignalWatch& signals, const std::vector<LostNode>& lost,
                                       const std::string& restart, const std::string& tail) {
  const std::string them = lost.size() == 1 ? "the node" : "the nodes";
  std::cerr << "cohort: launch: " << restart << " waits until Slurm has " << them << " back, or ends the job for it "
            << "once it declares " << them << " down (SlurmdTimeout)\n";
  while (!gang.lost_nodes().empty()) {
    if (auto status = pause(signals, 2, "waiting for Slurm's lost node", tail)) return *status;
  }
  std::vector<std::string> names;
  for (const auto& n : lost) names.push_back(n.name);
  std::cerr << "cohort: launch: Slurm has " << compress_hostlist(names) << " back\n";
  return std::nullopt;
}

// An elastic job restarts on the nodes it still has rather than wait for Slurm to give the
// lost ones back, as long as minReplicas remain; the attempt's ending says so. `restart`
// says which restart goes on; an exit status when too few nodes remain.
std::optional<int> go_on_without(Gang& gang, const std::vector<LostNode>& lost, const std::string& restart,
                                 const std::string& attempt_dir, const std::string& tail) {
  const int left = gang.drop_nodes(lost);
  const int least = gang.elastic_policy().min_nodes;
  if (left < least) {
    std::cerr << "cohort: launch: failed: " << restart << " cannot go on: only " << plural(left, "node")
              << (left == 1 ? " remains" : " remain") << ", fewer than minReplicas (" << least << "); " << tail << "\n";
    return 1;
  }
  const std::string going_on = restart + " goes on with the " + plural(left, "node") + " the job still has (minReplicas " +
                               std::to_string(least) + ")";
  write_ending(attempt_dir, going_on);
  std::cerr << "cohort: launch: " << going_on << "\n";
  return std::nullopt;
}

// The nodes Slurm has lost, after a failed attempt. When the step outlived its teardown and
// Slurm names no lost node yet, a restart now would wait
// in srun for the CPUs the old ranks hold. Slurm has the last word: it ends the step (the
// ranks were slow to die) or finds the node gone at its next ping (SlurmdTimeout/3).
// The lost nodes it names, if any; an exit status when a signal stops the launcher.
std::variant<std::vector<LostNode>, int> nodes_lost(const Gang& gang, SignalWatch& signals, const std::string& tail) {
  if (auto lost = gang.lost_nodes(); !lost.empty() || !gang.step_outlived_teardown()) return lost;
  std::cerr << "cohort: launch: some ranks' end could not be confirmed in the teardown; waiting for Slurm to end "
               "the step or to name a node it lost\n";
  while (true) {
    if (auto lost = gang.lost_nodes(); !lost.empty()) return lost;
    if (!gang.steps_alive().value_or(true)) return std::vector<LostNode>{};
    if (auto status = pause(signals, 2, "waiting for Slurm to end the step", tail)) return *status;
  }
}

// "; rank 1: killed in teardown once the deciding ranks had succeeded": the ranks that never
// end by themselves (a TFJob's parameter servers), which cohort ended; empty when none.
std::string ended_after_success(const std::vector<RankOutcome>& outcomes) {
  std::vector<RankOutcome> ended;
  for (const auto& o : outcomes) {
    if (!o.reported) ended.push_back(o);
  }
  return ended.empty() ? "" : "; " + summarize_ranks(ended) + " once the deciding ranks had succeeded";
}

// The batch script's warning came: the ranks are asked to checkpoint and given the grace
// period, then the job is requeued (Slurm) or the launch ends (local mode).
int end_preempted(Gang& gang, const LaunchOptions& options, int requeues, const std::string& tail) {
  std::cerr << "cohort: launch: " << signal_name(options.preempt_signal) << ": asking ranks to checkpoint, waiting up to "
            << options.grace << " s\n";
  gang.request_checkpoint();
  gang.wait_for_end(options.grace);
  gang.teardown();
  if (options.local) {
    std::cerr << "cohort: launch: preempted: " << summarize_ranks(gang.outcomes()) << "; " << tail << "\n";
    return 128 + options.preempt_signal;
  }
  if (requeues >= options.max_requeues) {
    std::cerr << "cohort: launch: failed: preempted again after " << plural(requeues, "requeue")
              << "; not requeueing (raise --max-requeues); " << tail << "\n";
    return 1;
  }
  std::cerr << "cohort: launch: preempted: requeueing job " << gang.job_id() << " (requeue " << requeues + 1 << " of "
            << options.max_requeues << "); " << tail << "\n";
  auto r = run_process({"scontrol", "requeue", gang.job_id()});
  if (!r.ok()) {
    throw Error("scontrol requeue " + gang.job_id() + " failed: " + r.err + " (submit with --requeue, or set JobRequeue=1)");
  }
  return 0;
}

}  // namespace

RestartPolicy parse_restart_policy(const std::string& name) {
  if (name == "never" || name == "Never") return RestartPolicy::never;
  if (name == "on-failure" || name == "OnFailure") return RestartPolicy::on_failure;
  if (name == "exit-code" || name == "ExitCode") return RestartPolicy::exit_code;
  throw input_error("--restart-policy " + name + ": expected never, on-failure or exit-code");
}

double restart_backoff_seconds(int restart) {
  constexpr double kFirst = 1, kLongest = 30;
  // 2^(restart-1), capped before it can overflow.
  return restart >= 6 ? kLongest : std::min(kFirst * (1 << (std::max(restart, 1) - 1)), kLongest);
}

bool is_teardown_report(std::string_view line) {
  if (line.ends_with('\r')) line.remove_suffix(1);
  if (line.starts_with("srun: error: ") && (line.ends_with(": Killed") || line.ends_with(": Terminated"))) {
    return line.find(": task") != std::string_view::npos;
  }
  if (line.starts_with("slurmstepd: error: *** STEP ")) return line.find(" CANCELLED AT ") != std::string_view::npos;
  for (std::string_view prefix : {"srun: Job step aborted:", "srun: forcing job termination", "srun: Force Terminated StepId=",
                                  "srun: launch/slurm: _step_signal: Terminating"}) {
    if (line.starts_with(prefix)) return true;
  }
  return false;
}

int supervise(const LaunchOptions& options) {
  if (options.command.empty()) throw input_error("no command: put the program to run after --");
  const auto began = Clock::now();
  std::vector<int> watched{SIGCHLD, SIGTERM, SIGINT, SIGHUP};
  if (options.preempt_signal) watched.push_back(options.preempt_signal);
  SignalWatch signals(watched);
  Gang gang(options, signals, began);
  // The run directory holds what ranks and the supervisor tell each other: the user's alone.
  make_directories(options.run_dir, 0700);
  ::unlink((options.run_dir + "/checkpoint-request").c_str());
  if (!options.output_dir.empty()) make_directories(options.output_dir, 0755);

  // A requeued job starts over in its batch script: its earlier runs count as restarts.
  const int requeues = options.local ? 0 : env_count("SLURM_RESTART_COUNT", 0);
  int restarts = 0;
  while (true) {
    const std::string who = std::to_string(gang.world()) + (gang.world() == 1 ? " rank" : " ranks");
    int restart_count = requeues + restarts;
    std::cerr << "cohort: launch: starting " << who << (restart_count ? " (restart " + std::to_string(restart_count) + ")" : "")
              << "\n";
    const std::string attempt_dir = options.run_dir + "/attempt-" + std::to_string(restart_count);
    Attempt a = gang.run(attempt_dir, restart_count);
    const std::string tail = "restarts " + std::to_string(restarts) + " of " + std::to_string(options.max_restarts) +
                             "; wall " + wall(seconds_since(began));
    if (a.ending == Ending::succeeded) {
      std::cerr << "cohort: launch: succeeded: " << who << ", " << plural(restarts, "restart") << ", wall "
                << wall(seconds_since(began)) << ended_after_success(a.outcomes) << "\n";
      return 0;
    }
    if (a.ending == Ending::deadline) {
      std::cerr << "cohort: launch: failed: activeDeadlineSeconds (" << *options.spec->active_deadline_seconds
                << " s) passed; " << summarize_ranks(a.outcomes) << "; " << tail << "\n";
      return 1;
    }
    if (a.ending == Ending::interrupted) {
      std::cerr << "cohort: launch: stopped by " << signal_name(a.interrupt_signal) << ": "
                << summarize_ranks(a.outcomes) << "; " << tail << "\n";
      return 128 + a.interrupt_signal;
    }
    if (a.ending == Ending::preempted) return end_preempted(gang, options, requeues, tail);

    const RankOutcome* first = first_failure(a.outcomes);
    // A node whose slurmd is gone explains what srun reports as a communication failure:
    // the step could not be started there, or its ranks there could not be killed.
    auto verdict = nodes_lost(gang, signals, tail);
    if (const int* status = std::get_if<int>(&verdict)) return *status;
    const auto& lost = std::get<std::vector<LostNode>>(verdict);
    const std::string culprit = culprit_of(first, lost);
    write_ending(attempt_dir, culprit);  // for people reading the run: a torn-down rank wrote no status
    std::string torn_down = a.teardown_s >= 0 ? "gang torn down in " + wall(a.teardown_s, 2) : "gang torn down";
    RestartPolicy policy = options.policy;
    if (const Role* role = first ? gang.role_of(first->rank) : nullptr; role && role->restart_policy) {
      policy = *role->restart_policy;
    }
    if (restarts < options.max_restarts && retryable(policy, first)) {
      ++restarts;
      if (!lost.empty()) {
        const std::string restart = culprit + "; " + torn_down + "; restart " + std::to_string(restarts) + " of " +
                                    std::to_string(options.max_restarts);
        const auto status = gang.elastic() ? go_on_without(gang, lost, restart, attempt_dir, tail)
                                           : wait_for_lost_nodes(gang, signals, lost, restart, tail);
        if (status) return *status;
      }
      const double backoff = restart_backoff_seconds(restarts);
      if (lost.empty()) {
        std::cerr << "cohort: launch: " << culprit << "; " << torn_down << "; restarting in " << backoff << " s ("
                  << restarts << " of " << options.max_restarts << ")\n";
      } else {
        std::cerr << "cohort: launch: restarting in " << backoff << " s (" << restarts << " of " << options.max_restarts
                  << ")\n";
      }
      if (auto status = pause(signals, backoff, "waiting to restart", tail)) return *status;
      continue;
    }
    std::string why = restarts >= options.max_restarts ? "" : " (the restart policy does not retry it)";
    std::cerr << "cohort: launch: failed: " << culprit << why << "; " << torn_down << "; " << summarize_ranks(a.outcomes)
              << "; " << tail << "\n";
    return 1;
  }
}

}  // namespace cohort::launcher
