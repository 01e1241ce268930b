#include "topology/binding.hpp"

#include <gtest/gtest.h>

namespace cohort::topology {
namespace {

TEST(Binding, CpusThisMachineLacksAreSkippedWithAReason) {
  Machine machine = Machine::load();
  const CpuSet allowed = machine.allowed_cpus();
  ASSERT_FALSE(allowed.empty());
  CpuSet absent{allowed.cpus().back() + 1};
  Binding b = machine.bind_self(absent, {1 << 20});
  EXPECT_FALSE(b.cpu_applied);
  EXPECT_NE(b.cpu_note.find("is not on this machine"), std::string::npos) << b.cpu_note;
  EXPECT_FALSE(b.memory_applied);
  EXPECT_NE(b.memory_note.find("is not on this machine"), std::string::npos) << b.memory_note;
}

}  // namespace
}  // namespace cohort::topology
