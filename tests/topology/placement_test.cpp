// The planner over every fixture: the rules of topology/placement.hpp, whole-node and as
// Slurm hands out a share of a node, and what a plan says when a rule cannot hold.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "common/error.hpp"
#include "tests/topology/fixtures.hpp"
#include "topology/placement.hpp"

namespace cohort::topology {
namespace {

using testing::all_fixtures;
using testing::load;

PlanRequest request(int ranks) {
  PlanRequest r;
  r.ranks = ranks;
  return r;
}

CpuSet cpus_of_numa(const Node& node, const std::vector<int>& numa) {
  CpuSet cpus;
  for (int n : numa) cpus |= node.find_numa(n)->cpus;
  return cpus;
}

std::string broken_rules(const std::vector<RankPlacement>& plan) {
  std::string all;
  for (const auto& r : plan) {
    for (const auto& b : r.broken) all += "rank " + std::to_string(r.local_rank) + ": " + b + "\n";
  }
  return all;
}

bool any_broken_starts_with(const std::vector<RankPlacement>& plan, const std::string& rule) {
  for (const auto& r : plan) {
    for (const auto& b : r.broken) {
      if (b.rfind(rule, 0) == 0) return true;
    }
  }
  return false;
}

// Every rule of placement.hpp that a plan without broken rules must keep.
void expect_rules_hold(const Node& node, const PlanRequest& req, const std::vector<RankPlacement>& plan) {
  ASSERT_EQ(static_cast<int>(plan.size()), req.ranks);
  EXPECT_EQ(broken_rules(plan), "");
  const CpuSet allowed = req.allowed_cpus.value_or(node.allowed_cpus());
  CpuSet used;
  std::set<int> gpus_used;
  for (const auto& r : plan) {
    SCOPED_TRACE("rank " + std::to_string(r.local_rank) + " (" + r.reason + ")");
    EXPECT_FALSE(r.cpus.empty());
    EXPECT_TRUE(r.cpus.is_subset_of(allowed)) << r.cpus.to_string();
    EXPECT_FALSE(r.cpus.intersects(used)) << "cpusets overlap at " << (r.cpus & used).to_string();
    used |= r.cpus;
    // Whole cores: a core's allowed threads are all this rank's or none of them.
    for (const auto& core : node.cores()) {
      CpuSet mine = core.pus & allowed;
      if (mine.intersects(r.cpus)) {
        EXPECT_TRUE(mine.is_subset_of(r.cpus)) << "core " << core.index;
      }
    }
    // Memory from exactly the NUMA nodes of its cores.
    std::vector<int> numa;
    for (const auto& n : node.numa_nodes()) {
      if (n.cpus.intersects(r.cpus)) numa.push_back(n.index);
    }
    EXPECT_EQ(r.numa, numa);
    EXPECT_FALSE(r.reason.empty());
    if (r.gpus.empty()) continue;
    // Cores local to the GPUs, and the GPUs of one locality.
    const auto& home = node.gpus()[static_cast<std::size_t>(r.gpus.front())].locality.numa;
    EXPECT_TRUE(r.cpus.is_subset_of(cpus_of_numa(node, home))) << r.cpus.to_string();
    for (int gpu : r.gpus) {
      EXPECT_EQ(node.gpus()[static_cast<std::size_t>(gpu)].locality.numa, home) << "GPU " << gpu;
      EXPECT_TRUE(gpus_used.insert(gpu).second) << "GPU " << gpu << " given twice";
    }
    // The first NIC is as near to the first GPU as any fabric NIC is.
    if (!r.nics.empty()) {
      int first = -1;
      Link best{LinkClass::sys, 0};
      for (int i = 0; i < static_cast<int>(node.nics().size()); ++i) {
        const Nic& nic = node.nics()[static_cast<std::size_t>(i)];
        if (nic.name == r.nics.front()) first = i;
        if (nic.kind != NicKind::ethernet) best = std::min(best, node.gpu_to_nic(r.gpus.front(), i));
      }
      ASSERT_GE(first, 0);
      EXPECT_EQ(node.gpu_to_nic(r.gpus.front(), first), best) << r.nics.front();
    }
  }
}

TEST(Planner, RanksGetCoresLocalToTheirGpu) {
  Node node = load("dgx_a100_2s_8gpu_8ib.xml");
  auto plan = topology::plan(node, request(8));
  expect_rules_hold(node, request(8), plan);
  for (int r = 0; r < 8; ++r) {
    EXPECT_EQ(plan[static_cast<std::size_t>(r)].gpus, std::vector<int>{r});
    EXPECT_EQ(plan[static_cast<std::size_t>(r)].numa, std::vector<int>{r / 4});
  }
  EXPECT_EQ(plan[0].cpus.to_string(), "0-1,16-17");
  EXPECT_EQ(plan[7].cpus.to_string(), "14-15,30-31");
}

TEST(Planner, EveryFixtureKeepsEveryRuleWithOneRankPerGpu) {
  for (const auto& name : all_fixtures()) {
    SCOPED_TRACE(name);
    Node node = load(name);
    const int ranks = std::max<int>(1, static_cast<int>(node.gpus().size()));
    auto plan = topology::plan(node, request(ranks));
    expect_rules_hold(node, request(ranks), plan);
  }
}

TEST(Planner, EveryFixtureKeepsEveryRuleWithHalfAsManyRanks) {
  for (const auto& name : all_fixtures()) {
    SCOPED_TRACE(name);
    Node node = load(name);
    const int ranks = std::max<int>(1, static_cast<int>(node.gpus().size()) / 2);
    auto plan = topology::plan(node, request(ranks));
    expect_rules_hold(node, request(ranks), plan);
  }
}

TEST(Planner, EachRankGetsTheNicBesideItsGpu) {
  Node node = load("dgx_a100_2s_8gpu_8ib.xml");
  auto plan = topology::plan(node, request(8));
  for (int r = 0; r < 8; ++r) {
    EXPECT_EQ(plan[static_cast<std::size_t>(r)].nics, std::vector<std::string>{"mlx5_" + std::to_string(r)});
  }
  Node amd = load("amd_mi250x_frontier.xml");
  auto amd_plan = topology::plan(amd, request(8));
  // GPUs 4,5 share NUMA 0 and hsn0; 0,1 share NUMA 3 and hsn3.
  EXPECT_EQ(amd_plan[0].gpus, std::vector<int>{4});
  EXPECT_EQ(amd_plan[0].nics, std::vector<std::string>{"hsn0"});
  EXPECT_EQ(amd_plan[7].gpus, std::vector<int>{1});
  EXPECT_EQ(amd_plan[7].nics, std::vector<std::string>{"hsn3"});
}

TEST(Planner, EquallyNearNicsAreSharedOutEvenly) {
  // CPU-only ranks on NUMA 0 are equally near mlx5_0..mlx5_3: one each, in turn.
  Node node = load("dgx_a100_2s_8gpu_8ib.xml");
  PlanRequest req = request(8);
  req.gpus_per_rank = 0;
  auto plan = topology::plan(node, req);
  for (int r = 0; r < 8; ++r) {
    EXPECT_EQ(plan[static_cast<std::size_t>(r)].nics, std::vector<std::string>{"mlx5_" + std::to_string(r)});
  }
  // Two ranks per NUMA node on the CPU-only node share their package's one HCA.
  Node cpu = load("two_socket_cpu_only.xml");
  auto cpu_plan = topology::plan(cpu, request(4));
  EXPECT_EQ(cpu_plan[0].nics, std::vector<std::string>{"mlx5_0"});
  EXPECT_EQ(cpu_plan[1].nics, std::vector<std::string>{"mlx5_0"});
  EXPECT_EQ(cpu_plan[2].nics, std::vector<std::string>{"mlx5_1"});
  EXPECT_EQ(cpu_plan[3].nics, std::vector<std::string>{"mlx5_1"});
}

TEST(Planner, OneNicIsSharedByEveryGpuThatHasNoOther) {
  Node node = load("one_socket_4gpu.xml");
  auto plan = topology::plan(node, request(4));
  for (const auto& r : plan) EXPECT_EQ(r.nics, std::vector<std::string>{"mlx5_0"});
}

TEST(Planner, FewerRanksThanGpusGiveEachRankGpusOfOneLocality) {
  Node dgx = load("dgx_a100_2s_8gpu_8ib.xml");
  auto plan = topology::plan(dgx, request(2));
  expect_rules_hold(dgx, request(2), plan);
  EXPECT_EQ(plan[0].gpus, (std::vector<int>{0, 1, 2, 3}));
  EXPECT_EQ(plan[1].gpus, (std::vector<int>{4, 5, 6, 7}));
  EXPECT_EQ(plan[0].nics, (std::vector<std::string>{"mlx5_0", "mlx5_1", "mlx5_2", "mlx5_3"}));
  EXPECT_EQ(plan[1].cpus.to_string(), "8-15,24-31");

  Node amd = load("amd_mi250x_frontier.xml");
  auto amd_plan = topology::plan(amd, request(4));
  expect_rules_hold(amd, request(4), amd_plan);
  EXPECT_EQ(amd_plan[0].gpus, (std::vector<int>{4, 5}));
  EXPECT_EQ(amd_plan[1].gpus, (std::vector<int>{2, 3}));
  EXPECT_EQ(amd_plan[2].gpus, (std::vector<int>{6, 7}));
  EXPECT_EQ(amd_plan[3].gpus, (std::vector<int>{0, 1}));

  // Pairs behind one switch stay together.
  Node one = load("one_socket_4gpu.xml");
  auto pairs = topology::plan(one, request(2));
  EXPECT_EQ(pairs[0].gpus, (std::vector<int>{0, 1}));
  EXPECT_EQ(pairs[1].gpus, (std::vector<int>{2, 3}));
}

TEST(Planner, GpusJoinedByNvlinkShareARankBeforeIndexNeighbours) {
  Node node = load("gpus_on_one_socket.xml");
  auto plan = topology::plan(node, request(2));
  expect_rules_hold(node, request(2), plan);
  EXPECT_EQ(plan[0].gpus, (std::vector<int>{0, 2}));
  EXPECT_EQ(plan[1].gpus, (std::vector<int>{1, 3}));
  EXPECT_NE(plan[0].reason.find("(linked NV4)"), std::string::npos) << plan[0].reason;
}

TEST(Planner, RanksSpreadOverNumaDomainsInProportionToGpus) {
  Node node = load("dgx_a100_2s_8gpu_8ib.xml");
  PlanRequest two = request(2);
  two.gpus_per_rank = 1;
  auto plan = topology::plan(node, two);
  EXPECT_EQ(plan[0].gpus, std::vector<int>{0});
  EXPECT_EQ(plan[1].gpus, std::vector<int>{4});

  // Three allowed GPUs on NUMA 0, one on NUMA 1: three ranks there, one here.
  PlanRequest uneven = request(4);
  uneven.allowed_gpus = std::vector<int>{0, 1, 2, 4};
  auto p = topology::plan(node, uneven);
  expect_rules_hold(node, uneven, p);
  EXPECT_EQ(p[0].numa, std::vector<int>{0});
  EXPECT_EQ(p[2].numa, std::vector<int>{0});
  EXPECT_EQ(p[3].numa, std::vector<int>{1});
  EXPECT_EQ(p[3].cpus.to_string(), "8-15,24-31");  // NUMA 1's cores all go to its one rank
}

TEST(Planner, CpuOnlyRanksSpreadInProportionToAllowedCores) {
  Node node = load("two_socket_cpu_only.xml");
  expect_rules_hold(node, request(4), topology::plan(node, request(4)));

  // Two allowed cores on NUMA 0 and all eight of package 1: one rank there, four here.
  PlanRequest req = request(5);
  req.allowed_cpus = CpuSet::parse("0-1,16-17,8-15,24-31");
  auto plan = topology::plan(node, req);
  expect_rules_hold(node, req, plan);
  EXPECT_EQ(plan[0].cpus.to_string(), "0-1,16-17");
  for (int r = 1; r < 5; ++r) EXPECT_NE(plan[static_cast<std::size_t>(r)].numa.front(), 0);
}

TEST(Planner, FewerCpuOnlyRanksThanNumaNodesTakeTheIdleOnesOfTheirPackage) {
  Node node = load("two_socket_cpu_only.xml");
  auto plan = topology::plan(node, request(2));
  expect_rules_hold(node, request(2), plan);
  EXPECT_EQ(plan[0].cpus.to_string(), "0-7,16-23");
  EXPECT_EQ(plan[0].numa, (std::vector<int>{0, 1}));
  EXPECT_EQ(plan[1].cpus.to_string(), "8-15,24-31");
  EXPECT_EQ(plan[1].threads, 8);
  EXPECT_EQ(plan[1].nics, std::vector<std::string>{"mlx5_1"});
}

TEST(Planner, GpusOnOneSocketKeepTheirRanksOnThatSocket) {
  Node node = load("gpus_on_one_socket.xml");
  auto plan = topology::plan(node, request(4));
  expect_rules_hold(node, request(4), plan);
  for (const auto& r : plan) {
    EXPECT_TRUE(r.cpus.is_subset_of(node.packages()[0].cpus)) << r.cpus.to_string();
    EXPECT_EQ(r.nics, std::vector<std::string>{"mlx5_0"});
  }
}

// One package in two NUMA nodes whose two GPUs hwloc could only place at package level.
constexpr const char* kPackageLevelGpus = R"(<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE topology SYSTEM "hwloc2.dtd">
<topology version="2.0">
  <object type="Machine" os_index="0" cpuset="0x0000000f" complete_cpuset="0x0000000f" allowed_cpuset="0x0000000f" nodeset="0x00000003" complete_nodeset="0x00000003" allowed_nodeset="0x00000003" gp_index="1">
    <object type="Package" os_index="0" cpuset="0x0000000f" complete_cpuset="0x0000000f" nodeset="0x00000003" complete_nodeset="0x00000003" gp_index="2">
      <object type="Group" cpuset="0x00000003" complete_cpuset="0x00000003" nodeset="0x00000001" complete_nodeset="0x00000001" gp_index="3" kind="1001" subkind="0">
        <object type="NUMANode" os_index="0" cpuset="0x00000003" complete_cpuset="0x00000003" nodeset="0x00000001" complete_nodeset="0x00000001" gp_index="4" local_memory="1073741824"/>
        <object type="Core" os_index="0" cpuset="0x00000001" complete_cpuset="0x00000001" nodeset="0x00000001" complete_nodeset="0x00000001" gp_index="5">
          <object type="PU" os_index="0" cpuset="0x00000001" complete_cpuset="0x00000001" nodeset="0x00000001" complete_nodeset="0x00000001" gp_index="6"/>
        </object>
        <object type="Core" os_index="1" cpuset="0x00000002" complete_cpuset="0x00000002" nodeset="0x00000001" complete_nodeset="0x00000001" gp_index="7">
          <object type="PU" os_index="1" cpuset="0x00000002" complete_cpuset="0x00000002" nodeset="0x00000001" complete_nodeset="0x00000001" gp_index="8"/>
        </object>
      </object>
      <object type="Group" cpuset="0x0000000c" complete_cpuset="0x0000000c" nodeset="0x00000002" complete_nodeset="0x00000002" gp_index="9" kind="1001" subkind="0">
        <object type="NUMANode" os_index="1" cpuset="0x0000000c" complete_cpuset="0x0000000c" nodeset="0x00000002" complete_nodeset="0x00000002" gp_index="10" local_memory="1073741824"/>
        <object type="Core" os_index="2" cpuset="0x00000004" complete_cpuset="0x00000004" nodeset="0x00000002" complete_nodeset="0x00000002" gp_index="11">
          <object type="PU" os_index="2" cpuset="0x00000004" complete_cpuset="0x00000004" nodeset="0x00000002" complete_nodeset="0x00000002" gp_index="12"/>
        </object>
        <object type="Core" os_index="3" cpuset="0x00000008" complete_cpuset="0x00000008" nodeset="0x00000002" complete_nodeset="0x00000002" gp_index="13">
          <object type="PU" os_index="3" cpuset="0x00000008" complete_cpuset="0x00000008" nodeset="0x00000002" complete_nodeset="0x00000002" gp_index="14"/>
        </object>
      </object>
      <object type="Bridge" gp_index="15" bridge_type="0-1" depth="0" bridge_pci="0000:[00-ff]">
        <object type="PCIDev" gp_index="16" pci_busid="0000:41:00.0" pci_type="0302 [10de:20b0] [10de:134f] a1" pci_link_speed="31.5"/>
        <object type="PCIDev" gp_index="17" pci_busid="0000:42:00.0" pci_type="0302 [10de:20b0] [10de:134f] a1" pci_link_speed="31.5"/>
      </object>
    </object>
  </object>
</topology>
)";

TEST(Planner, GpusLocalToAWholePackageSpreadOverItsNumaNodes) {
  Node node = Node::from_xml(kPackageLevelGpus);
  ASSERT_EQ(node.gpus().size(), 2u);
  EXPECT_EQ(node.gpus()[0].locality.numa, (std::vector<int>{0, 1}));
  auto plan = topology::plan(node, request(2));
  EXPECT_EQ(broken_rules(plan), "");
  EXPECT_EQ(plan[0].cpus.to_string(), "0-1");
  EXPECT_EQ(plan[1].cpus.to_string(), "2-3");
  EXPECT_EQ(plan[1].numa, std::vector<int>{1});
  EXPECT_EQ(plan[1].reason.find("unknown"), std::string::npos) << plan[1].reason;
}

TEST(Planner, RestrictedToTheShareSlurmGaveTheStep) {
  // A shared node: this step got GPUs 2,3 and four cores of NUMA 0.
  Node dgx = load("dgx_a100_2s_8gpu_8ib.xml");
  PlanRequest req = request(2);
  req.allowed_gpus = std::vector<int>{2, 3};
  req.allowed_cpus = CpuSet::parse("4-7,20-23");
  auto plan = topology::plan(dgx, req);
  expect_rules_hold(dgx, req, plan);
  EXPECT_EQ(plan[0].gpus, std::vector<int>{2});
  EXPECT_EQ(plan[1].gpus, std::vector<int>{3});
  EXPECT_EQ(plan[0].cpus.to_string(), "4-5,20-21");
  EXPECT_EQ(plan[1].nics, std::vector<std::string>{"mlx5_3"});

  // The same on the AMD node: GPUs 0,1 and NUMA 3's cores, without their SMT siblings.
  Node amd = load("amd_mi250x_frontier.xml");
  PlanRequest amd_req = request(2);
  amd_req.allowed_gpus = std::vector<int>{0, 1};
  amd_req.allowed_cpus = CpuSet::parse("12-15");
  auto amd_plan = topology::plan(amd, amd_req);
  expect_rules_hold(amd, amd_req, amd_plan);
  EXPECT_EQ(amd_plan[0].cpus.to_string(), "12-13");
  EXPECT_EQ(amd_plan[0].threads, 2);
  EXPECT_EQ(amd_plan[1].nics, std::vector<std::string>{"hsn3"});
}

TEST(Planner, NicPolicyAllListsEveryFabricNicNearestFirst) {
  Node node = load("dgx_a100_2s_8gpu_8ib.xml");
  PlanRequest req = request(1);
  req.gpus_per_rank = 1;
  req.nics = NicPolicy::all;
  auto plan = topology::plan(node, req);
  EXPECT_EQ(plan[0].nics, (std::vector<std::string>{"mlx5_0", "mlx5_1", "mlx5_2", "mlx5_3", "mlx5_4",
                                                    "mlx5_5", "mlx5_6", "mlx5_7"}));
}

TEST(Planner, ThreadsFollowCoresUnlessAsked) {
  Node node = load("dgx_a100_2s_8gpu_8ib.xml");
  EXPECT_EQ(topology::plan(node, request(8))[0].threads, 2);
  PlanRequest smt = request(8);
  smt.smt = true;
  EXPECT_EQ(topology::plan(node, smt)[0].threads, 4);
  PlanRequest three = request(8);
  three.threads_per_rank = 3;
  auto plan = topology::plan(node, three);
  EXPECT_EQ(plan[0].threads, 3);
  EXPECT_TRUE(plan[0].broken.empty());
  PlanRequest many = request(8);
  many.threads_per_rank = 8;
  EXPECT_TRUE(any_broken_starts_with(topology::plan(node, many), "threads: 8 threads on 4 CPUs"));
}

TEST(Planner, MoreRanksThanCoresSplitCoresIntoSiblingsAndSaysSo) {
  Node node = load("one_socket_4gpu.xml");
  PlanRequest req = request(12);
  req.gpus_per_rank = 0;
  auto plan = topology::plan(node, req);
  CpuSet used;
  for (const auto& r : plan) {
    EXPECT_FALSE(r.cpus.intersects(used));  // still disjoint: 16 hardware threads suffice
    used |= r.cpus;
  }
  EXPECT_TRUE(any_broken_starts_with(plan, "whole cores: 12 ranks on 8 cores of NUMA 0"));
  EXPECT_TRUE(plan[0].broken.empty());  // the first ranks still got whole cores
}

TEST(Planner, MoreRanksThanHardwareThreadsShareThemAndSaysSo) {
  Node node = load("one_socket_4gpu.xml");
  PlanRequest req = request(20);
  req.gpus_per_rank = 0;
  auto plan = topology::plan(node, req);
  EXPECT_TRUE(any_broken_starts_with(plan, "disjoint cpusets: 20 ranks share 16 CPUs of NUMA 0"));
  for (const auto& r : plan) EXPECT_EQ(r.cpus.count(), 1);
}

TEST(Planner, SharedGpusAreReported) {
  Node node = load("dgx_a100_2s_8gpu_8ib.xml");
  auto plan = topology::plan(node, request(16));
  EXPECT_EQ(plan[0].gpus, plan[1].gpus);
  EXPECT_NE(plan[1].gpus, plan[2].gpus);
  EXPECT_TRUE(any_broken_starts_with(plan, "exclusive GPUs: 16 ranks share 8 GPUs"));
  // Sharing ranks still get disjoint cores near their GPU.
  EXPECT_FALSE(plan[0].cpus.intersects(plan[1].cpus));
  EXPECT_TRUE(plan[15].cpus.is_subset_of(node.packages()[1].cpus));
}

TEST(Planner, NoAllowedCoreNearTheGpusIsReported) {
  Node node = load("dgx_a100_2s_8gpu_8ib.xml");
  PlanRequest req = request(2);
  req.allowed_gpus = std::vector<int>{4, 5, 6, 7};
  req.allowed_cpus = CpuSet::parse("0-7");
  auto plan = topology::plan(node, req);
  EXPECT_TRUE(any_broken_starts_with(
      plan, "cores local to GPUs: the allowed CPUs have none on NUMA 1; cores come from NUMA 0"));
  EXPECT_EQ(plan[0].cpus.to_string(), "0-3");
  EXPECT_EQ(plan[1].cpus.to_string(), "4-7");
}

TEST(Planner, GpusThatDoNotDivideByLocalityAreReported) {
  Node node = load("dgx_a100_2s_8gpu_8ib.xml");
  PlanRequest req = request(3);
  req.gpus_per_rank = 2;
  req.allowed_gpus = std::vector<int>{0, 1, 2, 4, 5, 6};
  auto plan = topology::plan(node, req);
  EXPECT_EQ(plan[2].gpus, (std::vector<int>{2, 6}));
  EXPECT_EQ(plan[2].broken, std::vector<std::string>{
                                "one locality per rank: GPUs 2,6 sit on NUMA 0 and 1 (the allowed GPUs do not "
                                "divide by 2 GPUs per NUMA node)"});
  EXPECT_TRUE(plan[0].broken.empty());
}

bool same(const std::vector<RankPlacement>& a, const std::vector<RankPlacement>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i].local_rank != b[i].local_rank || a[i].gpus != b[i].gpus || a[i].nics != b[i].nics ||
        a[i].cpus != b[i].cpus || a[i].numa != b[i].numa || a[i].threads != b[i].threads ||
        a[i].reason != b[i].reason || a[i].broken != b[i].broken) {
      return false;
    }
  }
  return true;
}

