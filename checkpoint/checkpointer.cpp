// The Checkpointer: its directory and ranks, the queue of asynchronous saves, and loading
// the newest checkpoint that verifies. One save or load of a step is save.cpp's and
// load.cpp's.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <iostream>
#include <mutex>
#include <thread>
#include <vector>

#include "checkpoint/checkpoint.hpp"
#include "checkpoint/collective_io.hpp"
#include "checkpoint/layout.hpp"
#include "checkpoint/threads.hpp"

namespace cohort::checkpoint {

using namespace detail;

// Checksums are defined over the little-endian bytes the file holds; on this host those are
// the bytes in memory.
static_assert(std::endian::native == std::endian::little, "checkpoint/ assumes a little-endian host");

namespace {

void default_warn(const std::string& message) { std::cerr << "cohort: checkpoint: " << message << "\n"; }

// A staging buffer: anonymous memory, left uninitialised (it is overwritten at once), its
// pages faulted in by fault_in() on the thread that makes it rather than by the caller's copy.
class Staging {
 public:
  Staging() = default;
  explicit Staging(std::uint64_t bytes) : capacity_(bytes) {
    if (bytes == 0) return;
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw Error(system_message("allocating " + std::to_string(bytes) + " bytes of staging", errno));
    data_ = static_cast<std::byte*>(p);
    fault_in();
  }
  Staging(Staging&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), capacity_(std::exchange(other.capacity_, 0)) {}
  Staging& operator=(Staging&& other) noexcept {
    if (this != &other) {
      release();
      data_ = std::exchange(other.data_, nullptr);
      capacity_ = std::exchange(other.capacity_, 0);
    }
    return *this;
  }
  ~Staging() { release(); }

  std::byte* data() const { return data_; }
  std::uint64_t capacity() const { return capacity_; }

 private:
  void fault_in() {
    const auto page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
    for (std::uint64_t at = 0; at < capacity_; at += page) data_[at] = std::byte{0};
  }
  void release() {
    if (data_) ::munmap(data_, capacity_);
    data_ = nullptr;
  }
  std::byte* data_ = nullptr;
  std::uint64_t capacity_ = 0;
};

struct Job {
  std::int64_t step;
  std::vector<Tensor> tensors;
  Metadata metadata;
  std::vector<Staging> staging;
  std::promise<SaveResult> promise;
};

// Copies `tensors` into staging buffers, so that the caller may change its tensors as soon
// as save_async returns. Buffers of `spare` that are large enough are reused; the others
// (all of them on the first save) are made one after another on another thread, which
// takes the page faults of fresh memory off the caller's copy: the caller copies into each
// buffer once it is ready, while the next ones are being made.
void snapshot(const std::vector<Tensor>& tensors, std::vector<Staging>& spare, Job& job) {
  std::vector<std::uint64_t> fresh;  // the sizes to make, in tensor order
  std::vector<std::optional<Staging>> reused(tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& t = tensors[i];
    const std::uint64_t bytes = element_count(t.shape) * size_of(t.dtype);
    auto fit = std::find_if(spare.begin(), spare.end(), [&](const Staging& b) { return b.capacity() >= bytes; });
    if (bytes == 0) {
      reused[i] = Staging();
    } else if (fit != spare.end()) {
      reused[i] = std::move(*fit);
      spare.erase(fit);
    } else {
      fresh.push_back(bytes);
    }
  }
  std::vector<std::promise<Staging>> made(fresh.size());
  std::vector<std::future<Staging>> ready;
  for (auto& m : made) ready.push_back(m.get_future());
  std::atomic<bool> stop{false};
  auto maker = std::async(std::launch::async, [&] {
    for (size_t k = 0; k < fresh.size() && !stop; ++k) {
      try {
        made[k].set_value(Staging(fresh[k]));
      } catch (...) {
        made[k].set_exception(std::current_exception());
      }
    }
  });
  // The maker must not outlive what it writes to, even when a copy throws.
  struct Join {
    std::atomic<bool>& stop;
    std::future<void>& maker;
    ~Join() {
      stop = true;
      maker.wait();
    }
  } join{stop, maker};
  // Buffers that exist are copied into together at the end, on several cores; fresh ones one
  // by one as the maker hands them over.
  std::vector<Copy> copies;
  size_t next = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& t = tensors[i];
    Staging buffer = reused[i] ? std::move(*reused[i]) : ready[next++].get();
    const std::uint64_t bytes = element_count(t.shape) * size_of(t.dtype);
    if (bytes && reused[i]) {
      copies.push_back({buffer.data(), static_cast<const std::byte*>(t.data), bytes});
    } else if (bytes) {
      std::memcpy(buffer.data(), t.data, bytes);
    }
    Tensor staged = t;
    staged.data = buffer.data();
    job.tensors.push_back(std::move(staged));
    job.staging.push_back(std::move(buffer));
  }
  copy_all(copies);
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
