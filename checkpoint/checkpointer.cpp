// The Checkpointer: its directory and ranks, the queue of asynchronous saves, and loading
// the newest checkpoint that verifies. One save or load of a step is save.cpp's and
// load.cpp's.
#include <algorithm>
#include <bit>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <iostream>
#include <mutex>
#include <thread>

#include "checkpoint/checkpoint.hpp"
#include "checkpoint/collective_io.hpp"
#include "checkpoint/layout.hpp"

namespace cohort::checkpoint {

using namespace detail;

// Checksums are defined over the little-endian bytes the file holds; on this host those are
// the bytes in memory.
static_assert(std::endian::native == std::endian::little, "checkpoint/ assumes a little-endian host");

namespace {

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

// Copies `tensors` into staging buffers, reusing those of `spare` that are large enough
// (fresh pages cost more than the copy), so that the caller may change its tensors as soon
// as save_async returns.
void snapshot(const std::vector<Tensor>& tensors, std::vector<Staging>& spare, Job& job) {
  for (const auto& t : tensors) {
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
    job.tensors.push_back(std::move(staged));
    job.staging.push_back(std::move(buffer));
  }
}

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
      : dir_(std::move(dir)), group_(comm, dir_), options_(std::move(options)) {
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

  SaveResult save_now(std::int64_t step, const std::vector<Tensor>& tensors, const Metadata& metadata) {
    const SaveSettings settings{options_.retention, [this](const std::string& message) { warn(message); }};
    return save_step(group_, dir_, settings, step, tensors, metadata);
  }

  std::future<SaveResult> save_async(std::int64_t step, const State& state) {
    check_local(state.tensors, "save");
    if (step < 0) throw input_error("step " + std::to_string(step) + " is negative; steps start at 0");
    if (group_.size() > 1 && group_.mpi()) {
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

    // The copy happens here, in the caller's thread.
    try {
      snapshot(state.tensors, spare, *job);
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

  std::optional<LoadResult> load_latest(std::span<const TensorSlot> slot_span) {
    wait();
    std::vector<TensorSlot> slots(slot_span.begin(), slot_span.end());
    std::vector<std::int64_t> committed;
    group_.together([&] {
      if (group_.rank() == 0) committed = committed_steps(dir_);
    });
    const std::vector<std::int64_t> steps = broadcast_steps(group_, committed);
    if (steps.empty()) return std::nullopt;

    std::vector<Skipped> skipped;
    for (auto it = steps.rbegin(); it != steps.rend(); ++it) {
      try {
        LoadResult result = load_step(group_, dir_, *it, slots);
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
    return load_step(group_, dir_, step, slots);
  }

  std::vector<std::int64_t> steps() const { return committed_steps(dir_); }

 private:
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
