// Remote context (slurmstepd): user_init plans every local task of the step once per node;
// task_init, running in each task just before it execs, applies that task's share.
#include <slurm/slurm.h>  // the reserved step ids
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>

#include "common/error.hpp"
#include "launcher/hostlist.hpp"
#include "spank/context.hpp"

namespace cohort::spank::plugin {
namespace {

template <typename T>
T get_item(spank_t sp, spank_item_t item, const char* name) {
  T value{};
  if (!check(spank_get_item(sp, item, &value), std::string("spank_get_item(") + name + ")")) {
    throw Error(std::string("cannot read ") + name + " from Slurm");
  }
  return value;
}

// The batch script, the extern step and salloc's interactive step hold no ranks; placing
// them would bind the script and leak its variables into every later step.
bool rankless_step(std::uint32_t step) {
  return step == SLURM_BATCH_SCRIPT || step == SLURM_EXTERN_CONT || step == SLURM_INTERACTIVE_STEP;
}

std::string this_host() {
  char name[256] = {};
  if (gethostname(name, sizeof name - 1) != 0) return "this node";
  return name;
}

std::string first_of_step_nodes(spank_t sp) {
  for (const char* var : {"SLURM_STEP_NODELIST", "SLURM_JOB_NODELIST", "SLURM_NODELIST"}) {
    if (auto list = job_getenv(sp, var); list && !list->empty()) {
      auto hosts = launcher::expand_hostlist(*list);
      if (!hosts.empty()) return hosts.front();
    }
  }
  throw input_error("SLURM_STEP_NODELIST is not set in the step's environment: cannot name MASTER_ADDR");
}

// Reads what Slurm says about this step on this node, then plans it. Any failure is kept
// for task_init, so that each task fails with the reason instead of running unplaced.
void plan_node(spank_t sp, State& st) {
  const auto job = get_item<std::uint32_t>(sp, S_JOB_ID, "S_JOB_ID");
  const auto step = get_item<std::uint32_t>(sp, S_JOB_STEPID, "S_JOB_STEPID");
  st.view.local_tasks = static_cast<int>(get_item<std::uint32_t>(sp, S_JOB_LOCAL_TASK_COUNT, "S_JOB_LOCAL_TASK_COUNT"));
  // Without the step's cores a plan could hand out cores of other jobs: no cores, no plan.
  const char* cores = get_item<char*>(sp, S_STEP_ALLOC_CORES, "S_STEP_ALLOC_CORES");
  if (!cores || !*cores) throw Error("Slurm gave no S_STEP_ALLOC_CORES for this step");
  st.view.alloc_cores = cores;
  // The step's GPUs as slurmstepd's gres plugin sets them: it overwrites SLURM_STEP_GPUS for
  // a step with GPUs on this node and removes it for one without, whatever the job's
  // environment said. SLURM_JOB_GPUS is no such witness (a step without GPUs keeps
  // whatever value the user exported), so it is never read.
  if (auto gpus = job_getenv(sp, "SLURM_STEP_GPUS")) {
    st.view.gpus = *gpus;
  }
  st.view.cuda_visible_devices = job_getenv(sp, "CUDA_VISIBLE_DEVICES").value_or("");
  st.view.rocr_visible_devices = job_getenv(sp, "ROCR_VISIBLE_DEVICES").value_or("");

  launcher::Contract& c = st.step_contract;
  c.world_size = static_cast<int>(get_item<std::uint32_t>(sp, S_JOB_TOTAL_TASK_COUNT, "S_JOB_TOTAL_TASK_COUNT"));
  c.local_world_size = st.view.local_tasks;
  c.group_rank = static_cast<int>(get_item<std::uint32_t>(sp, S_JOB_NODEID, "S_JOB_NODEID"));
  c.restart_count = static_cast<int>(get_item<std::uint32_t>(sp, S_SLURM_RESTART_COUNT, "S_SLURM_RESTART_COUNT"));
  c.master_addr = first_of_step_nodes(sp);
  c.master_port = launcher::derive_master_port(job, step, st.args.port_base, st.args.port_range);

  const auto start = std::chrono::steady_clock::now();
  st.node = st.args.topology_file.empty() ? topology::Node::from_this_machine()
                                          : topology::Node::from_xml_file(st.args.topology_file);
  st.plan = plan_step(*st.node, st.settings, st.view);
  if (gpus_unlocated(*st.node, st.view)) {
    log_user(st.host + ": SLURM_STEP_GPUS " + st.view.gpus + ": the topology (" + st.node->source() +
             ") shows no GPUs, so they are given to the tasks in Slurm's order, without locality");
  }
  const auto planned = std::chrono::steady_clock::now();
  st.machine = topology::Machine::load();
  if (st.settings.verbose.value_or(false)) {
    const double ms = std::chrono::duration<double, std::milli>(planned - start).count();
    char took[32];
    std::snprintf(took, sizeof took, "%.1f", ms);
    log_user(st.host + ": step " + std::to_string(job) + "." + std::to_string(step) + ": planned " +
             std::to_string(st.plan.size()) + " tasks in " + took + " ms (topology: " + st.node->source() + ")");
  }
}

std::string applied_or_why(bool applied, const std::string& note) { return applied ? "applied" : "skipped, " + note; }

}  // namespace

int remote_init_post_opt(spank_t sp) {
  State& st = state();
  auto lookup = [sp](const std::string& name) { return job_getenv(sp, name); };
  // A bad value that reached the step without passing srun's checks (a COHORT_* variable
  // given only through --export) must fail the tasks, with the reason. Failing here
  // instead would make srun print "Plugin initialization failed" and still exit 0.
  try {
    st.settings = merge_settings(lookup, st.option);
    st.enabled = placement_enabled(st.settings, st.args);
  } catch (const std::exception& e) {
    st.enabled = true;
    st.plan_error = e.what();
  }
  return 0;
}

int remote_user_init(spank_t sp) {
  State& st = state();
  if (!st.enabled) return 0;
  if (rankless_step(get_item<std::uint32_t>(sp, S_JOB_STEPID, "S_JOB_STEPID"))) return 0;
  st.active = true;
  st.host = this_host();
  if (!st.plan_error.empty()) return 0;  // the settings were refused: the tasks say why
  try {
    plan_node(sp, st);
  } catch (const std::exception& e) {
    st.plan_error = e.what();
  }
  return 0;
}

int remote_task_init(spank_t sp) {
  State& st = state();
  if (!st.active) return 0;
  const int task = get_item<int>(sp, S_TASK_ID, "S_TASK_ID");
  const auto rank = get_item<std::uint32_t>(sp, S_TASK_GLOBAL_ID, "S_TASK_GLOBAL_ID");
  const std::string who = st.host + " task " + std::to_string(task) + " (rank " + std::to_string(rank) + ")";
  if (!st.plan_error.empty()) {
    log_error(who + ": not started, placement failed: " + st.plan_error);
    return -1;
  }
  if (task < 0 || task >= static_cast<int>(st.plan.size())) {
    log_error(who + ": not started, the plan has " + std::to_string(st.plan.size()) + " tasks");
    return -1;
  }
  const topology::RankPlacement& placement = st.plan[static_cast<size_t>(task)];
  launcher::Contract contract = st.step_contract;
  contract.rank = static_cast<int>(rank);
  contract.local_rank = task;
  for (const auto& [name, value] : task_environment(*st.node, placement, contract, st.view)) {
    if (!check(spank_setenv(sp, name.c_str(), value.c_str(), 1), "spank_setenv(" + name + ")")) return -1;
  }
  topology::Binding bound;
  try {
    bound = st.machine->bind_self(placement.cpus, placement.numa);
  } catch (const std::exception& e) {
    log_error(who + ": not started: " + e.what());
    return -1;
  }
  if (st.settings.verbose.value_or(false)) {
    log_user(who + ": " + describe(placement) + "; CPU binding: " + applied_or_why(bound.cpu_applied, bound.cpu_note) +
             "; memory binding: " + applied_or_why(bound.memory_applied, bound.memory_note));
  }
  return 0;
}

}  // namespace cohort::spank::plugin
