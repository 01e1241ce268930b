#include "common/process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>
#include <utility>

#include "common/error.hpp"

extern char** environ;

namespace cohort {
namespace {

struct Pipe {
  Fd read, write;
};

Pipe make_pipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw Error(system_message("pipe", errno));
  return {Fd(fds[0]), Fd(fds[1])};
}

// posix_spawn's two attribute objects, destroyed on every path.
class SpawnActions {
 public:
  SpawnActions() {
    posix_spawn_file_actions_init(&actions_);
    posix_spawnattr_init(&attr_);
  }
  ~SpawnActions() {
    posix_spawn_file_actions_destroy(&actions_);
    posix_spawnattr_destroy(&attr_);
  }
  SpawnActions(const SpawnActions&) = delete;
  SpawnActions& operator=(const SpawnActions&) = delete;
  posix_spawn_file_actions_t* actions() { return &actions_; }
  posix_spawnattr_t* attr() { return &attr_; }

 private:
  posix_spawn_file_actions_t actions_;
  posix_spawnattr_t attr_;
};

// One standard stream of the child: the descriptor the child gets as `target`, held open
// by the parent until the child has it, and the parent's end when it is a pipe.
struct Wiring {
  Fd child_end;   // dup2'd onto the child's stream; closed in the parent once it runs
  Fd parent_end;  // the parent's end of a pipe
};

Wiring wire(const Stream& stream, int target) {
  Wiring w;
  switch (stream.kind()) {
    case Stream::Kind::inherit:
    case Stream::Kind::same_as_stdout:
      break;
    case Stream::Kind::null:
      w.child_end = Fd(::open("/dev/null", (target == STDIN_FILENO ? O_RDONLY : O_WRONLY) | O_CLOEXEC));
      if (!w.child_end) throw Error(system_message("cannot open /dev/null", errno));
      break;
    case Stream::Kind::pipe: {
      Pipe p = make_pipe();
      w.child_end = std::move(target == STDIN_FILENO ? p.read : p.write);
      w.parent_end = std::move(target == STDIN_FILENO ? p.write : p.read);
      break;
    }
    case Stream::Kind::file: {
      const int flags = target == STDIN_FILENO ? O_RDONLY
                                               : O_WRONLY | O_CREAT | (stream.append() ? O_APPEND : O_TRUNC);
      w.child_end = Fd(::open(stream.path().c_str(), flags | O_CLOEXEC, 0644));
      if (!w.child_end) throw Error(system_message("cannot open " + stream.path(), errno));
      break;
    }
  }
  // A parent started with a standard stream closed hands out 0, 1 or 2 for these: moved
  // above them, so that wiring one stream cannot overwrite the source of the next.
  if (w.child_end && w.child_end.get() <= STDERR_FILENO) {
    Fd moved(::fcntl(w.child_end.get(), F_DUPFD_CLOEXEC, STDERR_FILENO + 1));
    if (!moved) throw Error(system_message("fcntl", errno));
    w.child_end = std::move(moved);
  }
  return w;
}

// What the child of a fork does before exec, all prepared in the parent: after fork, a
// threaded process may only make async-signal-safe calls, so nothing here allocates.
struct ExecPlan {
  std::vector<std::pair<int, int>> dups;  // (from, onto), in order
  bool own_group = false;
  sigset_t mask;
  std::vector<int> defaults;
  pid_t parent = 0;
  const char* path = nullptr;
  char* const* args = nullptr;
  char* const* shell_args = nullptr;  // /bin/sh PATH ARGS..., for a file the kernel will not run
  char* const* env = nullptr;
};

// The forked child's side, up to exec: a failure goes back to the parent as an errno on
// `report` (close-on-exec, so a successful exec just closes it).
[[noreturn]] void exec_forked(const ExecPlan& plan, int report) {
  int failed = 0;
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) failed = errno;
  // The parent may have died before the line above ran: then no signal will come.
  if (!failed && ::getppid() != plan.parent) ::raise(SIGKILL);
  for (const auto& [from, onto] : plan.dups) {
    if (failed) break;
    if (::dup2(from, onto) < 0) failed = errno;
  }
  if (!failed && plan.own_group && ::setpgid(0, 0) != 0) failed = errno;
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int sig : plan.defaults) ::sigaction(sig, &dfl, nullptr);
  if (!failed) ::sigprocmask(SIG_SETMASK, &plan.mask, nullptr);
  if (!failed) {
    ::execve(plan.path, plan.args, plan.env);
    failed = errno;
    if (failed == ENOEXEC && plan.shell_args) {
      ::execve("/bin/sh", plan.shell_args, plan.env);
      failed = errno;
    }
  }
  (void)!::write(report, &failed, sizeof failed);
  ::_exit(127);
}

