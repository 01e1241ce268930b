// One collective save of a step, as named phases that every rank runs in order:
//   check      every rank's tensors are valid and the same as rank 0's
//   plan       where each rank's rows go, and which rank writes each replicated tensor
//   stage      rank 0 makes the hidden directory the save is written in
//   write      every rank writes and flushes its own file, rank-NNNNN.h5, checksumming
//              its pieces meanwhile; no file is shared, so no rank waits on another's locks
//   gather     rank 0 learns where every piece went
//   checksum   the ranks' checksums combine into each tensor's
//   index      rank 0 writes state.h5: a virtual dataset per tensor over its pieces
//   manifest   rank 0 writes manifest.json
//   commit     rank 0 renames the directory into place and points `latest` at it
//   retention  rank 0 prunes what the retention rules no longer keep
// A phase that fails on any rank fails on all (Group::together), and the hidden directory
// is removed.
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <future>
#include <optional>
#include <sstream>

#include "checkpoint/collective_io.hpp"
#include "checkpoint/crc32c.hpp"
#include "checkpoint/layout.hpp"
#include "checkpoint/lineage_record.hpp"
#include "checkpoint/retention.hpp"
#include "common/fd.hpp"

namespace cohort::checkpoint::detail {

namespace {

// Rows per chunk for compressed tensors: about 1 MiB per chunk.
std::uint64_t chunk_rows(std::uint64_t row_bytes) {
  constexpr std::uint64_t kChunkBytes = 1 << 20;
  return std::max<std::uint64_t>(1, kChunkBytes / std::max<std::uint64_t>(1, row_bytes));
}

// Who holds a tensor's bytes: the ranks (sharded: each its rows), one rank (replicated),
// or state.h5 itself (scalars and tensors of no bytes, which need no virtual dataset).
constexpr int kInIndex = -1;
constexpr int kEveryRank = -2;

// '%' is special in a virtual dataset's source names (it expands to the block's number).
std::string vds_name(const std::string& name) {
  std::string out;
  for (char c : name) {
    if (c == '%') out += '%';
    out += c;
  }
  return out;
}

class StepSave {
 public:
  StepSave(const Group& group, const fs::path& dir, const SaveSettings& settings, std::int64_t step,
           const std::vector<Tensor>& tensors, const Metadata& metadata)
      : group_(group), dir_(dir), settings_(settings), step_(step), tensors_(tensors), metadata_(metadata),
        crcs_(tensors.size(), 0), lengths_(tensors.size(), 0) {}

  SaveResult run() {
    check();
    plan();
    stage();
    try {
      group_.together([&] { write_rank_file(); });
      gather_pieces();
      crcs_ = combine_crcs(group_, crcs_, lengths_);
      std::vector<std::int64_t> pruned;
      group_.together([&] {
        if (group_.rank() != 0) return;
        write_index();
        write_manifest();
        commit();
        record_lineage(checkpoint_path(dir_, step_), step_);
        pruned = apply_retention();
      });
      return result(broadcast_steps(group_, pruned));
    } catch (const Error& e) {
      remove_staged();
      if (e.kind() == ErrorKind::input) throw;
      // Where, for failures such as a full disk, whose messages name only a file.
      throw Error("saving step " + std::to_string(step_) + " in " + dir_.string() + ": " + e.what());
    } catch (...) {
      remove_staged();
      throw;
    }
  }

 private:
  // What one rank wrote of one tensor.
  struct Written {
    std::uint64_t row = 0;
    std::vector<std::uint64_t> shape;
    std::optional<std::uint64_t> offset;
    std::uint64_t bytes = 0;
    std::uint32_t crc = 0;
  };

  void check() const {
    group_.together([&] {
      if (step_ < 0) throw input_error("step " + std::to_string(step_) + " is negative; steps start at 0");
      check_local(tensors_, "save");
    });
    check_same_everywhere(group_, step_, tensors_, "states to save");
  }

