#include "launcher/contract.hpp"

#include <gtest/gtest.h>

#include "common/error.hpp"

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

TEST(Contract, FromSlurmUsesTorchrunNames) {
  Contract c = contract_from_slurm(slurm_task(5, 1, 1));
  EXPECT_EQ(c.rank, 5);
  EXPECT_EQ(c.world_size, 6);
  EXPECT_EQ(c.local_rank, 1);
  EXPECT_EQ(c.local_world_size, 2);  // the second node holds two tasks
  EXPECT_EQ(c.group_rank, 1);
  EXPECT_EQ(c.master_addr, "gpu-07");
  auto env = c.to_environment();
  EXPECT_EQ(env.at("RANK"), "5");
  EXPECT_EQ(env.at("LOCAL_WORLD_SIZE"), "2");
  EXPECT_EQ(env.at("MASTER_PORT"), std::to_string(c.master_port));
  EXPECT_EQ(env.at("TORCHELASTIC_RESTART_COUNT"), env.at("COHORT_RESTART_COUNT"));
}

TEST(Contract, EveryTaskOfAStepAgreesOnTheRendezvous) {
  Contract a = contract_from_slurm(slurm_task(0, 0, 0));
  Contract b = contract_from_slurm(slurm_task(5, 1, 1));
  EXPECT_EQ(a.master_addr, b.master_addr);
  EXPECT_EQ(a.master_port, b.master_port);
}

TEST(Contract, ALauncherResolvedAddressWins) {
  EXPECT_EQ(contract_from_slurm(slurm_task(0, 0, 0), std::string("10.0.0.7")).master_addr, "10.0.0.7");
}

TEST(Contract, MasterPortDiffersBetweenStepsAndStaysInRange) {
  int p3 = derive_master_port(4242, 3), p4 = derive_master_port(4242, 4);
  EXPECT_NE(p3, p4);
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

}  // namespace
}  // namespace cohort::launcher