// fork and exec, for what posix_spawn cannot ask: a parent-death signal. Signals are
// blocked across the fork, as posix_spawn does, so that no handler of the parent's runs in
// the child. Returns 0 or the errno of the failed exec, as posix_spawn does.
int start_forked(pid_t& pid, const std::vector<std::string>& argv, std::vector<std::string>& env,
                 const SpawnOptions& options, const Wiring& in, const Wiring& out, const Wiring& err) {
  const auto path = find_program(argv[0]);
  if (!path) return ENOENT;
  ExecPlan plan;
  if (in.child_end) plan.dups.emplace_back(in.child_end.get(), STDIN_FILENO);
  if (out.child_end) plan.dups.emplace_back(out.child_end.get(), STDOUT_FILENO);
  if (options.err.kind() == Stream::Kind::same_as_stdout) {
    plan.dups.emplace_back(STDOUT_FILENO, STDERR_FILENO);
  } else if (err.child_end) {
    plan.dups.emplace_back(err.child_end.get(), STDERR_FILENO);
  }
  plan.own_group = options.own_process_group;
  plan.defaults = options.default_signals;
  plan.parent = ::getpid();
  std::vector<std::string> args = argv, shell{"/bin/sh", *path};
  shell.insert(shell.end(), argv.begin() + 1, argv.end());
  auto c_args = c_strings(args), c_shell = c_strings(shell), c_env = c_strings(env);
  plan.path = path->c_str();
  plan.args = c_args.data();
  plan.shell_args = options.shell_runs_scripts ? c_shell.data() : nullptr;
  plan.env = c_env.data();
  Pipe report = make_pipe();
  sigset_t all, caller;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &caller);
  plan.mask = options.signal_mask.value_or(caller);
  pid = ::fork();
  if (pid == 0) exec_forked(plan, report.write.get());
  const int fork_errno = errno;
  ::pthread_sigmask(SIG_SETMASK, &caller, nullptr);
  if (pid < 0) return fork_errno;
  report.write.reset();
  int failed = 0;
  ssize_t n;
  do {
    n = ::read(report.read.get(), &failed, sizeof failed);
  } while (n < 0 && errno == EINTR);
  if (n != static_cast<ssize_t>(sizeof failed)) return 0;
  while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
  }
  return failed;
}

// The spawn itself; the status posix_spawn reports (0, or the errno of a failed exec).
int start(pid_t& pid, const std::vector<std::string>& argv, std::vector<std::string>& env, const SpawnOptions& options,
          const Wiring& in, const Wiring& out, const Wiring& err) {
  if (options.end_with_parent) return start_forked(pid, argv, env, options, in, out, err);
  SpawnActions s;
  // dup2 onto the standard descriptor clears its close-on-exec flag; every other
  // descriptor of ours is close-on-exec, so the child starts with these three alone.
  if (in.child_end) posix_spawn_file_actions_adddup2(s.actions(), in.child_end.get(), STDIN_FILENO);
  if (out.child_end) posix_spawn_file_actions_adddup2(s.actions(), out.child_end.get(), STDOUT_FILENO);
  if (options.err.kind() == Stream::Kind::same_as_stdout) {
    posix_spawn_file_actions_adddup2(s.actions(), STDOUT_FILENO, STDERR_FILENO);
  } else if (err.child_end) {
    posix_spawn_file_actions_adddup2(s.actions(), err.child_end.get(), STDERR_FILENO);
  }
  short flags = 0;
  if (options.own_process_group) {
    posix_spawnattr_setpgroup(s.attr(), 0);
    flags |= POSIX_SPAWN_SETPGROUP;
  }
  if (options.signal_mask) {
    posix_spawnattr_setsigmask(s.attr(), &*options.signal_mask);
    flags |= POSIX_SPAWN_SETSIGMASK;
  }
  if (!options.default_signals.empty()) {
    sigset_t defaults;
    sigemptyset(&defaults);
    for (int sig : options.default_signals) sigaddset(&defaults, sig);
    posix_spawnattr_setsigdefault(s.attr(), &defaults);
    flags |= POSIX_SPAWN_SETSIGDEF;
  }
  posix_spawnattr_setflags(s.attr(), flags);
  std::vector<std::string> args = argv;
  auto c_args = c_strings(args);
  auto c_env = c_strings(env);
  int rc = ::posix_spawnp(&pid, c_args[0], s.actions(), s.attr(), c_args.data(), c_env.data());
  if (rc == ENOEXEC && options.shell_runs_scripts) {
    // What execvp does for a file without a #! line: /bin/sh reads it.
    if (auto path = find_program(argv[0])) {
      std::vector<std::string> shell{"/bin/sh", *path};
      shell.insert(shell.end(), argv.begin() + 1, argv.end());
      auto c_shell = c_strings(shell);
      rc = ::posix_spawn(&pid, c_shell[0], s.actions(), s.attr(), c_shell.data(), c_env.data());
    }
  }
  return rc;
}

}  // namespace

