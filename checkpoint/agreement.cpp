// Ranks without MPI agree through small files in the checkpoint directory (agreement.hpp).
#include "checkpoint/agreement.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <thread>

#include "common/environment.hpp"
#include "common/error.hpp"
#include "common/fd.hpp"
#include "common/text.hpp"

namespace cohort::checkpoint::detail {

namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

// Writes `text` under a temporary name and renames it to `name`, so that readers see all of
// it or nothing. Not synced: the files only matter while the ranks are alive.
void publish(const fs::path& dir, const std::string& name, const std::string& text) {
  const fs::path tmp = dir / (".tmp-" + name);
  const fs::path path = dir / name;
  Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd) throw Error(system_message("checkpoint agreement: cannot write " + tmp.string(), errno));
  write_all(fd.get(), text, tmp.string());
  fd.close("close " + tmp.string());
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    throw Error(system_message("checkpoint agreement: rename " + tmp.string() + " to " + path.string(), errno));
  }
}

std::optional<std::string> peek(const fs::path& dir, const std::string& name) {
  return read_file((dir / name).string());
}

// Calls `ready` until it returns true or `deadline` passes (false then), pausing between
// calls a little longer each time, up to 20 ms.
template <typename F>
bool wait_until(Clock::time_point deadline, F&& ready) {
  auto pause = std::chrono::microseconds(50);
  for (;;) {
    if (ready()) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(pause);
    pause = std::min<std::chrono::microseconds>(pause * 2, std::chrono::milliseconds(20));
  }
}

std::string seconds(std::chrono::milliseconds d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g s", static_cast<double>(d.count()) / 1000.0);
  return buf;
}

// "rank 3" or "ranks 1, 3".
std::string rank_list(const std::vector<int>& ranks) {
  return (ranks.size() == 1 ? "rank " : "ranks ") + join(ranks, ", ", [](int r) { return std::to_string(r); });
}

std::string encode(const std::vector<std::string>& texts) {
  std::string out = "ok\n";
  for (const auto& t : texts) out += std::to_string(t.size()) + "\n" + t;
  return out;
}

std::vector<std::string> decode(const std::string& all, int size, const std::string& what) {
  std::vector<std::string> out;
  size_t pos = 3;
  for (int r = 0; r < size; ++r) {
    const size_t end = all.find('\n', pos);
    const auto bytes = end == std::string::npos ? std::nullopt
                                                : parse_integer(std::string_view(all).substr(pos, end - pos), 0,
                                                                static_cast<long long>(all.size()));
    if (!bytes || end + 1 + static_cast<size_t>(*bytes) > all.size()) {
      throw Error("checkpoint agreement: " + what + " is damaged (did another job use this directory?)");
    }
    out.push_back(all.substr(end + 1, static_cast<size_t>(*bytes)));
    pos = end + 1 + static_cast<size_t>(*bytes);
  }
  return out;
}

}  // namespace

FileAgreement::FileAgreement(fs::path dir, int rank, int size, std::chrono::milliseconds deadline)
    : dir_(std::move(dir)), rank_(rank), size_(size), deadline_(deadline) {
  make_directories(dir_.string(), 0755);
  meet();
}

std::chrono::milliseconds FileAgreement::deadline_from_environment() {
  const std::string text = env_or("COHORT_CKPT_TIMEOUT");
  if (text.empty()) return std::chrono::seconds(600);
  const auto value = parse_integer(text, 1, 7 * 24 * 3600);
  if (!value) {
    throw input_error("COHORT_CKPT_TIMEOUT=" + text +
                      ": expected the seconds ranks wait for each other, a whole number from 1 to 604800");
  }
  return std::chrono::seconds(*value);
}

