// One collective load of a step, as named phases that every rank runs in order:
//   read manifest   rank 0 reads manifest.json, every rank parses the same text
//   match slots     which stored tensor each slot names, and where this rank's rows start
//   check size      rank 0 compares each file's size with the manifest's
//   open            state.h5 (and, in format version 1, each slot's dataset), checked
//                   against the manifest
//   check slots     the slots' dtypes and shapes against the manifest
//   read            each rank reads its part, checksumming it meanwhile: in version 2 the
//                   byte ranges it needs from whichever rank files hold them; in version 1
//                   its hyperslab of the shared state.h5
//   verify          the ranks' checksums combine and are compared with the manifest's
// A phase that fails on any rank fails on all (Group::together). Until the manifest is
// known to agree with state.h5, a mismatch is damage (load_latest falls back); after,
// a slot that does not match is the caller's to fix.
#include <algorithm>
#include <future>
#include <map>

#include "checkpoint/collective_io.hpp"
#include "checkpoint/crc32c.hpp"
#include "checkpoint/dataset.hpp"
#include "checkpoint/layout.hpp"
#include "checkpoint/pieces.hpp"
#include "common/fd.hpp"

namespace cohort::checkpoint::detail {

namespace {

// Uncompressed tensors are read in blocks of about this size, which stay in cache between
// the read and the checksum.
constexpr std::uint64_t kReadBlockBytes = 1 << 20;

class StepLoad {
 public:
  StepLoad(const Group& group, const fs::path& dir, std::int64_t step, const std::vector<TensorSlot>& slots)
      : group_(group), path_(checkpoint_path(dir, step)), step_(step), slots_(slots), crcs_(slots.size(), 0),
        lengths_(slots.size(), 0) {}

  LoadResult run() {
    group_.together([&] { check_local(slots_, "load into"); });
    check_same_everywhere(group_, step_, slots_, "tensor slots to load");
    read_manifest();
    match_slots();
    check_size();
    if (manifest_.format_version >= 2) {
      read_pieces();
    } else {
      read();
    }
    verify();
    LoadResult result;
    result.step = step_;
    result.path = path_;
    result.saved_world_size = manifest_.world_size;
    result.time = manifest_.time;
    result.metadata = manifest_.metadata;
    return result;
  }

 private:
  void read_manifest() {
    const fs::path manifest_path = path_ / kManifestFile;
    std::string text;
    group_.together([&] {
      if (group_.rank() == 0) text = read_text(manifest_path);
    });
    text = group_.broadcast(text);
    group_.together([&] {
      manifest_ = manifest_from_json(json::parse(text, manifest_path.string()), manifest_path.string());
      if (manifest_.step != step_) {
        throw Error(manifest_path.string() + " says step " + std::to_string(manifest_.step) +
                    ", the directory says " + std::to_string(step_));
      }
    });
  }

  // A name the manifest lacks is remembered, not refused: it is the caller's to fix only
  // once the manifest is known to agree with the file (open_state).
  void match_slots() {
    rows_ = layout_rows(group_, local_rows(slots_));
    std::map<std::string_view, const TensorInfo*> by_name;
    for (const auto& t : manifest_.tensors) by_name.emplace(t.name, &t);
    infos_.resize(slots_.size());
    for (size_t i = 0; i < slots_.size(); ++i) {
      auto it = by_name.find(slots_[i].name);
      if (it != by_name.end()) infos_[i] = it->second;
      else if (!unknown_) unknown_ = &slots_[i];
    }
  }

  // Rank 0 checks the files' sizes first: a truncated or missing file is the common damage.
  void check_size() const {
    group_.together([&] {
      if (group_.rank() != 0) return;
      for (const auto& file : manifest_.files) {
        const fs::path path = path_ / file.name;
        std::error_code ec;
        if (!fs::exists(fs::symlink_status(path, ec))) {
          throw Error(file.name + " is missing from " + path_.string() + " (the manifest lists it)");
        }
        auto size = regular_file_size(path);
        if (size != file.bytes) {
          throw Error(file.name + " is " + std::to_string(size) + " bytes, the manifest says " +
                      std::to_string(file.bytes) + " (truncated or overwritten)");
        }
      }
    });
  }

  H5Handle open_state(hid_t fapl) const {
    H5Handle file;
    group_.together([&] {
      std::string file_path = (path_ / kStateFile).string();
      file = h5_file(H5Fopen(file_path.c_str(), H5F_ACC_RDONLY, fapl), "open " + file_path);
      auto stored_step = read_int_attr(file.get(), "cohort.step");
      if (stored_step != step_) {
        throw Error(std::string(kStateFile) + " says step " + std::to_string(stored_step) + ", expected " +
                    std::to_string(step_));
      }
      if (unknown_) refuse_unknown_slot(file.get());
    });
    return file;
  }

