#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdlib>

#include "checkpoint/checkpoint.hpp"
#include "checkpoint/group.hpp"

namespace cohort::checkpoint {

using namespace detail;

namespace {

std::atomic<bool> g_signalled{false};
std::atomic<bool> g_watching{false};
static_assert(std::atomic<bool>::is_always_lock_free, "the signal handler needs a lock-free flag");

extern "C" void note_signal(int) { g_signalled.store(true); }

}  // namespace

class PreemptionWatch::Impl {
 public:
  Impl(MPI_Comm comm, int signal) : group_(comm), signal_(signal) {
    if (const char* flag = std::getenv("COHORT_CHECKPOINT_REQUEST")) flag_ = flag;
    if (g_watching.exchange(true)) {
      throw input_error("a PreemptionWatch already exists in this process; keep one and poll it");
    }
    struct sigaction action {};
    action.sa_handler = note_signal;
    sigemptyset(&action.sa_mask);
    // Restarting keeps the training loop's own system calls from failing with EINTR.
    action.sa_flags = SA_RESTART;
    if (::sigaction(signal_, &action, &previous_) != 0) {
      g_watching.store(false);
      throw input_error(system_message("cannot watch signal " + std::to_string(signal_), errno));
    }
  }

  ~Impl() {
    ::sigaction(signal_, &previous_, nullptr);
    g_watching.store(false);
  }

  bool requested() {
    int mine = g_signalled.load() || (!flag_.empty() && ::access(flag_.c_str(), F_OK) == 0) ? 1 : 0;
    int any = mine;
    if (group_.mpi()) MPI_Allreduce(&mine, &any, 1, MPI_INT, MPI_LOR, group_.comm());
    return any != 0;
  }

  void acknowledge() {
    g_signalled.store(false);
    if (group_.rank() == 0 && !flag_.empty()) ::unlink(flag_.c_str());
    // No rank may poll the flag file again before rank 0 has removed it.
    group_.barrier();
  }

 private:
  Group group_;
  int signal_;
  std::string flag_;
  struct sigaction previous_ {};
};

PreemptionWatch::PreemptionWatch(MPI_Comm comm, int signal) : impl_(std::make_unique<Impl>(comm, signal)) {}
PreemptionWatch::~PreemptionWatch() = default;
bool PreemptionWatch::requested() { return impl_->requested(); }
void PreemptionWatch::acknowledge() { impl_->acknowledge(); }

}  // namespace cohort::checkpoint
