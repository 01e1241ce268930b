#include <sys/stat.h>

#include <algorithm>
#include <bit>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <iostream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "checkpoint/checkpoint.hpp"
#include "checkpoint/crc32c.hpp"
#include "checkpoint/internal.hpp"
#include "common/fd.hpp"

namespace cohort::checkpoint {

using namespace detail;

// Checksums are defined over the little-endian bytes the file holds; on this host those are
// the bytes in memory.
static_assert(std::endian::native == std::endian::little, "checkpoint/ assumes a little-endian host");

namespace {

// Loads read uncompressed tensors in blocks of about this size, which stay in cache
// between the read and the checksum.
constexpr std::uint64_t kReadBlockBytes = 1 << 20;

// Rows per chunk for compressed tensors: about 1 MiB per chunk.
std::uint64_t chunk_rows(std::uint64_t row_bytes) {
  constexpr std::uint64_t kChunkBytes = 1 << 20;
  return std::max<std::uint64_t>(1, kChunkBytes / std::max<std::uint64_t>(1, row_bytes));
}

std::vector<hsize_t> to_hsize(const std::vector<std::uint64_t>& v) { return {v.begin(), v.end()}; }

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

RowLayout layout_rows(const Group& group, const std::vector<std::uint64_t>& rows) {
  size_t n = rows.size();
  std::vector<std::uint64_t> all(n * static_cast<size_t>(group.size()));
  if (group.mpi() && n > 0) {
    MPI_Allgather(rows.data(), static_cast<int>(n), MPI_UINT64_T, all.data(), static_cast<int>(n), MPI_UINT64_T,
                  group.comm());
  } else {
    std::copy(rows.begin(), rows.end(), all.begin());
  }
  RowLayout out{std::vector<std::uint64_t>(n, 0), std::vector<std::uint64_t>(n, 0)};
  for (size_t t = 0; t < n; ++t) {
    for (int r = 0; r < group.size(); ++r) {
      std::uint64_t here = all[static_cast<size_t>(r) * n + t];
      if (r < group.rank()) out.first_row[t] += here;
      out.total[t] += here;
    }
  }
  return out;
}

// Combines each rank's checksum of its rows, in rank order, into the whole tensor's.
std::vector<std::uint32_t> combine_crcs(const Group& group, const std::vector<std::uint32_t>& crcs,
                                        const std::vector<std::uint64_t>& lengths) {
  size_t n = crcs.size();
  if (!group.mpi() || group.size() == 1) return crcs;
  std::vector<std::uint32_t> all_crcs(n * static_cast<size_t>(group.size()));
  std::vector<std::uint64_t> all_lengths(n * static_cast<size_t>(group.size()));
  if (n > 0) {
    MPI_Allgather(crcs.data(), static_cast<int>(n), MPI_UINT32_T, all_crcs.data(), static_cast<int>(n),
                  MPI_UINT32_T, group.comm());
    MPI_Allgather(lengths.data(), static_cast<int>(n), MPI_UINT64_T, all_lengths.data(), static_cast<int>(n),
                  MPI_UINT64_T, group.comm());
  }
  std::vector<std::uint32_t> out(n, 0);
  for (size_t t = 0; t < n; ++t) {
    std::uint32_t crc = 0;
    for (int r = 0; r < group.size(); ++r) {
      size_t i = static_cast<size_t>(r) * n + t;
      crc = crc32c_combine(crc, all_crcs[i], all_lengths[i]);
    }
    out[t] = crc;
  }
  return out;
}

std::string hex32(std::uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

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

H5Handle file_access(const Group& group, bool writing = false) {
  auto fapl = h5_plist(H5Pcreate(H5P_FILE_ACCESS), "file access properties");
  if (group.size() > 1) {
    h5ok(H5Pset_fapl_mpio(fapl.get(), group.comm(), MPI_INFO_NULL), "MPI-IO file driver");
    // Rank 0 reads metadata and broadcasts it rather than every rank hitting the file.
    h5ok(H5Pset_all_coll_metadata_ops(fapl.get(), true), "collective metadata reads");
    h5ok(H5Pset_coll_metadata_write(fapl.get(), true), "collective metadata writes");
  } else if (writing) {
    // Tensor data goes to the file in H5Dwrite, where a full disk is an error HDF5
    // recovers from, rather than from a buffer flushed when a dataset closes; and closing
    // the file closes whatever an error path left open in it.
    h5ok(H5Pset_sieve_buf_size(fapl.get(), 0), "no sieve buffer");
    h5ok(H5Pset_fclose_degree(fapl.get(), H5F_CLOSE_STRONG), "close degree");
  }
  // Large datasets start on 1 MiB boundaries, which parallel file systems stripe on.
  h5ok(H5Pset_alignment(fapl.get(), 1 << 20, 1 << 20), "alignment");
  return fapl;
}

// Each rank's part of a tensor is one contiguous range of the file (its rows), so
// independent I/O writes and reads it directly; collective I/O would shuffle the data
// through aggregator ranks first. Compressed (chunked, filtered) datasets need collective
// transfers in parallel HDF5.
H5Handle transfer(const Group& group, bool collective) {
  auto dxpl = h5_plist(H5Pcreate(H5P_DATASET_XFER), "transfer properties");
  if (group.size() > 1) {
    h5ok(H5Pset_dxpl_mpio(dxpl.get(), collective ? H5FD_MPIO_COLLECTIVE : H5FD_MPIO_INDEPENDENT), "transfer mode");
  }
  return dxpl;
}

// Selects in `file_space` (and a matching memory space) the part this rank writes or reads.
// Returns the memory space.
H5Handle select_part(hid_t file_space, const std::vector<std::uint64_t>& global_shape, bool sharded,
                     bool take_all, std::uint64_t first_row, std::uint64_t rows, const std::string& what) {
  if (!sharded) {
    if (take_all) return h5_space(H5Scopy(file_space), what);
    h5ok(H5Sselect_none(file_space), what);
    auto mem = h5_space(H5Scopy(file_space), what);
    h5ok(H5Sselect_none(mem.get()), what);
    return mem;
  }
  if (rows == 0) {
    h5ok(H5Sselect_none(file_space), what);
    auto mem = h5_space(H5Scopy(file_space), what);
    h5ok(H5Sselect_none(mem.get()), what);
    return mem;
  }
  std::vector<hsize_t> start(global_shape.size(), 0), count = to_hsize(global_shape);
  start[0] = first_row;
  count[0] = rows;
  h5ok(H5Sselect_hyperslab(file_space, H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr), what);
  return h5_space(H5Screate_simple(static_cast<int>(count.size()), count.data(), nullptr), what);
}

H5Handle make_space(const std::vector<std::uint64_t>& shape, const std::string& what) {
  if (shape.empty()) return h5_space(H5Screate(H5S_SCALAR), what);
  auto dims = to_hsize(shape);
  return h5_space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), what);
}

void default_warn(const std::string& message) { std::cerr << "cohort: checkpoint: " << message << "\n"; }

// A staging buffer: left uninitialised, since it is overwritten at once and zeroing a large
// fresh buffer would double the time the caller is blocked.
struct Staging {
  std::unique_ptr<std::byte[]> data;
  std::uint64_t capacity = 0;
};

struct Job {
  std::int64_t step;
  std::vector<Tensor> tensors;
  Metadata metadata;
  std::vector<Staging> staging;
  std::promise<SaveResult> promise;
};

}  // namespace

