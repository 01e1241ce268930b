// lineage/lineage_command.hpp — `cohort lineage`: show, list and draw what the lineage store
// holds.
#pragma once

#include <string>
#include <vector>

namespace cohort::lineage {

// `cohort lineage show|list|graph …`; returns the exit status (see --help).
int lineage_command(const std::vector<std::string>& args);

}  // namespace cohort::lineage