std::vector<char*> c_strings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

std::filesystem::path own_executable() {
  std::error_code ec;
  auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) throw Error("cannot find the running executable (/proc/self/exe): " + ec.message());
  return self;
}

std::string cohort_executable() { return (own_executable().parent_path() / "cohort").string(); }

std::vector<std::string> environment_with(const std::vector<std::string>& overrides) {
  std::map<std::string, std::string> vars;
  auto add = [&](const std::string& entry) {
    auto eq = entry.find('=');
    if (eq == std::string::npos) return;
    vars[entry.substr(0, eq)] = entry;
  };
  for (char** e = environ; e && *e; ++e) add(*e);
  for (const auto& e : overrides) add(e);
  std::vector<std::string> out;
  out.reserve(vars.size());
  for (auto& [_, entry] : vars) out.push_back(std::move(entry));
  return out;
}

void set_variable(std::vector<std::string>& env, const std::string& name, const std::string& value) {
  const std::string prefix = name + "=";
  std::erase_if(env, [&](const std::string& e) { return e.compare(0, prefix.size(), prefix) == 0; });
  env.push_back(prefix + value);
}

std::string shell_quote(const std::string& word) {
  if (!word.empty() &&
      word.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./=:,@+") ==
          std::string::npos) {
    return word;
  }
  std::string out = "'";
  for (char c : word) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::optional<std::string> find_program(const std::string& name) {
  if (name.empty()) return std::nullopt;
  if (name.find('/') != std::string::npos) return name;
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/bin:/usr/bin";
  for (std::size_t start = 0;;) {
    const std::size_t colon = dirs.find(':', start);
    const std::string dir = dirs.substr(start, colon == std::string::npos ? std::string::npos : colon - start);
    const std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
    struct stat st {};
    if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
    if (colon == std::string::npos) return std::nullopt;
    start = colon + 1;
  }
}

Process spawn(const std::vector<std::string>& argv, const SpawnOptions& options) {
  if (argv.empty()) throw input_error("spawn: empty command line");
  // Everything opened here is owned until the child has its copies: a failure at any
  // point closes it all.
  Wiring in = wire(options.in, STDIN_FILENO);
  Wiring out = wire(options.out, STDOUT_FILENO);
  Wiring err = options.err.kind() == Stream::Kind::same_as_stdout ? Wiring{} : wire(options.err, STDERR_FILENO);
  std::vector<std::string> env;
  if (options.environment) {
    env = *options.environment;
  } else {
    for (char** e = environ; e && *e; ++e) env.emplace_back(*e);
  }
  pid_t pid = -1;
  const int rc = start(pid, argv, env, options, in, out, err);
  if (rc != 0) throw SpawnError(system_message("cannot run '" + argv[0] + "'", rc), rc);
  Process p;
  p.pid_ = pid;
  p.own_group_ = options.own_process_group;
  p.in_ = std::move(in.parent_end);
  p.out_ = std::move(out.parent_end);
  p.err_ = std::move(err.parent_end);
  return p;
}

Process::Process(Process&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)),
      own_group_(other.own_group_),
      status_(other.status_),
      in_(std::move(other.in_)),
      out_(std::move(other.out_)),
      err_(std::move(other.err_)) {}

Process& Process::operator=(Process&& other) noexcept {
  if (this != &other) {
    release();
    pid_ = std::exchange(other.pid_, -1);
    own_group_ = other.own_group_;
    status_ = other.status_;
    in_ = std::move(other.in_);
    out_ = std::move(other.out_);
    err_ = std::move(other.err_);
  }
  return *this;
}