std::span<const DType> stored_dtypes() {
  // The types HDF5 stores as h5py and NumPy read them (file_type()).
  static constexpr DType kStored[] = {DType::float16, DType::float32, DType::float64, DType::int8,
                                      DType::int16,   DType::int32,   DType::int64,   DType::uint8,
                                      DType::uint16,  DType::uint32,  DType::uint64,  DType::bool8};
  return kStored;
}

std::string_view to_string(Sharding sharding) {
  return sharding == Sharding::rows ? "rows" : "replicated";
}

std::filesystem::path checkpoint_path(const std::filesystem::path& dir, std::int64_t step) {
  return dir / step_dir_name(step);
}

class Checkpointer::Impl {
 public:
  Impl(fs::path dir, MPI_Comm comm, Options options)
      : dir_(std::move(dir)), group_(comm), options_(std::move(options)) {
    if (!options_.warn) options_.warn = default_warn;
    if (options_.max_saves_in_flight < 1) {
      throw input_error("max_saves_in_flight is " + std::to_string(options_.max_saves_in_flight) +
                        "; it must be at least 1");
    }
  }

  ~Impl() {
    {
      std::unique_lock lock(mutex_);
      stopping_ = true;
    }
    wake_worker_.notify_all();
    if (worker_.joinable()) worker_.join();
  }

