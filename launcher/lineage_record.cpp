#include "launcher/lineage_record.hpp"

#include <filesystem>
#include <system_error>

#include "common/text.hpp"
#include "lineage/record.hpp"

namespace cohort::launcher {

std::string record_lineage_start(const LaunchOptions& options, const std::string& job) {
  // The run directory and the logs: what the dashboard reads to show the launch's ranks.
  return lineage::record_launch_start({.command = options.command,
                                       .job = options.local ? std::string() : job,
                                       .ranks = options.local ? options.nproc : 0,
                                       .run_dir = options.run_dir,
                                       .output_dir = options.output_dir});
}

void record_lineage_end(const std::string& name, const LaunchOptions& options, int status, bool requeued) {
  if (name.empty()) return;
  // Every attempt has its folder, attempt-N, N counting restarts and requeues alike.
  int restarts = 0;
  std::error_code ec;
  for (std::filesystem::directory_iterator it(options.run_dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string entry = it->path().filename().string();
    if (entry.rfind("attempt-", 0) != 0) continue;
    if (auto n = parse_integer(std::string_view(entry).substr(8), 0, 1 << 20))
      restarts = std::max(restarts, static_cast<int>(*n));
  }
  lineage::record_launch_end({.name = name,
                              .exit_status = status,
                              .restarts = restarts,
                              .outcome = requeued      ? "requeued"
                                         : status == 0 ? "succeeded"
                                                       : "failed"});
}

}  // namespace cohort::launcher
