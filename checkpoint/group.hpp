// checkpoint/group.hpp — private to checkpoint/: the ranks of a checkpointer, and how they
// agree on the outcome of each step.
#pragma once

#include <mpi.h>

#include <cstring>
#include <exception>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "checkpoint/agreement.hpp"
#include "common/error.hpp"

namespace cohort::checkpoint::detail {

class AgreementSlot;

// The ranks of a checkpointer: a duplicate of the caller's communicator when MPI is
// initialised; else, given a checkpoint directory and a launch contract of more than one
// rank (torchrun, `cohort launch` or srun without MPI), those ranks, agreeing through files
// in that directory (agreement.hpp); else one process.
class Group {
 public:
  explicit Group(MPI_Comm comm, const std::optional<std::filesystem::path>& dir = std::nullopt);
  ~Group();
  Group(const Group&) = delete;
  Group& operator=(const Group&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  bool mpi() const { return mpi_; }
  MPI_Comm comm() const { return comm_; }

  // Every rank's `values` (the same count on each), one rank after another.
  template <typename T>
  std::vector<T> allgather(const std::vector<T>& values) const {
    static_assert(std::is_trivially_copyable_v<T>);
    std::vector<T> out(values.size() * static_cast<size_t>(size_));
    const size_t bytes = values.size() * sizeof(T);
    if (mpi_) {
      if (bytes > 0) {
        MPI_Allgather(values.data(), static_cast<int>(bytes), MPI_BYTE, out.data(), static_cast<int>(bytes), MPI_BYTE,
                      comm_);
      }
    } else if (files_) {
      auto all = files_->exchange(std::string(reinterpret_cast<const char*>(values.data()), bytes));
      for (size_t r = 0; r < all.size(); ++r) {
        if (all[r].size() != bytes) throw Error("checkpoint agreement: rank " + std::to_string(r) + " sent " +
                                                std::to_string(all[r].size()) + " bytes, expected " +
                                                std::to_string(bytes));
        if (bytes > 0) std::memcpy(out.data() + r * values.size(), all[r].data(), bytes);
      }
    } else {
      std::copy(values.begin(), values.end(), out.begin());
    }
    return out;
  }
  template <typename T>
  std::vector<T> allgather(const T& value) const {
    return allgather(std::vector<T>{value});
  }
  std::string broadcast(std::string text, int root = 0) const;
  // Every rank's `text`, in rank order, on rank 0; nothing on the others.
  std::vector<std::string> gather(const std::string& text) const;
  void barrier() const;

  // Every rank reports how its part of a step went; when any failed, every rank throws the
  // error of the lowest failing rank (its kind, and its message prefixed with the rank when
  // there are several), so that no rank goes on into a collective call alone.
  void agree(const std::optional<Error>& mine) const;

  // Runs `body` and agrees on its outcome.
  template <typename F>
  void together(F&& body) const {
    std::optional<Error> failure;
    try {
      body();
    } catch (const Error& e) {
      failure = e;
    } catch (const std::exception& e) {
      failure = Error(e.what());
    }
    agree(failure);
  }

 private:
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0;
  int size_ = 1;
  bool mpi_ = false;
  std::unique_ptr<AgreementSlot> slot_;  // where files_ agrees, held while it does
  mutable std::unique_ptr<FileAgreement> files_;
};

}  // namespace cohort::checkpoint::detail
