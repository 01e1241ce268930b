// checkpoint/checkpoint.hpp — HDF5 checkpoint/restart for training jobs.
//
// A checkpoint is a directory DIR/step-<8-digit step>/ holding an HDF5 file per rank
// (rank-NNNNN.h5: that rank's rows of sharded tensors and its share of the replicated ones),
// state.h5 (an index: a virtual dataset per tensor over its pieces, so any HDF5 reader sees
// whole tensors, and metadata as root attributes) and manifest.json (every file and every
// piece, with a CRC32C each). Checkpoints of the earlier single-file format still load.
// docs/checkpoint-format.md describes both in full, so that h5py or any HDF5 reader can
// write and read them.
//
// Guarantees:
//  - Atomic: a checkpoint becomes visible only when complete. It is written under a hidden
//    temporary name, flushed to disk (files and directory), then renamed; DIR/latest is
//    replaced atomically afterwards. A crash at any moment leaves every committed checkpoint
//    intact; leftovers are hidden and removed by the next save or `cohort ckpt prune`.
//  - Verified: every tensor's checksum is checked on load. load_latest() skips a corrupted,
//    truncated or unreadable checkpoint, falls back to the newest good one and reports what
//    it skipped and why.
//  - Reshardable: a tensor sharded along its first dimension by W ranks loads onto W' ranks.
//
//   using namespace cohort::checkpoint;
//   Options options;
//   options.retention = {3, 1000};  // keep the newest 3 and every 1000th step
//   Checkpointer ckpt("/scratch/run1/ckpt", MPI_COMM_WORLD, options);
//   PreemptionWatch preempt;
//   std::vector<float> w(rows_here * 1024);
//   std::vector<TensorSlot> slots{{"model.w", DType::float32, {rows_here, 1024}, Sharding::rows, w.data()}};
//   std::int64_t step = 0;
//   if (auto resumed = ckpt.load_latest(slots)) step = resumed->step + 1;
//   for (; step < steps; ++step) {
//     train(step);
//     bool asked = preempt.requested();
//     if (step % 100 == 0 || asked) {
//       State state;
//       state.tensors = {{"model.w", DType::float32, {rows_here, 1024}, Sharding::rows, w.data()}};
//       ckpt.save(step, state);
//       if (asked) { preempt.acknowledge(); break; }
//     }
//   }
//
// Collective: save, load and the Checkpointer's constructor are called by every rank of the
// communicator, with the same step and the same tensor names, dtypes and sharding in the
// same order. Each rank writes and reads its own files through HDF5's POSIX driver; the
// ranks only agree on outcomes and tell rank 0 where their pieces went. Without MPI (not
// initialised) the checkpointer works as a single process.
//
// One job writes a directory at a time. HDF5 is not thread-safe: the checkpointer
// serialises its own HDF5 calls, and other HDF5 use in the process must not overlap an
// asynchronous save.
#pragma once

#include <mpi.h>

#include <csignal>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/dtype.hpp"
#include "common/json.hpp"

