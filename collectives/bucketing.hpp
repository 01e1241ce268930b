// collectives/bucketing.hpp — gradient allreduce fused into buckets, overlapping backward.
//
// As PyTorch DDP and Horovod's tensor fusion do: many small gradients are copied into a few
// large buckets, and each bucket is reduced as one message as soon as its last gradient is
// ready, while the rest of the backward pass runs. One large allreduce costs far less than
// many small ones, and the reduction of early buckets hides behind the computation of late
// gradients.
//
//   cohort::collectives::GradientBuckets buckets(comm, {.bucket_bytes = 25 << 20, .average = true});
//   for (auto& p : reversed(parameters)) buckets.add(p.grad, p.count, cohort::DType::float32);
//   for (step...) {
//     for (auto& p : reversed(parameters)) { backward(p); buckets.mark_ready(id_of(p)); }
//     buckets.wait();     // gradients now hold the (averaged) sum over ranks
//     optimizer_step();
//   }
//
// Tensors are registered in the order their gradients become ready (for backpropagation,
// the reverse of the forward order) and fill buckets in that order. Every rank registers the
// same tensors in the same order. Buckets start in bucket order whatever order tensors are
// marked in, so that every rank issues the same allreduces in the same order. f16 and bf16
// gradients are accumulated in f32 buckets: the reduction across ranks rounds once, at the
// end, rather than once per rank. Gradients registered with add_view live in the buckets
// themselves, which saves the two copies. Gradients in CUDA device memory get buckets in
// device memory, reduced by NCCL; copies to and from them are ordered on the default
// stream, after the kernels that computed the gradients.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <vector>

#include "collectives/communicator.hpp"

namespace cohort::collectives {

struct BucketOptions {
  std::size_t bucket_bytes = 25u << 20;  // PyTorch DDP's default bucket_cap_mb
  bool average = false;                  // divide the sums by the number of ranks
  // Where buckets live. Unset: in CUDA device memory (of comm.device(), reduced by NCCL)
  // when the first tensor given to add() is device memory, else in host memory. Every
  // tensor must then live where its buckets do. Device buckets keep 16-bit types as they
  // are (NCCL reduces them natively), so views of every type are possible there.
  std::optional<bool> device;
};

class GradientBuckets {
 public:
  explicit GradientBuckets(Communicator& comm, BucketOptions options = {});
  GradientBuckets(const GradientBuckets&) = delete;
  GradientBuckets& operator=(const GradientBuckets&) = delete;
  ~GradientBuckets();  // waits for buckets in flight

  // Registers `count` elements at `data` (which stay valid while this object lives) and
  // returns the id mark_ready takes. Registration ends at the first mark_ready.
  std::size_t add(void* data, std::size_t count, DType dtype);

  // Registers a gradient that lives inside its bucket (PyTorch DDP's gradient_as_bucket_view):
  // backward writes it at data(id), and neither mark_ready nor wait copies it. Only for types
  // a bucket holds as they are (in host buckets, not f16 or bf16, which they widen to f32).
  std::size_t add_view(std::size_t count, DType dtype);
  // Where a view's gradient lives; valid from the first call (which ends registration) for
  // as long as this object.
  void* data(std::size_t id);

  // The tensor's gradient is final for this step: it is copied into its bucket, and any
  // buckets that are now complete start reducing, in bucket order.
  void mark_ready(std::size_t id);

  // Waits for every bucket and writes the reduced values back into the tensors; the next
  // step starts after it. Every tensor must have been marked ready.
  void wait();

  std::size_t bucket_count() const { return buckets_.size(); }
  std::size_t tensor_count() const { return tensors_.size(); }
  // Bytes of the largest bucket (host buckets hold f32 for 16-bit tensors).
  std::size_t largest_bucket_bytes() const;

 private:
  struct Tensor {
    void* data;
    std::size_t count;
    DType dtype;
    std::size_t bucket;
    std::size_t offset;  // elements into the bucket
    bool ready;
    bool view;           // lives in the bucket: no copies
  };
  struct Bucket {
    DType dtype;  // the accumulation type
    std::size_t count = 0;
    std::vector<std::byte> host;
    std::shared_ptr<void> device;  // device memory, when buckets live there
    std::byte* data = nullptr;     // whichever of the two holds the bucket
    std::size_t bytes = 0;
    std::size_t first_tensor = 0;
    std::size_t tensors = 0;
    std::size_t pending = 0;  // tensors not yet ready this step
    Request request;
  };

  std::size_t add_tensor(void* data, std::size_t count, DType dtype, bool view);
  DType accumulation_type(DType dtype) const;
  // Copies between a tensor and its bucket (and converts 16-bit types in host buckets).
  void copy(const void* src, DType from, void* dst, DType to, std::size_t count) const;
  void seal();
  void start_ready_buckets();

  Communicator& comm_;
  BucketOptions options_;
  std::vector<Tensor> tensors_;
  std::vector<Bucket> buckets_;
  bool sealed_ = false;
  bool placed_ = false;  // whether buckets live on the device is settled (first registration)
  bool device_ = false;
  std::size_t next_to_start_ = 0;
};

}  // namespace cohort::collectives
