#include "launcher/contract.hpp"

#include <charconv>
#include <limits>

#include "common/error.hpp"
#include "common/text.hpp"
#include "launcher/hostlist.hpp"

extern char** environ;

namespace cohort::launcher {
namespace {

const std::string* find(const Environment& env, const std::string& name) {
  auto it = env.find(name);
  return it == env.end() || it->second.empty() ? nullptr : &it->second;
}

long require_number(const Environment& env, const std::string& name) {
  const std::string* text = find(env, name);
  if (!text) throw input_error(name + " is not set: run the ranks under srun, or use 'cohort launch --local'");
  long value = 0;
  auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), value);
  if (ec != std::errc() || end != text->data() + text->size() || value < 0) {
    throw input_error(name + "='" + *text + "' is not a non-negative number");
  }
  return value;
}

// A number to_environment() wrote, or `fallback` when the variable is unset or empty.
int optional_number(const Environment& env, const std::string& name, int fallback) {
  const std::string* text = find(env, name);
  if (!text) return fallback;
  const auto value = parse_integer(*text, 0, std::numeric_limits<int>::max());
  if (!value) throw input_error(name + "='" + *text + "' is not a non-negative number");
  return static_cast<int>(*value);
}

std::string text_of(const Environment& env, const std::string& name) {
  const std::string* text = find(env, name);
  return text ? *text : std::string();
}

// The launcher's own names for the rendezvous it decided (see gang_environment).
constexpr const char* kGangMasterAddr = "COHORT_MASTER_ADDR";
constexpr const char* kGangMasterPort = "COHORT_MASTER_PORT";

}  // namespace

Environment Contract::to_environment() const {
  Environment env{
      {"RANK", std::to_string(rank)},
      {"WORLD_SIZE", std::to_string(world_size)},
      {"LOCAL_RANK", std::to_string(local_rank)},
      {"LOCAL_WORLD_SIZE", std::to_string(local_world_size)},
      {"GROUP_RANK", std::to_string(group_rank)},
      {"MASTER_ADDR", master_addr},
      {"MASTER_PORT", std::to_string(master_port)},
      {"TORCHELASTIC_RESTART_COUNT", std::to_string(restart_count)},
      {"COHORT_RESTART_COUNT", std::to_string(restart_count)},
  };
  if (!heartbeat_file.empty()) env["COHORT_HEARTBEAT_FILE"] = heartbeat_file;
  if (!checkpoint_request.empty()) env["COHORT_CHECKPOINT_REQUEST"] = checkpoint_request;
  return env;
}

Contract contract_from_environment(const Environment& env) {
  Contract c;
  c.rank = optional_number(env, "RANK", 0);
  c.world_size = optional_number(env, "WORLD_SIZE", 1);
  c.local_rank = optional_number(env, "LOCAL_RANK", c.rank);
  c.local_world_size = optional_number(env, "LOCAL_WORLD_SIZE", c.world_size);
  c.group_rank = optional_number(env, "GROUP_RANK", 0);
  c.master_addr = text_of(env, "MASTER_ADDR");
  c.master_port = optional_number(env, "MASTER_PORT", 0);
  c.restart_count = optional_number(env, "COHORT_RESTART_COUNT", 0);
  c.heartbeat_file = text_of(env, "COHORT_HEARTBEAT_FILE");
  c.checkpoint_request = text_of(env, "COHORT_CHECKPOINT_REQUEST");
  return c;
}

Environment gang_environment(const Contract& gang) {
  Environment env{{"COHORT_RESTART_COUNT", std::to_string(gang.restart_count)}};
  if (!gang.checkpoint_request.empty()) env["COHORT_CHECKPOINT_REQUEST"] = gang.checkpoint_request;
  if (!gang.master_addr.empty()) env[kGangMasterAddr] = gang.master_addr;
  if (gang.master_port != 0) env[kGangMasterPort] = std::to_string(gang.master_port);
  return env;
}

Contract contract_from_slurm_gang(const Environment& env) {
  Contract c = contract_from_slurm(env, text_of(env, kGangMasterAddr));
  c.restart_count = optional_number(env, "COHORT_RESTART_COUNT", 0);
  c.checkpoint_request = text_of(env, "COHORT_CHECKPOINT_REQUEST");
  if (const int port = optional_number(env, kGangMasterPort, 0)) c.master_port = port;
  return c;
}

int derive_master_port(long job_id, long step_id, int base, int range) {
  if (range <= 0 || base <= 0 || base + range > 65536) {
    throw input_error("port range " + std::to_string(base) + "+" + std::to_string(range) +
                      " does not fit in 1..65535");
  }
  // Consecutive steps of a job land on neighbouring ports; different jobs are spread
  // apart by a multiplier coprime to any range that is not a multiple of 7919.
  unsigned long long mix = static_cast<unsigned long long>(job_id) * 7919ULL + static_cast<unsigned long long>(step_id);
  return base + static_cast<int>(mix % static_cast<unsigned long long>(range));
}

Contract contract_from_slurm(const Environment& env, const std::optional<std::string>& master_addr) {
  Contract c;
  c.rank = static_cast<int>(require_number(env, "SLURM_PROCID"));
  c.world_size = static_cast<int>(require_number(env, find(env, "SLURM_STEP_NUM_TASKS") ? "SLURM_STEP_NUM_TASKS" : "SLURM_NTASKS"));
  c.local_rank = static_cast<int>(require_number(env, "SLURM_LOCALID"));
  c.group_rank = static_cast<int>(require_number(env, "SLURM_NODEID"));
  const char* per_node_name = find(env, "SLURM_STEP_TASKS_PER_NODE") ? "SLURM_STEP_TASKS_PER_NODE" : "SLURM_TASKS_PER_NODE";
  const std::string* per_node = find(env, per_node_name);
  if (!per_node) throw input_error(std::string(per_node_name) + " is not set: run the ranks under srun");
  auto counts = expand_tasks_per_node(*per_node);
  if (c.group_rank >= static_cast<int>(counts.size())) {
    throw input_error("SLURM_NODEID=" + std::to_string(c.group_rank) + " but " + per_node_name + "='" +
                      *per_node + "' lists " + std::to_string(counts.size()) + " nodes");
  }
  c.local_world_size = counts[static_cast<size_t>(c.group_rank)];
  if (c.rank >= c.world_size) {
    throw input_error("SLURM_PROCID=" + std::to_string(c.rank) + " is not below the task count " +
                      std::to_string(c.world_size));
  }
  if (master_addr && !master_addr->empty()) {
    c.master_addr = *master_addr;
  } else {
    const std::string* nodes = find(env, "SLURM_STEP_NODELIST");
    if (!nodes) nodes = find(env, "SLURM_JOB_NODELIST");
    if (!nodes) throw input_error("SLURM_STEP_NODELIST is not set: run the ranks under srun");
    auto hosts = expand_hostlist(*nodes);
    if (hosts.empty()) throw input_error("SLURM_STEP_NODELIST is empty");
    c.master_addr = hosts.front();
  }
  long job = require_number(env, "SLURM_JOB_ID");
  long step = find(env, "SLURM_STEP_ID") ? require_number(env, "SLURM_STEP_ID") : 0;
  c.master_port = derive_master_port(job, step);
  return c;
}

Environment current_environment() {
  Environment env;
  for (char** e = environ; e && *e; ++e) {
    std::string entry(*e);
    auto eq = entry.find('=');
    if (eq != std::string::npos) env[entry.substr(0, eq)] = entry.substr(eq + 1);
  }
  return env;
}

}  // namespace cohort::launcher
