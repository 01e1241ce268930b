// serve/service_commands.hpp — the verbs of `cohort serve` that run a service of replicas:
// `submit` (one Slurm job of replica steps and a router), `status`, `list`, `router` (the
// one URL in front of replicas) and `job` (what the submitted job runs).
#pragma once

#include <string>
#include <vector>

namespace cohort::serve {

int router_command(const std::vector<std::string>& args);
int submit_command(const std::vector<std::string>& args);
int status_command(const std::vector<std::string>& args);
int list_command(const std::vector<std::string>& args);
int update_command(const std::vector<std::string>& args);
int promote_command(const std::vector<std::string>& args);
int rollback_command(const std::vector<std::string>& args);
int job_command(const std::vector<std::string>& args);

}  // namespace cohort::serve
