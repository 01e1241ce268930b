// topology/hwloc_topology.hpp — one owned hwloc topology, for topology/'s own sources.
#pragma once

#include <hwloc.h>
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

#include <cerrno>

#include "common/error.hpp"

namespace cohort::topology {

// Owns one hwloc topology; hwloc_topology_destroy never fails.
class HwlocTopology {
#if defined(__SANITIZE_ADDRESS__)
  // hwloc's plugins (PCI through libpciaccess, XML) leak a few hundred bytes per load and
  // are unloaded before LeakSanitizer could name them in a suppression: sanitizer builds
  // leave what this handle's lifetime allocates out of the leak report.
  __lsan::ScopedDisabler third_party_leaks_;
#endif

 public:
  HwlocTopology() {
    if (hwloc_topology_init(&topology_) != 0) {
      throw Error(system_message("hwloc_topology_init", errno));
    }
  }
  ~HwlocTopology() { hwloc_topology_destroy(topology_); }
  HwlocTopology(const HwlocTopology&) = delete;
  HwlocTopology& operator=(const HwlocTopology&) = delete;

  hwloc_topology_t get() const { return topology_; }

 private:
  hwloc_topology_t topology_ = nullptr;
};

}  // namespace cohort::topology
