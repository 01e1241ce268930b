// Fuzzing Kubeflow-style job specs (launcher/job_spec.hpp): a spec is read or refused
// with an input error, and one that is read gives a batch script whose numbers are the
// spec's own (no count or time limit wrapped past its range).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "common/error.hpp"
#include "launcher/job_spec.hpp"

using namespace cohort;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  launcher::JobSpec spec;
  try {
    spec = launcher::parse_job_spec(text, "job.yaml");
  } catch (const Error&) {
    return 0;
  }
  if (spec.roles.empty() || spec.backoff_limit < 0 || spec.world_size() < 0) std::abort();
  for (const auto& role : spec.roles) {
    if (role.replicas < 1 || role.resources.nodes < 1 || role.resources.cpus < 1 || role.resources.gpus < 0) std::abort();
  }
  const std::string script = launcher::emit_sbatch(spec, "job.yaml", "cohort");
  if (script.find("--time=0\n") != std::string::npos || script.find("--time=-") != std::string::npos) std::abort();
  launcher::ClusterMap cluster;
  for (const auto& role : spec.roles) cluster.push_back({role.name, {"node:1"}});
  launcher::tf_config(cluster, spec.roles.front().name, 0);
  return 0;
}
