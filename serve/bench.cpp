#include "serve/bench.hpp"

#include <iostream>

#include "common/bench.hpp"
#include "common/options.hpp"

namespace cohort::serve {
namespace po = boost::program_options;

int bench_command(const std::vector<std::string>& args) {
  std::string duration = "3", repeat = "3", connections = "64", cpus = "0";
  options::Parser parser(
      {"bench serve",
       {"[--duration S] [--repeat N] [--connections C] [--cpus N] [--json]"},
       "Loads `cohort serve start` with Debian's wrk on loopback, each case against a baseline in\n"
       "the same run, runs alternating: an identity model against nginx's static 200 (the HTTP\n"
       "ceiling), the Fashion-MNIST MLP against the same TorchScript file behind Flask, a\n"
       "compute-bound MLP with dynamic batching on and off, a 784-float request as binary tensor\n"
       "data and as JSON; `cohort serve router` in front of one replica against the replica\n"
       "alone (throughput, and p99 at half the replica's maximum rate); and the latency at one\n"
       "connection (p50, p99). Needs wrk, nginx, and\n"
       "torch and flask for /usr/bin/python3 (scripts/install-deps installs them).",
       {"cohort bench serve", "cohort bench serve --duration 10 --repeat 5 --json"}});
  parser.add()("duration", po::value(&duration)->value_name("S"), "seconds of load a run (3)")(
      "repeat", po::value(&repeat)->value_name("N"), "runs of each side of a case; medians are reported (3)")(
      "connections", po::value(&connections)->value_name("C"), "wrk's connections (64)")(
      "cpus", po::value(&cpus)->value_name("N"), "threads for the servers and torch (default: every CPU)")(
      "json", "print one JSON object instead of the tables");
  auto parsed = parser.parse(args);
  if (!parsed) return 0;
  // The script and the cohort executable sit where the build and the install both put them.
  std::vector<std::string> argv{"/usr/bin/python3", bench::installed("share/cohort/bench/serve.py").string(),
                                "--cohort", bench::installed("bin/cohort").string()};
  argv.insert(argv.end(), {"--duration", std::to_string(options::whole_number("--duration", duration, 1, 3600)),
                           "--repeat", std::to_string(options::whole_number("--repeat", repeat, 1, 100)),
                           "--connections", std::to_string(options::whole_number("--connections", connections, 1, 10000))});
  if (const auto n = options::whole_number("--cpus", cpus, 0, 4096); n > 0) {
    argv.insert(argv.end(), {"--cpus", std::to_string(n)});
  }
  bench::Report report("serve");
  report.add_script_results(argv, "bench/serve.py");  // its progress goes to stderr as it comes
  report.print(std::cout, parsed->has("json"));
  return 0;
}

}  // namespace cohort::serve