Process::~Process() { release(); }

void Process::release() {
  in_.reset();
  out_.reset();
  err_.reset();
  if (pid_ > 0 && !status_) {
    ::kill(own_group_ ? -pid_ : pid_, SIGKILL);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
  }
  pid_ = -1;
  status_.reset();
}

std::optional<int> Process::poll() {
  if (status_ || pid_ <= 0) return status_;
  int status = 0;
  pid_t done;
  while ((done = ::waitpid(pid_, &status, WNOHANG)) < 0 && errno == EINTR) {
  }
  if (done < 0) throw Error(system_message("waitpid", errno));
  if (done == pid_) status_ = status;
  return status_;
}

int Process::wait() {
  if (status_) return *status_;
  if (pid_ <= 0) throw Error("wait: no child process");
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0) {
    if (errno != EINTR) throw Error(system_message("waitpid", errno));
  }
  status_ = status;
  return status;
}

int Process::wait_and_kill_group() {
  if (status_) return *status_;
  if (pid_ <= 0) throw Error("wait: no child process");
  siginfo_t info{};
  while (::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOWAIT) < 0) {
    if (errno != EINTR) throw Error(system_message("waitid", errno));
  }
  ::kill(-pid_, SIGKILL);
  return wait();
}

void Process::signal(int sig) const {
  if (pid_ > 0 && !status_) ::kill(pid_, sig);
}

void Process::signal_group(int sig) const {
  if (pid_ > 0 && !status_) ::kill(-pid_, sig);
}

ProcessResult run_process(const std::vector<std::string>& argv, const RunOptions& options) {
  if (argv.empty()) throw input_error("run_process: empty command line");
  SpawnOptions spawn_options;
  spawn_options.environment = environment_with(options.env);
  spawn_options.in = Stream::pipe();
  spawn_options.out = Stream::pipe();
  spawn_options.err = Stream::pipe();
  Process child = spawn(argv, spawn_options);
  Fd& in = child.in();
  Fd& out = child.out();
  Fd& err = child.err();

  ProcessResult result;
  size_t input_done = 0;
  if (options.input.empty()) in.reset();
  auto deadline = options.timeout ? std::chrono::steady_clock::now() + *options.timeout
                                  : std::chrono::steady_clock::time_point::max();
  // A child that ignores a closed stdin must not block us: stdin is written only
  // when poll says it can take more, and a broken pipe just ends the input.
  if (in) ::fcntl(in.get(), F_SETFL, O_NONBLOCK);
  while (out || err) {
    pollfd fds[3];
    int n = 0;
    int out_i = -1, err_i = -1, in_i = -1;
    if (out) { out_i = n; fds[n++] = {out.get(), POLLIN, 0}; }
    if (err) { err_i = n; fds[n++] = {err.get(), POLLIN, 0}; }
    if (in) { in_i = n; fds[n++] = {in.get(), POLLOUT, 0}; }
    int wait_ms = -1;
    if (options.timeout) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      wait_ms = static_cast<int>(std::max<long long>(0, left.count()));
    }
    int ready = ::poll(fds, n, wait_ms);
    if (ready < 0) {
      if (errno == EINTR) continue;
      throw Error(system_message("poll", errno));
    }
    if (ready == 0) {
      result.timed_out = true;
      child.signal(SIGKILL);
      break;
    }
    auto drain = [](int index, pollfd* fds, Fd& fd, std::string& sink) {
      if (index < 0 || !(fds[index].revents & (POLLIN | POLLHUP | POLLERR))) return;
      char buf[65536];
      ssize_t got = ::read(fd.get(), buf, sizeof buf);
      if (got > 0) sink.append(buf, static_cast<size_t>(got));
      else if (got == 0 || errno != EINTR) fd.reset();
    };
    drain(out_i, fds, out, result.out);
    drain(err_i, fds, err, result.err);
    if (in_i >= 0 && (fds[in_i].revents & (POLLOUT | POLLERR | POLLHUP))) {
      ssize_t put = ::write(in.get(), options.input.data() + input_done, options.input.size() - input_done);
      if (put > 0) input_done += static_cast<size_t>(put);
      if (put < 0 && errno != EAGAIN && errno != EINTR) in.reset();
      if (input_done == options.input.size()) in.reset();
    }
  }
  in.reset();

  const int status = child.wait();
  if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) result.term_signal = WTERMSIG(status);
  return result;
}

}  // namespace cohort
