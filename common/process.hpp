// common/process.hpp — child processes, started one way whoever starts them.
//
// spawn() starts a program and hands back a Process that owns it: its pid, and the parent's
// ends of whatever pipes it was given. run_process() is spawn() for a program that is run to
// its end and whose output is collected.
//
//   SpawnOptions o;
//   o.out = Stream::pipe();
//   o.err = Stream::file(trial_dir + "/stderr.log");
//   o.own_process_group = true;
//   Process child = spawn({"python3", "train.py"}, o);
//   ... read child.out() ...
//   int status = child.wait();   // a child never reaped is killed and reaped by ~Process
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "common/fd.hpp"

namespace cohort {

// Where one of a child's standard streams goes.
class Stream {
 public:
  enum class Kind { inherit, null, pipe, file, same_as_stdout };

  static Stream inherit() { return Stream(Kind::inherit); }  // the parent's own stream
  static Stream null() { return Stream(Kind::null); }        // /dev/null
  static Stream pipe() { return Stream(Kind::pipe); }        // a pipe, whose other end the Process holds
  // A file: read for stdin; for stdout and stderr written, created when missing (mode 0644
  // less the umask), emptied first unless `append`.
  static Stream file(std::string path, bool append = false) {
    Stream s(Kind::file);
    s.path_ = std::move(path);
    s.append_ = append;
    return s;
  }
  // stderr only: wherever stdout goes, as `2>&1` does.
  static Stream same_as_stdout() { return Stream(Kind::same_as_stdout); }

  Kind kind() const { return kind_; }
  const std::string& path() const { return path_; }
  bool append() const { return append_; }

 private:
  explicit Stream(Kind kind) : kind_(kind) {}
  Kind kind_;
  std::string path_;
  bool append_ = false;
};

struct SpawnOptions {
  // The child's whole environment, "NAME=VALUE" each; unset: this process's own.
  std::optional<std::vector<std::string>> environment;
  Stream in = Stream::inherit();
  Stream out = Stream::inherit();
  Stream err = Stream::inherit();
  // The child leads a process group of its own, so that it and whatever it starts can be
  // signalled at once (Process::signal_group). The group exists once spawn() returns.
  bool own_process_group = false;
  // The child's signal mask; unset: the caller's, as fork would leave it.
  std::optional<sigset_t> signal_mask;
  // Signals whose handling the child starts with at the default, ignored ones included.
  std::vector<int> default_signals;
  // execvp's rule for a file the kernel will not run (a script without a #! line): run it
  // with /bin/sh. Off, such a file is an error like any other.
  bool shell_runs_scripts = false;
  // The child is killed (SIGKILL) when this process ends, however it ends: a wrapper killed
  // outright takes its program with it, where nothing else might (Slurm's
  // proctrack/linuxproc loses an orphan). Linux's parent-death signal, which follows the
  // thread that spawns: spawn from one that lives as long as the process. Started with fork
  // and exec, which posix_spawn cannot ask for.
  bool end_with_parent = false;
};

// A started child. Move-only; the pid is never signalled once reaped, so that a recycled
// pid cannot be hit. Destroying a Process whose child has not been reaped kills the child
// (and its group, when it leads one) with SIGKILL and reaps it: no child outlives its owner
// unwatched, and none is left a zombie.
class Process {
 public:
  Process() = default;
  Process(Process&& other) noexcept;
  Process& operator=(Process&& other) noexcept;
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  ~Process();

  pid_t pid() const { return pid_; }
  // The parent's ends of the pipes asked for (Stream::pipe()); empty for other streams.
  Fd& in() { return in_; }
  Fd& out() { return out_; }
  Fd& err() { return err_; }

  bool reaped() const { return status_.has_value(); }
  // The wait status (for WIFEXITED and its kin) once the child was reaped.
  std::optional<int> status() const { return status_; }

  // Reaps the child if it has ended, without blocking; its wait status then.
  std::optional<int> poll();
  // Blocks until the child ends and reaps it; its wait status.
  int wait();
  // Waits for the child to end, then kills whatever is left of its process group before
  // reaping it: the group's id cannot be reused before that kill lands. Needs
  // own_process_group.
  int wait_and_kill_group();
  // Sends `signal` to the child, or to its whole process group; nothing once it was reaped.
  void signal(int signal) const;
  void signal_group(int signal) const;

 private:
  friend Process spawn(const std::vector<std::string>& argv, const SpawnOptions& options);
  void release();

  pid_t pid_ = -1;
  bool own_group_ = false;
  std::optional<int> status_;
  Fd in_, out_, err_;
};

// What spawn() throws for a program that cannot be started: a cohort::Error that also keeps
// the errno that said why (ENOENT, EACCES, ...), for callers that report it as a shell
// would (127, 126).
class SpawnError : public Error {
 public:
  SpawnError(std::string message, int errnum) : Error(std::move(message)), errnum_(errnum) {}
  int errnum() const noexcept { return errnum_; }

 private:
  int errnum_;
};

// Starts argv[0] (looked up on PATH when it has no '/') with argv. Throws SpawnError naming
// the program when it cannot be started ("cannot run 'x': No such file or directory"), and
// cohort::Error naming the file when a Stream's file cannot be opened. Nothing is left open
// or running when it throws. posix_spawn, not fork: safe in a threaded process.
Process spawn(const std::vector<std::string>& argv, const SpawnOptions& options = {});

// The path of an executable file `name` on PATH (the current directory for an empty
// entry), as execvp would find it; nothing when there is none. A name with a '/' is
// returned as it is.
std::optional<std::string> find_program(const std::string& name);

struct ProcessResult {
  int exit_code = -1;    // exit status, or -1 when the child was killed by a signal
  int term_signal = 0;   // the signal that ended it, 0 when it exited
  std::string out;       // everything written to stdout
  std::string err;       // everything written to stderr
  bool timed_out = false;

  bool ok() const { return exit_code == 0; }
};

struct RunOptions {
  // Extra variables, "NAME=VALUE", added to (and overriding) the inherited environment.
  std::vector<std::string> env;
  std::string input;                             // written to the child's stdin, then closed
  std::optional<std::chrono::milliseconds> timeout;  // on expiry the child gets SIGKILL
};

// The inherited environment with `overrides` ("NAME=VALUE") added or replacing, as
// execve wants it.
std::vector<std::string> environment_with(const std::vector<std::string>& overrides);

// This process's executable, absolute (/proc/self/exe): cohort's commands start its other
// executables, and themselves, from it. Throws cohort::Error when the kernel does not say.
std::filesystem::path own_executable();
// The `cohort` executable beside it, for the jobs a command submits to run: a command may
// run as a program of its own (cohort-serve) that takes no command name.
std::string cohort_executable();

// Sets NAME=VALUE in an environment of "NAME=VALUE" entries, replacing any entry for NAME.
void set_variable(std::vector<std::string>& env, const std::string& name, const std::string& value);

// `strings` as the null-terminated array of C strings that exec and posix_spawn take;
// valid while `strings` lives unchanged.
std::vector<char*> c_strings(std::vector<std::string>& strings);

// `word` quoted for a POSIX shell, only when it needs it: "a b" gives 'a b'.
std::string shell_quote(const std::string& word);

// Runs argv[0] (looked up on PATH) with argv, waits for it, and returns its output.
// Throws cohort::Error when the program cannot be started at all.
ProcessResult run_process(const std::vector<std::string>& argv, const RunOptions& options = {});

}  // namespace cohort
