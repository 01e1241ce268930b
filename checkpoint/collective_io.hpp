// checkpoint/collective_io.hpp — private to checkpoint/: what a collective save and a
// collective load share: where each rank's rows go, checksums combined across ranks, the
// checks that every rank passed the same tensors, HDF5's file and transfer properties, and
// the two operations themselves (save.cpp, load.cpp).
#pragma once

#include <hdf5.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "checkpoint/checkpoint.hpp"
#include "checkpoint/group.hpp"
#include "checkpoint/hdf5.hpp"
#include "checkpoint/manifest.hpp"
#include "common/error.hpp"

namespace cohort::checkpoint::detail {

namespace fs = std::filesystem;

// ---- The operations ----

// What a save needs of the checkpointer besides its directory and ranks.
struct SaveSettings {
  Retention retention;
  std::function<void(const std::string&)> warn;  // rank 0's warnings; others pass nothing on
};

// Writes and commits checkpoint `step` of `tensors` in `dir`, then applies retention.
// Collective over `group`; Checkpointer::save's contract.
SaveResult save_step(const Group& group, const fs::path& dir, const SaveSettings& settings, std::int64_t step,
                     const std::vector<Tensor>& tensors, const Metadata& metadata);

// Loads checkpoint `step` of `dir` into `slots`, verifying every checksum. Collective over
// `group`; Checkpointer::load's contract, without the check that the step exists.
LoadResult load_step(const Group& group, const fs::path& dir, std::int64_t step, const std::vector<TensorSlot>& slots);

// Rank 0's `steps` on every rank (the others' are not looked at).
std::vector<std::int64_t> broadcast_steps(const Group& group, const std::vector<std::int64_t>& steps);

// ---- Where each rank's rows go ----

// A tensor as one rank writes or reads it: where its rows go in the stored tensor.
struct Part {
  std::vector<std::uint64_t> global_shape;
  std::uint64_t first_row = 0;     // sharded: rows of the ranks before this one
  std::uint64_t local_bytes = 0;   // this rank's share
  std::uint64_t global_bytes = 0;
};

// Offsets of each rank's rows for the sharded entries of `rows` (one count per tensor,
// 0 for replicated ones), and the totals.
struct RowLayout {
  std::vector<std::uint64_t> first_row;
  std::vector<std::uint64_t> total;
};

RowLayout layout_rows(const Group& group, const std::vector<std::uint64_t>& rows);

// The rows of the sharded tensors among `tensors` that this rank holds (0 for replicated).
template <typename T>
std::vector<std::uint64_t> local_rows(const std::vector<T>& tensors) {
  std::vector<std::uint64_t> rows(tensors.size(), 0);
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (tensors[i].sharding == Sharding::rows) rows[i] = tensors[i].shape[0];
  }
  return rows;
}

// Combines each rank's checksum of its rows, in rank order, into the whole tensor's.
std::vector<std::uint32_t> combine_crcs(const Group& group, const std::vector<std::uint32_t>& crcs,
                                        const std::vector<std::uint64_t>& lengths);

// ---- What every rank passed ----

// What every rank must agree on for a collective save or load.
template <typename T>
std::string describe(std::int64_t step, const std::vector<T>& tensors) {
  std::string out = std::to_string(step);
  for (const auto& t : tensors) {
    out += '\n';
    out += t.name;
    out += ' ';
    out += to_string(t.dtype);
    out += ' ';
    out += to_string(t.sharding);
    out += ' ';
    // Sharded tensors may differ in their first dimension only.
    auto shape = t.shape;
    if (t.sharding == Sharding::rows && !shape.empty()) shape[0] = 0;
    out += shape_text(shape);
  }
  return out;
}

template <typename T>
void check_local(const std::vector<T>& tensors, const char* verb) {
  std::set<std::string_view> names;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& t = tensors[i];
    check_tensor_name(t.name);
    if (!names.insert(t.name).second) throw input_error("tensor '" + t.name + "' appears twice; names must be unique");
    if (t.sharding == Sharding::rows && t.shape.empty()) {
      throw input_error("tensor '" + t.name + "' is a scalar and cannot be sharded by rows; make it replicated");
    }
    const auto stored = stored_dtypes();
    if (std::find(stored.begin(), stored.end(), t.dtype) == stored.end()) {
      throw input_error("tensor '" + t.name + "': checkpoints do not store " + std::string(to_string(t.dtype)) +
                        " (use " + dtype_list(stored) + ")");
    }
    std::uint64_t count = element_count(t.shape);
    std::uint64_t bytes = 0;
    if (__builtin_mul_overflow(count, size_of(t.dtype), &bytes)) {
      throw input_error("tensor '" + t.name + "': shape " + shape_text(t.shape) + " is too large");
    }
    if (bytes > 0 && t.data == nullptr) {
      throw input_error(std::string("tensor '") + t.name + "' has no data pointer to " + verb);
    }
  }
}

// Agrees that every rank passed the same description as rank 0.
template <typename T>
void check_same_everywhere(const Group& group, std::int64_t step, const std::vector<T>& tensors, const char* what) {
  std::string mine = describe(step, tensors);
  std::string root = group.broadcast(mine);
  group.together([&] {
    if (mine != root) {
      throw input_error(std::string("the ranks passed different ") + what + " (rank " + std::to_string(group.rank()) +
                        " differs from rank 0): every rank must give the same step, and the same tensor names, "
                        "dtypes, sharding and shapes in the same order (sharded tensors may differ in rows)");
    }
  });
}

// ---- HDF5 for several ranks ----

// File access for one process: for a writer, data that reaches the file in H5Dwrite and a
// close that closes everything; large datasets aligned to 1 MiB.
H5Handle local_file_access(bool writing = false);
// File access for `group`: MPI-IO with collective metadata for several ranks (format
// version 1's shared state.h5), local_file_access for one.
H5Handle file_access(const Group& group, bool writing = false);

// Independent or collective transfers (see collective_io.cpp).
H5Handle transfer(const Group& group, bool collective);

// Selects in `file_space` (and a matching memory space) the part this rank writes or reads.
// Returns the memory space.
H5Handle select_part(hid_t file_space, const std::vector<std::uint64_t>& global_shape, bool sharded,
                     bool take_all, std::uint64_t first_row, std::uint64_t rows, const std::string& what);

H5Handle make_space(const std::vector<std::uint64_t>& shape, const std::string& what);

inline std::vector<hsize_t> to_hsize(const std::vector<std::uint64_t>& v) { return {v.begin(), v.end()}; }

}  // namespace cohort::checkpoint::detail