namespace cohort::checkpoint {

// Element types are cohort::DType (common/dtype.hpp), NumPy's names, stored little-endian;
// bool8 is one byte, 0 or 1. A checkpoint holds every type but bfloat16, which HDF5 and
// NumPy have no type for: the types stored_dtypes() returns. Another is an input error.
using cohort::DType;
std::span<const DType> stored_dtypes();

// How a tensor is spread over ranks.
//  replicated: every rank holds all of it; one rank's copy is written (which one is
//              chosen to even out the ranks' files).
//  rows:       each rank holds a contiguous block of rows (first dimension), in rank order;
//              the stored tensor is their concatenation. Blocks may differ in size, or be 0.
enum class Sharding { replicated, rows };
std::string_view to_string(Sharding sharding);  // "replicated", "rows"

// A tensor to save. `shape` is this rank's part: the whole tensor when replicated, this
// rank's rows when sharded. `data` is C-ordered (row-major) and must stay valid until
// save() returns; save_async() copies it before returning.
struct Tensor {
  std::string name;  // dataset /tensors/<name>; any characters but '/', not "." or ".."
  DType dtype = DType::float32;
  std::vector<std::uint64_t> shape;  // {} is a scalar
  Sharding sharding = Sharding::replicated;
  const void* data = nullptr;
  bool compress = false;  // deflate, chunked by rows; smaller files, slower saves
};

// Where load() puts a tensor: this rank's part, as for Tensor. A sharded slot receives this
// rank's block of rows in rank order: rank r gets the rows after those of ranks 0..r-1, so
// the ranks' row counts must add up to the stored first dimension. How the tensor was
// sharded when saved does not matter; a replicated slot receives the whole tensor.
struct TensorSlot {
  std::string name;
  DType dtype = DType::float32;
  std::vector<std::uint64_t> shape;
  Sharding sharding = Sharding::replicated;
  void* data = nullptr;
};

// Training metadata kept beside the tensors (root attribute cohort.metadata, and in the
// manifest). Step, world size and wall time are recorded by save() itself.
struct Metadata {
  std::int64_t epoch = 0;
  json::Value hyperparameters = json::Value::object();
  json::Value rng = json::Value::object();         // RNG states, as the framework exports them
  json::Value attributes = json::Value::object();  // anything else the user wants kept
};

struct State {
  std::vector<Tensor> tensors;
  Metadata metadata;
};

// Which committed checkpoints survive pruning: the newest `keep_last`, those whose step is
// a multiple of `keep_every`, and always the newest good one. 0 turns a rule off; with both
// off nothing is pruned.
struct Retention {
  std::int64_t keep_last = 0;
  std::int64_t keep_every = 0;
};

struct Options {
  Retention retention;          // applied by rank 0 after each committed save
  int max_saves_in_flight = 1;  // save_async(): staged copies held at once, at least 1
  // Receives warnings (a skipped corrupt checkpoint, a failed prune) on rank 0. Default:
  // one line on stderr prefixed "cohort: checkpoint: ".
  std::function<void(const std::string&)> warn;
};

struct SaveResult {
  std::int64_t step = 0;
  std::filesystem::path path;   // DIR/step-XXXXXXXX
  std::uint64_t bytes = 0;      // tensor bytes written, all ranks together
  std::vector<std::int64_t> pruned;  // steps retention removed after this save
};

struct Skipped {
  std::int64_t step;
  std::string reason;  // "tensor 'w': checksum mismatch (stored 0x…, read 0x…)"
};

struct LoadResult {
  std::int64_t step = 0;
  std::filesystem::path path;
  int saved_world_size = 0;  // ranks that wrote it
  std::string time;          // UTC, ISO 8601, when it was saved
  Metadata metadata;
  std::vector<Skipped> skipped;  // newer checkpoints passed over, newest first
};

class Checkpointer {
 public:
  // Binds to `dir` (created on the first save) and a duplicate of `comm`. Collective.
  explicit Checkpointer(std::filesystem::path dir, MPI_Comm comm = MPI_COMM_WORLD, Options options = {});
  // Waits for asynchronous saves still in flight; their failures are passed to warn.
  ~Checkpointer();
  Checkpointer(const Checkpointer&) = delete;
  Checkpointer& operator=(const Checkpointer&) = delete;

  const std::filesystem::path& dir() const;
  int rank() const;
  int world_size() const;

  // Writes and commits checkpoint `step` (>= 0), then applies retention. A step already in
  // DIR (a run that resumed from an earlier one and got here again) is replaced. Throws
  // cohort::Error on bad input (input_error) or failure (a full disk: "saving step N in
  // DIR: …: No space left on device"); either way nothing of this save is left behind and
  // other checkpoints are untouched.
  SaveResult save(std::int64_t step, const State& state);

  // Copies the tensors into staging buffers before returning and writes them on a
  // background thread; the future yields save()'s result or throws its error. Blocks first
  // while max_saves_in_flight saves are pending. Saves commit in the order they were made.
  // With more than one rank, MPI must be initialised with MPI_THREAD_MULTIPLE.
  std::future<SaveResult> save_async(std::int64_t step, const State& state);
  // Waits until every asynchronous save has finished.
  void wait();

  // Loads the newest checkpoint that verifies into `slots`, skipping (and reporting through
  // the result and warn) any that are corrupt. Returns nullopt when DIR holds no committed
  // checkpoint. Throws when checkpoints exist but none verifies, or when the slots do not
  // match the checkpoint (unknown name, other dtype or shape): those are the caller's to
  // fix, not a reason to fall back. A manifest that disagrees with its state.h5 (a tensor
  // named in one and missing from the other) is damage, and falls back.
  std::optional<LoadResult> load_latest(std::span<const TensorSlot> slots);
  // Loads checkpoint `step`, without fallback.
  LoadResult load(std::int64_t step, std::span<const TensorSlot> slots);

