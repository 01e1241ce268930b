#include "cli/commands.hpp"

#include <algorithm>
#include <array>

#include "checkpoint/ckpt_command.hpp"
#include "collectives/bench.hpp"
#include "launcher/launch_command.hpp"
#include "topology/topo_command.hpp"

namespace cohort::cli {
namespace {

// Component commands join this table as their issues land (topo, launch, ckpt, sweep,
// serve, collectives). The built-in `help` and `version` are handled by main.cpp.
constexpr std::array kCommands{
    Command{"bench", "benchmark collectives: nccl-tests' table against a same-run MPI baseline",
            "mpirun -n 2 cohort bench collectives --sizes 8:64M --baseline mpi", &cohort::bench_command},
    Command{"ckpt", "list, inspect, verify and prune HDF5 checkpoints",
            "cohort ckpt verify /scratch/run1/ckpt", &cohort::checkpoint::ckpt_command},
    Command{"launch", "start and supervise a job's ranks: gang restarts, hang detection, requeue",
            "cohort launch --max-restarts 3 -- python3 train.py", &cohort::launcher::launch_command},
    Command{"topo", "show the node's GPUs, NICs, cores and distances; plan rank placement",
            "cohort topo plan --ranks 8 --topology node.xml", &cohort::topology::topo_command},
};

}  // namespace

std::span<const Command> commands() { return kCommands; }

const Command* find_command(std::string_view name) {
  auto all = commands();
  auto it = std::find_if(all.begin(), all.end(), [&](const Command& c) { return c.name == name; });
  return it == all.end() ? nullptr : &*it;
}

}  // namespace cohort::cli