  const fs::path& dir() const { return dir_; }
  const Group& group() const { return group_; }

  void warn(const std::string& message) const {
    if (group_.rank() != 0) return;
    try {
      options_.warn(message);
    } catch (...) {
      default_warn(message);
    }
  }

  SaveResult save(std::int64_t step, const State& state) {
    wait();
    return save_now(step, state.tensors, state.metadata);
  }

  std::future<SaveResult> save_async(std::int64_t step, const State& state) {
    check_local(state.tensors, "save");
    if (step < 0) throw input_error("step " + std::to_string(step) + " is negative; steps start at 0");
    if (group_.size() > 1) {
      int provided = MPI_THREAD_SINGLE;
      MPI_Query_thread(&provided);
      if (provided != MPI_THREAD_MULTIPLE) {
        throw input_error("save_async needs MPI initialised with MPI_Init_thread(MPI_THREAD_MULTIPLE) when there "
                          "is more than one rank; initialise MPI that way or use save()");
      }
    }
    std::unique_lock lock(mutex_);
    slot_free_.wait(lock, [&] { return in_flight_ < options_.max_saves_in_flight; });
    ++in_flight_;
    auto job = std::make_unique<Job>();
    job->step = step;
    job->metadata = state.metadata;
    std::vector<Staging> spare = std::move(spare_);
    spare_.clear();
    lock.unlock();

    // The copy happens here, in the caller's thread, so the caller may change its tensors
    // as soon as this returns. Buffers of earlier saves are reused to avoid fresh pages.
    try {
      for (const auto& t : state.tensors) {
        std::uint64_t bytes = element_count(t.shape) * size_of(t.dtype);
        Staging buffer;
        auto fit = std::find_if(spare.begin(), spare.end(), [&](const Staging& b) { return b.capacity >= bytes; });
        if (fit != spare.end()) {
          buffer = std::move(*fit);
          spare.erase(fit);
        } else if (bytes > 0) {
          buffer.data.reset(new std::byte[bytes]);
          buffer.capacity = bytes;
        }
        if (bytes) std::memcpy(buffer.data.get(), t.data, bytes);
        Tensor staged = t;
        staged.data = buffer.data.get();
        job->tensors.push_back(std::move(staged));
        job->staging.push_back(std::move(buffer));
      }
    } catch (...) {
      lock.lock();
      --in_flight_;
      slot_free_.notify_all();
      throw;
    }

    auto future = job->promise.get_future();
    lock.lock();
    queue_.push_back(std::move(job));
    if (!worker_.joinable()) worker_ = std::thread([this] { work(); });
    lock.unlock();
    wake_worker_.notify_all();
    return future;
  }

  void wait() {
    std::unique_lock lock(mutex_);
    slot_free_.wait(lock, [&] { return in_flight_ == 0; });
  }

