// The per-rank side of `cohort launch`: one of these wraps every rank's program.
//
// It gives the program the launch contract, watches for hangs (a heartbeat gone quiet, a
// process stopped by a signal), dumps the stack of what hung, and writes how the program
// ended to the run directory, where the supervisor reads it to tear the gang down and to
// name the rank that failed first.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <poll.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>

#include "common/environment.hpp"
#include "common/error.hpp"
#include "common/process.hpp"
#include "common/json.hpp"
#include "common/text.hpp"
#include "launcher/agent_link.hpp"
#include "launcher/contract.hpp"
#include "launcher/job_spec.hpp"
#include "launcher/node_local.hpp"
#include "launcher/run_dir.hpp"
#include "launcher/supervisor.hpp"
#include "topology/binding.hpp"

namespace cohort::launcher {
namespace {

std::string env_str(const Environment& env, const std::string& name) {
  auto it = env.find(name);
  return it == env.end() ? std::string() : it->second;
}

// How this rank is watched for hangs, from COHORT_LAUNCH_HEARTBEAT_TIMEOUT: "first-beat"
// (the default: kDefaultHeartbeatTimeout once the program has beaten), a number of seconds
// counted from the start, or 0 for no watch at all.
struct HangWatch {
  bool on = true;
  double timeout = kDefaultHeartbeatTimeout;
  bool from_first_beat = true;
};

HangWatch hang_watch(const std::string& text) {
  HangWatch w;
  if (text.empty() || text == "first-beat") return w;
  char* end = nullptr;
  const double seconds = std::strtod(text.c_str(), &end);
  if (end == text.c_str() || *end != '\0' || !(seconds >= 0)) {
    throw input_error("COHORT_LAUNCH_HEARTBEAT_TIMEOUT='" + text + "' is not a number of seconds or first-beat");
  }
  w.on = seconds > 0;
  w.timeout = seconds;
  w.from_first_beat = false;
  return w;
}

double realtime_now() {
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME, &now);
  return static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) / 1e9;
}

// When the heartbeat file was last touched, in seconds since the epoch: 0 while the program
// has not beaten yet (the wrapper dates the file it makes to the epoch), -1 when it is gone.
double last_beat(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return -1;
  return static_cast<double>(st.st_mtim.tv_sec) + static_cast<double>(st.st_mtim.tv_nsec) / 1e9;
}

// The rank's processes: its program and whatever the program started that still runs
// (a shell's command, a data loader's workers), found through /proc/PID/task/TID/children.
std::vector<pid_t> process_tree(pid_t root) {
  std::vector<pid_t> out{root};
  for (size_t i = 0; i < out.size(); ++i) {
    const std::string tasks = "/proc/" + std::to_string(out[i]) + "/task";
    DIR* dir = ::opendir(tasks.c_str());
    if (!dir) continue;
    while (dirent* e = ::readdir(dir)) {
      if (e->d_name[0] == '.') continue;
      std::istringstream children(read_small_file(tasks + "/" + e->d_name + "/children"));
      for (pid_t p; children >> p;) {
        if (std::find(out.begin(), out.end(), p) == out.end()) out.push_back(p);
      }
    }
    ::closedir(dir);
  }
  return out;
}

// A process's name and state letter from /proc/PID/stat ('T': stopped by a signal;
// 't': held by a debugger); state 0 once the process is gone.
struct ProcessState {
  std::string name;
  char state = 0;
};

ProcessState process_state(pid_t pid) {
  const std::string stat = read_small_file("/proc/" + std::to_string(pid) + "/stat");
  // The name sits in parentheses and may itself hold spaces and parentheses.
  const auto open = stat.find('('), close = stat.rfind(')');
  if (open == std::string::npos || close == std::string::npos || close < open || close + 2 >= stat.size()) return {};
  return {stat.substr(open + 1, close - open - 1), stat[close + 2]};
}

