// Joins the ranks of the launch and says how it went.
//
//   join_probe                 Communicator::from_environment(), then an allreduce of
//                              RANK+1 in host memory: prints "joined RANK SIZE sum S"
//   join_probe --rendezvous    only the meeting at MASTER_ADDR:MASTER_PORT: rank 0 sends its
//                              host name, every rank prints "received HOST"
//
// On failure the error goes to stderr and the exit status is the error's (1 or 2).
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "collectives/communicator.hpp"
#include "collectives/rendezvous.hpp"
#include "common/error.hpp"

int main(int argc, char** argv) {
  try {
    if (argc > 1 && std::strcmp(argv[1], "--rendezvous") == 0) {
      const char* rank = std::getenv("RANK");
      const char* size = std::getenv("WORLD_SIZE");
      if (!rank || !size) throw cohort::input_error("RANK and WORLD_SIZE must be set");
      const auto options = cohort::collectives::detail::rendezvous_from_environment(std::atoi(rank), std::atoi(size));
      const std::string host = cohort::collectives::detail::rendezvous(options, "", [] {
        char name[256] = {};
        ::gethostname(name, sizeof name - 1);
        return std::string(name);
      });
      std::printf("received %s\n", host.c_str());
      return 0;
    }
    cohort::collectives::Communicator comm = cohort::collectives::Communicator::from_environment();
    double value = comm.rank() + 1;
    comm.allreduce(&value, 1, cohort::DType::float64, cohort::collectives::ReduceOp::sum);
    std::printf("joined %d %d sum %g\n", comm.rank(), comm.size(), value);
    return 0;
  } catch (const cohort::Error& e) {
    std::fprintf(stderr, "join_probe: %s\n", e.what());
    return e.exit_code();
  }
}