  SaveResult save_now(std::int64_t step, const std::vector<Tensor>& tensors, const Metadata& metadata) {
    group_.together([&] {
      if (step < 0) throw input_error("step " + std::to_string(step) + " is negative; steps start at 0");
      check_local(tensors, "save");
    });
    check_same_everywhere(group_, step, tensors, "states to save");

    std::vector<std::uint64_t> local_rows(tensors.size(), 0);
    for (size_t i = 0; i < tensors.size(); ++i) {
      if (tensors[i].sharding == Sharding::rows) local_rows[i] = tensors[i].shape[0];
    }
    RowLayout rows = layout_rows(group_, local_rows);
    std::vector<Part> parts(tensors.size());
    for (size_t i = 0; i < tensors.size(); ++i) {
      const auto& t = tensors[i];
      Part& p = parts[i];
      p.global_shape = t.shape;
      if (t.sharding == Sharding::rows) {
        p.global_shape[0] = rows.total[i];
        p.first_row = rows.first_row[i];
      }
      p.local_bytes = element_count(t.shape) * size_of(t.dtype);
      p.global_bytes = element_count(p.global_shape) * size_of(t.dtype);
    }

    // Rank 0 prepares a hidden directory; its name and the save time go to every rank.
    const fs::path final_path = checkpoint_path(dir_, step);
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
      for (const auto& e : remove_leftovers(dir_)) warn("cleaning leftovers: " + e);
      fs::path tmp = dir_ / ("." + step_dir_name(step) + ".tmp-" + nonce());
      if (::mkdir(tmp.c_str(), 0755) != 0) {
        throw input_error(system_message("cannot write in checkpoint directory " + dir_.string(), errno) +
                          "; give a directory you can write or fix its permissions");
      }
      prepared = tmp.string() + "\n" + utc_now();
    });
    prepared = group_.broadcast(prepared);
    const fs::path tmp = prepared.substr(0, prepared.find('\n'));
    const std::string time = prepared.substr(prepared.find('\n') + 1);

    try {
      std::vector<std::uint32_t> crcs(tensors.size(), 0);
      std::vector<std::uint64_t> lengths(tensors.size(), 0);
      group_.together([&] { write_state(tmp / kStateFile, step, time, tensors, parts, metadata, crcs, lengths); });
      crcs = combine_crcs(group_, crcs, lengths);

      std::uint64_t total_bytes = 0;
      for (const auto& p : parts) total_bytes += p.global_bytes;
      std::vector<std::int64_t> pruned;
      group_.together([&] {
        if (group_.rank() != 0) return;
        Manifest m;
        m.format_version = kFormatVersion;
        m.step = step;
        m.time = time;
        m.world_size = group_.size();
        m.metadata = metadata;
        for (size_t i = 0; i < tensors.size(); ++i) {
          const auto& t = tensors[i];
          m.tensors.push_back({t.name, t.dtype, parts[i].global_shape, t.sharding, parts[i].global_bytes, crcs[i],
                               t.compress && use_chunks(parts[i], t)});
        }
        m.state_bytes = fs::file_size(tmp / kStateFile);
        // Its rename syncs the directory, and with it the name of every rank's state.h5.
        write_file_atomically(tmp / kManifestFile, json::write(manifest_to_json(m), 2) + "\n");
        commit(tmp, final_path);
        try {
          write_latest(dir_, committed_steps(dir_).back());
        } catch (const Error& e) {
          // The checkpoint is committed; `latest` is a pointer for tools and shells.
          warn(std::string("step ") + std::to_string(step) + " is committed but updating " +
               (dir_ / kLatestFile).string() + " failed: " + e.what());
        }
        pruned = apply_retention(step);
      });

      SaveResult result;
      result.step = step;
      result.path = final_path;
      result.bytes = total_bytes;
      std::string pruned_text;
      for (auto s : pruned) pruned_text += std::to_string(s) + " ";
      pruned_text = group_.broadcast(pruned_text);
      for (size_t pos = 0; pos < pruned_text.size();) {
        size_t end = pruned_text.find(' ', pos);
        result.pruned.push_back(std::stoll(pruned_text.substr(pos, end - pos)));
        pos = end + 1;
      }
      return result;
    } catch (const Error& e) {
      if (group_.rank() == 0) {
        std::error_code ec;
        fs::remove_all(tmp, ec);
      }
      if (e.kind() == ErrorKind::input) throw;
      // Where, for failures such as a full disk, whose messages name only a file.
      throw Error("saving step " + std::to_string(step) + " in " + dir_.string() + ": " + e.what());
    } catch (...) {
      if (group_.rank() == 0) {
        std::error_code ec;
        fs::remove_all(tmp, ec);
      }
      throw;
    }
  }

  std::optional<LoadResult> load_latest(std::span<const TensorSlot> slot_span) {
    wait();
    std::vector<TensorSlot> slots(slot_span.begin(), slot_span.end());
    std::string listing;
    group_.together([&] {
      if (group_.rank() != 0) return;
      for (auto s : committed_steps(dir_)) listing += std::to_string(s) + " ";
    });
    listing = group_.broadcast(listing);
    std::vector<std::int64_t> steps;
    for (size_t pos = 0; pos < listing.size();) {
      size_t end = listing.find(' ', pos);
      steps.push_back(std::stoll(listing.substr(pos, end - pos)));
      pos = end + 1;
    }
    if (steps.empty()) return std::nullopt;

    std::vector<Skipped> skipped;
    for (auto it = steps.rbegin(); it != steps.rend(); ++it) {
      try {
        LoadResult result = load_step(*it, slots);
        result.skipped = skipped;
        if (!skipped.empty()) {
          std::string text = "loaded " + step_dir_name(*it) + " instead of a newer checkpoint:";
          for (const auto& s : skipped) text += " " + step_dir_name(s.step) + " is damaged (" + s.reason + ");";
          text.pop_back();
          warn(text);
        }
        return result;
      } catch (const Error& e) {
        if (e.kind() == ErrorKind::input) throw;
        skipped.push_back({*it, e.what()});
      }
    }
    std::string text = "no checkpoint in " + dir_.string() + " can be loaded:";
    for (const auto& s : skipped) text += " " + step_dir_name(s.step) + ": " + s.reason + ";";
    text += " repair or remove them (cohort ckpt verify), or start without resuming";
    throw Error(text);
  }

  LoadResult load(std::int64_t step, std::span<const TensorSlot> slot_span) {
    wait();
    std::vector<TensorSlot> slots(slot_span.begin(), slot_span.end());
    bool exists = false;
    group_.together([&] {
      if (group_.rank() == 0) exists = fs::is_directory(checkpoint_path(dir_, step));
    });
    exists = group_.broadcast(exists ? "1" : "0") == "1";
    if (!exists) {
      throw input_error("no checkpoint " + step_dir_name(step) + " in " + dir_.string() +
                        " (see 'cohort ckpt ls " + dir_.string() + "')");
    }
    return load_step(step, slots);
  }

  std::vector<std::int64_t> steps() const { return committed_steps(dir_); }

 private:
  static bool use_chunks(const Part& p, const Tensor& t) {
    return t.compress && !p.global_shape.empty() && p.global_bytes > 0;
  }

  void write_state(const fs::path& path, std::int64_t step, const std::string& time,
                   const std::vector<Tensor>& tensors, const std::vector<Part>& parts, const Metadata& metadata,
                   std::vector<std::uint32_t>& crcs, std::vector<std::uint64_t>& lengths) {
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
      const std::byte dummy{};
      // Checksums are computed on another thread while HDF5 writes: the data is only read.
      auto checksums = std::async(std::launch::async, [&] {
        for (size_t i = 0; i < tensors.size(); ++i) {
          if (tensors[i].sharding == Sharding::rows || group_.rank() == 0) {
            crcs[i] = tensors[i].data ? crc32c(0, tensors[i].data, parts[i].local_bytes) : 0;
            lengths[i] = parts[i].local_bytes;
          }
        }
      });
      for (size_t i = 0; i < tensors.size(); ++i) {
        const auto& t = tensors[i];
        const auto& p = parts[i];
        std::string what = "tensor '" + t.name + "'";
        auto file_space = make_space(p.global_shape, what);
        auto dcpl = h5_plist(H5Pcreate(H5P_DATASET_CREATE), what);
        h5ok(H5Pset_fill_time(dcpl.get(), H5D_FILL_TIME_NEVER), what);
        if (use_chunks(p, t)) {
          std::vector<hsize_t> chunk = to_hsize(p.global_shape);
          std::uint64_t row_bytes = p.global_bytes / std::max<std::uint64_t>(1, p.global_shape[0]);
          chunk[0] = std::min<hsize_t>(std::max<hsize_t>(1, p.global_shape[0]), chunk_rows(row_bytes));
          for (auto& c : chunk) c = std::max<hsize_t>(1, c);
          h5ok(H5Pset_chunk(dcpl.get(), static_cast<int>(chunk.size()), chunk.data()), what + ": chunking");
          h5ok(H5Pset_deflate(dcpl.get(), 1), what + ": compression");
        }
        auto dataset = h5_dataset(H5Dcreate2(group.get(), t.name.c_str(), file_type(t.dtype), file_space.get(),
                                             H5P_DEFAULT, dcpl.get(), dapl.get()),
                                  "create " + what);
        bool sharded = t.sharding == Sharding::rows;
        std::uint64_t local_rows = sharded ? t.shape[0] : 0;
        auto mem_space = select_part(file_space.get(), p.global_shape, sharded, group_.rank() == 0, p.first_row,
                                     local_rows, what);
        const void* data = t.data ? t.data : &dummy;
        hid_t dxpl = use_chunks(p, t) ? collective.get() : independent.get();
        h5ok(H5Dwrite(dataset.get(), memory_type(t.dtype), mem_space.get(), file_space.get(), dxpl, data),
             "write " + what);
        dataset.close("close " + what);
      }
      checksums.get();
      group.close("close group /tensors");
      json::Value meta = metadata_to_json(metadata);
      meta.set("step", step);
      meta.set("time", time);
      meta.set("world_size", group_.size());
      write_int_attr(file.get(), "cohort.format_version", kFormatVersion);
      write_int_attr(file.get(), "cohort.step", step);
      write_int_attr(file.get(), "cohort.world_size", group_.size());
      write_string_attr(file.get(), "cohort.metadata", json::write(meta));
      file.close();
    }
    // Each rank flushes what its node cached of the file: on a parallel file system an
    // fsync from rank 0 alone would not cover other nodes' writes.
    fsync_path(path);
  }

  // Makes `tmp` the checkpoint at `final_path`. A step saved again (a run that resumed from
  // an earlier step and got here again) trades places with the old copy in one exchange, so
  // that a complete copy of the step is committed at every instant; the old copy, now
  // under the hidden temporary name, is removed after. Where the file system cannot
  // exchange, the old copy is moved aside first: a crash in between leaves the earlier
  // steps without this one, never a mix.
  void commit(const fs::path& tmp, const fs::path& final_path) {
    std::error_code ec;
    if (fs::exists(final_path)) {
      if (exchange_durably(tmp, final_path)) {
        fs::remove_all(tmp, ec);
        return;
      }
      fs::path aside = dir_ / ("." + final_path.filename().string() + ".deleting-" + nonce());
      rename_durably(final_path, aside);
      fs::remove_all(aside, ec);
    }
    rename_durably(tmp, final_path);
  }

  std::vector<std::int64_t> apply_retention(std::int64_t just_saved) {
    std::vector<std::int64_t> removed;
    try {
      auto doomed = steps_to_prune(committed_steps(dir_), options_.retention, just_saved);
      for (const auto& e : remove_steps(dir_, doomed, removed)) warn("pruning: " + e);
    } catch (const Error& e) {
      warn(std::string("pruning: ") + e.what());
    }
    return removed;
  }

  LoadResult load_step(std::int64_t step, const std::vector<TensorSlot>& slots) {
    group_.together([&] { check_local(slots, "load into"); });
    check_same_everywhere(group_, step, slots, "tensor slots to load");
    const fs::path path = checkpoint_path(dir_, step);
    const fs::path manifest_path = path / kManifestFile;

    // Rank 0 reads the manifest; everyone parses the same text.
    std::string text;
    group_.together([&] {
      if (group_.rank() != 0) return;
      text = read_text(manifest_path);
    });
    text = group_.broadcast(text);
    Manifest manifest;
    group_.together([&] {
      manifest = manifest_from_json(json::parse(text, manifest_path.string()), manifest_path.string());
      if (manifest.step != step) {
        throw Error(manifest_path.string() + " says step " + std::to_string(manifest.step) + ", the directory says " +
                    std::to_string(step));
      }
    });

    // Which stored tensor each slot names. A name the manifest lacks is the caller's to fix
    // only once the manifest is known to agree with the file, checked below.
    std::vector<std::uint64_t> local_rows(slots.size(), 0);
    for (size_t i = 0; i < slots.size(); ++i) {
      if (slots[i].sharding == Sharding::rows) local_rows[i] = slots[i].shape[0];
    }
    RowLayout rows = layout_rows(group_, local_rows);
    std::map<std::string_view, const TensorInfo*> by_name;
    for (const auto& t : manifest.tensors) by_name.emplace(t.name, &t);
    std::vector<const TensorInfo*> infos(slots.size());
    const TensorSlot* unknown = nullptr;
    for (size_t i = 0; i < slots.size(); ++i) {
      const auto& s = slots[i];
      auto it = by_name.find(s.name);
      if (it != by_name.end()) infos[i] = it->second;
      else if (!unknown) unknown = &s;
    }
    // Slots against the manifest, once the manifest is known to agree with the file (a
    // damaged manifest is a reason to fall back, not the caller's mistake).
    auto check_slots = [&] {
      for (size_t i = 0; i < slots.size(); ++i) {
        const auto& s = slots[i];
        const auto* it = infos[i];
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
          whole[0] = rows.total[i];
          if (whole != it->shape) {
            throw input_error("tensor '" + s.name + "': the checkpoint holds shape " + shape_text(it->shape) +
                              ", the ranks' slots add up to " + shape_text(whole) +
                              " (rows are split across ranks; the other dimensions must match)");
          }
        }
      }
    };

    // Rank 0 checks the file's size first: a truncated file is the common damage.
    group_.together([&] {
      if (group_.rank() != 0) return;
      auto size = regular_file_size(path / kStateFile);
      if (size != manifest.state_bytes) {
        throw Error(std::string(kStateFile) + " is " + std::to_string(size) + " bytes, the manifest says " +
                    std::to_string(manifest.state_bytes) + " (truncated or overwritten)");
      }
    });

    std::vector<std::uint32_t> crcs(slots.size(), 0);
    std::vector<std::uint64_t> lengths(slots.size(), 0);
    // Declared before the HDF5 handles: on an error the handles close first, then these
    // futures wait for their threads, which touch only the slots' memory.
    std::vector<std::future<void>> checksums;
    {
      H5Lock h5;
      auto fapl = file_access(group_);
      H5Handle file;
      group_.together([&] {
        std::string file_path = (path / kStateFile).string();
        file = h5_file(H5Fopen(file_path.c_str(), H5F_ACC_RDONLY, fapl.get()), "open " + file_path);
        auto stored_step = read_int_attr(file.get(), "cohort.step");
        if (stored_step != step) {
          throw Error(std::string(kStateFile) + " says step " + std::to_string(stored_step) + ", expected " +
                      std::to_string(step));
        }
        if (unknown) {
          // A manifest that names tensors the file lacks (or lacks one the file holds) is
          // damaged: its list of names is no reason to blame the caller.
          for (const auto& t : manifest.tensors) {
            if (!has_tensor(file.get(), t.name)) {
              throw Error(std::string(kManifestFile) + " lists tensor '" + t.name + "', which " +
                          std::string(kStateFile) + " does not hold");
            }
          }
          if (has_tensor(file.get(), unknown->name)) {
            throw Error(std::string(kStateFile) + " holds tensor '" + unknown->name + "', which " +
                        std::string(kManifestFile) + " does not list");
          }
          std::string names;
          for (const auto& t : manifest.tensors) names += (names.empty() ? "" : ", ") + t.name;
          throw input_error("tensor '" + unknown->name + "' is not in " + path.string() + " (it has: " +
                            (names.empty() ? "no tensors" : names) + ")");
        }
      });
      auto independent = transfer(group_, false), collective = transfer(group_, true);
      ReadAhead read_ahead(path / kStateFile);
      std::byte dummy{};
      std::vector<H5Handle> datasets(slots.size()), spaces(slots.size());
      for (size_t i = 0; i < slots.size(); ++i) {
        const auto& info = *infos[i];
        group_.together([&] {
          auto t = open_tensor(file.get(), info);
          datasets[i] = std::move(t.dataset);
          spaces[i] = std::move(t.space);
        });
      }
      group_.together(check_slots);
      for (size_t i = 0; i < slots.size(); ++i) {
        const auto& s = slots[i];
        const auto& info = *infos[i];
        std::string what = "tensor '" + s.name + "'";
        const auto& dataset = datasets[i];
        const auto& file_space = spaces[i];
        bool sharded = s.sharding == Sharding::rows;
        std::uint64_t bytes = element_count(s.shape) * size_of(s.dtype);
        lengths[i] = bytes;
        if (!info.compressed && !info.shape.empty() && bytes > 0) {
          // Uncompressed tensors are read in blocks of rows and checksummed while each
          // block is still in cache: one pass over memory instead of two. Independent
          // transfers let ranks read different numbers of blocks.
          const std::uint64_t my_rows = sharded ? s.shape[0] : info.shape[0];
          const std::uint64_t first = sharded ? rows.first_row[i] : 0;
          const std::uint64_t row_bytes = bytes / my_rows;
          const std::uint64_t block = std::max<std::uint64_t>(1, kReadBlockBytes / row_bytes);
          auto* out = static_cast<std::byte*>(s.data);
          haddr_t at = H5Dget_offset(dataset.get());
          if (at != HADDR_UNDEF) read_ahead.advise(at + first * row_bytes, my_rows * row_bytes);
          group_.together([&] {
            std::uint32_t crc = 0;
            std::vector<hsize_t> start(info.shape.size(), 0), count = to_hsize(info.shape);
            for (std::uint64_t r = 0; r < my_rows; r += block) {
              start[0] = first + r;
              count[0] = std::min(block, my_rows - r);
              h5ok(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(),
                                       nullptr),
                   what);
              auto mem_space = h5_space(H5Screate_simple(static_cast<int>(count.size()), count.data(), nullptr), what);
              h5ok(H5Dread(dataset.get(), memory_type(s.dtype), mem_space.get(), file_space.get(), independent.get(),
                           out + r * row_bytes),
                   "read " + what);
              crc = crc32c(crc, out + r * row_bytes, count[0] * row_bytes);
            }
            crcs[i] = crc;
          });
          continue;
        }
        group_.together([&] {
          auto mem_space = select_part(file_space.get(), info.shape, sharded, true, rows.first_row[i],
                                       sharded ? s.shape[0] : 0, what);
          void* data = s.data ? s.data : &dummy;
          hid_t dxpl = info.compressed ? collective.get() : independent.get();
          h5ok(H5Dread(dataset.get(), memory_type(s.dtype), mem_space.get(), file_space.get(), dxpl, data),
               "read " + what);
        });
        // This tensor's checksum is computed while the next one is read.
        checksums.push_back(std::async(std::launch::async, [&crcs, &s, i, bytes] {
          crcs[i] = s.data ? crc32c(0, s.data, bytes) : 0;
        }));
      }
      // With MPI-IO, HDF5 closes a file only once nothing in it is open.
      datasets.clear();
      spaces.clear();
      group_.together([&] { file.close("close " + (path / kStateFile).string()); });
      for (auto& c : checksums) c.get();
    }

    // Replicated slots are checked by each rank; sharded ones from all ranks' parts.
    std::vector<std::uint32_t> local = crcs;
    for (size_t i = 0; i < slots.size(); ++i) {
      if (slots[i].sharding == Sharding::replicated) {
        crcs[i] = 0;
        lengths[i] = 0;
      }
    }
    std::vector<std::uint32_t> combined = combine_crcs(group_, crcs, lengths);
    group_.together([&] {
      for (size_t i = 0; i < slots.size(); ++i) {
        std::uint32_t got = slots[i].sharding == Sharding::replicated ? local[i] : combined[i];
        if (got != infos[i]->crc32c) {
          throw Error("tensor '" + slots[i].name + "': checksum mismatch (manifest " + hex32(infos[i]->crc32c) +
                      ", data " + hex32(got) + ")");
        }
      }
    });

    LoadResult result;
    result.step = step;
    result.path = path;
    result.saved_world_size = manifest.world_size;
    result.time = manifest.time;
    result.metadata = manifest.metadata;
    return result;
  }

  void work() {
    for (;;) {
      std::unique_ptr<Job> job;
      {
        std::unique_lock lock(mutex_);
        wake_worker_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;
        job = std::move(queue_.front());
        queue_.pop_front();
      }
      try {
        job->promise.set_value(save_now(job->step, job->tensors, job->metadata));
      } catch (const std::exception& e) {
        if (group_.rank() == 0) warn(std::string("asynchronous save of step ") + std::to_string(job->step) +
                                     " failed: " + e.what());
        job->promise.set_exception(std::current_exception());
      }
      std::unique_lock lock(mutex_);
      // At most one save's buffers are kept for reuse; the rest go back to the system.
      spare_ = std::move(job->staging);
      --in_flight_;
      slot_free_.notify_all();
    }
  }

  fs::path dir_;
  Group group_;
  Options options_;

  std::mutex mutex_;
  std::condition_variable wake_worker_;
  std::condition_variable slot_free_;
  std::deque<std::unique_ptr<Job>> queue_;
  std::vector<Staging> spare_;
  int in_flight_ = 0;
  bool stopping_ = false;
  std::thread worker_;
};

Checkpointer::Checkpointer(std::filesystem::path dir, MPI_Comm comm, Options options)
    : impl_(std::make_unique<Impl>(std::move(dir), comm, std::move(options))) {}

Checkpointer::~Checkpointer() = default;

const std::filesystem::path& Checkpointer::dir() const { return impl_->dir(); }
int Checkpointer::rank() const { return impl_->group().rank(); }
int Checkpointer::world_size() const { return impl_->group().size(); }

SaveResult Checkpointer::save(std::int64_t step, const State& state) { return impl_->save(step, state); }

std::future<SaveResult> Checkpointer::save_async(std::int64_t step, const State& state) {
  return impl_->save_async(step, state);
}

void Checkpointer::wait() { impl_->wait(); }

std::optional<LoadResult> Checkpointer::load_latest(std::span<const TensorSlot> slots) {
  return impl_->load_latest(slots);
}

LoadResult Checkpointer::load(std::int64_t step, std::span<const TensorSlot> slots) { return impl_->load(step, slots); }

std::vector<std::int64_t> Checkpointer::steps() const { return impl_->steps(); }

}  // namespace cohort::checkpoint