  // A manifest that names tensors the file lacks (or lacks one the file holds) is damaged:
  // its list of names is no reason to blame the caller.
  void refuse_unknown_slot(hid_t file) const {
    for (const auto& t : manifest_.tensors) {
      if (!has_tensor(file, t.name)) {
        throw Error(std::string(kManifestFile) + " lists tensor '" + t.name + "', which " + std::string(kStateFile) +
                    " does not hold");
      }
    }
    if (has_tensor(file, unknown_->name)) {
      throw Error(std::string(kStateFile) + " holds tensor '" + unknown_->name + "', which " +
                  std::string(kManifestFile) + " does not list");
    }
    std::string names;
    for (const auto& t : manifest_.tensors) names += (names.empty() ? "" : ", ") + t.name;
    throw input_error("tensor '" + unknown_->name + "' is not in " + path_.string() + " (it has: " +
                      (names.empty() ? "no tensors" : names) + ")");
  }

  void check_slots() const {
    for (size_t i = 0; i < slots_.size(); ++i) {
      const auto& s = slots_[i];
      const auto* it = infos_[i];
      if (it->dtype != s.dtype) {
        throw input_error("tensor '" + s.name + "': the checkpoint holds " + std::string(to_string(it->dtype)) +
                          ", the slot is " + std::string(to_string(s.dtype)) + "; load into a " +
                          std::string(to_string(it->dtype)) + " buffer");
      }
      if (s.sharding == Sharding::replicated && s.shape != it->shape) {
        throw input_error("tensor '" + s.name + "': the checkpoint holds shape " + shape_text(it->shape) +
                          ", the slot has " + shape_text(s.shape));
      }
      if (s.sharding == Sharding::rows) {
        auto whole = s.shape;
        whole[0] = rows_.total[i];
        if (whole != it->shape) {
          throw input_error("tensor '" + s.name + "': the checkpoint holds shape " + shape_text(it->shape) +
                            ", the ranks' slots add up to " + shape_text(whole) +
                            " (rows are split across ranks; the other dimensions must match)");
        }
      }
    }
  }

  void read() {
    // Declared before the HDF5 handles: on an error the handles close first, then these
    // futures wait for their threads, which touch only the slots' memory.
    std::vector<std::future<void>> checksums;
    H5Lock h5;
    auto fapl = file_access(group_);
    H5Handle file = open_state(fapl.get());
    auto independent = transfer(group_, false), collective = transfer(group_, true);
    ReadAhead read_ahead(path_ / kStateFile);
    std::vector<TensorDataset> datasets(slots_.size());
    for (size_t i = 0; i < slots_.size(); ++i) {
      group_.together([&] { datasets[i] = open_tensor(file.get(), *infos_[i]); });
    }
    group_.together([&] { check_slots(); });
    for (size_t i = 0; i < slots_.size(); ++i) {
      const auto& s = slots_[i];
      const auto& info = *infos_[i];
      lengths_[i] = element_count(s.shape) * size_of(s.dtype);
      if (!info.compressed && !info.shape.empty() && lengths_[i] > 0) {
        read_in_blocks(i, datasets[i], independent.get(), read_ahead);
        continue;
      }
      read_whole(i, datasets[i], info.compressed ? collective.get() : independent.get());
      // This tensor's checksum is computed while the next one is read.
      checksums.push_back(std::async(std::launch::async, [this, i] {
        crcs_[i] = slots_[i].data ? crc32c(0, slots_[i].data, lengths_[i]) : 0;
      }));
    }
    // With MPI-IO, HDF5 closes a file only once nothing in it is open.
    datasets.clear();
    group_.together([&] { file.close("close " + (path_ / kStateFile).string()); });
    for (auto& c : checksums) c.get();
  }

  // Uncompressed tensors are read in blocks of rows and checksummed while each block is
  // still in cache: one pass over memory instead of two. Independent transfers let ranks
  // read different numbers of blocks.
  void read_in_blocks(size_t i, const TensorDataset& t, hid_t dxpl, const ReadAhead& read_ahead) {
    const auto& s = slots_[i];
    const auto& info = *infos_[i];
    const std::string what = "tensor '" + s.name + "'";
    const bool sharded = s.sharding == Sharding::rows;
    const std::uint64_t my_rows = sharded ? s.shape[0] : info.shape[0];
    const std::uint64_t first = sharded ? rows_.first_row[i] : 0;
    const std::uint64_t row_bytes = lengths_[i] / my_rows;
    const std::uint64_t block = std::max<std::uint64_t>(1, kReadBlockBytes / row_bytes);
    auto* out = static_cast<std::byte*>(s.data);
    haddr_t at = H5Dget_offset(t.dataset.get());
    if (at != HADDR_UNDEF) read_ahead.advise(at + first * row_bytes, my_rows * row_bytes);
    group_.together([&] {
      std::uint32_t crc = 0;
      std::vector<hsize_t> start(info.shape.size(), 0), count = to_hsize(info.shape);
      for (std::uint64_t r = 0; r < my_rows; r += block) {
        start[0] = first + r;
        count[0] = std::min(block, my_rows - r);
        h5ok(H5Sselect_hyperslab(t.space.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr), what);
        auto mem_space = h5_space(H5Screate_simple(static_cast<int>(count.size()), count.data(), nullptr), what);
        h5ok(H5Dread(t.dataset.get(), memory_type(s.dtype), mem_space.get(), t.space.get(), dxpl,
                     out + r * row_bytes),
             "read " + what);
        crc = crc32c(crc, out + r * row_bytes, count[0] * row_bytes);
      }
      crcs_[i] = crc;
    });
  }

