#include "serve/lineage_record.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <vector>

#include "checkpoint/crc32c.hpp"
#include "common/environment.hpp"
#include "common/fd.hpp"
#include "lineage/record.hpp"

namespace cohort::serve {
namespace {

// "crc32c:…" of a model file, as checkpoints are named by their manifest's; empty when the
// file cannot be read (the record then names the file without a digest).
std::string file_digest(const std::filesystem::path& file) {
  const Fd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return {};
  std::vector<char> block(8 << 20);  // a model of gigabytes is read a block at a time
  std::uint32_t crc = 0;
  for (;;) {
    const ssize_t n = ::read(fd.get(), block.data(), block.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return {};
    if (n == 0) break;
    crc = checkpoint::crc32c(crc, block.data(), static_cast<std::size_t>(n));
  }
  char text[20];
  std::snprintf(text, sizeof text, "crc32c:%08x", crc);
  return text;
}

lineage::ExecutionRecord serving(const std::string& name, const std::vector<RepositoryModel>& models,
                                 const std::string& url, const std::string& state) {
  lineage::ExecutionRecord r;
  r.execution = {.type = "Serve", .name = name, .state = state, .properties = {{"url", url}, {"host", host_name()}}};
  if (const std::string within = env_or(lineage::kExecutionVariable); !within.empty()) {
    r.execution.properties["within"] = within;
  }
  for (const auto& m : models) {
    for (const auto& v : m.versions) {
      const std::string file = std::filesystem::absolute(v.file).lexically_normal().string();
      r.inputs.emplace_back(m.config.name + "/" + std::to_string(v.version),
                            lineage::Artifact{.type = "Model",
                                              .uri = file,
                                              .name = m.config.name + " version " + std::to_string(v.version),
                                              .digest = file_digest(v.file),
                                              .properties = {{"model", m.config.name}, {"version", v.version}}});
    }
  }
  return r;
}

}  // namespace

std::string record_serving_start(const std::vector<RepositoryModel>& models, const std::string& url) noexcept {
  try {
    char when[32];
    const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
    std::tm utc{};
    gmtime_r(&now, &utc);
    std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &utc);
    // One execution per start: a server restarted on the same address is another.
    const std::string name = url + " " + when;
    return lineage::record_execution(serving(name, models, url, "RUNNING")) ? name : "";
  } catch (...) {
    return "";
  }
}

void record_serving_end(const std::string& name, const std::vector<RepositoryModel>& models,
                        const std::string& url) noexcept {
  if (name.empty()) return;
  try {
    lineage::record_execution(serving(name, models, url, "COMPLETE"));
  } catch (...) {
  }
}

}  // namespace cohort::serve
