// common/slurm.hpp — asking Slurm about a job, for the components that watch their own.
#pragma once

#include <optional>
#include <string>

namespace cohort {

// The job's state and, while it waits, why, as squeue prints them (%T %r): "RUNNING None",
// "PENDING Resources". Empty once Slurm has forgotten the job (or there is no Slurm here);
// nothing when Slurm cannot say (its controller does not answer), so that callers never
// act on a guess.
std::optional<std::string> slurm_job_state(const std::string& job);

// Whether Slurm still has the job queued or running, from slurm_job_state.
std::optional<bool> slurm_job_alive(const std::string& job);

}  // namespace cohort
