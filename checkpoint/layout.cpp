// A checkpoint directory: step directories, `latest`, leftovers, and reading and renaming
// its files.
#include "checkpoint/layout.hpp"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <random>

#include "common/error.hpp"
#include "common/fd.hpp"

namespace cohort::checkpoint::detail {

std::string step_dir_name(std::int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "step-%08lld", static_cast<long long>(step));
  return buf;
}

std::string rank_file_name(int rank) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "rank-%05d.h5", rank);
  return buf;
}

bool is_rank_file_name(std::string_view name) {
  constexpr std::string_view prefix = "rank-", suffix = ".h5";
  if (name.size() < prefix.size() + 5 + suffix.size() || name.substr(0, prefix.size()) != prefix ||
      name.substr(name.size() - suffix.size()) != suffix) {
    return false;
  }
  auto digits = name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
  if (digits.size() > 9 || !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return false;
  }
  return rank_file_name(std::stoi(std::string(digits))) == name;
}

std::optional<std::int64_t> parse_step_dir_name(std::string_view name) {
  constexpr std::string_view prefix = "step-";
  if (name.substr(0, prefix.size()) != prefix) return std::nullopt;
  auto digits = name.substr(prefix.size());
  if (digits.size() < 8 || digits.size() > 18) return std::nullopt;
  std::int64_t step = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return std::nullopt;
    step = step * 10 + (c - '0');
  }
  // One spelling per step: "step-000000040" is not step 40's directory.
  if (step_dir_name(step) != name) return std::nullopt;
  return step;
}

std::vector<std::int64_t> committed_steps(const fs::path& dir) {
  std::vector<std::int64_t> steps;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    auto step = parse_step_dir_name(entry.path().filename().string());
    if (step && entry.is_directory()) steps.push_back(*step);
  }
  if (ec && ec != std::errc::no_such_file_or_directory) {
    throw Error(system_message("cannot read checkpoint directory " + dir.string(), ec.value()));
  }
  std::sort(steps.begin(), steps.end());
  return steps;
}

std::optional<std::int64_t> read_latest(const fs::path& dir) {
  std::string text;
  try {
    text = read_text(dir / kLatestFile);
  } catch (const Error&) {
    return std::nullopt;
  }
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return parse_step_dir_name(text);
}

std::string nonce() {
  static std::mt19937_64 gen{std::random_device{}() ^ (static_cast<std::uint64_t>(::getpid()) << 32)};
  static std::mutex m;
  std::lock_guard lock(m);
  char buf[24];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(gen()));
  return buf;
}

std::string utc_now() {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

ReadAhead::ReadAhead(const fs::path& path)
    : fd_(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)) {}

ReadAhead::~ReadAhead() {
  if (fd_ >= 0) ::close(fd_);
}

void ReadAhead::advise(std::uint64_t offset, std::uint64_t size) const noexcept {
  if (fd_ >= 0 && size > 0) {
    ::posix_fadvise(fd_, static_cast<off_t>(offset), static_cast<off_t>(size), POSIX_FADV_WILLNEED);
  }
}

std::uint64_t regular_file_size(const fs::path& path) { return open_regular(path).size; }

bool exchange_durably(const fs::path& a, const fs::path& b) {
  if (::renameat2(AT_FDCWD, a.c_str(), AT_FDCWD, b.c_str(), RENAME_EXCHANGE) != 0) {
    if (errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP) return false;
    throw Error(system_message("exchange " + a.string() + " and " + b.string(), errno));
  }
  fsync_path(b.parent_path());
  if (a.parent_path() != b.parent_path()) fsync_path(a.parent_path());
  return true;
}

void write_latest(const fs::path& dir, std::int64_t step) {
  write_file_atomically(dir / kLatestFile, step_dir_name(step) + "\n");
}

std::vector<std::string> remove_leftovers(const fs::path& dir) {
  std::vector<std::string> errors;
  std::vector<fs::path> doomed;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    std::string name = entry.path().filename().string();
    // ".latest.tmp." is AtomicFile's temporary; ".latest.tmp-" that of earlier versions.
    if (name.rfind(".step-", 0) == 0 || name.rfind(".latest.tmp", 0) == 0) doomed.push_back(entry.path());
  }
  for (const auto& path : doomed) {
    fs::remove_all(path, ec);
    if (ec) errors.push_back(system_message("remove " + path.string(), ec.value()));
  }
  return errors;
}

}  // namespace cohort::checkpoint::detail
