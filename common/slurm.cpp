#include "common/slurm.hpp"

#include "common/error.hpp"
#include "common/process.hpp"

namespace cohort {

std::optional<std::string> slurm_job_state(const std::string& job) {
  if (job.empty()) return std::string();
  ProcessResult r;
  try {
    r = run_process({"squeue", "-h", "-j", job, "-o", "%T %r"});
  } catch (const Error&) {
    return std::string();  // no Slurm here: it has no such job
  }
  if (r.ok()) {
    const std::string line = r.out.substr(0, r.out.find('\n'));
    return line.find_first_not_of(' ') == std::string::npos ? std::string() : line;
  }
  if (r.err.find("Invalid job id") != std::string::npos) return std::string();  // ended long ago
  return std::nullopt;
}

std::optional<bool> slurm_job_alive(const std::string& job) {
  const auto state = slurm_job_state(job);
  if (!state) return std::nullopt;
  return !state->empty();
}

}  // namespace cohort