  void plan() {
    const RowLayout rows = layout_rows(group_, local_rows(tensors_));
    parts_.resize(tensors_.size());
    std::uint64_t sharded_here = 0;
    for (size_t i = 0; i < tensors_.size(); ++i) {
      const auto& t = tensors_[i];
      Part& p = parts_[i];
      p.global_shape = t.shape;
      if (t.sharding == Sharding::rows) {
        p.global_shape[0] = rows.total[i];
        p.first_row = rows.first_row[i];
      }
      p.local_bytes = element_count(t.shape) * size_of(t.dtype);
      p.global_bytes = element_count(p.global_shape) * size_of(t.dtype);
      if (t.sharding == Sharding::rows) sharded_here += p.local_bytes;
    }
    assign_owners(group_.allgather(sharded_here));
  }

  // Each replicated tensor is written by one rank, the largest first to the rank with the
  // fewest bytes so far, so that the ranks' files come out about the same size (as PyTorch
  // DCP spreads its de-duplicated tensors). Every rank computes the same answer.
  void assign_owners(std::vector<std::uint64_t> load) {
    owner_.assign(tensors_.size(), kEveryRank);
    std::vector<size_t> replicated;
    for (size_t i = 0; i < tensors_.size(); ++i) {
      if (parts_[i].global_bytes == 0 || parts_[i].global_shape.empty()) owner_[i] = kInIndex;
      else if (tensors_[i].sharding == Sharding::replicated) replicated.push_back(i);
    }
    std::stable_sort(replicated.begin(), replicated.end(),
                     [&](size_t a, size_t b) { return parts_[a].global_bytes > parts_[b].global_bytes; });
    for (size_t i : replicated) {
      auto least = std::min_element(load.begin(), load.end());
      owner_[i] = static_cast<int>(least - load.begin());
      *least += parts_[i].global_bytes;
    }
  }

  // Whether this rank writes a piece of tensor `i` into its own file.
  bool writes(size_t i) const {
    if (owner_[i] == kEveryRank) return parts_[i].local_bytes > 0;
    return owner_[i] == group_.rank();
  }

  // Rank 0 prepares a hidden directory; its name and the save time go to every rank.
  void stage() {
    std::string prepared;
    group_.together([&] {
      if (group_.rank() != 0) return;
      std::error_code ec;
      fs::create_directories(dir_, ec);
      if (ec || !fs::is_directory(dir_)) {
        throw input_error(system_message("cannot create checkpoint directory " + dir_.string(),
                                         ec ? ec.value() : ENOTDIR) +
                          "; give a directory you can write");
      }
      for (const auto& e : remove_leftovers(dir_)) settings_.warn("cleaning leftovers: " + e);
      fs::path tmp = dir_ / ("." + step_dir_name(step_) + ".tmp-" + nonce());
      if (::mkdir(tmp.c_str(), 0755) != 0) {
        throw input_error(system_message("cannot write in checkpoint directory " + dir_.string(), errno) +
                          "; give a directory you can write or fix its permissions");
      }
      prepared = tmp.string() + "\n" + utc_now();
    });
    prepared = group_.broadcast(prepared);
    tmp_ = prepared.substr(0, prepared.find('\n'));
    time_ = prepared.substr(prepared.find('\n') + 1);
  }

  void remove_staged() const {
    if (group_.rank() != 0 || tmp_.empty()) return;
    std::error_code ec;
    fs::remove_all(tmp_, ec);
  }

  // This rank's file, its pieces checksummed on another thread while HDF5 writes them (the
  // data is only read), then flushed once: on a parallel file system only the node that
  // wrote a file can flush what it cached of it.
  void write_rank_file() {
    const fs::path path = tmp_ / rank_file_name(group_.rank());
    written_.assign(tensors_.size(), std::nullopt);
    {
      H5Lock h5;
      auto fapl = local_file_access(true);
      WriteFile file(path, fapl.get(), true);
      auto group = h5_group(H5Gcreate2(file.get(), "tensors", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), "group /tensors");
      auto checksums = std::async(std::launch::async, [&] { checksum_local_parts(); });
      for (size_t i = 0; i < tensors_.size(); ++i) {
        if (!writes(i)) continue;
        const bool sharded = tensors_[i].sharding == Sharding::rows;
        Written w;
        w.row = sharded ? parts_[i].first_row : 0;
        w.shape = tensors_[i].shape;
        w.bytes = parts_[i].local_bytes;
        w.offset = write_dataset(i, group.get(), w.shape);
        written_[i] = std::move(w);
      }
      checksums.get();
      group.close("close group /tensors");
      write_int_attr(file.get(), "cohort.format_version", kFormatVersion);
      write_int_attr(file.get(), "cohort.step", step_);
      write_int_attr(file.get(), "cohort.rank", group_.rank());
      file.close();
    }
    fsync_path(path);
    for (size_t i = 0; i < tensors_.size(); ++i) {
      if (written_[i]) written_[i]->crc = crcs_[i];
    }
    file_bytes_ = fs::file_size(path);
  }

