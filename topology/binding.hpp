// topology/binding.hpp — binding the calling process to a plan's CPUs and memory through
// hwloc, honouring only what this machine has. A plan may come from a topology file that
// describes another machine (a test fixture, a node whose discovery is wrong); then the
// parts of the plan this machine lacks are skipped and said so, never half-applied.
//
//   auto machine = Machine::load();            // once per node, before the tasks fork
//   Binding b = machine.bind_self(placement.cpus, placement.numa);
//   if (!b.cpu_applied) log(b.cpu_note);
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "topology/topology.hpp"

namespace cohort::topology {

struct Binding {
  bool cpu_applied = false;
  bool memory_applied = false;
  std::string cpu_note;     // why CPU binding was skipped; "" when applied
  std::string memory_note;  // why memory binding was skipped; "" when applied
};

// This machine's CPUs and NUMA nodes as hwloc sees them (no I/O devices: quick to load).
class Machine {
 public:
  // Throws cohort::Error when hwloc cannot load this machine.
  static Machine load();
  Machine(Machine&&) noexcept;
  Machine& operator=(Machine&&) noexcept;
  ~Machine();

  // The CPUs this process may run on.
  CpuSet allowed_cpus() const;

  // Binds the calling process to `cpus` and the calling thread's memory (a task before
  // exec has one thread) to the NUMA nodes `numa`, each only when this machine has all
  // of them. Throws cohort::Error when
  // a binding the machine could honour fails, so a task never runs silently unbound.
  Binding bind_self(const CpuSet& cpus, const std::vector<int>& numa) const;

 private:
  struct Handle;
  explicit Machine(std::unique_ptr<Handle> handle);
  std::unique_ptr<Handle> handle_;
};

}  // namespace cohort::topology
