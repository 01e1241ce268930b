// serve/registry.hpp — a service's folder and its endpoint registry.
//
//   SERVICES/NAME/spec.yaml        the InferenceService as submitted
//   SERVICES/NAME/token            the bearer token (0600) the router asks for
//   SERVICES/NAME/registry.json    where everything is, written whole (AtomicFile) by the job
//   SERVICES/NAME/job.log          the job's own output; replica-N.log each replica's
//
//   registry.json: {"name", "state", "job", "requeues", "url", "traffic": {"1": 100}, "storage": {"1": PATH},
//                   "replicas": [{"id", "node", "host", "port", "pid", "version", "state",
//                                 "restarts"}],
//                   "autoscale": {"min", "max", "desired", "decision", "decided_at"}}
//
// One writer: submit writes the first registry, the job every later one. Readers (the
// commands status and list) see the old file or the new one, never a part.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace cohort::serve {

struct RegistryReplica {
  int id = 0;
  std::string node, host;  // the node's name, and an address of it that clients can reach
  int port = 0;
  long long pid = 0;       // the replica's server process, on its node
  std::string version;     // the service's revision it serves
  std::string state;       // starting, ready, dead, draining, stopped
  int restarts = 0;
  std::string job;         // the companion job that holds it; empty: the service's own job
};

struct Registry {
  std::string name;
  // submitted, starting, ready, draining, then stopped (for good), requeued (drained; Slurm
  // starts the job again, and it comes back at the same name) or failed
  std::string state;
  std::string job;    // the Slurm job id
  int requeues = 0;   // how many times Slurm has started the job again (SLURM_RESTART_COUNT)
  std::string url;    // the router's, once it listens
  std::string message;  // why, for failed
  std::map<std::string, int> traffic;       // percent per version
  std::map<std::string, std::string> storage;  // each version's model, an absolute path
  // The highest version ever given, a rolled-back one included: a version number names one
  // model for good, as a Knative revision does, so the next update is numbered above it.
  long long newest_version = 0;
  std::vector<RegistryReplica> replicas;
  // The autoscaler's view: the bounds, the count it wants now, and its last decision (one
  // line with its reason) with when it was taken (seconds since the Unix epoch; 0: none yet).
  int min_replicas = 0, max_replicas = 0, desired = 0;
  std::string decision;
  long long decided_at = 0;
};

// Where services live: COHORT_SERVICE_DIR, else $XDG_DATA_HOME/cohort/services, else
// ~/.local/share/cohort/services; `given` (--dir) first when not empty.
std::filesystem::path services_root(const std::string& given);

std::filesystem::path registry_path(const std::filesystem::path& service_dir);
void write_registry(const std::filesystem::path& service_dir, const Registry& registry);
// Throws an input error naming the service when it has no registry.
Registry read_registry(const std::filesystem::path& service_dir);

}  // namespace cohort::serve