  void checksum_local_parts() {
    for (size_t i = 0; i < tensors_.size(); ++i) {
      const bool mine = owner_[i] == kEveryRank || owner_[i] == group_.rank() ||
                        (owner_[i] == kInIndex && group_.rank() == 0);
      if (mine) {
        crcs_[i] = tensors_[i].data ? crc32c(0, tensors_[i].data, parts_[i].local_bytes) : 0;
        lengths_[i] = parts_[i].local_bytes;
      }
    }
  }

  // Writes tensor `i` (this rank's part of it, of `shape`) as /tensors/<name> under
  // `group`; returns where its bytes start in the file when they are stored contiguously.
  std::optional<std::uint64_t> write_dataset(size_t i, hid_t group, const std::vector<std::uint64_t>& shape) {
    const auto& t = tensors_[i];
    const std::string what = "tensor '" + t.name + "'";
    auto space = make_space(shape, what);
    auto dcpl = h5_plist(H5Pcreate(H5P_DATASET_CREATE), what);
    h5ok(H5Pset_fill_time(dcpl.get(), H5D_FILL_TIME_NEVER), what);
    // No chunk cache: compressed chunks held back until the dataset closes would meet a
    // full disk there instead of in H5Dwrite.
    auto dapl = h5_plist(H5Pcreate(H5P_DATASET_ACCESS), what);
    h5ok(H5Pset_chunk_cache(dapl.get(), H5D_CHUNK_CACHE_NSLOTS_DEFAULT, 0, H5D_CHUNK_CACHE_W0_DEFAULT), what);
    const bool chunked = t.compress && !shape.empty() && element_count(shape) > 0;
    if (chunked) {
      std::vector<hsize_t> chunk = to_hsize(shape);
      const std::uint64_t row_bytes = element_count(shape) * size_of(t.dtype) / shape[0];
      chunk[0] = std::min<hsize_t>(shape[0], chunk_rows(row_bytes));
      for (auto& c : chunk) c = std::max<hsize_t>(1, c);
      h5ok(H5Pset_chunk(dcpl.get(), static_cast<int>(chunk.size()), chunk.data()), what + ": chunking");
      h5ok(H5Pset_deflate(dcpl.get(), 1), what + ": compression");
    }
    auto dataset = h5_dataset(
        H5Dcreate2(group, t.name.c_str(), file_type(t.dtype), space.get(), H5P_DEFAULT, dcpl.get(), dapl.get()),
        "create " + what);
    if (element_count(shape) > 0) {
      h5ok(H5Dwrite(dataset.get(), memory_type(t.dtype), H5S_ALL, H5S_ALL, H5P_DEFAULT, t.data), "write " + what);
    }
    std::optional<std::uint64_t> offset;
    if (!chunked && element_count(shape) > 0) {
      const haddr_t at = H5Dget_offset(dataset.get());
      if (at == HADDR_UNDEF) throw Error(what + ": HDF5 gives no offset for its data");
      offset = at;
    }
    dataset.close("close " + what);
    return offset;
  }