// Where the node allows: every thread's user stack through gdb, else the kernel's view.
std::string stack_of(pid_t pid, int rank) {
  std::ostringstream out;
  out << "cohort: launch: rank " << rank << ": stack of pid " << pid << ":\n";
  try {
    RunOptions options;
    options.timeout = std::chrono::seconds(30);
    auto r = run_process({"gdb", "-batch", "-nx", "-p", std::to_string(pid), "-ex", "thread apply all bt"},
                         options);
    if (r.ok() && r.out.find("#0") != std::string::npos) {
      out << r.out;
      return out.str();
    }
    out << "cohort: launch: rank " << rank << ": gdb could not attach; kernel stack follows\n";
  } catch (const Error&) {
    out << "cohort: launch: rank " << rank << ": gdb not installed; kernel stack follows\n";
  }
  for (const char* what : {"stack", "wchan", "status"}) {
    std::string text = read_small_file("/proc/" + std::to_string(pid) + "/" + what);
    if (!text.empty()) out << "--- /proc/" << pid << "/" << what << "\n" << text << "\n";
  }
  return out.str();
}

// Dumps the hung program's stack into the rank's log and, once, into the run directory,
// telling the supervisor first that the rank is taken for hung, then where its stack is.
// Returns the stack's file; "" when it could not be written.
std::string dump_hung(pid_t culprit, int rank, const std::string& why, const std::string& attempt_dir, AgentLink& link) {
  link.hang(rank, why);
  const std::string stack = stack_of(culprit, rank);
  std::cerr << stack;
  const std::string file = stack_file(attempt_dir, rank);
  try {
    write_file_atomically(file, stack);
  } catch (const Error& e) {
    std::cerr << "cohort: launch: rank " << rank << ": " << e.what() << "\n";
    return "";
  }
  link.dumped(rank, file);
  return file;
}

// The role's replica index and, for TensorFlow-style jobs, TF_CONFIG: from the role
// table ("name:offset:replicas,...") and cluster map the supervisor hands every rank.
struct RoleRanks {
  std::string name;
  int offset = 0, replicas = 0;
};

std::vector<RoleRanks> role_table(const Environment& env) {
  std::vector<RoleRanks> roles;
  std::istringstream table(env_str(env, "COHORT_LAUNCH_ROLES"));
  std::string entry;
  while (std::getline(table, entry, ',')) {
    auto a = entry.find(':'), b = entry.rfind(':');
    const auto offset_n = a == b ? std::nullopt : parse_integer(entry.substr(a + 1, b - a - 1), 0, 1'000'000);
    const auto replicas_n = a == b ? std::nullopt : parse_integer(entry.substr(b + 1), 1, 1'000'000);
    if (a == std::string::npos || !offset_n || !replicas_n) {
      throw input_error("COHORT_LAUNCH_ROLES: '" + entry + "' is not NAME:OFFSET:REPLICAS");
    }
    roles.push_back({entry.substr(0, a), static_cast<int>(*offset_n), static_cast<int>(*replicas_n)});
  }
  return roles;
}

}  // namespace

RankRole role_by_rank(const Environment& env, int rank) {
  for (const auto& r : role_table(env)) {
    if (rank < r.offset || rank >= r.offset + r.replicas) continue;
    const std::string text = env_str(env, "COHORT_LAUNCH_COMMANDS");
    const json::Value commands = json::parse(text.empty() ? "{}" : text, "COHORT_LAUNCH_COMMANDS");
    const json::Value* command = commands.find(r.name);
    if (!command) throw Error("COHORT_LAUNCH_COMMANDS holds no command for role " + r.name);
    RankRole out{r.name, {}};
    for (const auto& word : command->as_array()) out.command.push_back(word.as_string());
    return out;
  }
  throw Error("rank " + std::to_string(rank) + " has no role in COHORT_LAUNCH_ROLES='" +
              env_str(env, "COHORT_LAUNCH_ROLES") + "'");
}

