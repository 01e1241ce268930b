#include "common/progress.hpp"

#include <unistd.h>

#include <cstdio>

namespace cohort {
namespace {

std::string gib(std::uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0));
  return buf;
}

}  // namespace

Progress::Progress(std::string what, std::uint64_t total_bytes)
    : what_(std::move(what)), total_(total_bytes), enabled_(::isatty(STDERR_FILENO) == 1) {}

Progress::~Progress() {
  if (drawn_) std::fprintf(stderr, "\r\033[K");
}

void Progress::advance(std::uint64_t bytes) {
  done_ += bytes;
  if (!enabled_) return;
  auto now = std::chrono::steady_clock::now();
  if (drawn_ && now - last_ < std::chrono::milliseconds(200) && done_ < total_) return;
  last_ = now;
  draw();
}

void Progress::draw() {
  const unsigned percent = total_ ? static_cast<unsigned>(100.0 * static_cast<double>(done_) / static_cast<double>(total_)) : 100;
  std::fprintf(stderr, "\r\033[Kcohort: %s: %s of %s GiB (%u%%)", what_.c_str(), gib(done_).c_str(), gib(total_).c_str(),
               percent);
  std::fflush(stderr);
  drawn_ = true;
}

}  // namespace cohort
