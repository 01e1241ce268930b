"""The cohort backend with CUDA tensors (label gpu): under mpirun, 2 ranks with a GPU each run
torch_ranks.py cuda, where CUDA tensors go to the group's NCCL device group and give an NCCL
group's results, CPU and CUDA tensors in separate calls of one group both work, one call that
mixes them fails, and a DDP step on CUDA gives NCCL's gradients. Exits 77 (skipped), saying
why, where torch sees fewer than 2 CUDA devices or has no NCCL, or there is no mpirun."""
import importlib.util
import sys

import torch
import torch.distributed as dist


def why_not():
    if not torch.cuda.is_available():
        return "no CUDA device visible to torch (Debian's python3-torch is built without CUDA)"
    if not dist.is_nccl_available():
        return "this torch was built without NCCL"
    if torch.cuda.device_count() < 2:
        return f"NCCL needs a GPU for each of the 2 ranks, and torch sees {torch.cuda.device_count()}"
    if importlib.util.find_spec("cohort._torch") is None:
        return "this cohort was built without libtorch"
    from test_torch_backend import MPIRUN
    if not MPIRUN:
        return "no mpirun (install openmpi-bin)"
    return None


def main():
    reason = why_not()
    if reason:
        print(f"skipped: {reason}")
        return 77
    from test_torch_backend import ranks
    print(ranks(2, "cuda"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
