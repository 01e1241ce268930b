"""The torch.distributed backend "cohort": PyTorch's collectives over cohort's communicator.

    import torch.distributed as dist
    import cohort.torch                     # registers the backend
    dist.init_process_group("cohort", init_method="env://")
    dist.all_reduce(tensor)                 # and DDP, unchanged

CPU tensors of float16, bfloat16, float32, float64, int32, int64 and uint8 go through
cohort's host collectives: all_reduce (SUM, AVG, PRODUCT, MIN, MAX), all_reduce_coalesced,
broadcast, all_gather, all_gather_into_tensor (_allgather_base), reduce_scatter,
reduce_scatter_tensor (_reduce_scatter_base), barrier, send and recv; dist.new_group makes
sub-groups. The ranks must be MPI's (srun --mpi=pmix, mpirun; cohort launch's with
SLURM_MPI_TYPE=pmix):
the store of init_method only tells each rank which MPI process every torch rank is.
What the backend does not support raises RuntimeError naming the operation and gloo, which
has it. docs/python.md says more.
"""
import torch.distributed as _dist

try:
    from cohort import _torch
except ImportError as error:  # pragma: no cover - depends on the build
    raise ImportError(
        "cohort.torch: this cohort was built without libtorch, so it has no torch.distributed "
        f"backend (install libtorch-dev and rebuild cohort): {error}") from error

BACKEND = "cohort"


def _create(store, rank, size, timeout):
    return _torch.ProcessGroupCohort(store, rank, size, timeout)


# A second import (or a reload) finds the backend registered; torch refuses a second one.
if not hasattr(_dist.Backend, BACKEND.upper()):
    _dist.Backend.register_backend(BACKEND, _create)

__all__ = ["BACKEND"]
