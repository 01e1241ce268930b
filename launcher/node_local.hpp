// launcher/node_local.hpp — a rank's private folder on its node's own storage.
//
// What a rank's wrapper reads every poll (the heartbeat file) must not cost a metadata
// server round trip on a parallel file system, so it lives on node-local storage, in a
// folder only this user can enter, removed with everything in it when the wrapper ends.
// Private to the launcher.
#pragma once

#include <string>

#include "common/scratch_dir.hpp"

namespace cohort::launcher {

// Where node-local folders go: $TMPDIR when it names a directory (Slurm's job_container
// and most sites point it at node-local scratch), else /dev/shm, else /tmp.
std::string node_local_base();

// "job<JOB>.<STEP>", how a Slurm step's folders begin after "cohort-".
std::string step_tag(const std::string& job, const std::string& step);

// Removes this user's folders on this node left by other steps of `job`: a teardown in a
// Slurm step kills wrappers outright, and the step after it starts only once the step's
// ranks are gone. Those of the job's last step stay until the node's tmp is cleaned.
void remove_earlier_steps(const std::string& job, const std::string& step);

// A local launch's folder holds its watchers' folders, so that the launch removes what a
// watcher killed outright left. Its tag, "local-<pid namespace>-<supervisor's pid>", lets a
// later launch tell when the supervisor itself was killed outright.
std::string local_launch_tag();

// Removes this user's folders on this node left by local launches whose supervisor is gone
// (its watchers end their ranks and remove their own folders, but not the launch's).
void remove_abandoned_local_launches();

// <base>/cohort-<tag>: where NodeLocalDir(tag, Naming::exact) is made. It holds a Unix
// socket, whose path must fit in 107 characters: under a TMPDIR too long for that, the base
// is /dev/shm rather than node_local_base().
std::string node_local_path(const std::string& tag);

class NodeLocalDir {
 public:
  enum class Naming {
    unique,  // <base>/cohort-<tag>.XXXXXX
    exact,   // node_local_path(tag), for others on the node to find; an error if it exists
  };
  // Makes the folder with mode 0700. `tag` names the job, step, attempt and rank (or node
  // agent) so that people can tell whose it is; the random suffix keeps two launches on
  // one node apart even when their tags agree (two local launches). Characters other than
  // letters, digits, '.', '-' and '_' in `tag` become '_'.
  explicit NodeLocalDir(const std::string& tag, Naming naming = Naming::unique);
  // Made inside `parent` (a local launch's folder) rather than in node_local_base().
  NodeLocalDir(const std::string& parent, const std::string& tag);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  RemovedAtExit removal_;
};

}  // namespace cohort::launcher
