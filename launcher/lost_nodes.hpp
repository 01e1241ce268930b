// launcher/lost_nodes.hpp — the nodes of an allocation that Slurm has lost.
//
// When a node's slurmd stops answering, the controller marks the node NOT_RESPONDING, and
// DOWN once SlurmdTimeout passes, which ends the job (NODE_FAIL). Until then a step can be
// neither signalled nor started there, and srun says only "Communication connection
// failure". The supervisor asks Slurm after a failure, so that it can say which node is
// gone instead. Private to the launcher.
#pragma once

#include <string>
#include <vector>

namespace cohort::launcher {

struct LostNode {
  std::string name;
  std::string state;   // Slurm's, e.g. "MIXED+NOT_RESPONDING" or "DOWN"
  std::string reason;  // Slurm's Reason=, empty when it gives none
};

// The lost nodes — not responding, or down — in `scontrol show node -o` output (a line
// per node), in its order.
std::vector<LostNode> lost_nodes(const std::string& scontrol_show_node);

// "Slurm lost node node2 (not responding: its slurmd does not answer)"; with several,
// each node with its own account.
std::string describe(const std::vector<LostNode>& lost);

}  // namespace cohort::launcher
