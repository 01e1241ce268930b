// serve/service_commands.hpp — the verbs of `cohort serve` that run a service of replicas:
// `router` (the one URL in front of them).
#pragma once

#include <string>
#include <vector>

namespace cohort::serve {

int router_command(const std::vector<std::string>& args);

}  // namespace cohort::serve
