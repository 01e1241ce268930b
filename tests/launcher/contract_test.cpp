#include "launcher/contract.hpp"

#include <gtest/gtest.h>

#include <tuple>

#include "common/error.hpp"
#include "launcher/supervisor.hpp"

namespace cohort::launcher {
namespace {

Environment slurm_task(int procid, int nodeid, int localid) {
  return {{"SLURM_PROCID", std::to_string(procid)},
          {"SLURM_NTASKS", "6"},
          {"SLURM_STEP_NUM_TASKS", "6"},
          {"SLURM_LOCALID", std::to_string(localid)},
          {"SLURM_NODEID", std::to_string(nodeid)},
          {"SLURM_STEP_TASKS_PER_NODE", "4,2"},
          {"SLURM_STEP_NODELIST", "gpu-[07-08]"},
          {"SLURM_JOB_ID", "4242"},
          {"SLURM_STEP_ID", "3"}};
}

// Job 4242, step 3: 29500 + (4242 × 7919 + 3) mod 2000, worked out by hand.
constexpr int kPortOfStep4242_3 = 29901;

// Roles packed into one step: each rank finds its role and command in the tables the
// supervisor hands every task.
TEST(PackedRoles, EachRankTakesTheRoleItsRankFallsInAndThatRolesCommand) {
  const Environment env{{"COHORT_LAUNCH_ROLES", "chief:0:1,ps:1:1,worker:2:2"},
                        {"COHORT_LAUNCH_COMMANDS", R"({"chief": ["python3", "a b.py"], "ps": ["ps"], "worker": ["w", "-x"]})"}};
  EXPECT_EQ(role_by_rank(env, 0).name, "chief");
  EXPECT_EQ(role_by_rank(env, 0).command, (std::vector<std::string>{"python3", "a b.py"}));
  EXPECT_EQ(role_by_rank(env, 1).name, "ps");
  EXPECT_EQ(role_by_rank(env, 3).name, "worker");
  EXPECT_EQ(role_by_rank(env, 3).command, (std::vector<std::string>{"w", "-x"}));
  EXPECT_THROW(role_by_rank(env, 4), Error);
  Environment no_command = env;
  no_command["COHORT_LAUNCH_COMMANDS"] = R"({"chief": ["a"]})";
  EXPECT_THROW(role_by_rank(no_command, 2), Error);
  Environment bad_table = env;
  bad_table["COHORT_LAUNCH_ROLES"] = "chief:zero:1";
  EXPECT_THROW(role_by_rank(bad_table, 0), Error);
}

TEST(Contract, FromSlurmUsesTorchrunNames) {
  Contract c = contract_from_slurm(slurm_task(5, 1, 1));
  EXPECT_EQ(c.rank, 5);
  EXPECT_EQ(c.world_size, 6);
  EXPECT_EQ(c.local_rank, 1);
  EXPECT_EQ(c.local_world_size, 2);  // the second node holds two tasks
  EXPECT_EQ(c.group_rank, 1);
  EXPECT_EQ(c.master_addr, "gpu-07");
  EXPECT_EQ(c.master_port, kPortOfStep4242_3);
  auto env = c.to_environment();
  EXPECT_EQ(env.at("RANK"), "5");
  EXPECT_EQ(env.at("WORLD_SIZE"), "6");
  EXPECT_EQ(env.at("LOCAL_RANK"), "1");
  EXPECT_EQ(env.at("LOCAL_WORLD_SIZE"), "2");
  EXPECT_EQ(env.at("GROUP_RANK"), "1");
  EXPECT_EQ(env.at("MASTER_ADDR"), "gpu-07");
  EXPECT_EQ(env.at("MASTER_PORT"), "29901");
  EXPECT_EQ(env.at("TORCHELASTIC_RESTART_COUNT"), "0");
  EXPECT_EQ(env.at("COHORT_RESTART_COUNT"), "0");
}

TEST(Contract, EveryTaskOfAStepAgreesOnTheRendezvous) {
  for (auto [procid, nodeid, localid] : {std::tuple{0, 0, 0}, std::tuple{3, 0, 3}, std::tuple{5, 1, 1}}) {
    Contract c = contract_from_slurm(slurm_task(procid, nodeid, localid));
    EXPECT_EQ(c.master_addr, "gpu-07") << "task " << procid;
    EXPECT_EQ(c.master_port, kPortOfStep4242_3) << "task " << procid;
  }
}

TEST(Contract, ALauncherResolvedAddressWins) {
  EXPECT_EQ(contract_from_slurm(slurm_task(0, 0, 0), std::string("10.0.0.7")).master_addr, "10.0.0.7");
}

TEST(Contract, MasterPortDiffersBetweenStepsAndStaysInRange) {
  EXPECT_EQ(derive_master_port(4242, 3), kPortOfStep4242_3);
  EXPECT_EQ(derive_master_port(4242, 4), kPortOfStep4242_3 + 1);  // the next step, the next port
  for (long job : {1L, 99999L, 123456789L}) {
    for (long step : {0L, 1L, 7L}) {
      int p = derive_master_port(job, step, 20000, 100);
      EXPECT_GE(p, 20000);
      EXPECT_LT(p, 20100);
    }
  }
  EXPECT_THROW(derive_master_port(1, 1, 65000, 1000), Error);
}

TEST(Contract, MissingSlurmVariablesAreNamed) {
  auto env = slurm_task(0, 0, 0);
  env.erase("SLURM_PROCID");
  try {
    contract_from_slurm(env);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("SLURM_PROCID"), std::string::npos);
  }
  env = slurm_task(0, 0, 0);
  env["SLURM_LOCALID"] = "x";
  EXPECT_THROW(contract_from_slurm(env), Error);
  env = slurm_task(0, 5, 0);  // a node the task counts do not list
  EXPECT_THROW(contract_from_slurm(env), Error);
}

TEST(Contract, RoundTripsThroughTheEnvironment) {
  Contract full;
  full.rank = 5;
  full.world_size = 8;
  full.local_rank = 1;
  full.local_world_size = 4;
  full.group_rank = 1;
  full.master_addr = "gpu-07";
  full.master_port = kPortOfStep4242_3;
  full.restart_count = 2;
  full.heartbeat_file = "/run/cohort/attempt-2/heartbeat-5";
  full.checkpoint_request = "/run/cohort/checkpoint-request";
  EXPECT_EQ(contract_from_environment(full.to_environment()), full);
  const Contract plain;  // no heartbeat, no checkpoint request: neither variable is written
  EXPECT_EQ(plain.to_environment().count("COHORT_HEARTBEAT_FILE"), 0u);
  EXPECT_EQ(contract_from_environment(plain.to_environment()), plain);
}

TEST(Contract, UnsetVariablesTakeTheDefaultsAndLocalOnesFollowTheGlobal) {
  Contract c = contract_from_environment({{"RANK", "3"}, {"WORLD_SIZE", "4"}, {"MASTER_ADDR", ""}});
  EXPECT_EQ(c.local_rank, 3);
  EXPECT_EQ(c.local_world_size, 4);
  EXPECT_EQ(c.group_rank, 0);
  EXPECT_EQ(c.master_addr, "");
  EXPECT_EQ(c.master_port, 0);
  EXPECT_EQ(contract_from_environment({}), Contract{});
}

TEST(Contract, AVariableThatIsNoNumberIsNamed) {
  for (const char* name : {"RANK", "WORLD_SIZE", "MASTER_PORT", "COHORT_RESTART_COUNT"}) {
    try {
      contract_from_environment({{name, "7x"}});
      ADD_FAILURE() << name << "=7x was accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::input);
      EXPECT_NE(std::string(e.what()).find(std::string(name) + "='7x'"), std::string::npos) << e.what();
    }
  }
}

TEST(Contract, ATaskOfALaunchedStepTakesItsPlaceFromSlurmAndTheRestFromTheLauncher) {
  Contract gang;
  gang.restart_count = 3;
  gang.checkpoint_request = "/shared/run/checkpoint-request";
  gang.master_addr = "10.0.0.7";
  Environment env = slurm_task(5, 1, 1);
  env.merge(gang_environment(gang));
  Contract c = contract_from_slurm_gang(env);
  EXPECT_EQ(c.rank, 5);
  EXPECT_EQ(c.local_world_size, 2);
  EXPECT_EQ(c.master_addr, "10.0.0.7");
  EXPECT_EQ(c.master_port, kPortOfStep4242_3) << "no port from the launcher: the step's own";
  EXPECT_EQ(c.restart_count, 3);
  EXPECT_EQ(c.checkpoint_request, "/shared/run/checkpoint-request");

  gang.master_port = 31001;  // a job with roles: the launcher chose the port
  env = slurm_task(0, 0, 0);
  env.merge(gang_environment(gang));
  EXPECT_EQ(contract_from_slurm_gang(env).master_port, 31001);
  // Only the launcher's own names carry its rendezvous: a plugin's MASTER_ADDR does not.
  EXPECT_EQ(gang_environment(gang).count("MASTER_ADDR"), 0u);
}

}  // namespace
}  // namespace cohort::launcher
