#include "collectives/bucketing.hpp"

#include <algorithm>
#include <string>

#include "collectives/dtype.hpp"
#include "common/error.hpp"
#if COHORT_HAVE_NCCL
#include "collectives/nccl_backend.hpp"
#endif

namespace cohort::collectives {

GradientBuckets::GradientBuckets(Communicator& comm, BucketOptions options)
    : comm_(comm), options_(options) {
  if (options_.bucket_bytes == 0) {
    throw input_error("bucket_bytes 0: a bucket needs room for at least one element "
                      "(PyTorch DDP uses 25 MiB)");
  }
}

GradientBuckets::~GradientBuckets() = default;  // each bucket's Request waits when destroyed

std::size_t GradientBuckets::add(void* data, std::size_t count, DType dtype) {
  detail::require_collective_dtype("GradientBuckets::add", dtype);
  if (count > 0 && !data) {
    throw input_error("GradientBuckets::add: a null buffer with count " + std::to_string(count));
  }
#if COHORT_HAVE_NCCL
  const bool on_device = data && detail::is_device_pointer(data);
#else
  const bool on_device = false;
#endif
  if (!placed_) device_ = options_.device.value_or(on_device);
  if (data && on_device != device_) {
    throw input_error("GradientBuckets::add: tensor " + std::to_string(tensors_.size()) + " is " +
                      (on_device ? "CUDA device" : "host") + " memory and the buckets live in " +
                      (device_ ? "device" : "host") + " memory: keep every gradient in one place, or set "
                      "BucketOptions::device to match");
  }
  return add_tensor(data, count, dtype, false);
}

DType GradientBuckets::accumulation_type(DType dtype) const {
  // NCCL reduces 16-bit types natively and device buckets hold them as they are; MPI's
  // reductions of them round at every step, so host buckets widen them.
  if (device_) return dtype;
  return dtype == DType::float16 || dtype == DType::bfloat16 ? DType::float32 : dtype;
}

void GradientBuckets::copy(const void* src, DType from, void* dst, DType to, std::size_t count) const {
#if COHORT_HAVE_NCCL
  if (device_) return detail::device_copy(dst, src, count * size_of(from));
#endif
  detail::convert(src, from, dst, to, count);
}

std::size_t GradientBuckets::add_view(std::size_t count, DType dtype) {
  detail::require_collective_dtype("GradientBuckets::add_view", dtype);
  if (!placed_) device_ = options_.device.value_or(false);
  if (accumulation_type(dtype) != dtype) {
    throw input_error("GradientBuckets::add_view: " + std::string(to_string(dtype)) +
                      " gradients are accumulated in float buckets and cannot live in them: "
                      "use add() with a buffer of your own");
  }
  return add_tensor(nullptr, count, dtype, true);
}

std::size_t GradientBuckets::add_tensor(void* data, std::size_t count, DType dtype, bool view) {
  if (sealed_) {
    throw Error("GradientBuckets: tensors are registered before the first mark_ready or data(); "
                "register every tensor first");
  }
  if (!placed_) {
#if !COHORT_HAVE_NCCL
    if (device_) {
      throw input_error("BucketOptions::device: this cohort was built without CUDA and NCCL: buckets live "
                        "in host memory");
    }
#endif
    placed_ = true;
  }
  tensors_.push_back(Tensor{data, count, dtype, 0, 0, false, view});
  return tensors_.size() - 1;
}

void* GradientBuckets::data(std::size_t id) {
  if (!sealed_) seal();
  if (id >= tensors_.size()) {
    throw input_error("GradientBuckets::data: tensor id " + std::to_string(id) + " was not registered");
  }
  return tensors_[id].data;
}

void GradientBuckets::seal() {
  if (device_ && comm_.device() < 0) {
    throw input_error("GradientBuckets: the buckets live in device memory but the communicator has no CUDA "
                      "device (its backend is mpi, or no device is visible): use backend auto or nccl");
  }
  sealed_ = true;
  for (std::size_t i = 0; i < tensors_.size(); ++i) {
    Tensor& t = tensors_[i];
    const DType acc = accumulation_type(t.dtype);
    const std::size_t bytes = t.count * size_of(acc);
    const bool fits = !buckets_.empty() && buckets_.back().dtype == acc &&
                      buckets_.back().count * size_of(acc) + bytes <= options_.bucket_bytes;
    if (!fits) {
      Bucket b;
      b.dtype = acc;
      b.first_tensor = i;
      buckets_.push_back(std::move(b));
    }
    Bucket& b = buckets_.back();
    t.bucket = buckets_.size() - 1;
    t.offset = b.count;
    b.count += t.count;
    ++b.tensors;
  }
  for (Bucket& b : buckets_) {
    // Allocated and touched once, reused every step.
    b.bytes = b.count * size_of(b.dtype);
#if COHORT_HAVE_NCCL
    if (device_) {
      auto buffer = std::make_shared<detail::DeviceBuffer>(b.bytes, comm_.device());
      b.data = static_cast<std::byte*>(buffer->data());
      b.device = std::move(buffer);
    }
#endif
    if (!device_) {
      b.host.assign(b.bytes, std::byte{0});
      b.data = b.host.data();
    }
    b.pending = b.tensors;
  }
  for (Tensor& t : tensors_) {
    if (t.view) t.data = buckets_[t.bucket].data + t.offset * size_of(t.dtype);
  }
}

std::size_t GradientBuckets::largest_bucket_bytes() const {
  std::size_t most = 0;
  for (const Bucket& b : buckets_) most = std::max(most, b.bytes);
  return most;
}

void GradientBuckets::mark_ready(std::size_t id) {
  if (!sealed_) seal();
  if (id >= tensors_.size()) {
    throw input_error("GradientBuckets::mark_ready: tensor id " + std::to_string(id) +
                      " was not registered (ids are 0.." + std::to_string(tensors_.size()) + ")");
  }
  Tensor& t = tensors_[id];
  if (t.ready) {
    throw Error("GradientBuckets::mark_ready: tensor " + std::to_string(id) +
                " is already ready in this step: call wait() before the next step");
  }
  t.ready = true;
  Bucket& b = buckets_[t.bucket];
  if (!t.view) copy(t.data, t.dtype, b.data + t.offset * size_of(b.dtype), b.dtype, t.count);
  if (--b.pending == 0) start_ready_buckets();
}

void GradientBuckets::start_ready_buckets() {
  const ReduceOp op = options_.average ? ReduceOp::avg : ReduceOp::sum;
  while (next_to_start_ < buckets_.size() && buckets_[next_to_start_].pending == 0) {
    Bucket& b = buckets_[next_to_start_++];
    b.request = comm_.iallreduce(b.data, b.count, b.dtype, op);
  }
}

void GradientBuckets::wait() {
  if (!sealed_) seal();
  std::size_t missing = 0;
  std::size_t first_missing = 0;
  for (std::size_t i = 0; i < tensors_.size(); ++i) {
    if (!tensors_[i].ready && missing++ == 0) first_missing = i;
  }
  if (missing > 0) {
    throw Error("GradientBuckets::wait: " + std::to_string(missing) + " tensor(s) not marked ready "
                "in this step (the first is id " + std::to_string(first_missing) +
                "): mark every registered tensor ready before wait()");
  }
  for (Bucket& b : buckets_) {
    b.request.wait();
    for (std::size_t i = b.first_tensor; i < b.first_tensor + b.tensors; ++i) {
      Tensor& t = tensors_[i];
      if (!t.view) copy(b.data + t.offset * size_of(b.dtype), b.dtype, t.data, t.dtype, t.count);
      t.ready = false;
    }
    b.pending = b.tensors;
  }
#if COHORT_HAVE_NCCL
  // The copies back run on the default stream: done before wait() returns, so that any
  // stream, or the host, sees the reduced gradients.
  if (device_) detail::default_stream_synchronize();
#endif
  next_to_start_ = 0;
}

}  // namespace cohort::collectives
