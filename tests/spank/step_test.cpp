// From Slurm's description of a step to each task's plan and environment, over the
// topology fixtures: Slurm's cores and GPUs restrict the plan, device names follow what
// the task can see, and the launch contract and COHORT_* variables are complete.
#include "spank/step.hpp"

#include <gtest/gtest.h>

#include <set>

#include "common/error.hpp"
#include "tests/topology/fixtures.hpp"

namespace cohort::spank {
namespace {

using topology::CpuSet;
using topology::testing::load;

const topology::Node& dgx() {
  static const topology::Node node = load("dgx_a100_2s_8gpu_8ib.xml");
  return node;
}

launcher::Contract contract_for(int rank, int local_rank) {
  launcher::Contract c;
  c.rank = rank;
  c.world_size = 8;
  c.local_rank = local_rank;
  c.local_world_size = 4;
  c.group_rank = rank / 4;
  c.master_addr = "node1";
  c.master_port = 29517;
  return c;
}

template <typename F>
std::string refusal(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected an error";
  return "";
}

TEST(StepCores, SlurmCoresBecomeEveryHardwareThreadOfThoseCores) {
  // The fixture's core c has PUs c and c+16.
  EXPECT_EQ(cpus_of_cores(dgx(), "0-3"), CpuSet::parse("0-3,16-19"));
  EXPECT_EQ(cpus_of_cores(dgx(), "8,15"), CpuSet::parse("8,15,24,31"));
}

TEST(StepCores, CoresBeyondTheTopologySayTheConfigurationsDisagree) {
  std::string why = refusal([] { cpus_of_cores(dgx(), "0-16"); });
  EXPECT_NE(why.find("S_STEP_ALLOC_CORES 0-16: core 16 is not in the topology"), std::string::npos) << why;
  EXPECT_NE(why.find("has 16 cores, 0-15"), std::string::npos) << why;
}

TEST(StepPlan, EachTaskGetsADistinctGpuWithLocalCoresAndNearestNic) {
  StepView view;
  view.local_tasks = 8;
  view.alloc_cores = "0-15";
  view.gpus = "0-7";
  auto plan = plan_step(dgx(), parse_settings(""), view);
  ASSERT_EQ(plan.size(), 8u);
  for (int r = 0; r < 8; ++r) {
    const auto& p = plan[static_cast<size_t>(r)];
    ASSERT_EQ(p.gpus, std::vector<int>{r});
    EXPECT_TRUE(p.cpus.is_subset_of(dgx().gpus()[static_cast<size_t>(r)].locality.cpus)) << p.cpus.to_string();
    EXPECT_EQ(p.nics, std::vector<std::string>{"mlx5_" + std::to_string(r)});
    EXPECT_EQ(p.numa, std::vector<int>{r < 4 ? 0 : 1});
  }
}

TEST(StepPlan, OnlyTheStepsCoresAndGpusAreUsed) {
  StepView view;
  view.local_tasks = 2;
  view.alloc_cores = "8-11";
  view.gpus = "4,5";
  auto plan = plan_step(dgx(), parse_settings(""), view);
  ASSERT_EQ(plan.size(), 2u);
  const CpuSet allowed = CpuSet::parse("8-11,24-27");
  for (const auto& p : plan) {
    EXPECT_TRUE(p.cpus.is_subset_of(allowed)) << p.cpus.to_string();
    ASSERT_EQ(p.gpus.size(), 1u);
    EXPECT_TRUE(p.gpus[0] == 4 || p.gpus[0] == 5);
  }
  EXPECT_NE(plan[0].gpus, plan[1].gpus);
}

TEST(StepPlan, AStepWithoutGpusGetsACpuOnlyPlan) {
  StepView view;
  view.local_tasks = 2;
  auto plan = plan_step(dgx(), parse_settings(""), view);
  ASSERT_EQ(plan.size(), 2u);
  EXPECT_TRUE(plan[0].gpus.empty());
  EXPECT_TRUE(plan[1].gpus.empty());
}

TEST(StepPlan, SettingsTuneTheRequest) {
  StepView view;
  view.local_tasks = 2;
  view.gpus = "0-3";
  auto request = make_request(dgx(), parse_settings("gpus-per-rank:2,threads:3,smt:on,nic:all"), view);
  EXPECT_EQ(request.ranks, 2);
  EXPECT_EQ(request.gpus_per_rank, 2);
  EXPECT_EQ(request.threads_per_rank, 3);
  EXPECT_TRUE(request.smt);
  EXPECT_EQ(request.nics, topology::NicPolicy::all);
  EXPECT_FALSE(request.allowed_cpus);  // no S_STEP_ALLOC_CORES: the node's allowed CPUs
}

TEST(StepPlan, MoreGpusPerRankThanTheStepHasNamesTheSettingAndSlurmsList) {
  StepView view;
  view.local_tasks = 2;
  view.gpus = "0,1";
  std::string why = refusal([&] { plan_step(dgx(), parse_settings("gpus-per-rank:3"), view); });
  EXPECT_NE(why.find("--cohort=gpus-per-rank 3: only 2 GPUs are allowed (SLURM_STEP_GPUS 0-1)"), std::string::npos)
      << why;
}

TEST(StepPlan, GpusSlurmGaveThatTheTopologyLacksAreRefused) {
  StepView view;
  view.local_tasks = 1;
  view.gpus = "9";
  std::string why = refusal([&] { plan_step(dgx(), parse_settings(""), view); });
  EXPECT_NE(why.find("SLURM_STEP_GPUS 9: GPU 9 is not on this node (it has GPUs 0-7)"), std::string::npos) << why;
}

// The mini-cluster's GPUs are device files only; so are GPUs on a node whose hwloc lacks
// their PCI information. They are placed all the same, in Slurm's order.
TEST(StepPlan, GpusOnANodeWhoseTopologyShowsNoneArePlacedInSlurmsOrder) {
  const topology::Node node = load("two_socket_cpu_only.xml");
  StepView view;
  view.local_tasks = 2;
  view.gpus = "0-3";
  view.cuda_visible_devices = "0,1,2,3";
  ASSERT_TRUE(gpus_unlocated(node, view));
  auto plan = plan_step(node, parse_settings(""), view);
  ASSERT_EQ(plan.size(), 2u);
  EXPECT_EQ(plan[0].gpus, (std::vector<int>{0, 1}));
  EXPECT_EQ(plan[1].gpus, (std::vector<int>{2, 3}));
  EXPECT_NE(describe(plan[1]).find("without locality: the topology"), std::string::npos) << describe(plan[1]);
  auto env = task_environment(node, plan[1], contract_for(1, 1), view);
  EXPECT_EQ(env["CUDA_VISIBLE_DEVICES"], "2,3");
  EXPECT_EQ(env.count("ROCR_VISIBLE_DEVICES"), 0u);
  // Slurm sets ROCm's variable too for a gres of no known vendor: both are narrowed.
  view.rocr_visible_devices = "0,1,2,3";
  env = task_environment(node, plan[1], contract_for(1, 1), view);
  EXPECT_EQ(env["CUDA_VISIBLE_DEVICES"], "2,3");
  EXPECT_EQ(env["ROCR_VISIBLE_DEVICES"], "2,3");
  view.rocr_visible_devices.clear();
  EXPECT_EQ(plan_step(node, parse_settings("gpus-per-rank:1"), view)[1].gpus, std::vector<int>{1});
  EXPECT_TRUE(plan_step(node, parse_settings("gpus-per-rank:0"), view)[1].gpus.empty());
  view.local_tasks = 4;
  view.gpus = "0-1";
  EXPECT_EQ(plan_step(node, parse_settings(""), view)[3].gpus, std::vector<int>{1});  // ranks share
  EXPECT_NE(refusal([&] { plan_step(node, parse_settings("gpus-per-rank:1"), view); }).find("4 tasks would need 4 GPUs"),
            std::string::npos);
}

TEST(TaskEnvironment, CarriesTheLaunchContractAndThePlan) {
  StepView view;
  view.local_tasks = 4;
  view.alloc_cores = "0-3";
  view.gpus = "0-3";
  view.cuda_visible_devices = "0,1,2,3";
  auto plan = plan_step(dgx(), parse_settings(""), view);
  ASSERT_EQ(plan.size(), 4u);
  auto env = task_environment(dgx(), plan[2], contract_for(6, 2), view);
  EXPECT_EQ(env["RANK"], "6");
  EXPECT_EQ(env["LOCAL_RANK"], "2");
  EXPECT_EQ(env["WORLD_SIZE"], "8");
  EXPECT_EQ(env["LOCAL_WORLD_SIZE"], "4");
  EXPECT_EQ(env["GROUP_RANK"], "1");
  EXPECT_EQ(env["MASTER_ADDR"], "node1");
  EXPECT_EQ(env["MASTER_PORT"], "29517");
  EXPECT_EQ(env["TORCHELASTIC_RESTART_COUNT"], "0");
  EXPECT_EQ(env["CUDA_VISIBLE_DEVICES"], "2");
  EXPECT_EQ(env["CUDA_DEVICE_ORDER"], "PCI_BUS_ID");
  EXPECT_EQ(env["COHORT_GPUS"], "2");
  EXPECT_EQ(env["COHORT_CPUS"], "2,18");
  EXPECT_EQ(env["COHORT_NUMA"], "0");
  EXPECT_EQ(env["COHORT_NICS"], "mlx5_2");
  EXPECT_EQ(env["NCCL_IB_HCA"], "=mlx5_2:1");
  EXPECT_EQ(env["UCX_NET_DEVICES"], "mlx5_2:1");
  EXPECT_EQ(env["OMP_NUM_THREADS"], "1");
}

TEST(TaskEnvironment, DeviceNamesFollowSlurmsNumberingUnderDeviceCgroups) {
  // With ConstrainDevices the step's GPUs 4-7 appear to the task as 0-3.
  StepView view;
  view.local_tasks = 4;
  view.gpus = "4-7";
  view.cuda_visible_devices = "0,1,2,3";
  auto plan = plan_step(dgx(), parse_settings(""), view);
  ASSERT_EQ(plan.size(), 4u);
  ASSERT_EQ(plan[1].gpus, std::vector<int>{5});
  EXPECT_EQ(task_environment(dgx(), plan[1], contract_for(1, 1), view)["CUDA_VISIBLE_DEVICES"], "1");
}

TEST(TaskEnvironment, DeviceNamesAreGlobalWithoutDeviceCgroups) {
  StepView view;
  view.local_tasks = 4;
  view.gpus = "4-7";
  view.cuda_visible_devices = "4,5,6,7";
  auto plan = plan_step(dgx(), parse_settings(""), view);
  ASSERT_EQ(plan.size(), 4u);
  ASSERT_EQ(plan[1].gpus, std::vector<int>{5});
  EXPECT_EQ(task_environment(dgx(), plan[1], contract_for(1, 1), view)["CUDA_VISIBLE_DEVICES"], "5");
}

TEST(TaskEnvironment, WithoutSlurmsListTheRuntimeIndexIsUsed) {
  StepView view;
  view.local_tasks = 2;
  view.gpus = "6,7";
  auto plan = plan_step(dgx(), parse_settings(""), view);
  ASSERT_EQ(plan.size(), 2u);
  ASSERT_EQ(plan[0].gpus, std::vector<int>{6});
  EXPECT_EQ(task_environment(dgx(), plan[0], contract_for(0, 0), view)["CUDA_VISIBLE_DEVICES"], "6");
}

TEST(TaskEnvironment, AmdGpusGetRocrVisibleDevicesAndSlingshotGetsNoIbHca) {
  const topology::Node node = load("amd_mi250x_frontier.xml");
  // From the fixture itself: GPU g is ROCm SMI device rsmi<g>, and the Slingshot NIC on its
  // PCIe root (hsn0 serves GPUs 4-5, hsn1 2-3, hsn2 6-7, hsn3 0-1).
  const std::string nearest_nic[] = {"hsn3", "hsn3", "hsn1", "hsn1", "hsn0", "hsn0", "hsn2", "hsn2"};
  StepView view;
  view.local_tasks = 8;
  view.gpus = "0-7";
  auto plan = plan_step(node, parse_settings(""), view);
  ASSERT_EQ(plan.size(), 8u);
  std::set<int> gpus;
  for (size_t t = 0; t < plan.size(); ++t) {
    ASSERT_EQ(plan[t].gpus.size(), 1u) << "task " << t;
    const int gpu = plan[t].gpus[0];
    ASSERT_TRUE(gpu >= 0 && gpu < 8) << "task " << t << ": GPU " << gpu;
    gpus.insert(gpu);
    auto env = task_environment(node, plan[t], contract_for(static_cast<int>(t), static_cast<int>(t)), view);
    EXPECT_EQ(env.count("CUDA_VISIBLE_DEVICES"), 0u);
    EXPECT_EQ(env["ROCR_VISIBLE_DEVICES"], std::to_string(gpu)) << "task " << t;
    EXPECT_EQ(env.count("NCCL_IB_HCA"), 0u);
    EXPECT_EQ(env["UCX_NET_DEVICES"].rfind(nearest_nic[gpu], 0), 0u) << "task " << t << ", GPU " << gpu << ": "
                                                                      << env["UCX_NET_DEVICES"];
  }
  EXPECT_EQ(gpus.size(), 8u) << "every task a GPU of its own";
}

TEST(TaskEnvironment, CpuOnlyTasksKeepSlurmsGpuVariables) {
  StepView view;
  view.local_tasks = 2;
  auto plan = plan_step(load("two_socket_cpu_only.xml"), parse_settings("threads:2"), view);
  ASSERT_EQ(plan.size(), 2u);
  auto env = task_environment(load("two_socket_cpu_only.xml"), plan[0], contract_for(0, 0), view);
  EXPECT_EQ(env.count("CUDA_VISIBLE_DEVICES"), 0u);
  EXPECT_EQ(env["COHORT_GPUS"], "");
  EXPECT_EQ(env["OMP_NUM_THREADS"], "2");
}

TEST(Describe, OneLineWithEveryDevice) {
  topology::RankPlacement p;
  p.gpus = {3};
  p.cpus = CpuSet::parse("3,19");
  p.numa = {0};
  p.nics = {"mlx5_3"};
  p.threads = 2;
  EXPECT_EQ(describe(p), "GPUs 3, CPUs 3,19, NUMA 0, NICs mlx5_3, 2 threads");
}

}  // namespace
}  // namespace cohort::spank
