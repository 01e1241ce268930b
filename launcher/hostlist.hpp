// launcher/hostlist.hpp — Slurm hostlist expressions: "n[1-3,7],gpu-[01-04]".
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace cohort::launcher {

// Expands a hostlist expression into host names, in the order written, duplicates kept.
// Ranges keep their zero padding ("gpu-[08-10]" gives gpu-08, gpu-09, gpu-10), and
// several bracket groups multiply ("r[1-2]n[1-2]" gives r1n1, r1n2, r2n1, r2n2).
// Throws cohort::Error (input) naming the expression for unbalanced brackets, reversed
// ranges or lists that would expand beyond a million names.
std::vector<std::string> expand_hostlist(std::string_view expression);

// Compresses host names into the shortest expression Slurm would print for them, keeping
// their order: {"n1","n2","n3","n7"} gives "n[1-3,7]".
std::string compress_hostlist(const std::vector<std::string>& hosts);

// Slurm's per-node task counts, "2(x3),1", expanded to {2, 2, 2, 1}.
std::vector<int> expand_tasks_per_node(std::string_view counts);

}  // namespace cohort::launcher