  void read_whole(size_t i, const TensorDataset& t, hid_t dxpl) {
    const auto& s = slots_[i];
    const std::string what = "tensor '" + s.name + "'";
    const bool sharded = s.sharding == Sharding::rows;
    group_.together([&] {
      auto mem_space = select_part(t.space.get(), infos_[i]->shape, sharded, true, rows_.first_row[i],
                                   sharded ? s.shape[0] : 0, what);
      std::byte dummy{};
      void* data = s.data ? s.data : &dummy;
      h5ok(H5Dread(t.dataset.get(), memory_type(s.dtype), mem_space.get(), t.space.get(), dxpl, data),
           "read " + what);
    });
  }

  // Format version 2: rank 0 checks state.h5 (its step, its index of the manifest's
  // tensors, and the names of slots the manifest lacks); then every rank reads its rows from the pieces, with no collective
  // call between tensors.
  void read_pieces() {
    group_.together([&] {
      if (group_.rank() != 0) return;
      H5Lock h5;
      std::string file_path = (path_ / kStateFile).string();
      auto file = h5_file(H5Fopen(file_path.c_str(), H5F_ACC_RDONLY, local_file_access().get()), "open " + file_path);
      auto stored_step = read_int_attr(file.get(), "cohort.step");
      if (stored_step != step_) {
        throw Error(std::string(kStateFile) + " says step " + std::to_string(stored_step) + ", expected " +
                    std::to_string(step_));
      }
      // The index must agree with the manifest, as version 1's datasets must: a shape or
      // type that differs is damage, not the caller's slot to fix.
      for (const auto& t : manifest_.tensors) open_indexed(file.get(), t);
      if (unknown_) refuse_unknown_slot(file.get());
    });
    group_.together([&] { check_slots(); });
    group_.together([&] {
      PieceReader reader(path_);
      for (size_t i = 0; i < slots_.size(); ++i) {
        const auto& s = slots_[i];
        lengths_[i] = element_count(s.shape) * size_of(s.dtype);
        if (lengths_[i] == 0) continue;
        const bool sharded = s.sharding == Sharding::rows;
        const std::uint64_t first = sharded ? rows_.first_row[i] : 0;
        const std::uint64_t count = sharded ? s.shape[0] : stored_rows(*infos_[i]);
        crcs_[i] = reader.read_rows(*infos_[i], first, count, static_cast<std::byte*>(s.data));
      }
    });
  }

  // Replicated slots are checked by each rank; sharded ones from all ranks' parts.
  void verify() {
    std::vector<std::uint32_t> local = crcs_;
    for (size_t i = 0; i < slots_.size(); ++i) {
      if (slots_[i].sharding == Sharding::replicated) {
        crcs_[i] = 0;
        lengths_[i] = 0;
      }
    }
    std::vector<std::uint32_t> combined = combine_crcs(group_, crcs_, lengths_);
    group_.together([&] {
      for (size_t i = 0; i < slots_.size(); ++i) {
        std::uint32_t got = slots_[i].sharding == Sharding::replicated ? local[i] : combined[i];
        if (got != infos_[i]->crc32c) {
          throw Error("tensor '" + slots_[i].name + "': checksum mismatch (manifest " + hex32(infos_[i]->crc32c) +
                      ", data " + hex32(got) + ")");
        }
      }
    });
  }

  const Group& group_;
  const fs::path path_;
  const std::int64_t step_;
  const std::vector<TensorSlot>& slots_;

  Manifest manifest_;
  RowLayout rows_;
  std::vector<const TensorInfo*> infos_;  // the stored tensor each slot names
  const TensorSlot* unknown_ = nullptr;   // the first slot the manifest does not list
  std::vector<std::uint32_t> crcs_;       // of what this rank read
  std::vector<std::uint64_t> lengths_;    // bytes each checksum covers
};

}  // namespace

LoadResult load_step(const Group& group, const fs::path& dir, std::int64_t step, const std::vector<TensorSlot>& slots) {
  return StepLoad(group, dir, step, slots).run();
}

}  // namespace cohort::checkpoint::detail
