// One collective save of a step, as named phases that every rank runs in order:
//   check      every rank's tensors are valid and the same as rank 0's
//   plan       where each rank's rows go in the stored tensors
//   stage      rank 0 makes the hidden directory the save is written in
//   write      every rank writes its part of state.h5 and checksums it meanwhile
//   checksum   the ranks' checksums combine into each tensor's
//   manifest   rank 0 writes manifest.json
//   commit     rank 0 renames the directory into place and points `latest` at it
//   retention  rank 0 prunes what the retention rules no longer keep
// A phase that fails on any rank fails on all (Group::together), and the hidden directory
// is removed.
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <future>

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
      group_.together([&] { write(); });
      crcs_ = combine_crcs(group_, crcs_, lengths_);
      std::vector<std::int64_t> pruned;
      group_.together([&] {
        if (group_.rank() != 0) return;
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
    }
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

  bool use_chunks(size_t i) const {
    return tensors_[i].compress && !parts_[i].global_shape.empty() && parts_[i].global_bytes > 0;
  }

  // state.h5, every rank its part, each tensor checksummed on another thread while HDF5
  // writes (the data is only read). Each rank then flushes what its node cached of the
  // file: on a parallel file system an fsync from rank 0 alone would not cover other
  // nodes' writes.
  void write() {
    const fs::path path = tmp_ / kStateFile;
    {
      H5Lock h5;
      auto fapl = file_access(group_, true);
      WriteFile file(path, fapl.get(), group_.size() == 1);
      auto group = h5_group(H5Gcreate2(file.get(), "tensors", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), "group /tensors");
      // No chunk cache: each tensor is written in one H5Dwrite, and compressed chunks held
      // back until the dataset closes would meet a full disk there instead.
      auto dapl = h5_plist(H5Pcreate(H5P_DATASET_ACCESS), "dataset access properties");
      h5ok(H5Pset_chunk_cache(dapl.get(), H5D_CHUNK_CACHE_NSLOTS_DEFAULT, 0, H5D_CHUNK_CACHE_W0_DEFAULT),
           "no chunk cache");
      auto independent = transfer(group_, false), collective = transfer(group_, true);
      auto checksums = std::async(std::launch::async, [&] { checksum_local_parts(); });
      for (size_t i = 0; i < tensors_.size(); ++i) {
        write_tensor(i, group.get(), dapl.get(), use_chunks(i) ? collective.get() : independent.get());
      }
      checksums.get();
      group.close("close group /tensors");
      write_root_attributes(file.get());
      file.close();
    }
    fsync_path(path);
  }

  void checksum_local_parts() {
    for (size_t i = 0; i < tensors_.size(); ++i) {
      if (tensors_[i].sharding == Sharding::rows || group_.rank() == 0) {
        crcs_[i] = tensors_[i].data ? crc32c(0, tensors_[i].data, parts_[i].local_bytes) : 0;
        lengths_[i] = parts_[i].local_bytes;
      }
    }
  }

  void write_tensor(size_t i, hid_t group, hid_t dapl, hid_t dxpl) {
    const auto& t = tensors_[i];
    const auto& p = parts_[i];
    const std::string what = "tensor '" + t.name + "'";
    auto file_space = make_space(p.global_shape, what);
    auto dcpl = h5_plist(H5Pcreate(H5P_DATASET_CREATE), what);
    h5ok(H5Pset_fill_time(dcpl.get(), H5D_FILL_TIME_NEVER), what);
    if (use_chunks(i)) {
      std::vector<hsize_t> chunk = to_hsize(p.global_shape);
      std::uint64_t row_bytes = p.global_bytes / std::max<std::uint64_t>(1, p.global_shape[0]);
      chunk[0] = std::min<hsize_t>(std::max<hsize_t>(1, p.global_shape[0]), chunk_rows(row_bytes));
      for (auto& c : chunk) c = std::max<hsize_t>(1, c);
      h5ok(H5Pset_chunk(dcpl.get(), static_cast<int>(chunk.size()), chunk.data()), what + ": chunking");
      h5ok(H5Pset_deflate(dcpl.get(), 1), what + ": compression");
    }
    auto dataset = h5_dataset(
        H5Dcreate2(group, t.name.c_str(), file_type(t.dtype), file_space.get(), H5P_DEFAULT, dcpl.get(), dapl),
        "create " + what);
    const bool sharded = t.sharding == Sharding::rows;
    auto mem_space = select_part(file_space.get(), p.global_shape, sharded, group_.rank() == 0, p.first_row,
                                 sharded ? t.shape[0] : 0, what);
    const std::byte dummy{};
    const void* data = t.data ? t.data : &dummy;
    h5ok(H5Dwrite(dataset.get(), memory_type(t.dtype), mem_space.get(), file_space.get(), dxpl, data),
         "write " + what);
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
      m.tensors.push_back({t.name, t.dtype, parts_[i].global_shape, t.sharding, parts_[i].global_bytes, crcs_[i],
                           t.compress && use_chunks(i)});
    }
    m.state_bytes = fs::file_size(tmp_ / kStateFile);
    // Its rename syncs the directory, and with it the name of every rank's state.h5.
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
