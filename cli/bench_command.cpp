#include "cli/bench_command.hpp"

#include "checkpoint/bench.hpp"
#include "collectives/bench.hpp"
#include "common/options.hpp"
#include "dashboard/bench.hpp"
#include "launcher/bench.hpp"
#include "lineage/bench.hpp"
#include "pipeline/bench.hpp"
#include "serve/bench.hpp"
#include "topology/bench.hpp"
#include "tuner/bench.hpp"

#ifdef COHORT_HAVE_JSON_BENCH
#include "bench/json_bench.hpp"
#endif
#ifdef COHORT_HAVE_TORCH_BENCH
#include "python/bench.hpp"
#endif

namespace cohort::cli {
namespace {

// Each area's options are its own (`cohort bench AREA --help`).
constexpr options::Subcommand kAreas[] = {
    {"collectives", "", "allreduce and friends, ResNet-50's gradients, against plain MPI or NCCL (mpirun)",
     &collectives::bench_command},
    {"ckpt", "", "checkpoint save and load against raw write+fsync and read of the same bytes",
     &checkpoint::bench_command},
    {"sweep", "", "the samplers' search quality and suggestion time against Optuna's TPE", &tuner::bench_command},
    {"topo", "", "loading a node's topology and planning its ranks against hwloc's own load",
     &topology::bench_command},
    {"launch", "", "cohort launch's start-up and teardown against plain srun (needs Slurm)",
     &launcher::bench_command},
    {"lineage", "", "lineage records written per second by many processes at once, against one writer",
     &lineage::bench_command},
    {"pipeline", "", "a 50-task DAG's submission against 50 bare sbatch, and a fully cached rerun (needs Slurm)",
     &pipeline::bench_command},
    {"dashboard", "", "a 1000-trial sweep's page against reading its journal alone; Slurm asks per page",
     &dashboard::bench_command},
    {"serve", "", "the model server under wrk against nginx, Flask, batching off and JSON requests",
     &serve::bench_command},
#ifdef COHORT_HAVE_TORCH_BENCH
    {"torch", "", "the torch.distributed backend \"cohort\": all_reduce and a DDP step against gloo (mpirun)",
     &python::bench_command},
#endif
#ifdef COHORT_HAVE_JSON_BENCH
    {"json", "", "parsing and writing a V2 inference request against every JSON library Debian ships",
     &json::bench_command},
#endif
};

}  // namespace

int bench_command(const std::vector<std::string>& args) {
  return options::dispatch(
      {{"bench",
        {"<area> [options]"},
        "Benchmarks of cohort's components. Each measures a baseline in the same run and prints\n"
        "ratios against it, in one format: a line of what ran, tables whose columns carry their\n"
        "units, and figures that sum the run up; with --json, one JSON object of the same shape\n"
        "({\"bench\", \"context\", \"tables\": [{\"name\", \"title\", \"columns\", \"rows\"}], \"summary\",\n"
        "\"notes\"}). `cohort bench AREA --help` describes an area and its options.",
        {"mpirun -n 2 cohort bench collectives --sizes 8:64M --baseline mpi",
         "cohort bench ckpt --dir /scratch/bench --bytes 1G --tensors 100 --async", "cohort bench topo --json"}},
       "area",
       kAreas},
      args);
}

}  // namespace cohort::cli
