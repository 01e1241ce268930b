// checkpoint/group.hpp — private to checkpoint/: the ranks of a checkpointer, and how they
// agree on the outcome of each step.
#pragma once

#include <mpi.h>

#include <exception>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "common/error.hpp"

namespace cohort::checkpoint::detail {

// The ranks of a checkpointer: a duplicate of the caller's communicator, or one process
// when MPI is not initialised.
class Group {
 public:
  explicit Group(MPI_Comm comm);
  ~Group();
  Group(const Group&) = delete;
  Group& operator=(const Group&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  bool mpi() const { return mpi_; }
  MPI_Comm comm() const { return comm_; }

  template <typename T>
  std::vector<T> allgather(const T& value) const {
    static_assert(std::is_trivially_copyable_v<T>);
    std::vector<T> out(static_cast<size_t>(size_));
    if (!mpi_) {
      out[0] = value;
      return out;
    }
    MPI_Allgather(&value, sizeof(T), MPI_BYTE, out.data(), sizeof(T), MPI_BYTE, comm_);
    return out;
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
};

}  // namespace cohort::checkpoint::detail
