// launcher/lineage_record.hpp — private to launcher/: what `cohort launch` tells the
// lineage store (lineage/record.hpp), at its start and at its end.
#pragma once

#include <string>

#include "launcher/supervisor.hpp"

namespace cohort::launcher {

// Records the launch as running; its name, for record_lineage_end ("" when not recorded).
std::string record_lineage_start(const LaunchOptions& options, const std::string& job);
// Records how it ended: `status` as cohort launch exits, the restarts its run directory saw.
void record_lineage_end(const std::string& name, const LaunchOptions& options, int status, bool requeued);

}  // namespace cohort::launcher
