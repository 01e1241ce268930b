#include "cli/commands.hpp"

#include <boost/program_options/errors.hpp>

#include <algorithm>
#include <array>
#include <iostream>

#include "common/error.hpp"
#include "launcher/launch_command.hpp"
#include "lineage/lineage_command.hpp"
#include "pipeline/pipeline_command.hpp"
#include "topology/topo_command.hpp"
#include "tuner/sweep_command.hpp"

namespace cohort::cli {
namespace {

// The built-in `help` and `version` are handled by main.cpp.
constexpr std::array kCommands{
    Command{"bench", "each component's benchmark, against a baseline measured in the same run",
            "mpirun -n 2 cohort bench collectives --sizes 8:64M --baseline mpi", nullptr, "cohort-bench"},
    Command{"ckpt", "list, inspect, verify and prune HDF5 checkpoints",
            "cohort ckpt verify /scratch/run1/ckpt", nullptr, "cohort-ckpt"},
    Command{"dashboard", "your jobs, sweeps, pipelines, models and servers in a browser, behind a token",
            "cohort dashboard --port 8888", nullptr, "cohort-dashboard"},
    Command{"launch", "start and supervise a job's ranks: gang restarts, hang detection, requeue",
            "cohort launch --max-restarts 3 -- python3 train.py", &cohort::launcher::launch_command, ""},
    Command{"lineage", "where a model came from: the data, jobs, trials and checkpoints that produced it",
            "cohort lineage show /scratch/run1/ckpt/step-00000100", &cohort::lineage::lineage_command, ""},
    Command{"pipeline", "Kubeflow pipelines (KFP v2 YAML) as Slurm jobs chained by afterok, cached by fingerprint",
            "cohort pipeline run two_step.yaml --param text=hello --wait", &cohort::pipeline::pipeline_command, ""},
    Command{"serve", "serve TorchScript models over KServe's Open Inference Protocol (V2), with a token",
            "cohort serve start --repository models --port 0", nullptr, "cohort-serve"},
    Command{"sweep", "hyperparameter sweeps from Katib experiments: trials as Slurm array tasks",
            "cohort sweep submit exp.yaml --dir /scratch/sweep1", &cohort::tuner::sweep_command, ""},
    Command{"topo", "show the node's GPUs, NICs, cores and distances; plan rank placement",
            "cohort topo plan --ranks 8 --topology node.xml", &cohort::topology::topo_command, ""},
};

}  // namespace

std::span<const Command> commands() { return kCommands; }

const Command* find_command(std::string_view name) {
  auto all = commands();
  auto it = std::find_if(all.begin(), all.end(), [&](const Command& c) { return c.name == name; });
  return it == all.end() ? nullptr : &*it;
}

int run_guarded(std::string_view name, int (*body)(const std::vector<std::string>&),
                const std::vector<std::string>& args) {
  try {
    return body(args);
  } catch (const cohort::Error& e) {
    std::cerr << "cohort: " << name << ": " << e.what() << "\n";
    return e.exit_code();
  } catch (const boost::program_options::error& e) {
    std::cerr << "cohort: " << name << ": " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "cohort: " << name << ": " << e.what() << "\n";
    return 1;
  }
}

}  // namespace cohort::cli
