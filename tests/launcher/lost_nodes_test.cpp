// Which nodes Slurm has lost, read from `scontrol show node -o`, and how the launcher names
// them. The lines are Slurm 22.05's, taken from a mini-cluster whose node2 had its slurmd
// killed (trimmed of fields that play no part).
#include "launcher/lost_nodes.hpp"

#include <gtest/gtest.h>

namespace cohort::launcher {
namespace {

const std::string kHealthy =
    "NodeName=node1 Arch=x86_64 CoresPerSocket=2  CPUAlloc=2 CPUEfctv=2 CPUTot=2 NodeAddr=10.231.2.11 "
    "NodeHostName=node1 Version=22.05.8 OS=Linux 6.18.44 #1 SMP PREEMPT_DYNAMIC @0  RealMemory=1024 "
    "State=MIXED ThreadsPerCore=1 Partitions=debug  CfgTRES=cpu=2,mem=1G,billing=2 ExtSensorsTemp=n/s\n";
// Seconds after its slurmd died: the controller could not reach it.
const std::string kNotResponding =
    "NodeName=node2 Arch=x86_64 CoresPerSocket=2  CPUAlloc=0 CPUEfctv=2 CPUTot=2 NodeAddr=10.231.2.12 "
    "NodeHostName=node2 Version=22.05.8 OS=Linux 6.18.44 #1 SMP PREEMPT_DYNAMIC @0  RealMemory=1024 "
    "State=IDLE+COMPLETING+NOT_RESPONDING ThreadsPerCore=1 Partitions=debug  ExtSensorsTemp=n/s\n";
// SlurmdTimeout later: down, with Slurm's reason, free text at the end of the line.
const std::string kDown =
    "NodeName=node3 Arch=x86_64 CoresPerSocket=2  CPUAlloc=0 CPUEfctv=2 CPUTot=2 NodeAddr=10.231.2.13 "
    "NodeHostName=node3 Version=22.05.8 State=DOWN+NOT_RESPONDING ThreadsPerCore=1 Partitions=debug  "
    "ExtSensorsTemp=n/s Reason=Not responding [root@2026-12-03T10:33:52]\n";

TEST(LostNodes, ANodeWhoseSlurmdDoesNotAnswerIsLostWhateverElseItsStateSays) {
  auto lost = lost_nodes(kHealthy + kNotResponding);
  ASSERT_EQ(lost.size(), 1u);
  EXPECT_EQ(lost[0].name, "node2");
  EXPECT_EQ(lost[0].state, "IDLE+COMPLETING+NOT_RESPONDING");
  EXPECT_EQ(lost[0].reason, "");
}

TEST(LostNodes, ADownNodeIsLostWithSlurmsReason) {
  auto lost = lost_nodes(kDown);
  ASSERT_EQ(lost.size(), 1u);
  EXPECT_EQ(lost[0].name, "node3");
  EXPECT_EQ(lost[0].reason, "Not responding [root@2026-12-03T10:33:52]");
  auto plain = lost_nodes("NodeName=n7 CPUTot=2 State=DOWN ThreadsPerCore=1 Reason=Kill task failed [slurm@2026-01-01T00:00:00]\n");
  ASSERT_EQ(plain.size(), 1u);
  EXPECT_EQ(plain[0].state, "DOWN");
}

TEST(LostNodes, BusyIdleAndDrainedNodesAreNotLost) {
  // A drained node still runs its jobs: Slurm only stops giving it new ones.
  const std::string drained = "NodeName=n4 CPUTot=2 State=MIXED+DRAIN ThreadsPerCore=1 Reason=maintenance [root@2026-01-01T00:00:00]\n";
  EXPECT_TRUE(lost_nodes(kHealthy + drained).empty());
  EXPECT_TRUE(lost_nodes("").empty());
  EXPECT_TRUE(lost_nodes("Node node9 not found\n").empty());
}

TEST(LostNodes, TheMessageNamesEachNodeAndSaysSlurmLostIt) {
  EXPECT_EQ(describe(lost_nodes(kNotResponding)), "Slurm lost node node2 (not responding: its slurmd does not answer)");
  EXPECT_EQ(describe(lost_nodes(kNotResponding + kDown)),
            "Slurm lost nodes node2 (not responding: its slurmd does not answer), node3 (not responding: its slurmd "
            "does not answer; Slurm's reason: Not responding [root@2026-12-03T10:33:52])");
  EXPECT_EQ(describe(lost_nodes("NodeName=n7 State=DOWN Reason=Kill task failed [slurm@2026-01-01T00:00:00]\n")),
            "Slurm lost node n7 (down; Slurm's reason: Kill task failed [slurm@2026-01-01T00:00:00])");
}

}  // namespace
}  // namespace cohort::launcher