  // Committed steps in DIR, oldest first.
  std::vector<std::int64_t> steps() const;

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// ---- Reading and maintaining checkpoints from one process (no MPI needed) ----

// Where a part of a tensor is stored (format version 2): rows [row, row + shape[0]) of it,
// or the whole of a scalar, as the dataset /tensors/<name> of `file`, a file of the
// checkpoint's directory. A tensor's pieces follow each other in row order and cover it.
struct Piece {
  std::string file;  // "rank-00001.h5"; "state.h5" for scalars
  std::uint64_t row = 0;
  std::vector<std::uint64_t> shape;
  std::optional<std::uint64_t> offset;  // where its bytes start in `file`; none when compressed
  std::uint64_t bytes = 0;
  std::uint32_t crc32c = 0;
};

struct TensorInfo {
  std::string name;
  DType dtype = DType::float32;
  std::vector<std::uint64_t> shape;  // the whole stored tensor
  Sharding sharding = Sharding::replicated;  // as it was saved
  std::uint64_t bytes = 0;
  std::uint32_t crc32c = 0;
  bool compressed = false;
  // Format version 2; none for a tensor of 0 bytes, and none in version 1, where every
  // tensor is a dataset of state.h5.
  std::vector<Piece> pieces;
};

struct FileInfo {
  std::string name;  // in the checkpoint's directory
  std::uint64_t bytes = 0;
};

// The content of manifest.json.
struct Manifest {
  // 1: one state.h5 that all ranks wrote, holding every tensor. 2: a file per rank
  // (rank-NNNNN.h5) holding the pieces, and state.h5 an index of virtual datasets.
  int format_version = 2;
  std::int64_t step = 0;
  std::string time;
  int world_size = 0;
  std::vector<TensorInfo> tensors;
  std::uint64_t state_bytes = 0;  // size of state.h5
  std::vector<FileInfo> files;    // every file of the checkpoint but the manifest, state.h5 first
  Metadata metadata;

  std::uint64_t tensor_bytes() const;  // of all its tensors together
};

struct Entry {
  std::int64_t step = 0;
  std::filesystem::path path;
  bool latest = false;  // what DIR/latest names
};

// DIR/step-XXXXXXXX for `step`.
std::filesystem::path checkpoint_path(const std::filesystem::path& dir, std::int64_t step);

// Committed checkpoints in `dir`, oldest first; hidden leftovers are not listed.
// Throws input_error when `dir` is not a directory.
std::vector<Entry> list(const std::filesystem::path& dir);

// Whether `path` is one checkpoint (a step-XXXXXXXX directory, or one holding a manifest)
// rather than a directory of them.
bool is_checkpoint(const std::filesystem::path& path);

// `path` itself when it is a checkpoint (or no directory at all, for read_manifest to
// refuse), else the newest checkpoint in the checkpoint directory `path`. Throws
// input_error when that directory holds none.
std::filesystem::path resolve_checkpoint(const std::filesystem::path& path);

// Reads and checks `checkpoint`/manifest.json. Throws input_error when the path is not a
// checkpoint directory, cohort::Error when the manifest is unreadable or malformed.
Manifest read_manifest(const std::filesystem::path& checkpoint);

struct Problem {
  std::string tensor;  // empty for a problem with the checkpoint as a whole
  std::string message;
};

struct VerifyReport {
  std::filesystem::path path;
  std::int64_t step = -1;
  std::vector<Problem> problems;
  bool ok() const { return problems.empty(); }
};

// Reads every tensor of `checkpoint` and compares its checksum with the manifest; also
// checks the file size and the root attributes. Damage goes in the report; throws only
// input_error, when the path is not a checkpoint at all. `on_tensor`, when given, hears
// the bytes of each tensor once it is checked (for a progress line).
VerifyReport verify(const std::filesystem::path& checkpoint,
                    const std::function<void(std::uint64_t bytes)>& on_tensor = {});

// Applies `retention` to `dir`: the newest checkpoint that verifies is kept whatever the
// rules say. Each removal first renames the checkpoint to a hidden name (atomic, so a
// crash never leaves a half-deleted checkpoint visible), then deletes it. Also removes
// leftovers of interrupted saves and prunes. Returns the removed steps; throws
// cohort::Error listing what could not be removed (after removing everything else).
std::vector<std::int64_t> prune(const std::filesystem::path& dir, const Retention& retention);

// Reads `checkpoint`'s tensor `name` whole into `out` (resized), checking its checksum.
void read_tensor(const std::filesystem::path& checkpoint, const TensorInfo& tensor,
                 std::vector<std::byte>& out);

// ---- Preemption ----

// Tells the training loop when the launcher asks for a checkpoint: on `signal` (Slurm's
// `--signal=USR1@120` by default) or when the file named by $COHORT_CHECKPOINT_REQUEST
// exists. Poll requested() at step boundaries; after saving, call acknowledge().
// One watch per process at a time.
class PreemptionWatch {
 public:
  // Installs the signal handler (the previous one is restored by the destructor).
  // Collective over `comm` when MPI is initialised.
  explicit PreemptionWatch(MPI_Comm comm = MPI_COMM_WORLD, int signal = SIGUSR1);
  ~PreemptionWatch();
  PreemptionWatch(const PreemptionWatch&) = delete;
  PreemptionWatch& operator=(const PreemptionWatch&) = delete;

  // True on every rank when any rank got the signal or sees the flag file. Collective.
  bool requested();
  // Clears the request: forgets the signal and removes the flag file (rank 0).
  void acknowledge();

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace cohort::checkpoint