namespace {

Environment role_environment(const Environment& env, const std::string& role, const Contract& contract) {
  const int rank = contract.rank;
  for (const auto& r : role_table(env)) {
    if (r.name != role) continue;
    const int offset = r.offset, replicas = r.replicas;
    int index = rank - offset;
    if (index < 0 || index >= replicas) {
      throw Error("rank " + std::to_string(rank) + " is not a " + role + " replica (those are ranks " +
                  std::to_string(offset) + ".." + std::to_string(offset + replicas - 1) + ")");
    }
    Environment out{{"COHORT_ROLE", role}, {"COHORT_ROLE_INDEX", std::to_string(index)}};
    std::string cluster_text = env_str(env, "COHORT_LAUNCH_TF_CLUSTER");
    if (!cluster_text.empty()) {
      ClusterMap cluster;
      const json::Value parsed = json::parse(cluster_text, "COHORT_LAUNCH_TF_CLUSTER");
      for (const auto& [name, list] : parsed.as_object()) {
        std::vector<std::string> addresses;
        for (const auto& a : list.as_array()) addresses.push_back(a.as_string());
        cluster.emplace_back(name, std::move(addresses));
      }
      out["TF_CONFIG"] = tf_config(cluster, role, index);
    }
    // A replica running torchrun is one of its nodes: the world counts the processes every
    // torchrun starts, as the Training Operator counts it, and the replica is its node rank.
    if (const auto nproc = parse_integer(env_str(env, "COHORT_LAUNCH_NPROC"), 1, 1024)) {
      out["WORLD_SIZE"] = std::to_string(contract.world_size * *nproc);
    }
    if (env_str(env, "COHORT_LAUNCH_NODE_RANK") == "1") out["PET_NODE_RANK"] = std::to_string(rank);
    return out;
  }
  throw Error("role '" + role + "' is not in COHORT_LAUNCH_ROLES='" + env_str(env, "COHORT_LAUNCH_ROLES") + "'");
}

// The heartbeat file of `rank`, in its wrapper's node-local folder: the rank beats and this
// wrapper looks at it every poll, both on this node, so neither costs the shared file
// system anything.
std::string make_heartbeat_file(const std::string& dir, int rank) {
  const std::string path = dir + "/heartbeat-" + std::to_string(rank);
  write_file_atomically(path, "");
  // Dated to the epoch, so that any beat shows, however soon after the start it comes.
  const timespec epoch[2] = {{0, 0}, {0, 0}};
  if (::utimensat(AT_FDCWD, path.c_str(), epoch, 0) != 0) {
    throw Error(system_message("cannot set the times of " + path, errno));
  }
  return path;
}

// Whose node-local folder it is, for people who find one: the Slurm job and step (or local
// mode), the attempt and the rank.
std::string node_local_tag(const Environment& env, bool slurm, const std::string& attempt_dir, int rank) {
  const std::string job = slurm ? step_tag(env_str(env, "SLURM_JOB_ID"), env_str(env, "SLURM_STEP_ID")) : "local";
  return job + "-" + std::filesystem::path(attempt_dir).filename().string() + "-rank" + std::to_string(rank);
}

// Local mode placed this rank: binds it (and so its program) to the planned CPUs and
// memory, as far as this machine has them.
void bind_local_rank(const Environment& env, int rank) {
  if (env_str(env, "COHORT_LAUNCH_BIND") != "1" || env_str(env, "COHORT_CPUS").empty()) return;
  const std::vector<int> numa = topology::parse_index_list(env_str(env, "COHORT_NUMA"), "COHORT_NUMA");
  auto bound = topology::Machine::load().bind_self(topology::CpuSet::parse(env_str(env, "COHORT_CPUS"), "COHORT_CPUS"), numa);
  if (!bound.cpu_applied) std::cerr << "cohort: launch: rank " << rank << ": CPUs not bound: " << bound.cpu_note << "\n";
}

// The rank's node-local folder when it keeps a heartbeat (in local mode inside the launch's
// own, which the launch removes whole); first, in a Slurm step, what earlier steps of the
// job left on this node.
std::unique_ptr<NodeLocalDir> private_folder(const Environment& env, bool slurm, const std::string& attempt_dir, int rank,
                                             bool wanted) {
  if (slurm) remove_earlier_steps(env_str(env, "SLURM_JOB_ID"), env_str(env, "SLURM_STEP_ID"));
  if (!wanted) return nullptr;
  const std::string tag = node_local_tag(env, slurm, attempt_dir, rank);
  const std::string launch_dir = slurm ? "" : env_str(env, "COHORT_LAUNCH_LOCAL_DIR");
  if (!launch_dir.empty()) return std::make_unique<NodeLocalDir>(launch_dir, tag);
  return std::make_unique<NodeLocalDir>(tag);
}

// What the program runs with: this wrapper's environment, less what the launcher told only
// the wrapper, with the launch contract and the role's variables.
std::vector<std::string> program_environment(Environment env, const Contract& contract, const Environment& role_env) {
  for (const char* name : {"COHORT_LAUNCH_RUN_DIR", "COHORT_LAUNCH_MODE", "COHORT_LAUNCH_BIND",
                           "COHORT_LAUNCH_HEARTBEAT_TIMEOUT", "COHORT_MASTER_ADDR", "COHORT_MASTER_PORT",
                           "COHORT_LAUNCH_ROLES", "COHORT_LAUNCH_TF_CLUSTER", "COHORT_LAUNCH_AGENT",
                           "COHORT_LAUNCH_SECRET", "COHORT_LAUNCH_NODE_AGENT", "COHORT_LAUNCH_NPROC",
                           "COHORT_LAUNCH_NODE_RANK", "COHORT_LAUNCH_LOCAL_DIR"}) {
    env.erase(name);
  }
  for (const auto& [k, v] : contract.to_environment()) env[k] = v;
  for (const auto& [k, v] : role_env) env[k] = v;
  std::vector<std::string> out;
  out.reserve(env.size());
  for (const auto& [k, v] : env) out.push_back(k + "=" + v);
  return out;
}

// How the program ended, and whether this wrapper ended it as hung.
struct Ending {
  int status = 0;  // the wait status
  bool hung = false;
  bool stopped = false;    // hung because a signal stopped it
  std::string why;         // hung: what was seen
  std::string stack_file;  // hung: where its stack is
};

// Where this wrapper's news goes: to the supervisor over a connection of its own (local
// mode), or in a Slurm step through its node's agent, which is the node's first wrapper:
// that one holds the node's connection and carries the node's other wrappers.
struct Reporting {
  std::unique_ptr<NodeLocalDir> agent_dir;  // the agent's: where the node's wrappers find it
  std::unique_ptr<NodeAgent> agent;         // this wrapper is its node's agent
  std::optional<AgentLink> link;            // to the supervisor, or to the node's agent

