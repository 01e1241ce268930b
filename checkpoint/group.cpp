// The ranks of a checkpointer, and how they agree on the outcome of each step.
#include "checkpoint/group.hpp"

namespace cohort::checkpoint::detail {

Group::Group(MPI_Comm comm) {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (!initialized || finalized) return;
  if (comm == MPI_COMM_NULL) throw input_error("checkpointer: the communicator is MPI_COMM_NULL");
  if (MPI_Comm_dup(comm, &comm_) != MPI_SUCCESS) throw Error("checkpointer: MPI_Comm_dup failed");
  MPI_Comm_rank(comm_, &rank_);
  MPI_Comm_size(comm_, &size_);
  mpi_ = true;
}

Group::~Group() {
  if (!mpi_) return;
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Comm_free(&comm_);
}

std::string Group::broadcast(std::string text, int root) const {
  if (!mpi_) return text;
  unsigned long long size = text.size();
  MPI_Bcast(&size, 1, MPI_UNSIGNED_LONG_LONG, root, comm_);
  text.resize(size);
  if (size > 0) MPI_Bcast(text.data(), static_cast<int>(size), MPI_CHAR, root, comm_);
  return text;
}

std::vector<std::string> Group::gather(const std::string& text) const {
  if (!mpi_) return {text};
  int size = static_cast<int>(text.size());
  std::vector<int> sizes(rank_ == 0 ? static_cast<size_t>(size_) : 0), offsets(sizes.size());
  MPI_Gather(&size, 1, MPI_INT, sizes.data(), 1, MPI_INT, 0, comm_);
  std::string all;
  for (size_t r = 0; r < sizes.size(); ++r) {
    offsets[r] = static_cast<int>(all.size());
    all.resize(all.size() + static_cast<size_t>(sizes[r]));
  }
  MPI_Gatherv(text.data(), size, MPI_CHAR, all.data(), sizes.data(), offsets.data(), MPI_CHAR, 0, comm_);
  std::vector<std::string> out;
  for (size_t r = 0; r < sizes.size(); ++r) out.push_back(all.substr(static_cast<size_t>(offsets[r]), static_cast<size_t>(sizes[r])));
  return out;
}

void Group::barrier() const {
  if (mpi_) MPI_Barrier(comm_);
}

void Group::agree(const std::optional<Error>& mine) const {
  struct Status {
    int failed;
    int kind;
  };
  Status status{mine ? 1 : 0, mine ? static_cast<int>(mine->kind()) : 0};
  auto all = allgather(status);
  int first = -1;
  for (int r = 0; r < size_; ++r) {
    if (all[static_cast<size_t>(r)].failed) {
      first = r;
      break;
    }
  }
  if (first < 0) return;
  std::string message = broadcast(rank_ == first ? std::string(mine->what()) : std::string(), first);
  if (rank_ != first) message = "rank " + std::to_string(first) + ": " + message;
  throw Error(message, static_cast<ErrorKind>(all[static_cast<size_t>(first)].kind));
}

}  // namespace cohort::checkpoint::detail