  // Each rank tells rank 0 its file's size and, per piece, the tensor's index, first row,
  // offset (or -1), bytes and checksum. Rank 0 keeps them in rank order, which for the
  // pieces of a sharded tensor is row order.
  void gather_pieces() {
    std::string mine = std::to_string(file_bytes_) + "\n";
    for (size_t i = 0; i < tensors_.size(); ++i) {
      if (!written_[i]) continue;
      const auto& w = *written_[i];
      mine += std::to_string(i) + " " + std::to_string(w.row) + " " +
              (w.offset ? std::to_string(*w.offset) : std::string("-1")) + " " + std::to_string(w.bytes) + " " +
              std::to_string(w.crc) + "\n";
    }
    auto all = group_.gather(mine);
    pieces_.assign(tensors_.size(), {});
    for (size_t r = 0; r < all.size(); ++r) {
      std::istringstream in(all[r]);
      std::uint64_t file_bytes = 0;
      in >> file_bytes;
      files_.push_back({rank_file_name(static_cast<int>(r)), file_bytes});
      size_t i = 0;
      long long offset = 0;
      Piece p;
      while (in >> i >> p.row >> offset >> p.bytes >> p.crc32c) {
        p.file = files_.back().name;
        p.offset = offset < 0 ? std::nullopt : std::optional<std::uint64_t>(offset);
        p.shape = parts_[i].global_shape;
        p.shape[0] = p.bytes / (parts_[i].global_bytes / parts_[i].global_shape[0]);
        pieces_[i].push_back(p);
      }
    }
  }

  // state.h5: scalars and empty tensors as datasets of its own, every other tensor as a
  // virtual dataset mapping its extent onto its pieces, so that any HDF5 reader (h5py)
  // reads whole tensors through it; and the root attributes.
  void write_index() {
    const fs::path path = tmp_ / kStateFile;
    {
      H5Lock h5;
      auto fapl = local_file_access(true);
      WriteFile file(path, fapl.get(), true);
      auto group = h5_group(H5Gcreate2(file.get(), "tensors", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), "group /tensors");
      for (size_t i = 0; i < tensors_.size(); ++i) {
        if (owner_[i] != kInIndex) {
          write_virtual(i, group.get());
          continue;
        }
        auto offset = write_dataset(i, group.get(), parts_[i].global_shape);
        if (offset) pieces_[i].push_back({std::string(kStateFile), 0, {}, offset, parts_[i].global_bytes, crcs_[i]});
      }
      group.close("close group /tensors");
      write_root_attributes(file.get());
      file.close();
    }
    fsync_path(path);
  }