  void add_poll_fds(std::vector<pollfd>& fds, bool with_link) const {
    if (with_link) fds.push_back({link->fd(), POLLIN, 0});
    if (agent) agent->add_poll_fds(fds);
  }
  void service() {
    if (agent) agent->service(*link);
  }
  void beat(int rank, double at) {
    if (agent) agent->beat(rank, at);
    else link->beat(rank, at);
  }
};

Reporting connect_reporting(const Environment& env, bool slurm, const std::string& attempt_dir, const Contract& contract) {
  const std::string agent = env_str(env, "COHORT_LAUNCH_AGENT"), secret = env_str(env, "COHORT_LAUNCH_SECRET");
  if (agent.empty()) throw input_error("COHORT_LAUNCH_AGENT is not set: --as-rank is started by 'cohort launch'");
  const std::string token = env_str(env, "COHORT_LAUNCH_NODE_AGENT");
  Reporting to;
  if (!slurm || token.empty()) {
    to.link.emplace(agent, secret, host_name());
    return to;
  }
  // Found by the node's wrappers from what they all know: their step, attempt and node.
  const std::string tag = step_tag(env_str(env, "SLURM_JOB_ID"), env_str(env, "SLURM_STEP_ID")) + "-" +
                          std::filesystem::path(attempt_dir).filename().string() + "-node" +
                          std::to_string(contract.group_rank) + "-agent-" + token;
  if (contract.local_rank != 0) {
    to.link.emplace(AgentLink::to_node_agent(node_local_path(tag), secret, host_name()));
    return to;
  }
  // The socket first: the node's other wrappers are starting now and wait for it.
  to.agent_dir = std::make_unique<NodeLocalDir>(tag, NodeLocalDir::Naming::exact);
  to.agent = std::make_unique<NodeAgent>(to.agent_dir->path(), secret, contract.local_world_size - 1);
  to.link.emplace(agent, secret, host_name());
  return to;
}

// The node's agent, its own rank ended: carries the node's other wrappers until each has
// reported its rank's end, or the supervisor is gone (they end their ranks then) or says stop.
void carry_wrappers(Reporting& to) {
  if (!to.agent) return;
  while (!to.agent->done()) {
    std::vector<pollfd> fds;
    to.add_poll_fds(fds, !to.link->told_to_stop());
    ::poll(fds.data(), fds.size(), 1000);
    to.service();
  }
}

// The signals `watched` (blocked) that arrived within `timeout_ms`, or since the last call;
// also returns early when one of `fds` has something to read.
std::set<int> wait_for_news(int signal_fd, std::vector<pollfd> fds, int timeout_ms) {
  fds.push_back({signal_fd, POLLIN, 0});
  ::poll(fds.data(), fds.size(), timeout_ms);
  std::set<int> got;
  signalfd_siginfo info{};
  while (::read(signal_fd, &info, sizeof info) == static_cast<ssize_t>(sizeof info)) got.insert(static_cast<int>(info.ssi_signo));
  return got;
}

// Waits for the program to end, watching it for hangs as `watch` says: a process of it
// stopped by a signal for kStoppedRankSeconds, or a heartbeat gone quiet. A hung program is
// dumped and killed with everything it started; so is one whose supervisor is gone or
// asks for it, as no orphan may outlive its gang.
// Long: the hang watch's two rules and the supervisor's link share one loop and its clock.
Ending watch_program(Process& program, const HangWatch& watch, const std::string& heartbeat_file,
                     const sigset_t& watched, int rank, const std::string& host, const std::string& attempt_dir,
                     Reporting& to) {
  Ending ending;
  using Clock = std::chrono::steady_clock;
  // The heartbeat's clock starts with the program and starts over whenever this wrapper
  // was itself stopped (a Slurm suspend stops every process of the job, then continues
  // them): time the whole job stood still is no rank's fault.
  double beat_clock = realtime_now();
  auto last_look = Clock::now();
  std::map<pid_t, Clock::time_point> stopped_since;
  auto hang = [&](pid_t culprit, const std::string& why) {
    ending.hung = true;
    ending.why = why;
    std::cerr << "cohort: launch: rank " << rank << " on " << host << ": " << why << "; treating it as hung\n";
    ending.stack_file = dump_hung(culprit, rank, why, attempt_dir, *to.link);
    // The whole rank: what the program started would otherwise outlive it, and a stopped
    // process left behind stays stopped.
    for (pid_t p : process_tree(program.pid())) ::kill(p, SIGKILL);
  };
  Fd signals(::signalfd(-1, &watched, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!signals) throw Error(system_message("launch: signalfd", errno));
  bool stopping = false;
  while (true) {
    std::vector<pollfd> fds;
    to.add_poll_fds(fds, !stopping);
    const std::set<int> got = wait_for_news(signals.get(), std::move(fds), 1000);
    to.service();
    if (program.poll()) break;
    if (!stopping && to.link->told_to_stop()) {
      stopping = true;
      for (pid_t p : process_tree(program.pid())) ::kill(p, SIGKILL);
    }
    if (!watch.on || ending.hung || stopping) continue;
    const auto now = Clock::now();
    if (got.count(SIGCONT) || now - last_look > std::chrono::seconds(5)) {
      beat_clock = realtime_now();
      stopped_since.clear();
    }
    last_look = now;

    std::map<pid_t, Clock::time_point> still_stopped;
    for (pid_t p : process_tree(program.pid())) {
      const ProcessState ps = process_state(p);
      if (ps.state != 'T') continue;
      auto since = stopped_since.count(p) ? stopped_since[p] : now;
      still_stopped[p] = since;
      const double seconds = std::chrono::duration<double>(now - since).count();
      if (!ending.hung && seconds >= kStoppedRankSeconds) {
        ending.stopped = true;
        hang(p, "pid " + std::to_string(p) + " (" + ps.name + ") stopped (state T) for " +
                    std::to_string(static_cast<long>(seconds)) + " s");
      }
    }
    stopped_since = std::move(still_stopped);
    if (ending.hung) continue;

    const double beat = last_beat(heartbeat_file);
    if (beat >= 0) to.beat(rank, beat);
    const bool held = beat > 0 || (beat == 0 && !watch.from_first_beat);
    if (held && realtime_now() - std::max(beat, beat_clock) > watch.timeout) {
      std::ostringstream why;
      why << "no heartbeat for " << watch.timeout << " s"
          << (watch.from_first_beat ? " (the default --heartbeat-timeout for a rank that beats)" : "");
      hang(program.pid(), why.str());
    }
  }
  ending.status = *program.status();
  return ending;
}

// How the rank ended, as its watcher reports it.
RankOutcome outcome_of(const Ending& ending, int rank, const std::string& host) {
  RankOutcome outcome;
  outcome.rank = rank;
  outcome.host = host;
  outcome.hung = ending.hung;
  outcome.stopped = ending.stopped;
  outcome.hang_why = ending.why;
  outcome.stack_file = ending.stack_file;
  outcome.reported = true;
  if (WIFEXITED(ending.status)) outcome.exit_code = WEXITSTATUS(ending.status);
  if (WIFSIGNALED(ending.status)) outcome.term_signal = WTERMSIG(ending.status);
  outcome.ended_ns = wall_clock_ns();
  return outcome;
}

}  // namespace

int run_rank(std::vector<std::string> command, std::string role) {
  if (command.empty() && role != kRoleByRank) throw input_error("--as-rank needs a command after --");
  Environment env = current_environment();
  const std::string attempt_dir = env_str(env, "COHORT_LAUNCH_RUN_DIR");
  if (attempt_dir.empty()) throw input_error("COHORT_LAUNCH_RUN_DIR is not set: --as-rank is started by 'cohort launch'");
  const bool slurm = env_str(env, "COHORT_LAUNCH_MODE") == "slurm";

  // Local mode: the launcher handed this rank its whole contract. Slurm: the step says where
  // the task stands, the launcher what it decided for the gang.
  Contract contract = slurm ? contract_from_slurm_gang(env) : contract_from_environment(env);
  if (role == kRoleByRank) std::tie(role, command) = role_by_rank(env, contract.rank).as_pair();
  Environment role_env;
  if (!role.empty()) role_env = role_environment(env, role, contract);
  const HangWatch watch = hang_watch(env_str(env, "COHORT_LAUNCH_HEARTBEAT_TIMEOUT"));
  // This wrapper's own, or none: a heartbeat file inherited from further out is not this
  // rank's to watch or remove. Its folder goes when this wrapper ends, however it ends.
  std::unique_ptr<NodeLocalDir> private_dir = private_folder(env, slurm, attempt_dir, contract.rank, watch.on);
  contract.heartbeat_file = private_dir ? make_heartbeat_file(private_dir->path(), contract.rank) : "";
  if (!slurm) bind_local_rank(env, contract.rank);
  Reporting to = connect_reporting(env, slurm, attempt_dir, contract);
  AgentLink& link = *to.link;
  write_placement(attempt_dir, {.rank = contract.rank,
                                 .host = host_name(),
                                 .cpus = env_str(env, "COHORT_CPUS"),
                                 .gpus = env_str(env, "COHORT_GPUS"),
                                 .nics = env_str(env, "COHORT_NICS"),
                                 .numa = env_str(env, "COHORT_NUMA"),
                                 .started_ns = wall_clock_ns()});
  if (slurm && contract.rank == 0) {
    write_file_atomically(attempt_dir + "/step", env_str(env, "SLURM_STEP_ID") + "\n");
  }

  // Signals the step receives reach the program directly (Slurm signals every process
  // of a task; local mode signals the process group): this wrapper only outlives them to
  // report how the program ended.
  sigset_t watched, previous;
  sigemptyset(&watched);
  for (int s : {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2, SIGCONT, SIGQUIT}) sigaddset(&watched, s);
  ::sigprocmask(SIG_BLOCK, &watched, &previous);

  SpawnOptions options;
  options.environment = program_environment(std::move(env), contract, role_env);
  options.signal_mask = previous;
  options.shell_runs_scripts = true;  // as the shell that would otherwise start it
  // This wrapper killed outright takes its program along: the gang restarts without it,
  // and Slurm may not find it (proctrack/linuxproc loses an orphan).
  options.end_with_parent = true;
  link.started(contract.rank);

  const std::string host = host_name();
  Ending ending;
  std::optional<Process> program;
  try {
    program = spawn(command, options);
  } catch (const SpawnError& e) {
    // Reported as a shell reports it: 127 for a program not found, 126 for one it cannot run.
    std::cerr << "cohort: launch: rank " << contract.rank << ": " << e.what() << "\n";
    ending.status = W_EXITCODE(e.errnum() == ENOENT ? 127 : 126, 0);
  }
  if (program) {
    ending = watch_program(*program, watch, contract.heartbeat_file, watched, contract.rank, host, attempt_dir, to);
  }
  private_dir.reset();  // before the report: a Slurm teardown after it kills this wrapper outright
  if (link.asked_to_stop()) {
    carry_wrappers(to);
    return 128 + SIGKILL;  // torn down: the supervisor wants no word of it
  }
  const RankOutcome outcome = outcome_of(ending, contract.rank, host);
  link.ended(outcome);
  // For people reading the run afterwards; the supervisor has it from the link.
  write_outcome(attempt_dir, outcome);
  carry_wrappers(to);
  if (outcome.term_signal) return 128 + outcome.term_signal;
  return outcome.exit_code;
}

}  // namespace cohort::launcher
