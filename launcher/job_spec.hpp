// launcher/job_spec.hpp — Kubeflow-style jobs with roles: PyTorchJob, TFJob, MPIJob.
//
// A spec names its kind and, per role, replicas, resources, command and restart policy,
// with Kubeflow's field names so a Training Operator user feels at home:
//
//   kind: TFJob
//   metadata: {name: mnist}
//   spec:
//     runPolicy: {backoffLimit: 2, activeDeadlineSeconds: 3600}
//     successPolicy: AllWorkers           # TFJob only; default: the chief (or worker 0)
//     tfReplicaSpecs:                     # or pytorchReplicaSpecs, mpiReplicaSpecs
//       Chief:  {replicas: 1, command: [python3, train.py]}
//       PS:     {replicas: 1, command: [python3, train.py]}
//       Worker: {replicas: 2, restartPolicy: OnFailure,
//                resources: {nodes: 1, gpus: 1, cpus: 4, memory: 8G},
//                command: [python3, train.py]}
//
// A role may also give Kubeflow's `template.spec.containers[0]` (its command, args and
// resources.limits, or requests where no limit is given) instead of `command` and
// `resources`; without resources a replica gets one CPU and no GPU. A container needs a
// command: there is no image whose ENTRYPOINT could run its args. On Slurm each role is one
// component of a heterogeneous job; each replica is one task.
//
// A PyTorchJob may run torchrun in each replica, as the Training Operator's do:
//
//   spec:
//     nprocPerNode: 2                     # or "cpu", "gpu", "auto": the replica's CPUs or GPUs
//     elasticPolicy: {minReplicas: 1, maxReplicas: 4, rdzvBackend: c10d, maxRestarts: 3}
//     pytorchReplicaSpecs:
//       Worker: {replicas: 2, command: [python3, -m, torch.distributed.run, train.py]}
//
// Each replica gets the PET_* variables torchrun reads (torchrun_environment); an elastic
// job's Workers are one Slurm job of minReplicas..maxReplicas nodes, a replica a node.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "launcher/supervisor.hpp"

namespace cohort::launcher {

enum class JobKind { pytorch, tensorflow, mpi };

struct RoleResources {
  int nodes = 1;       // nodes this role's replicas are spread over
  int gpus = 0;        // per replica
  int cpus = 1;        // per replica
  std::string memory;  // per replica, Slurm syntax ("8G"); empty: the cluster's default
};

struct Role {
  std::string name;  // lower case: master, worker, chief, ps, evaluator, launcher
  int replicas = 1;
  RoleResources resources;
  std::vector<std::string> command;  // empty only for an MPIJob's workers
  std::optional<RestartPolicy> restart_policy;
};

// Kubeflow's elasticPolicy, as far as Slurm can hold it: the nodes are granted once, between
// min_nodes and max_nodes, and torchrun's c10d rendezvous meets on the first of them.
struct ElasticPolicy {
  int min_nodes = 1;
  int max_nodes = 1;
  std::optional<int> rdzv_port;     // rdzvPort; without it one derived from the job id
  std::string rdzv_id;              // rdzvId; empty: the Slurm job id
  std::string rdzv_conf;            // rdzvConf as torchrun takes it: "key=value,key=value"
  std::optional<int> max_restarts;  // torchrun's own restarts of its local workers
};

struct JobSpec {
  std::string name;
  JobKind kind = JobKind::pytorch;
  std::vector<Role> roles;  // in launch order: master/chief/launcher first
  // Gang restarts allowed: runPolicy.backoffLimit; without it 6 (Kubernetes' default for a
  // Job) when a role's restartPolicy restarts it, else 0.
  int backoff_limit = 0;
  std::optional<double> active_deadline_seconds;
  bool all_workers_succeed = false;  // TFJob successPolicy: AllWorkers
  // nprocPerNode: processes torchrun starts in each replica ("cpu", "gpu" and "auto" are
  // resolved against the replica's resources); unset: one process, the replica itself.
  std::optional<int> nproc_per_node;
  std::optional<ElasticPolicy> elastic;  // PyTorchJob only, Workers only
  // What the spec gives that has no part on Slurm and is left aside, each "FIELD: why", for
  // the command to show (elasticPolicy.metrics).
  std::vector<std::string> notes;

  int world_size() const;
  // Global rank of `role`'s first replica.
  int offset_of(const std::string& role) const;
  const Role* find(const std::string& role) const;
};

// Reads and validates a spec. Throws cohort::Error (input) naming the file and the field:
//   "job.yaml: spec.tfReplicaSpecs.Worker.replicas: must be at least 1 (got 0)"
JobSpec load_job_spec(const std::string& path);
JobSpec parse_job_spec(const std::string& text, const std::string& source);

// A complete sbatch script: one heterogeneous component per role (`#SBATCH hetjob`),
// whose body runs `cohort launch --spec SPEC_PATH`. MPIJobs use one component for the
// workers; the launcher runs in the batch step. `packed`: every role in one plain
// allocation of a task per replica instead (see packable).
std::string emit_sbatch(const JobSpec& spec, const std::string& spec_path, const std::string& cohort_path,
                        bool packed = false);

// Whether the roles can share one plain allocation, a task per replica, the roles'
// replicas following one another over its nodes: every role asks for the same CPUs, GPUs
// and memory per replica and none for nodes of its own, and it is not an MPIJob. So does a
// job whose heterogeneous form the cluster could never start, and a Katib trial, since an
// array job cannot be heterogeneous.
bool packable(const JobSpec& spec);

// The nodes the emitted script asks for: each role's heterogeneous component takes nodes of
// its own, so the roles' nodes add up (an MPIJob asks only for its workers').
int nodes_needed(const JobSpec& spec);
// Why the script could never start on a cluster of `cluster_nodes` nodes: the
// heterogeneous form needs more, naming each role's share, and the roles cannot be packed;
// nullopt when it fits either way.
std::optional<std::string> why_it_cannot_start(const JobSpec& spec, int cluster_nodes);

// The variables the Training Operator gives a PyTorchJob's replicas for torchrun, job-wide
// (the replica's own PET_NODE_RANK is its rank, set where it runs): PET_NNODES (replicas,
// or "min:max" when elastic), PET_NPROC_PER_NODE; without elasticPolicy PET_MASTER_ADDR and
// PET_MASTER_PORT; with it PET_RDZV_BACKEND (c10d), PET_RDZV_ENDPOINT (the first node,
// `master_addr`, at rdzvPort or `master_port`), PET_RDZV_ID (rdzvId or the job id),
// PET_RDZV_CONF and PET_MAX_RESTARTS when given. Empty for a job without either field.
std::vector<std::pair<std::string, std::string>> torchrun_environment(const JobSpec& spec, int replicas,
                                                                       const std::string& master_addr, int master_port,
                                                                       const std::string& job_id);

// Where every replica runs: role → "host:port" per replica, in replica order.
using ClusterMap = std::vector<std::pair<std::string, std::vector<std::string>>>;

// Kubeflow's TF_CONFIG for one process: {"cluster": {...}, "task": {"type", "index"},
// "environment": "cloud"}. The evaluator is left out of the cluster map, as Kubeflow does.
std::string tf_config(const ClusterMap& cluster, const std::string& role, int index);

}  // namespace cohort::launcher
