"""Run under mpirun, or as plain processes with RANK and WORLD_SIZE set (as torchrun starts
them, no MPI): `mpi_reshard.py save DIR` or `mpi_reshard.py load DIR`.

A torch model and its Adam state, trained the same way on every rank, are saved with each
rank holding its own block of rows of every tensor (Sharded); a load on any number of ranks
must hand each rank exactly the rows it asks for, bit for bit. Exits 1 on a mismatch.
"""
import sys

import torch

import cohort.checkpoint as ckpt


def reference():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 10), torch.nn.Tanh(), torch.nn.Linear(10, 3))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(4):
        optimizer.zero_grad()
        model(torch.randn(7, 6)).square().sum().backward()
        optimizer.step()
    return {"model": model.state_dict(), "optim": optimizer.state_dict()}


def rows_of(tensor, rank, size):
    """This rank's block of rows: blocks differ by at most one row, larger first."""
    n = tensor.shape[0]
    start = rank * (n // size) + min(rank, n % size)
    return tensor[start:start + n // size + (1 if rank < n % size else 0)]


def sharded(value, rank, size, blank):
    if isinstance(value, torch.Tensor):
        if value.dim() == 0:
            return torch.zeros_like(value) if blank else value
        block = rows_of(value, rank, size).clone()
        return ckpt.Sharded(torch.zeros_like(block) if blank else block)
    if isinstance(value, dict):
        return {k: sharded(v, rank, size, blank) for k, v in value.items()}
    return value


def compare(got, want, path=""):
    if isinstance(want, ckpt.Sharded):
        return compare(got.tensor, want.tensor, path)
    if isinstance(want, torch.Tensor):
        ok = got.dtype == want.dtype and torch.equal(got, want)
        return [] if ok else [path]
    if isinstance(want, dict):
        return [p for k in want for p in compare(got[k], want[k], f"{path}.{k}")]
    return [] if got == want else [path]


def main():
    mode, directory = sys.argv[1], sys.argv[2]
    probe = ckpt._checkpointer(directory)
    rank, size = probe.rank, probe.world_size
    want = sharded(reference(), rank, size, blank=False)
    if mode == "save":
        ckpt.save(want, directory, 8, async_=True).wait()
        return 0
    state = sharded(reference(), rank, size, blank=True)
    info = ckpt.load(state, directory)
    wrong = compare(state, want)
    if wrong:
        print(f"rank {rank} of {size}: differs after loading a {info['saved_world_size']}-rank checkpoint: "
              + ", ".join(wrong), file=sys.stderr)
        return 1
    print(f"rank {rank} of {size}: bit-exact from {info['saved_world_size']} ranks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