TEST(Planner, IsDeterministic) {
  for (const auto& name : all_fixtures()) {
    Node node = load(name);
    for (int ranks : {1, 3, 8, 33}) {
      EXPECT_TRUE(same(topology::plan(node, request(ranks)), topology::plan(node, request(ranks))))
          << name << " " << ranks;
    }
  }
  // The order Slurm lists GPUs in does not matter.
  Node node = load("dgx_a100_2s_8gpu_8ib.xml");
  PlanRequest a = request(3);
  a.allowed_gpus = std::vector<int>{6, 1, 4, 0};
  PlanRequest b = request(3);
  b.allowed_gpus = std::vector<int>{0, 1, 4, 6};
  EXPECT_TRUE(same(topology::plan(node, a), topology::plan(node, b)));
}

TEST(Planner, NodeWithoutGpusOrNicsStillPlans) {
  Node node = Node::from_synthetic("pack:2 core:4 pu:2");
  auto plan = topology::plan(node, request(2));
  expect_rules_hold(node, request(2), plan);
  EXPECT_TRUE(plan[0].nics.empty());
  EXPECT_EQ(plan[0].threads, 4);
}

void expect_input_error(const Node& node, const PlanRequest& req, const std::string& message) {
  try {
    check_request(node, req, RequestNames{"--ranks", "--gpus-per-rank", "--threads-per-rank", "--cpus", "--gpus"});
    ADD_FAILURE() << "accepted, expected: " << message;
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::input);
    EXPECT_EQ(e.what(), message);
  }
  EXPECT_THROW(topology::plan(node, req), Error);
}

