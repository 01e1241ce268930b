// The ranks of a checkpointer, and how they agree on the outcome of each step.
#include "checkpoint/group.hpp"

#include <map>
#include <mutex>
#include <set>

#include "common/environment.hpp"

namespace cohort::checkpoint::detail {

namespace {

// The agreements this process holds open, per checkpoint directory: each gets the lowest
// free number there. Ranks create and destroy their checkpointers in the same order, so the
// same checkpointer has the same number on every rank, and a directory reuses its numbers.
std::mutex agreements_mutex;
std::map<std::string, std::set<int>> agreements_open;

}  // namespace

class AgreementSlot {
 public:
  explicit AgreementSlot(const std::filesystem::path& dir) : dir_(std::filesystem::absolute(dir).lexically_normal()) {
    std::lock_guard lock(agreements_mutex);
    auto& taken = agreements_open[dir_.string()];
    while (taken.count(number_)) ++number_;
    taken.insert(number_);
  }
  ~AgreementSlot() {
    std::lock_guard lock(agreements_mutex);
    agreements_open[dir_.string()].erase(number_);
  }
  AgreementSlot(const AgreementSlot&) = delete;
  AgreementSlot& operator=(const AgreementSlot&) = delete;
  std::filesystem::path path() const { return dir_ / (".agreement-" + std::to_string(number_)); }

 private:
  std::filesystem::path dir_;
  int number_ = 0;
};

Group::Group(MPI_Comm comm, const std::optional<std::filesystem::path>& dir) {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (!initialized || finalized) {
    const auto contract = dir && !started_by_mpi_launcher() ? contract_ranks() : std::nullopt;
    if (contract && contract->second > 1) {
      slot_ = std::make_unique<AgreementSlot>(*dir);
      files_ = std::make_unique<FileAgreement>(slot_->path(), contract->first, contract->second,
                                               FileAgreement::deadline_from_environment());
      rank_ = contract->first;
      size_ = contract->second;
    }
    return;
  }
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
  if (files_) return files_->exchange(rank_ == root ? text : std::string())[static_cast<size_t>(root)];
  if (!mpi_) return text;
  unsigned long long size = text.size();
  MPI_Bcast(&size, 1, MPI_UNSIGNED_LONG_LONG, root, comm_);
  text.resize(size);
  if (size > 0) MPI_Bcast(text.data(), static_cast<int>(size), MPI_CHAR, root, comm_);
  return text;
}

std::vector<std::string> Group::gather(const std::string& text) const {
  if (files_) {
    auto all = files_->exchange(text);
    return rank_ == 0 ? all : std::vector<std::string>{};
  }
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
  if (files_) files_->exchange({});
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