void FileAgreement::meet() {
  const auto deadline = Clock::now() + deadline_;
  if (rank_ == 0) {
    epoch_ = unguessable_name(16);
    publish(dir_, "epoch", epoch_);
    std::vector<std::string> nonces(static_cast<size_t>(size_));
    std::vector<int> missing;
    wait_until(deadline, [&] {
      missing.clear();
      for (int r = 1; r < size_; ++r) {
        auto& nonce = nonces[static_cast<size_t>(r)];
        if (nonce.empty()) nonce = peek(dir_, "join." + epoch_ + "." + std::to_string(r)).value_or("");
        if (nonce.empty()) missing.push_back(r);
      }
      return missing.empty();
    });
    if (!missing.empty()) {
      fail(rank_list(missing) + " did not start a checkpointer in " + dir_.parent_path().string() + " within " +
           seconds(deadline_) + " (COHORT_CKPT_TIMEOUT sets the wait)");
    }
    publish(dir_, "ready." + epoch_, join(nonces, "\n"));
    // Every rank has joined this epoch: what earlier runs left here is no one's any more.
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir_, ec)) {
      const std::string name = entry.path().filename().string();
      if (name != "epoch" && name.find(epoch_) == std::string::npos) fs::remove(entry.path(), ec);
    }
    return;
  }
  const std::string nonce = unguessable_name(16);
  std::string answered;
  const bool joined = wait_until(deadline + deadline_, [&] {
    const std::string epoch = peek(dir_, "epoch").value_or("");
    if (!epoch.empty() && epoch != answered) {
      publish(dir_, "join." + epoch + "." + std::to_string(rank_), nonce);
      answered = epoch;
    }
    if (answered.empty()) return false;
    const auto ready = peek(dir_, "ready." + answered);
    if (!ready) return false;
    const auto lines = split(*ready, '\n');
    return static_cast<size_t>(rank_) < lines.size() && lines[static_cast<size_t>(rank_)] == nonce;
  });
  if (!joined) {
    fail("rank 0 did not start a checkpointer in " + dir_.parent_path().string() + " within " +
         seconds(2 * deadline_) + " (COHORT_CKPT_TIMEOUT sets the wait)");
  }
  epoch_ = answered;
}

std::vector<std::string> FileAgreement::exchange(const std::string& text) {
  if (!broken_.empty()) throw Error("the ranks are out of step since an earlier failure: " + broken_);
  const std::string prefix = epoch_ + "." + std::to_string(next_++);
  if (rank_ == 0) return collect(text, prefix);
  publish(dir_, prefix + "." + std::to_string(rank_), text);
  return receive(prefix);
}

std::vector<std::string> FileAgreement::collect(const std::string& text, const std::string& prefix) {
  std::vector<std::string> texts(static_cast<size_t>(size_));
  std::vector<bool> got(static_cast<size_t>(size_), false);
  texts[0] = text;
  got[0] = true;
  std::vector<int> missing;
  wait_until(Clock::now() + deadline_, [&] {
    missing.clear();
    for (int r = 1; r < size_; ++r) {
      if (got[static_cast<size_t>(r)]) continue;
      const std::string name = prefix + "." + std::to_string(r);
      if (auto t = peek(dir_, name)) {
        texts[static_cast<size_t>(r)] = std::move(*t);
        got[static_cast<size_t>(r)] = true;
        std::error_code ec;
        fs::remove(dir_ / name, ec);
      } else {
        missing.push_back(r);
      }
    }
    return missing.empty();
  });
  if (!missing.empty()) {
    const std::string message = rank_list(missing) + " did not answer within " + seconds(deadline_) +
                                " (stopped or died; COHORT_CKPT_TIMEOUT sets the wait)";
    publish(dir_, prefix + ".all", "failed\n" + message);
    fail(message);
  }
  // Every rank has reached this exchange, so each has read the previous one's answer.
  if (next_ > 1) {
    std::error_code ec;
    fs::remove(dir_ / (epoch_ + "." + std::to_string(next_ - 2) + ".all"), ec);
  }
  publish(dir_, prefix + ".all", encode(texts));
  return texts;
}

std::vector<std::string> FileAgreement::receive(const std::string& prefix) {
  // Twice the deadline: rank 0 may itself be waiting the whole deadline for a rank that
  // died, and its answer then names that rank.
  std::optional<std::string> all;
  wait_until(Clock::now() + 2 * deadline_, [&] { return (all = peek(dir_, prefix + ".all")).has_value(); });
  if (!all) {
    fail("rank 0 did not answer within " + seconds(2 * deadline_) +
         " (stopped or died; COHORT_CKPT_TIMEOUT sets the wait)");
  }
  if (all->rfind("failed\n", 0) == 0) fail(all->substr(7));
  if (all->rfind("ok\n", 0) != 0) fail((dir_ / (prefix + ".all")).string() + " is damaged");
  return decode(*all, size_, (dir_ / (prefix + ".all")).string());
}

void FileAgreement::fail(const std::string& message) {
  broken_ = message;
  throw Error(message);
}

}  // namespace cohort::checkpoint::detail
