#include "python/bench.hpp"

#include <unistd.h>

#include <cstdlib>

#include <iostream>

#include "common/bench.hpp"
#include "common/error.hpp"
#include "common/options.hpp"
#include "common/process.hpp"

namespace cohort::python {
namespace po = boost::program_options;

int bench_command(const std::vector<std::string>& args) {
  std::string ranks = "2", sizes = "8:64M", repeat = "5", ddp_steps = "10", port = "29517", launch = "mpi";
  options::Parser parser(
      {"bench torch",
       {"[--ranks N] [--sizes FIRST:LAST] [--repeat R] [--ddp-steps S] [--port P] [--launch mpi|plain] [--json]"},
       "Times torch.distributed with the backend \"cohort\" (import cohort.torch) against gloo\n"
       "on the same ranks, in one run: dist.all_reduce of float32 from FIRST to LAST bytes\n"
       "(powers of 8, 1M and LAST), each backend in turn, alternating which goes first, and the\n"
       "cohort group's communicator alone on the same tensor (the backend's overhead); then a\n"
       "DDP step of a 29 M-parameter MLP on each, and how far their first gradients differ.\n"
       "Starts the ranks itself with Open MPI's mpirun on this machine (--oversubscribe; as\n"
       "root, with Open MPI's consent variables set), or with --launch plain as torchrun does,\n"
       "without MPI (the backend's ranks then meet through torch's store); rendezvous on\n"
       "127.0.0.1:P. Needs torch for\n"
       "/usr/bin/python3 and a build with the backend (libtorch-dev).",
       {"cohort bench torch", "cohort bench torch --sizes 1K:256M --repeat 9 --json"}});
  parser.add()("ranks", po::value(&ranks)->value_name("N"), "ranks (2)")(
      "sizes", po::value(&sizes)->value_name("FIRST:LAST"), "message sizes in bytes, with K, M, G (8:64M)")(
      "repeat", po::value(&repeat)->value_name("R"), "timed loops per size and backend; medians are reported (5)")(
      "ddp-steps", po::value(&ddp_steps)->value_name("S"), "timed DDP steps per backend; 0: none (10)")(
      "port", po::value(&port)->value_name("P"), "MASTER_PORT of the rendezvous (29517)")(
      "launch", po::value(&launch)->value_name("HOW"), "mpi (mpirun) or plain (processes without MPI) (mpi)")(
      "json", "print one JSON object instead of the tables");
  auto parsed = parser.parse(args);
  if (!parsed) return 0;
  const auto n = options::whole_number("--ranks", ranks, 1, 64);
  const auto p = options::whole_number("--port", port, 1024, 65535);
  if (launch != "mpi" && launch != "plain") {
    throw input_error("--launch " + launch + ": expected mpi or plain");
  }
  std::vector<std::string> argv{"mpirun", "-n", std::to_string(n), "--oversubscribe"};
  if (launch == "plain") argv.clear();
  argv.insert(argv.end(), {"/usr/bin/python3", bench::installed("share/cohort/bench/torch_backend.py").string(),
                           "--sizes", sizes, "--repeat",
                           std::to_string(options::whole_number("--repeat", repeat, 1, 1000)), "--ddp-steps",
                           std::to_string(options::whole_number("--ddp-steps", ddp_steps, 0, 10000))});
  if (launch == "plain") argv.insert(argv.end(), {"--spawn", std::to_string(n)});
  // The build tree's package (build/python) goes first, for a tool run from the build tree;
  // an installed one is found through PYTHONPATH or Python's own path.
  std::vector<std::string> env{"MASTER_ADDR=127.0.0.1", "MASTER_PORT=" + std::to_string(p),
                               "PYTHONPATH=" + bench::installed("python").string() +
                                   (std::getenv("PYTHONPATH") ? ":" + std::string(std::getenv("PYTHONPATH")) : "")};
  if (::geteuid() == 0) env.insert(env.end(), {"OMPI_ALLOW_RUN_AS_ROOT=1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1"});
  bench::Report report("torch");
  report.add_script_results(argv, "bench/torch_backend.py", environment_with(env));
  report.print(std::cout, parsed->has("json"));
  return 0;
}

}  // namespace cohort::python
