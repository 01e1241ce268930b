#include "common/process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <utility>

#include "common/error.hpp"
#include "common/fd.hpp"

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

}  // namespace

std::vector<char*> c_strings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

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

ProcessResult run_process(const std::vector<std::string>& argv, const RunOptions& options) {
  if (argv.empty()) throw input_error("run_process: empty command line");
  Pipe in = make_pipe(), out = make_pipe(), err = make_pipe();

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in.read.get(), STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, out.write.get(), STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err.write.get(), STDERR_FILENO);

  std::vector<std::string> args = argv;
  std::vector<std::string> env = environment_with(options.env);
  auto c_args = c_strings(args);
  auto c_env = c_strings(env);
  pid_t pid = -1;
  int rc = ::posix_spawnp(&pid, c_args[0], &actions, nullptr, c_args.data(), c_env.data());
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) throw Error(system_message("cannot run '" + argv[0] + "'", rc));
  in.read.reset();
  out.write.reset();
  err.write.reset();

  ProcessResult result;
  size_t input_done = 0;
  if (options.input.empty()) in.write.reset();
  auto deadline = options.timeout ? std::chrono::steady_clock::now() + *options.timeout
                                  : std::chrono::steady_clock::time_point::max();
  // A child that ignores a closed stdin must not block us: stdin is written only
  // when poll says it can take more, and a broken pipe just ends the input.
  if (in.write.get() >= 0) ::fcntl(in.write.get(), F_SETFL, O_NONBLOCK);
  while (out.read.get() >= 0 || err.read.get() >= 0) {
    pollfd fds[3];
    int n = 0;
    int out_i = -1, err_i = -1, in_i = -1;
    if (out.read.get() >= 0) { out_i = n; fds[n++] = {out.read.get(), POLLIN, 0}; }
    if (err.read.get() >= 0) { err_i = n; fds[n++] = {err.read.get(), POLLIN, 0}; }
    if (in.write.get() >= 0) { in_i = n; fds[n++] = {in.write.get(), POLLOUT, 0}; }
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
      ::kill(pid, SIGKILL);
      break;
    }
    auto drain = [](int index, pollfd* fds, Fd& fd, std::string& sink) {
      if (index < 0 || !(fds[index].revents & (POLLIN | POLLHUP | POLLERR))) return;
      char buf[65536];
      ssize_t got = ::read(fd.get(), buf, sizeof buf);
      if (got > 0) sink.append(buf, static_cast<size_t>(got));
      else if (got == 0 || errno != EINTR) fd.reset();
    };
    drain(out_i, fds, out.read, result.out);
    drain(err_i, fds, err.read, result.err);
    if (in_i >= 0 && (fds[in_i].revents & (POLLOUT | POLLERR | POLLHUP))) {
      ssize_t put = ::write(in.write.get(), options.input.data() + input_done,
                            options.input.size() - input_done);
      if (put > 0) input_done += static_cast<size_t>(put);
      if (put < 0 && errno != EAGAIN && errno != EINTR) in.write.reset();
      if (input_done == options.input.size()) in.write.reset();
    }
  }
  in.write.reset();

  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) throw Error(system_message("waitpid", errno));
  }
  if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) result.term_signal = WTERMSIG(status);
  return result;
}

}  // namespace cohort
