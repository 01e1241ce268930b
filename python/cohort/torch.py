"""The torch.distributed backend "cohort": PyTorch's collectives over cohort's communicator.

    import torch.distributed as dist
    import cohort.torch                     # registers the backend
    dist.init_process_group("cohort", init_method="env://")
    dist.all_reduce(tensor)                 # and DDP, unchanged

CPU tensors of float16, bfloat16, float32, float64, int32, int64 and uint8 go through
cohort's host collectives: all_reduce (SUM, AVG, PRODUCT, MIN, MAX), all_reduce_coalesced,
broadcast, all_gather, all_gather_into_tensor (_allgather_base), reduce_scatter,
reduce_scatter_tensor (_reduce_scatter_base), barrier, send and recv; dist.new_group makes
sub-groups. Ranks started under MPI (srun --mpi=pmix, mpirun; cohort launch's with
SLURM_MPI_TYPE=pmix) communicate over MPI, the store of init_method only telling each rank
which MPI process every torch rank is. Ranks started without MPI (torchrun, cohort launch
without pmix) meet through the store: cohort's communicator joins them over TCP, through
shared memory where all run on one node, and their send and recv go through a gloo group
on the same store. COHORT_COLLECTIVES_BOOTSTRAP=mpi|tcp chooses instead of auto.
What the backend does not support raises RuntimeError naming the operation and gloo, which
has it.

Tensors not in CPU memory go to the group's device group, as gloo|nccl device maps send
them: NCCL where torch.cuda.is_available() and torch has NCCL. COHORT_TORCH_DEVICE_BACKEND
chooses it: auto (that default), nccl, gloo or none (CUDA tensors are then refused).
docs/python.md says more.
"""
import os as _os

import torch as _torch_module
import torch.distributed as _dist

try:
    from cohort import _torch
except ImportError as error:  # pragma: no cover - depends on the build
    raise ImportError(
        "cohort.torch: this cohort was built without libtorch, so it has no torch.distributed "
        f"backend (install libtorch-dev and rebuild cohort): {error}") from error

BACKEND = "cohort"


DEVICE_BACKEND_VARIABLE = "COHORT_TORCH_DEVICE_BACKEND"
DEVICE_BACKENDS = ("auto", "nccl", "gloo", "none")


def device_backend():
    """The device group's backend that groups made now get: "nccl", "gloo" or None."""
    value = _os.environ.get(DEVICE_BACKEND_VARIABLE, "")
    choice = value.strip().lower() or "auto"
    if choice not in DEVICE_BACKENDS:
        raise ValueError(f"cohort.torch: {DEVICE_BACKEND_VARIABLE}={value!r} is not one of "
                         f"{', '.join(DEVICE_BACKENDS)}: set one of them, or unset it for auto")
    if choice == "auto":
        return "nccl" if _torch_module.cuda.is_available() and _dist.is_nccl_available() else None
    if choice == "nccl" and not _dist.is_nccl_available():
        raise RuntimeError(f"cohort.torch: {DEVICE_BACKEND_VARIABLE}=nccl, but this torch was built without "
                           "NCCL: install a torch with CUDA and NCCL, or set it to gloo or none")
    return None if choice == "none" else choice


BOOTSTRAP_VARIABLE = "COHORT_COLLECTIVES_BOOTSTRAP"


def bootstrap():
    """How groups made now find their ranks: "mpi" (the ranks are MPI's) or "tcp" (through
    the store, without MPI)."""
    value = _os.environ.get(BOOTSTRAP_VARIABLE, "")
    choice = value.strip().lower() or "auto"
    if choice not in ("auto", "mpi", "tcp"):
        raise ValueError(f"cohort.torch: {BOOTSTRAP_VARIABLE}={value!r} is not one of auto, mpi, tcp: "
                         "set one of them, or unset it for auto")
    if choice == "auto":
        return "mpi" if _torch.mpi_launched() else "tcp"
    return choice


def _device_group(store, rank, size, timeout):
    """The process group for this group's tensors that are not in CPU memory, over the same
    ranks and store (under a prefix of its own), or None."""
    backend = device_backend()
    if backend is None:
        return None
    store = _dist.PrefixStore(f"cohort_device_{backend}/", store)
    if backend == "gloo":
        return _dist.ProcessGroupGloo(store, rank, size, timeout)
    # As torch.distributed makes its own NCCL groups; NCCL connects at a group's first call.
    options = _dist.ProcessGroupNCCL.Options()
    options.is_high_priority_stream = False
    options._timeout = timeout
    return _dist.ProcessGroupNCCL(store, rank, size, options)


def _create(store, rank, size, timeout):
    p2p = None
    if bootstrap() == "tcp":
        p2p = _dist.ProcessGroupGloo(_dist.PrefixStore("cohort_p2p/", store), rank, size, timeout)
    return _torch.ProcessGroupCohort(store, rank, size, timeout, _device_group(store, rank, size, timeout), p2p)


# A second import (or a reload) finds the backend registered; torch refuses a second one.
if not hasattr(_dist.Backend, BACKEND.upper()):
    _dist.Backend.register_backend(BACKEND, _create)

__all__ = ["BACKEND", "BOOTSTRAP_VARIABLE", "DEVICE_BACKEND_VARIABLE", "bootstrap", "device_backend"]
