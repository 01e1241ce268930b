#!/usr/bin/env python3
"""A small PyTorch DDP training run for `cohort launch`, checkpointed with cohort.

It uses the launch contract as torchrun users do (init_method="env://", gloo on CPUs, or
cohort's own backend with --backend cohort: over MPI where the ranks are MPI's — mpirun,
srun --mpi=pmix, cohort launch with SLURM_MPI_TYPE=pmix — else meeting through torch's
store, as torchrun starts them). Through the `cohort` package
(PYTHONPATH=build/python, or installed) it beats the launcher's heartbeat every step
(cohort.launch.heartbeat), saves model and optimizer state with cohort.checkpoint —
asynchronously every --checkpoint-every steps, and at once when the launcher asks for a
checkpoint (SIGUSR1 or its request file) — and on start resumes from the newest good
checkpoint in --ckpt-dir after a restart or requeue. Saving and loading are collective:
every rank calls them, and without MPI the ranks agree through files in --ckpt-dir.

Each rank ends by printing a digest of its final parameters: a run resumed from a
checkpoint ends with the same digest as an uninterrupted run of the same --seed.

    cohort launch --local --nproc 2 -- python3 examples/ddp_train.py --ckpt-dir /tmp/ddp
    sbatch -N2 --ntasks-per-node=2 --requeue --signal=B:USR1@60 \
        --wrap "exec cohort launch --max-restarts 2 -- python3 examples/ddp_train.py --ckpt-dir ckpt"
    mpirun -n 2 -x MASTER_ADDR=127.0.0.1 -x MASTER_PORT=29500 \
        python3 examples/ddp_train.py --backend cohort --ckpt-dir /tmp/ddp
"""
import argparse
import hashlib
import os
import pathlib
import sys
import time

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

import cohort.checkpoint as ckpt
import cohort.launch as launch


def digest(module):
    """The parameters' bytes, hashed: equal on two runs only if every weight is bit-equal."""
    h = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def options():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--ckpt-dir", required=True, type=pathlib.Path)
    parser.add_argument("--checkpoint-every", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0, help="seeds the weights and the data")
    parser.add_argument("--step-time", type=float, default=0.0,
                        help="seconds of pretend work per step, to watch the run")
    parser.add_argument("--pid-dir", type=pathlib.Path,
                        help="write each rank's pid here (lets a test kill one rank)")
    parser.add_argument("--backend", choices=["gloo", "cohort"], default="gloo",
                        help="torch.distributed backend")
    return parser.parse_args()


def main():
    args = options()
    if args.backend == "cohort":
        import cohort.torch  # registers the backend
        # mpirun numbers its ranks without torchrun's names; the launch contract's win.
        os.environ.setdefault("RANK", os.environ.get("OMPI_COMM_WORLD_RANK", "0"))
        os.environ.setdefault("WORLD_SIZE", os.environ.get("OMPI_COMM_WORLD_SIZE", "1"))
    dist.init_process_group(args.backend, init_method="env://")
    rank, world = dist.get_rank(), dist.get_world_size()
    if args.backend == "cohort":
        print(f"rank {rank}: cohort backend, ranks met over {cohort.torch.bootstrap()}", flush=True)
    restart = launch.restart_count()
    launch.heartbeat()
    launch.checkpoint_requested()  # listens for SIGUSR1 from here on
    if args.pid_dir:
        args.pid_dir.mkdir(parents=True, exist_ok=True)
        (args.pid_dir / f"rank-{rank}.restart-{restart}").write_text(f"{os.getpid()}\n")

    torch.manual_seed(args.seed)
    model = DistributedDataParallel(torch.nn.Linear(16, 1))
    # Momentum makes the optimizer's state part of what a resumed run must get back.
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)

    def state():
        return {"model": model.module.state_dict(), "optim": optimizer.state_dict()}

    args.ckpt_dir.mkdir(parents=True, exist_ok=True)
    start = 0
    loaded = state()
    info = ckpt.load_latest(loaded, args.ckpt_dir)
    if info:
        model.module.load_state_dict(loaded["model"])
        optimizer.load_state_dict(loaded["optim"])
        start = info["step"]
        print(f"rank {rank}: resumed from step {start} (restart {restart})", flush=True)

    target = torch.arange(16, dtype=torch.float32) / 16
    pending = None
    for step in range(start, args.steps):
        generator = torch.Generator().manual_seed((args.seed * 1_000_003 + step) * world + rank)
        x = torch.randn(64, 16, generator=generator)
        loss = torch.nn.functional.mse_loss(model(x).squeeze(1), x @ target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        launch.heartbeat()
        if args.step_time:
            time.sleep(args.step_time)
        done = step + 1
        print(f"rank {rank}: step {done} loss {loss.item():.5f}", flush=True)
        # Every rank must agree to stop at the same step, or the next collective hangs.
        stop_votes = torch.tensor([1 if launch.checkpoint_requested() else 0])
        dist.all_reduce(stop_votes, op=dist.ReduceOp.MAX)
        stop = bool(stop_votes.item())
        if stop or done == args.steps or done % args.checkpoint_every == 0:
            if pending:
                pending.wait()  # one save in flight at a time: its errors surface here
            # The tensors are copied when save returns, so training goes on while it writes;
            # a save on request or at the end is waited for before the process exits.
            pending = ckpt.save(state(), args.ckpt_dir, done, async_=True, retention=3)
            if stop or done == args.steps:
                pending.wait()
                pending = None
        if stop:
            launch.acknowledge_checkpoint()
            print(f"rank {rank}: checkpointed at step {done} on request", flush=True)
            break
    else:
        print(f"rank {rank}: finished {args.steps} steps", flush=True)
    if pending:
        pending.wait()
    print(f"rank {rank}: weights {digest(model.module)}", flush=True)
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