  void write_virtual(size_t i, hid_t group) const {
    const auto& t = tensors_[i];
    const std::string what = "tensor '" + t.name + "'";
    auto space = make_space(parts_[i].global_shape, what);
    auto dcpl = h5_plist(H5Pcreate(H5P_DATASET_CREATE), what);
    const std::string source = vds_name("tensors/" + t.name);
    for (const auto& p : pieces_[i]) {
      auto piece_space = make_space(p.shape, what);
      std::vector<hsize_t> start(p.shape.size(), 0), count = to_hsize(p.shape);
      start[0] = p.row;
      h5ok(H5Sselect_hyperslab(space.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr), what);
      h5ok(H5Pset_virtual(dcpl.get(), space.get(), p.file.c_str(), source.c_str(), piece_space.get()),
           what + ": virtual dataset over " + p.file);
    }
    h5ok(H5Sselect_all(space.get()), what);
    auto dataset = h5_dataset(
        H5Dcreate2(group, t.name.c_str(), file_type(t.dtype), space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
        "create " + what);
    dataset.close("close " + what);
  }

  void write_root_attributes(hid_t file) const {
    json::Value meta = metadata_to_json(metadata_);
    meta.set("step", step_);
    meta.set("time", time_);
    meta.set("world_size", group_.size());
    write_int_attr(file, "cohort.format_version", kFormatVersion);
    write_int_attr(file, "cohort.step", step_);
    write_int_attr(file, "cohort.world_size", group_.size());
    write_string_attr(file, "cohort.metadata", json::write(meta));
  }

  void write_manifest() const {
    Manifest m;
    m.format_version = kFormatVersion;
    m.step = step_;
    m.time = time_;
    m.world_size = group_.size();
    m.metadata = metadata_;
    for (size_t i = 0; i < tensors_.size(); ++i) {
      const auto& t = tensors_[i];
      TensorInfo info{t.name, t.dtype, parts_[i].global_shape, t.sharding, parts_[i].global_bytes, crcs_[i],
                      t.compress && !parts_[i].global_shape.empty() && parts_[i].global_bytes > 0, {}};
      info.pieces = pieces_[i];
      m.tensors.push_back(std::move(info));
    }
    m.state_bytes = fs::file_size(tmp_ / kStateFile);
    m.files.push_back({std::string(kStateFile), m.state_bytes});
    m.files.insert(m.files.end(), files_.begin(), files_.end());
    // Its rename syncs the directory, and with it the names of every rank's file.
    write_file_atomically(tmp_ / kManifestFile, json::write(manifest_to_json(m), 2) + "\n");
  }

  // Makes the staged directory the checkpoint of this step. A step saved again (a run that
  // resumed from an earlier step and got here again) trades places with the old copy in one
  // exchange, so that a complete copy of the step is committed at every instant; the old
  // copy, now under the hidden temporary name, is removed after. Where the file system
  // cannot exchange, the old copy is moved aside first: a crash in between leaves the
  // earlier steps without this one, never a mix.
  void commit() const {
    const fs::path final_path = checkpoint_path(dir_, step_);
    const bool again = fs::exists(final_path);
    std::error_code ec;
    if (again && exchange_durably(tmp_, final_path)) {
      fs::remove_all(tmp_, ec);
    } else {
      if (again) {
        fs::path aside = dir_ / ("." + final_path.filename().string() + ".deleting-" + nonce());
        rename_durably(final_path, aside);
        fs::remove_all(aside, ec);
      }
      rename_durably(tmp_, final_path);
    }
    try {
      write_latest(dir_, committed_steps(dir_).back());
    } catch (const Error& e) {
      // The checkpoint is committed; `latest` is a pointer for tools and shells.
      settings_.warn(std::string("step ") + std::to_string(step_) + " is committed but updating " +
                     (dir_ / kLatestFile).string() + " failed: " + e.what());
    }
  }

  std::vector<std::int64_t> apply_retention() const {
    std::vector<std::int64_t> removed;
    try {
      auto doomed = steps_to_prune(committed_steps(dir_), settings_.retention, step_);
      for (const auto& e : remove_steps(dir_, doomed, removed)) settings_.warn("pruning: " + e);
    } catch (const Error& e) {
      settings_.warn(std::string("pruning: ") + e.what());
    }
    return removed;
  }

  SaveResult result(std::vector<std::int64_t> pruned) const {
    SaveResult r;
    r.step = step_;
    r.path = checkpoint_path(dir_, step_);
    for (const auto& p : parts_) r.bytes += p.global_bytes;
    r.pruned = std::move(pruned);
    return r;
  }

  const Group& group_;
  const fs::path& dir_;
  const SaveSettings& settings_;
  const std::int64_t step_;
  const std::vector<Tensor>& tensors_;
  const Metadata& metadata_;

  std::vector<Part> parts_;
  std::vector<int> owner_;  // per tensor: the rank that writes it, kEveryRank or kInIndex
  std::vector<std::optional<Written>> written_;  // per tensor: what this rank's file holds
  std::uint64_t file_bytes_ = 0;                 // of this rank's file
  std::vector<std::vector<Piece>> pieces_;       // rank 0: per tensor, every rank's
  std::vector<FileInfo> files_;                  // rank 0: the rank files
  fs::path tmp_;  // the staged directory
  std::string time_;
  std::vector<std::uint32_t> crcs_;     // this rank's, then the whole tensors'
  std::vector<std::uint64_t> lengths_;  // bytes each of this rank's checksums covers
};

}  // namespace

SaveResult save_step(const Group& group, const fs::path& dir, const SaveSettings& settings, std::int64_t step,
                     const std::vector<Tensor>& tensors, const Metadata& metadata) {
  return StepSave(group, dir, settings, step, tensors, metadata).run();
}

}  // namespace cohort::checkpoint::detail
