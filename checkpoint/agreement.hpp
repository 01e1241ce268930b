// checkpoint/agreement.hpp — private to checkpoint/: how ranks that only have the launch
// contract (RANK, WORLD_SIZE; no MPI) agree on each step of a save or a load, through small
// files in the checkpoint directory.
//
// Why files, and not a TCP rendezvous at MASTER_ADDR:MASTER_PORT: under torchrun that port
// is already taken by PyTorch's own store on rank 0, and the contract names no second one;
// checkpoint/ may not use collectives/ (DESIGN); and the checkpoint directory is, by
// definition, a file system every rank can write and read — without it no multi-rank
// checkpoint is possible at all — so this channel exists exactly when it is needed. The
// messages are tiny (a status, a list of pieces), a few per save, which a shared file system
// serves well. Every file is written under a temporary name and renamed into place, so a
// reader sees it whole or not at all, on any POSIX file system and on NFS.
//
// Each exchange k: every rank r > 0 publishes `<epoch>.<k>.<r>`; rank 0 waits for all of
// them, then publishes `<epoch>.<k>.all` with every rank's text (or the reason it failed),
// which the others wait for. A rank that died is never waited for forever: after the
// deadline (COHORT_CKPT_TIMEOUT seconds, 600 by default) rank 0 names the ranks that did not
// answer and publishes that failure, so the others fail at once with the same message; if
// rank 0 itself is gone the others name it after twice the deadline (rank 0 may be spending
// one whole deadline waiting on a dead rank, and its answer names the right one). A failed exchange leaves the
// agreement broken: later exchanges fail at once rather than fall out of step.
//
// Joining: a directory from an earlier run with the same contract may hold stale files, so
// rank 0 draws a fresh epoch and publishes it; each rank answers under the epoch it reads
// with a nonce of its own, and rank 0 confirms the epoch with the nonces it received. A
// rank that read a stale epoch sees no confirmation carrying its nonce and answers again
// when the epoch changes.
//
// On NFS, a client may cache that a name does not exist for up to the mount's actimeo; a
// mount with lookupcache=positive sees new files at once. Large jobs should use MPI: rank 0
// reads one file per rank per exchange.
#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

namespace cohort::checkpoint::detail {

class FileAgreement {
 public:
  // Joins the other ranks in `dir` (created when missing), waiting up to `deadline` for them.
  FileAgreement(std::filesystem::path dir, int rank, int size, std::chrono::milliseconds deadline);
  FileAgreement(const FileAgreement&) = delete;
  FileAgreement& operator=(const FileAgreement&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }

  // Every rank's `text`, in rank order, on every rank. Throws cohort::Error naming the ranks
  // that did not answer within the deadline.
  std::vector<std::string> exchange(const std::string& text);

  // The deadline from COHORT_CKPT_TIMEOUT (seconds), 600 s when unset.
  static std::chrono::milliseconds deadline_from_environment();

 private:
  void meet();
  std::vector<std::string> collect(const std::string& text, const std::string& prefix);
  std::vector<std::string> receive(const std::string& prefix);
  [[noreturn]] void fail(const std::string& message);

  std::filesystem::path dir_;
  int rank_;
  int size_;
  std::chrono::milliseconds deadline_;
  std::string epoch_;
  long long next_ = 0;
  std::string broken_;  // why an earlier exchange failed
};

}  // namespace cohort::checkpoint::detail
