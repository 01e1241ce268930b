#include "launcher/job_spec.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <set>
#include <sstream>

#include "common/error.hpp"
#include "common/fd.hpp"
#include "common/json.hpp"
#include "common/process.hpp"
#include "common/text.hpp"
#include "common/yaml_reader.hpp"

namespace cohort::launcher {
namespace {

using Reader = yaml::Reader;

const std::map<JobKind, std::vector<std::string>> kRoleOrder{
    {JobKind::pytorch, {"master", "worker"}},
    {JobKind::tensorflow, {"chief", "ps", "worker", "evaluator"}},
    {JobKind::mpi, {"launcher", "worker"}},
};

std::string memory_value(const Reader& r, const YAML::Node& n, const std::string& path) {
  const std::string text = r.string(n, path);
  // Kubernetes quantities (8Gi) and Slurm's (8G) both mean binary units here: 1 to 12
  // digits, then K, M, G or T (M when none), then an optional 'i' after the unit.
  size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  std::string_view rest = std::string_view(text).substr(digits);
  char unit = 'M';
  if (!rest.empty() && std::string_view("KMGT").find(rest[0]) != std::string_view::npos) {
    unit = rest[0];
    rest.remove_prefix(1);
    if (rest == "i") rest = {};
  }
  if (digits == 0 || digits > 12 || !rest.empty()) {
    r.fail(path, "'" + (text.size() > 64 ? text.substr(0, 64) + "..." : text) + "' is not a memory size (e.g. 512M, 8G, 8Gi)");
  }
  return text.substr(0, digits) + unit;
}

// A whole number in low..high; checked before it is narrowed, so 2^32 + 1 is not 1.
int bounded(const Reader& r, const YAML::Node& n, const std::string& path, long long low, long long high) {
  return static_cast<int>(r.integer(n, path, low, high));
}

constexpr int kMostReplicas = 100000;
constexpr int kMostRestarts = 10000;
// A century: beyond any real job, and well inside the minutes Slurm's --time holds.
constexpr double kLongestDeadline = 100 * 365 * 24 * 3600.0;

int cpus_of(const Reader& r, const YAML::Node& n, const std::string& path) { return bounded(r, n, path, 1, 4096); }
int gpus_of(const Reader& r, const YAML::Node& n, const std::string& path) { return bounded(r, n, path, 0, 64); }

RoleResources read_resources(const Reader& r, const YAML::Node& n, const std::string& path) {
  RoleResources res;
  r.only(n, path, {"nodes", "gpus", "cpus", "memory"});
  if (n["nodes"]) res.nodes = bounded(r, n["nodes"], path + ".nodes", 1, 100000);
  if (n["gpus"]) res.gpus = gpus_of(r, n["gpus"], path + ".gpus");
  if (n["cpus"]) res.cpus = cpus_of(r, n["cpus"], path + ".cpus");
  if (n["memory"]) res.memory = memory_value(r, n["memory"], path + ".memory");
  return res;
}

// Kubeflow's pod template: the first container's command + args and resource limits.
void read_template(const Reader& r, const YAML::Node& tmpl, const std::string& path, Role& role) {
  r.only(tmpl, path, {"spec", "metadata"});
  const auto& spec = tmpl["spec"];
  if (!spec) r.fail(path, "needs spec.containers");
  const auto& containers = spec["containers"];
  if (!containers || !containers.IsSequence() || containers.size() == 0) {
    r.fail(path + ".spec.containers", "must list at least one container");
  }
  const auto& c = containers[0];
  std::string cpath = path + ".spec.containers[0]";
  if (c["command"]) role.command = r.strings(c["command"], cpath + ".command");
  if (c["args"]) {
    auto args = r.strings(c["args"], cpath + ".args");
    role.command.insert(role.command.end(), args.begin(), args.end());
  }
  if (const auto& limits = c["resources"]["limits"]) {
    for (const auto& kv : limits) {
      auto key = kv.first.as<std::string>();
      std::string kpath = cpath + ".resources.limits." + key;
      if (key == "cpu") role.resources.cpus = cpus_of(r, kv.second, kpath);
      else if (key == "memory") role.resources.memory = memory_value(r, kv.second, kpath);
      else if (key.find("gpu") != std::string::npos) role.resources.gpus = gpus_of(r, kv.second, kpath);
      else r.fail(kpath, "unknown resource (cohort understands cpu, memory and */gpu)");
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

JobSpec read_job_spec(const std::string& text, const std::string& source) {
  Reader r(source);
  YAML::Node doc = r.load(text);
  if (!doc.IsMap()) r.fail("", "must be a mapping with kind and spec");
  r.only(doc, "", {"apiVersion", "kind", "metadata", "name", "spec"});
  JobSpec spec;
  std::string kind = doc["kind"] ? r.string(doc["kind"], "kind") : "";
  if (kind == "PyTorchJob") spec.kind = JobKind::pytorch;
  else if (kind == "TFJob") spec.kind = JobKind::tensorflow;
  else if (kind == "MPIJob") spec.kind = JobKind::mpi;
  else r.fail("kind", "'" + kind + "' is not a job kind (expected PyTorchJob, TFJob or MPIJob)");
  if (doc["metadata"]) {
    r.only(doc["metadata"], "metadata", {"name", "namespace", "labels", "annotations"});
    if (doc["metadata"]["name"]) spec.name = r.string(doc["metadata"]["name"], "metadata.name");
  }
  if (doc["name"]) spec.name = r.string(doc["name"], "name");
  if (spec.name.empty()) spec.name = "cohort-job";
  if (spec.name.size() > 63) {
    r.fail("metadata.name", std::to_string(spec.name.size()) + " characters; a job's name has at most 63");
  }
  if (!is_object_name(spec.name)) {
    r.fail("metadata.name", "'" + spec.name + "' must be letters, digits, '.', '_' or '-', starting with a letter or digit");
  }

  const YAML::Node body = doc["spec"];
  if (!body) r.fail("spec", "missing: it holds the replica specs");
  const std::string replica_key = spec.kind == JobKind::pytorch ? "pytorchReplicaSpecs"
                                  : spec.kind == JobKind::tensorflow ? "tfReplicaSpecs"
                                                                     : "mpiReplicaSpecs";
  r.only(body, "spec", {replica_key, "replicaSpecs", "runPolicy", "successPolicy", "slotsPerWorker"});
  if (const auto& run = body["runPolicy"]) {
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
  if (body["successPolicy"]) {
    std::string policy = r.string(body["successPolicy"], "spec.successPolicy");
    if (spec.kind != JobKind::tensorflow) r.fail("spec.successPolicy", "only TFJob has a success policy");
    if (policy == "AllWorkers") spec.all_workers_succeed = true;
    else if (!policy.empty()) r.fail("spec.successPolicy", "'" + policy + "' (expected AllWorkers or \"\")");
  }
  std::string key = body[replica_key] ? replica_key : "replicaSpecs";
  const YAML::Node replicas = body[key];
  if (!replicas || !replicas.IsMap() || replicas.size() == 0) r.fail("spec." + replica_key, "missing or empty: list the roles");

  const auto& order = kRoleOrder.at(spec.kind);
  std::map<std::string, Role> found;
  for (const auto& kv : replicas) {
    std::string written = kv.first.as<std::string>();
    std::string name = lower(written);
    std::string path = "spec." + key + "." + written;
    if (std::find(order.begin(), order.end(), name) == order.end()) {
      std::string list;
      for (const auto& o : order) list += (list.empty() ? "" : ", ") + o;
      r.fail(path, "not a role of a " + kind + " (expected " + list + ")");
    }
    if (found.count(name)) r.fail(path, "role given twice");
    const YAML::Node& n = kv.second;
    r.only(n, path, {"replicas", "restartPolicy", "resources", "command", "args", "template"});
    Role role;
    role.name = name;
    // Checked before it is narrowed: 4294967298 replicas are not 2.
    const long long count = n["replicas"] ? r.integer(n["replicas"], path + ".replicas") : 1;
    if (count < 1) r.fail(path + ".replicas", "must be at least 1 (got " + std::to_string(count) + ")");
    if (count > kMostReplicas) {
      r.fail(path + ".replicas", "must be at most " + std::to_string(kMostReplicas) + " (got " + std::to_string(count) + ")");
    }
    role.replicas = static_cast<int>(count);
    if (n["restartPolicy"]) {
      std::string p = r.string(n["restartPolicy"], path + ".restartPolicy");
      if (p == "Always" || p == "OnFailure") role.restart_policy = RestartPolicy::on_failure;
      else if (p == "Never") role.restart_policy = RestartPolicy::never;
      else if (p == "ExitCode") role.restart_policy = RestartPolicy::exit_code;
      else r.fail(path + ".restartPolicy", "'" + p + "' (expected Always, OnFailure, Never or ExitCode)");
    }
    if (n["template"]) read_template(r, n["template"], path + ".template", role);
    if (n["resources"]) role.resources = read_resources(r, n["resources"], path + ".resources");
    if (n["command"]) role.command = r.strings(n["command"], path + ".command");
    if (n["args"]) {
      auto args = r.strings(n["args"], path + ".args");
      role.command.insert(role.command.end(), args.begin(), args.end());
    }
    bool mpi_worker = spec.kind == JobKind::mpi && name == "worker";
    if (role.command.empty() && !mpi_worker) r.fail(path, "no command: give command (and args) for this role");
    if (!role.command.empty() && mpi_worker) {
      r.fail(path + ".command", "an MPIJob's workers are started by the launcher's mpirun; give the command to the Launcher");
    }
    if (role.resources.nodes > role.replicas && !mpi_worker) {
      r.fail(path + ".resources.nodes", std::to_string(role.resources.nodes) + " nodes for " +
                                            std::to_string(role.replicas) + " replicas would leave nodes empty");
    }
    if ((name == "master" || name == "chief" || name == "launcher") && role.replicas != 1) {
      r.fail(path + ".replicas", "a " + written + " has exactly 1 replica");
    }
    found[name] = std::move(role);
  }
  for (const auto& name : order) {
    if (found.count(name)) spec.roles.push_back(std::move(found[name]));
  }
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
  return spec;
}

}  // namespace

JobSpec parse_job_spec(const std::string& text, const std::string& source) {
  return Reader(source).guarded([&] { return read_job_spec(text, source); });
}

JobSpec load_job_spec(const std::string& path) {
  const auto text = read_file(path);
  if (!text) throw input_error(path + ": cannot read the job spec (does it exist?)");
  return parse_job_spec(*text, path);
}

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

}  // namespace

std::string emit_sbatch(const JobSpec& spec, const std::string& spec_path, const std::string& cohort_path) {
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
  } else {
    bool first = true;
    for (const auto& role : spec.roles) {
      if (!first) out << "#SBATCH hetjob\n";
      first = false;
      component(out, role, role.replicas);
    }
  }
  if (spec.kind == JobKind::mpi) {
    out << "\n# The workers' allocation: cohort launch runs the launcher here, and its mpirun\n"
           "# starts the workers on these nodes.\n";
  } else {
    out << "\n# One component per role; cohort launch starts every role in its component and\n"
           "# supervises them as one gang.\n";
  }
  out << "exec " << shell_quote(cohort_path) << " launch --spec " << shell_quote(spec_path) << "\n";
  return out.str();
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