TEST(Planner, RequestsThatDoNotFitTheNodeAreInputErrors) {
  Node node = load("dgx_a100_2s_8gpu_8ib.xml");
  expect_input_error(node, request(0), "--ranks 0: must be 1..65536");
  PlanRequest gpus = request(2);
  gpus.allowed_gpus = std::vector<int>{0, 9};
  expect_input_error(node, gpus, "--gpus 0,9: GPU 9 is not on this node (it has GPUs 0-7)");
  PlanRequest cpus = request(2);
  cpus.allowed_cpus = CpuSet::parse("30-40");
  expect_input_error(node, cpus, "--cpus 30-40: CPUs 32-40 are not on this node (it has CPUs 0-31)");
  PlanRequest no_cpus = request(2);
  no_cpus.allowed_cpus = CpuSet{};
  expect_input_error(node, no_cpus, "--cpus: no CPUs (give a list like 0-3,8)");
  PlanRequest per_rank = request(1);
  per_rank.allowed_gpus = std::vector<int>{0, 1};
  per_rank.gpus_per_rank = 3;
  expect_input_error(node, per_rank, "--gpus-per-rank 3: only 2 GPUs are allowed (--gpus 0-1)");
  PlanRequest none_allowed = request(1);
  none_allowed.allowed_gpus = std::vector<int>{};
  none_allowed.gpus_per_rank = 1;
  expect_input_error(node, none_allowed, "--gpus-per-rank 1: --gpus allows no GPUs (use 0, or list GPUs)");
  PlanRequest threads = request(1);
  threads.threads_per_rank = -1;
  expect_input_error(node, threads, "--threads-per-rank -1: must be 1..1024 (or 0 for one per core)");

  Node cpu_only = load("two_socket_cpu_only.xml");
  PlanRequest gpu_on_cpu = request(1);
  gpu_on_cpu.gpus_per_rank = 1;
  expect_input_error(cpu_only, gpu_on_cpu, "--gpus-per-rank 1: this node has no GPUs (use 0, or leave it out)");
  PlanRequest listed = request(1);
  listed.allowed_gpus = std::vector<int>{0};
  expect_input_error(cpu_only, listed, "--gpus 0: GPU 0 is not on this node (it has no GPUs)");
}

}  // namespace
}  // namespace cohort::topology
