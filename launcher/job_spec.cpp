#include "launcher/job_spec.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <set>
#include <sstream>

#include "common/error.hpp"
#include "common/json.hpp"
#include "common/process.hpp"
#include "common/text.hpp"
#include "common/yaml_reader.hpp"

namespace cohort::launcher {
namespace {

using Reader = yaml::Reader;

// Each kind of job: its name in a spec, the field that holds its replica specs, and its
// roles in launch order.
struct Kind {
  JobKind kind;
  std::string name;
  std::string replica_key;
  std::vector<std::string> roles;
};

const std::vector<Kind> kKinds{
    {JobKind::pytorch, "PyTorchJob", "pytorchReplicaSpecs", {"master", "worker"}},
    {JobKind::tensorflow, "TFJob", "tfReplicaSpecs", {"chief", "ps", "worker", "evaluator"}},
    {JobKind::mpi, "MPIJob", "mpiReplicaSpecs", {"launcher", "worker"}},
};

// A whole number in low..high; checked before it is narrowed, so 2^32 + 1 is not 1.
int bounded(const Reader& r, const YAML::Node& n, const std::string& path, long long low, long long high) {
  return static_cast<int>(r.integer(n, path, low, high));
}

constexpr int kMostReplicas = 100000;
constexpr int kMostRestarts = 10000;
// A century: beyond any real job, and well inside the minutes Slurm's --time holds.
constexpr double kLongestDeadline = 100 * 365 * 24 * 3600.0;

int cpus_of(const Reader& r, const YAML::Node& n, const std::string& path) { return r.cpus(n, path, 1, 4096); }
int gpus_of(const Reader& r, const YAML::Node& n, const std::string& path) { return bounded(r, n, path, 0, 64); }

RoleResources read_resources(const Reader& r, const YAML::Node& n, const std::string& path) {
  RoleResources res;
  r.only(n, path, {"nodes", "gpus", "cpus", "memory"});
  if (n["nodes"]) res.nodes = bounded(r, n["nodes"], path + ".nodes", 1, 100000);
  if (n["gpus"]) res.gpus = gpus_of(r, n["gpus"], path + ".gpus");
  if (n["cpus"]) res.cpus = cpus_of(r, n["cpus"], path + ".cpus");
  if (n["memory"]) res.memory = r.memory(n["memory"], path + ".memory");
  return res;
}

// A container's limits or requests into `res`; the kinds given ("cpu", "memory", "gpu").
std::set<std::string> read_quantities(const Reader& r, const YAML::Node& n, const std::string& path, RoleResources& res) {
  if (!n.IsMap()) r.fail(path, "must be a mapping of resource names to quantities (cpu: 4, memory: 8Gi, nvidia.com/gpu: 1)");
  std::set<std::string> given;
  for (const auto& kv : n) {
    auto key = kv.first.as<std::string>();
    std::string kpath = path + "." + key;
    if (key == "cpu") res.cpus = cpus_of(r, kv.second, kpath), given.insert("cpu");
    else if (key == "memory") res.memory = r.memory(kv.second, kpath), given.insert("memory");
    else if (key.find("gpu") != std::string::npos) res.gpus = gpus_of(r, kv.second, kpath), given.insert("gpu");
    else r.fail(kpath, "unknown resource (cohort understands cpu, memory and */gpu)");
  }
  return given;
}

// Kubeflow's pod template: the first container's command + args and resource limits.
void read_template(const Reader& r, const YAML::Node& tmpl, const std::string& path, Role& role) {
  r.only(tmpl, path, {"spec", "metadata"});
  const auto& spec = tmpl["spec"];
  if (!spec) r.fail(path, "needs spec.containers");
  const YAML::Node c = r.first_container(spec["containers"], path + ".spec.containers");
  std::string cpath = path + ".spec.containers[0]";
  role.command = r.command_and_args(c, cpath);
  // Most of Kubeflow's examples give no resources at all: the defaults stand.
  if (const YAML::Node resources = c["resources"]) {
    r.only(resources, cpath + ".resources", {"limits", "requests"});
    // A limit is what the replica may use, so it is what Slurm reserves; a request stands
    // in for a resource without a limit.
    std::set<std::string> limited;
    if (resources["limits"]) limited = read_quantities(r, resources["limits"], cpath + ".resources.limits", role.resources);
    if (resources["requests"]) {
      RoleResources requested = role.resources;
      read_quantities(r, resources["requests"], cpath + ".resources.requests", requested);
      if (!limited.count("cpu")) role.resources.cpus = requested.cpus;
      if (!limited.count("memory")) role.resources.memory = requested.memory;
      if (!limited.count("gpu")) role.resources.gpus = requested.gpus;
    }
  }
}

}  // namespace

int JobSpec::world_size() const {
  int n = 0;
  for (const auto& r : roles) n += r.command.empty() ? 0 : r.replicas;
  return n;
}

int JobSpec::offset_of(const std::string& role) const {
  int n = 0;
  for (const auto& r : roles) {
    if (r.name == role) return n;
    n += r.command.empty() ? 0 : r.replicas;
  }
  return -1;
}

const Role* JobSpec::find(const std::string& role) const {
  for (const auto& r : roles) {
    if (r.name == role) return &r;
  }
  return nullptr;
}

namespace {

const Kind& read_kind(const Reader& r, const YAML::Node& doc) {
  std::string name = doc["kind"] ? r.string(doc["kind"], "kind") : "";
  for (const auto& kind : kKinds) {
    if (kind.name == name) return kind;
  }
  r.fail("kind", "'" + name + "' is not a job kind (expected PyTorchJob, TFJob or MPIJob)");
}

// metadata.name, or a top-level name, which wins; "cohort-job" without either.
std::string read_name(const Reader& r, const YAML::Node& doc) {
  std::string name;
  if (doc["metadata"]) name = r.metadata_name(doc["metadata"], "metadata");
  if (doc["name"]) name = r.string(doc["name"], "name");
  if (name.empty()) name = "cohort-job";
  r.check_object_name(name, "metadata.name", "a job's");
  return name;
}

void read_run_policy(const Reader& r, const YAML::Node& run, JobSpec& spec) {
  r.only(run, "spec.runPolicy", {"backoffLimit", "activeDeadlineSeconds", "cleanPodPolicy", "ttlSecondsAfterFinished"});
  if (run["backoffLimit"]) {
    spec.backoff_limit = bounded(r, run["backoffLimit"], "spec.runPolicy.backoffLimit", 0, kMostRestarts);
  }
  if (run["activeDeadlineSeconds"]) {
    const std::string path = "spec.runPolicy.activeDeadlineSeconds";
    const double seconds = r.number(run["activeDeadlineSeconds"], path);
    if (seconds <= 0) r.fail(path, "must be positive");
    if (seconds > kLongestDeadline) {
      r.fail(path, "must be at most " + std::to_string(static_cast<long long>(kLongestDeadline)) + " (100 years)");
    }
    spec.active_deadline_seconds = seconds;
  }
}

void read_success_policy(const Reader& r, const YAML::Node& n, JobSpec& spec) {
  std::string policy = r.string(n, "spec.successPolicy");
  if (spec.kind != JobKind::tensorflow) r.fail("spec.successPolicy", "only TFJob has a success policy");
  if (policy == "AllWorkers") spec.all_workers_succeed = true;
  else if (!policy.empty()) r.fail("spec.successPolicy", "'" + policy + "' (expected AllWorkers or \"\")");
}

RestartPolicy read_restart_policy(const Reader& r, const YAML::Node& n, const std::string& path) {
  std::string p = r.string(n, path);
  if (p == "Always" || p == "OnFailure") return RestartPolicy::on_failure;
  if (p == "Never") return RestartPolicy::never;
  if (p == "ExitCode") return RestartPolicy::exit_code;
  r.fail(path, "'" + p + "' (expected Always, OnFailure, Never or ExitCode)");
}

// One role's replica spec, written as `written` under `path`.
Role read_role(const Reader& r, const YAML::Node& n, const std::string& path, const std::string& written, JobKind kind) {
  r.only(n, path, {"replicas", "restartPolicy", "resources", "command", "args", "template"});
  Role role;
  role.name = lower(written);
  // Checked before it is narrowed: 4294967298 replicas are not 2.
  const long long count = n["replicas"] ? r.integer(n["replicas"], path + ".replicas") : 1;
  if (count < 1) r.fail(path + ".replicas", "must be at least 1 (got " + std::to_string(count) + ")");
  if (count > kMostReplicas) {
    r.fail(path + ".replicas", "must be at most " + std::to_string(kMostReplicas) + " (got " + std::to_string(count) + ")");
  }
  role.replicas = static_cast<int>(count);
  if (n["restartPolicy"]) role.restart_policy = read_restart_policy(r, n["restartPolicy"], path + ".restartPolicy");
  if (n["template"]) read_template(r, n["template"], path + ".template", role);
  if (n["resources"]) role.resources = read_resources(r, n["resources"], path + ".resources");
  if (n["command"]) role.command = r.strings(n["command"], path + ".command");
  if (n["args"] && !n["command"]) {
    r.fail(path + ".command", "missing: args without command would run '" + r.strings(n["args"], path + ".args").at(0) +
                                  "' as the program; give command before args");
  }
  if (n["args"]) {
    auto args = r.strings(n["args"], path + ".args");
    role.command.insert(role.command.end(), args.begin(), args.end());
  }
  bool mpi_worker = kind == JobKind::mpi && role.name == "worker";
  // The MPI Operator's workers run sshd so that the launcher's mpirun can reach them; here
  // mpirun starts them through Slurm, so there is no daemon to run.
  if (mpi_worker && !role.command.empty() && std::filesystem::path(role.command[0]).filename() == "sshd") role.command.clear();
  if (role.command.empty() && !mpi_worker) {
    r.fail(path, "no command: Kubernetes would run the image's ENTRYPOINT, and cohort runs no images; give the "
                 "container a command (the program that ENTRYPOINT runs, e.g. [python3, /opt/mnist/mnist.py])");
  }
  if (!role.command.empty() && mpi_worker) {
    r.fail(path + ".command", "an MPIJob's workers are started by the launcher's mpirun; give the command to the Launcher "
                              "(a worker may run only sshd, as the MPI Operator's do)");
  }
  if (role.resources.nodes > role.replicas && !mpi_worker) {
    r.fail(path + ".resources.nodes", std::to_string(role.resources.nodes) + " nodes for " +
                                          std::to_string(role.replicas) + " replicas would leave nodes empty");
  }
  if ((role.name == "master" || role.name == "chief" || role.name == "launcher") && role.replicas != 1) {
    r.fail(path + ".replicas", "a " + written + " has exactly 1 replica");
  }
  return role;
}

using Roles = std::map<std::string, Role>;

// The roles of the replica specs under `key`, each a role of the job's kind and given once.
Roles read_roles(const Reader& r, const YAML::Node& replicas, const std::string& key, const Kind& kind) {
  Roles found;
  for (const auto& kv : replicas) {
    std::string written = kv.first.as<std::string>();
    std::string name = lower(written);
    std::string path = "spec." + key + "." + written;
    if (std::find(kind.roles.begin(), kind.roles.end(), name) == kind.roles.end()) {
      r.fail(path, "not a role of a " + kind.name + " (expected " + join(kind.roles, ", ") + ")");
    }
    if (found.count(name)) r.fail(path, "role given twice");
    found[name] = read_role(r, kv.second, path, written, kind.kind);
  }
  return found;
}

// The roles each kind needs to run, and to end well.
void check_roles(const Reader& r, const Roles& found, const JobSpec& spec, const std::string& key) {
  if (spec.kind == JobKind::mpi && (!found.count("launcher") || !found.count("worker"))) {
    r.fail("spec." + key, "an MPIJob needs a Launcher and Workers");
  }
  if (spec.kind == JobKind::pytorch && !found.count("master") && !found.count("worker")) {
    r.fail("spec." + key, "a PyTorchJob needs a Master or Workers");
  }
  // Success is the Chief's, else the Workers': without either the job could never end well.
  if (spec.kind == JobKind::tensorflow && !found.count("chief") && !found.count("worker")) {
    r.fail("spec." + key, "a TFJob needs a Chief or Workers");
  }
  if (spec.kind == JobKind::tensorflow && spec.all_workers_succeed && !found.count("worker")) {
    r.fail("spec.successPolicy", "AllWorkers needs a Worker role");
  }
}

// nprocPerNode as Kubeflow writes it: a count, or "cpu", "gpu" or "auto", which torchrun
// would count on the whole machine. A replica on Slurm has only the CPUs and GPUs it was
// allocated, so the names are resolved against its resources: "auto" is its GPUs when it
// has any, else its CPUs. Every replica runs the same count, as torchrun's rendezvous needs.
int read_nproc(const Reader& r, const YAML::Node& n, const std::string& path, const std::vector<Role>& roles) {
  const std::string text = r.string(n, path);
  if (text != "cpu" && text != "gpu" && text != "auto") {
    const auto count = yaml::whole_number(text, 1, 1024, [&](const std::string& why) {
      r.fail(path, why + "; give the processes each replica's torchrun starts, or cpu, gpu or auto for as many as "
                         "the replica has CPUs or GPUs");
    });
    return static_cast<int>(*count);
  }
  std::optional<int> resolved;
  for (const auto& role : roles) {
    const RoleResources& res = role.resources;
    const int here = text == "cpu" ? res.cpus : text == "gpu" || res.gpus > 0 ? res.gpus : res.cpus;
    if (here == 0) {
      r.fail(path, "gpu: the " + role.name + " asks for no GPUs; give its container an nvidia.com/gpu limit, or "
                   "nprocPerNode a number");
    }
    if (resolved && *resolved != here) {
      r.fail(path, text + " gives the roles different counts (" + std::to_string(*resolved) + " and " +
                       std::to_string(here) + "): give their replicas the same resources, or nprocPerNode a number");
    }
    resolved = here;
  }
  return resolved.value_or(1);
}

// rdzvConf: [{key: timeout, value: "900"}, ...] as torchrun's "timeout=900,...".
std::string read_rdzv_conf(const Reader& r, const YAML::Node& n, const std::string& path) {
  if (!n.IsSequence()) r.fail(path, "must be a list of {key, value}");
  std::string conf;
  for (size_t i = 0; i < n.size(); ++i) {
    const std::string at = Reader::at(path, i);
    r.only(n[i], at, {"key", "value"});
    if (!n[i]["key"] || !n[i]["value"]) r.fail(at, "needs key and value");
    conf += (conf.empty() ? "" : ",") + r.string(n[i]["key"], at + ".key") + "=" + r.string(n[i]["value"], at + ".value");
  }
  return conf;
}

// What Slurm cannot give an elastic job, each named with what to write instead.
void refuse_elastic_fields(const Reader& r, const YAML::Node& n) {
  const std::string path = "spec.elasticPolicy";
  if (n["rdzvBackend"]) {
    const std::string backend = r.string(n["rdzvBackend"], path + ".rdzvBackend");
    if (backend == "etcd" || backend == "etcd-v2") {
      r.fail(path + ".rdzvBackend", "'" + backend + "': there is no etcd server on a Slurm cluster; use c10d, whose "
                                    "store torchrun keeps on the job's first node");
    }
    if (backend != "c10d") r.fail(path + ".rdzvBackend", "'" + backend + "' (expected c10d)");
  }
  if (n["rdzvHost"]) {
    r.fail(path + ".rdzvHost", "the rendezvous is on the first node Slurm grants the job, which is only known when it "
                               "starts; leave rdzvHost out");
  }
  if (n["standalone"] && n["standalone"].as<std::string>() != "false") {
    r.fail(path + ".standalone", "a standalone rendezvous holds one node alone; leave standalone out");
  }
}

// Kubeflow's elasticPolicy: minReplicas and maxReplicas default to the Workers' replicas, as
// the Training Operator's defaults do. The Workers are the whole job, a node each.
ElasticPolicy read_elastic(const Reader& r, const YAML::Node& n, JobSpec& spec) {
  const std::string path = "spec.elasticPolicy";
  r.only(n, path, {"minReplicas", "maxReplicas", "rdzvBackend", "rdzvHost", "rdzvPort", "rdzvId", "rdzvConf",
                   "standalone", "nProcPerNode", "maxRestarts", "metrics"});
  refuse_elastic_fields(r, n);
  if (spec.find("master")) {
    r.fail(path, "an elastic job is all Workers, meeting on the first node Slurm grants; drop the Master role");
  }
  const Role& worker = *spec.find("worker");
  if (worker.resources.nodes != 1) {
    r.fail(path, "an elastic job's Workers take a node each, minReplicas..maxReplicas of them; leave the Worker's "
                 "resources.nodes out");
  }
  if (n["metrics"]) {
    // Kubeflow's own elastic example gives them: left aside with a note, not refused.
    spec.notes.push_back(path + ".metrics: left aside: they drive a HorizontalPodAutoscaler, which resizes a running "
                                "job, and Slurm grants a job its nodes once, between minReplicas and maxReplicas");
  }
  ElasticPolicy policy;
  policy.min_nodes = n["minReplicas"] ? bounded(r, n["minReplicas"], path + ".minReplicas", 1, kMostReplicas) : worker.replicas;
  policy.max_nodes = n["maxReplicas"] ? bounded(r, n["maxReplicas"], path + ".maxReplicas", 1, kMostReplicas) : worker.replicas;
  if (policy.min_nodes > policy.max_nodes) {
    r.fail(path + ".minReplicas", "minReplicas (" + std::to_string(policy.min_nodes) + ") is greater than maxReplicas (" +
                                      std::to_string(policy.max_nodes) + ")");
  }
  if (worker.replicas < policy.min_nodes || worker.replicas > policy.max_nodes) {
    r.fail("spec.pytorchReplicaSpecs.Worker.replicas",
           std::to_string(worker.replicas) + " is outside minReplicas..maxReplicas (" + std::to_string(policy.min_nodes) +
               ".." + std::to_string(policy.max_nodes) + ")");
  }
  if (n["rdzvPort"]) policy.rdzv_port = bounded(r, n["rdzvPort"], path + ".rdzvPort", 1, 65535);
  if (n["rdzvId"]) policy.rdzv_id = r.string(n["rdzvId"], path + ".rdzvId");
  if (n["rdzvConf"]) policy.rdzv_conf = read_rdzv_conf(r, n["rdzvConf"], path + ".rdzvConf");
  if (n["maxRestarts"]) policy.max_restarts = bounded(r, n["maxRestarts"], path + ".maxRestarts", 0, kMostRestarts);
  if (n["nProcPerNode"]) {
    // The Training Operator's older spelling of spec.nprocPerNode.
    if (spec.nproc_per_node) {
      r.fail(path + ".nProcPerNode", "give the count once, as spec.nprocPerNode (nProcPerNode is its older spelling)");
    }
    spec.nproc_per_node = bounded(r, n["nProcPerNode"], path + ".nProcPerNode", 1, 1024);
  }
  return policy;
}

// PyTorchJob's torchrun fields: processes per replica, and elastic rendezvous.
void read_torchrun(const Reader& r, const YAML::Node& body, JobSpec& spec) {
  for (const char* field : {"nprocPerNode", "elasticPolicy"}) {
    if (body[field] && spec.kind != JobKind::pytorch) {
      r.fail(std::string("spec.") + field, "only a PyTorchJob's replicas run torchrun; leave it out");
    }
  }
  if (body["nprocPerNode"]) spec.nproc_per_node = read_nproc(r, body["nprocPerNode"], "spec.nprocPerNode", spec.roles);
  if (body["elasticPolicy"]) {
    if (!spec.find("worker")) r.fail("spec.elasticPolicy", "an elastic job needs Workers");
    spec.elastic = read_elastic(r, body["elasticPolicy"], spec);
  }
}

// Kubeflow sets no limit of its own: a role that restarts on failure is restarted by its
// pod for ever. On Slurm that would hold the allocation in a crash loop, so a job that
// restarts at all gets Kubernetes' own default for a Job, 6.
int default_backoff_limit(const JobSpec& spec) {
  constexpr int kKubernetesJobBackoffLimit = 6;
  for (const auto& role : spec.roles) {
    if (role.restart_policy && *role.restart_policy != RestartPolicy::never) return kKubernetesJobBackoffLimit;
  }
  return 0;
}

JobSpec read_job_spec(const Reader& r, const YAML::Node& doc) {
  if (!doc.IsMap()) r.fail("", "must be a mapping with kind and spec");
  r.only(doc, "", {"apiVersion", "kind", "metadata", "name", "spec"});
  const Kind& kind = read_kind(r, doc);
  JobSpec spec;
  spec.kind = kind.kind;
  spec.name = read_name(r, doc);

  const YAML::Node body = doc["spec"];
  if (!body) r.fail("spec", "missing: it holds the replica specs");
  // sshAuthMountPath says where the MPI Operator mounts the workers' ssh keys; mpirun reaches
  // the workers through Slurm here, so it has nothing to say.
  r.only(body, "spec", {kind.replica_key, "replicaSpecs", "runPolicy", "successPolicy", "slotsPerWorker", "sshAuthMountPath",
                        "elasticPolicy", "nprocPerNode"});
  if (body["sshAuthMountPath"]) r.string(body["sshAuthMountPath"], "spec.sshAuthMountPath");
  if (body["runPolicy"]) read_run_policy(r, body["runPolicy"], spec);
  if (body["successPolicy"]) read_success_policy(r, body["successPolicy"], spec);
  const std::string key = body[kind.replica_key] ? kind.replica_key : "replicaSpecs";
  const YAML::Node replicas = body[key];
  if (!replicas || !replicas.IsMap() || replicas.size() == 0) {
    r.fail("spec." + kind.replica_key, "missing or empty: list the roles");
  }
  const Roles found = read_roles(r, replicas, key, kind);
  for (const auto& name : kind.roles) {
    if (found.count(name)) spec.roles.push_back(found.at(name));
  }
  check_roles(r, found, spec, key);
  read_torchrun(r, body, spec);
  if (!body["runPolicy"] || !body["runPolicy"]["backoffLimit"]) spec.backoff_limit = default_backoff_limit(spec);
  return spec;
}

}  // namespace

JobSpec parse_job_spec(const std::string& text, const std::string& source) {
  return yaml::read_document(text, source, read_job_spec);
}

JobSpec load_job_spec(const std::string& path) { return parse_job_spec(yaml::read_spec_file(path, "the job spec"), path); }

namespace {

// A replica's memory (Slurm syntax, "8G") shared out over its CPUs: Slurm has no
// per-task request, and --mem-per-cpu is what --cpus-per-task multiplies back.
std::string memory_per_cpu(const std::string& memory, int cpus) {
  const char unit = memory.back();
  const unsigned long long value = std::stoull(memory.substr(0, memory.size() - 1));
  const unsigned long long mib = unit == 'K' ? (value + 1023) / 1024
                                 : unit == 'M' ? value
                                 : unit == 'G' ? value << 10
                                               : value << 20;
  const unsigned long long per_cpu = (mib + static_cast<unsigned long long>(cpus) - 1) / static_cast<unsigned long long>(cpus);
  return per_cpu % 1024 == 0 ? std::to_string(per_cpu / 1024) + "G" : std::to_string(per_cpu) + "M";
}

void component(std::ostringstream& out, const Role& role, int tasks) {
  out << "#SBATCH --nodes=" << role.resources.nodes << " --ntasks=" << tasks;
  out << " --cpus-per-task=" << role.resources.cpus;
  if (role.resources.gpus) out << " --gpus-per-task=" << role.resources.gpus;
  if (!role.resources.memory.empty()) out << " --mem-per-cpu=" << memory_per_cpu(role.resources.memory, role.resources.cpus);
  out << "  # " << role.name << "\n";
}

// An elastic job's Workers: a node each, as many nodes as Slurm grants between min and max.
void elastic_component(std::ostringstream& out, const JobSpec& spec) {
  const Role& worker = *spec.find("worker");
  const ElasticPolicy& e = *spec.elastic;
  out << "#SBATCH --nodes=" << e.min_nodes;
  // Given a range, Slurm grants the fewest nodes the tasks fit on: a task for each of
  // maxReplicas, spread (--spread-job), has it grant as many nodes as it can without
  // delaying the start. cohort launch runs one Worker on each node granted.
  if (e.max_nodes > e.min_nodes) out << "-" << e.max_nodes << " --ntasks=" << e.max_nodes << " --spread-job";
  else out << " --ntasks-per-node=1";
  out << " --cpus-per-task=" << worker.resources.cpus;
  if (worker.resources.gpus) out << " --gpus-per-task=" << worker.resources.gpus;
  if (!worker.resources.memory.empty()) {
    out << " --mem-per-cpu=" << memory_per_cpu(worker.resources.memory, worker.resources.cpus);
  }
  out << "  # worker, elastic: " << e.min_nodes << ".." << e.max_nodes << " nodes\n";
  // A node Slurm loses ends the job's step, not the job: it goes on with the nodes left.
  out << "#SBATCH --no-kill\n";
}

}  // namespace

bool packable(const JobSpec& spec) {
  if (spec.kind == JobKind::mpi || spec.roles.empty() || spec.elastic) return false;
  const RoleResources& first = spec.roles.front().resources;
  return std::ranges::all_of(spec.roles, [&](const Role& role) {
    const RoleResources& r = role.resources;
    return r.nodes == 1 && r.cpus == first.cpus && r.gpus == first.gpus && r.memory == first.memory;
  });
}

// Long: the three forms of script (MPIJob, packed, heterogeneous) side by side.
std::string emit_sbatch(const JobSpec& spec, const std::string& spec_path, const std::string& cohort_path, bool packed) {
  std::ostringstream out;
  out << "#!/bin/bash\n#SBATCH --job-name=" << spec.name << "\n";
  if (spec.active_deadline_seconds) {
    // Whole minutes, rounded up: a deadline of a fraction of a minute is one minute, never
    // --time=0, which Slurm reads as no limit at all.
    const auto minutes = static_cast<long long>(std::ceil(*spec.active_deadline_seconds / 60));
    out << "#SBATCH --time=" << minutes << "\n";
  }
  if (spec.kind == JobKind::mpi) {
    // The launcher's mpirun starts the workers inside this one allocation.
    component(out, *spec.find("worker"), spec.find("worker")->replicas);
  } else if (spec.elastic) {
    elastic_component(out, spec);
  } else if (packed) {
    const Role& shape = spec.roles.front();
    out << "#SBATCH --ntasks=" << spec.world_size() << " --cpus-per-task=" << shape.resources.cpus;
    if (shape.resources.gpus) out << " --gpus-per-task=" << shape.resources.gpus;
    if (!shape.resources.memory.empty()) {
      out << " --mem-per-cpu=" << memory_per_cpu(shape.resources.memory, shape.resources.cpus);
    }
    std::string roles;
    for (const auto& role : spec.roles) roles += (roles.empty() ? "" : ", ") + role.name + " " + std::to_string(role.replicas);
    out << "  # " << roles << "\n";
  } else {
    bool first = true;
    for (const auto& role : spec.roles) {
      if (!first) out << "#SBATCH hetjob\n";
      first = false;
      component(out, role, role.replicas);
    }
  }
  if (spec.elastic) {
    out << "\n# Slurm grants between minReplicas and maxReplicas nodes, a Worker on each; cohort launch\n"
           "# runs them as one gang, and their torchrun meets in a c10d rendezvous on the first node.\n";
  } else if (spec.kind == JobKind::mpi) {
    out << "\n# The workers' allocation: cohort launch runs the launcher here, and its mpirun\n"
           "# starts the workers on these nodes.\n";
  } else if (packed) {
    out << "\n# Every role in this one allocation, a task per replica in rank order; cohort launch\n"
           "# gives each task its role and supervises them as one gang.\n";
  } else {
    out << "\n# One component per role; cohort launch starts every role in its component and\n"
           "# supervises them as one gang.\n";
  }
  out << "exec " << shell_quote(cohort_path) << " launch --spec " << shell_quote(spec_path) << "\n";
  return out.str();
}

int nodes_needed(const JobSpec& spec) {
  if (spec.elastic) return spec.elastic->min_nodes;
  if (spec.kind == JobKind::mpi) return spec.find("worker")->resources.nodes;
  int nodes = 0;
  for (const auto& role : spec.roles) nodes += role.resources.nodes;
  return nodes;
}

std::optional<std::string> why_it_cannot_start(const JobSpec& spec, int cluster_nodes) {
  const int needed = nodes_needed(spec);
  if (needed <= cluster_nodes || packable(spec)) return std::nullopt;
  if (spec.elastic) {
    return spec.name + " needs at least minReplicas (" + std::to_string(needed) + ") nodes, a Worker on each, and the "
           "cluster has " + std::to_string(cluster_nodes) + "; it would wait in the queue for ever. Lower minReplicas to " +
           std::to_string(cluster_nodes) + " or less";
  }
  std::string shares;
  for (const auto& role : spec.roles) {
    if (spec.kind == JobKind::mpi && role.name != "worker") continue;
    shares += (shares.empty() ? "" : ", ") + role.name + " " + std::to_string(role.resources.nodes);
  }
  return spec.name + " needs " + std::to_string(needed) + " nodes (" + shares +
         ": Slurm gives each role's component of a heterogeneous job nodes of its own) and the cluster has " +
         std::to_string(cluster_nodes) + "; it would wait in the queue for ever, and its roles cannot share one "
         "allocation (they ask for different CPUs, GPUs or memory, or a role for nodes of its own). Run it on a cluster "
         "with " + std::to_string(needed) + " nodes, give its roles the same resources, or give it fewer roles";
}

std::vector<std::pair<std::string, std::string>> torchrun_environment(const JobSpec& spec, int replicas,
                                                                       const std::string& master_addr, int master_port,
                                                                       const std::string& job_id) {
  std::vector<std::pair<std::string, std::string>> env;
  if (!spec.nproc_per_node && !spec.elastic) return env;
  if (spec.nproc_per_node) env.emplace_back("PET_NPROC_PER_NODE", std::to_string(*spec.nproc_per_node));
  if (!spec.elastic) {
    env.emplace_back("PET_NNODES", std::to_string(replicas));
    env.emplace_back("PET_MASTER_ADDR", master_addr);
    env.emplace_back("PET_MASTER_PORT", std::to_string(master_port));
    return env;
  }
  const ElasticPolicy& e = *spec.elastic;
  env.emplace_back("PET_NNODES", std::to_string(e.min_nodes) + ":" + std::to_string(e.max_nodes));
  env.emplace_back("PET_RDZV_BACKEND", "c10d");
  env.emplace_back("PET_RDZV_ENDPOINT", master_addr + ":" + std::to_string(e.rdzv_port.value_or(master_port)));
  env.emplace_back("PET_RDZV_ID", e.rdzv_id.empty() ? job_id : e.rdzv_id);
  if (!e.rdzv_conf.empty()) env.emplace_back("PET_RDZV_CONF", e.rdzv_conf);
  if (e.max_restarts) env.emplace_back("PET_MAX_RESTARTS", std::to_string(*e.max_restarts));
  return env;
}

std::string tf_config(const ClusterMap& cluster, const std::string& role, int index) {
  json::Value map = json::Value::object();
  for (const auto& [name, addresses] : cluster) {
    if (name == "evaluator") continue;
    json::Value list = json::Value::array();
    for (const auto& a : addresses) list.push(a);
    map.set(name, std::move(list));
  }
  json::Value task = json::Value::object();
  task.set("type", role);
  task.set("index", index);
  json::Value config = json::Value::object();
  config.set("cluster", std::move(map));
  config.set("task", std::move(task));
  config.set("environment", "cloud");
  return json::write(config);
}

}  // namespace cohort::launcher
