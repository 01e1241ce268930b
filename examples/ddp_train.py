#!/usr/bin/env python3
"""A small PyTorch DDP training run for `cohort launch`.

It uses the launch contract as torchrun users do (init_method="env://", gloo on CPUs, or
cohort's own backend with --backend cohort, whose ranks must be MPI's: mpirun, srun
--mpi=pmix, or cohort launch with SLURM_MPI_TYPE=pmix),
beats the launcher's heartbeat every step, saves a checkpoint every few steps and when
the launcher asks for one (COHORT_CHECKPOINT_REQUEST), and resumes from the last
checkpoint after a restart or requeue.

    cohort launch --local --nproc 2 -- python3 examples/ddp_train.py --ckpt-dir /tmp/ddp
    sbatch -N2 --ntasks-per-node=2 --requeue --signal=B:USR1@60 \
        --wrap "exec cohort launch --max-restarts 2 -- python3 examples/ddp_train.py --ckpt-dir ckpt"
    mpirun -n 2 -x MASTER_ADDR=127.0.0.1 -x MASTER_PORT=29500 \
        python3 examples/ddp_train.py --backend cohort --ckpt-dir /tmp/ddp
"""
import argparse
import os
import pathlib
import sys
import time

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel


def beat():
    path = os.environ.get("COHORT_HEARTBEAT_FILE")
    if path:
        pathlib.Path(path).touch()


def checkpoint_requested():
    path = os.environ.get("COHORT_CHECKPOINT_REQUEST")
    return bool(path) and os.path.exists(path)


def save(ckpt_dir, step, model, optimizer):
    # Write then rename: a crash mid-save never leaves a half-written latest.pt.
    tmp = ckpt_dir / f"latest.pt.tmp{os.getpid()}"
    torch.save({"step": step, "model": model.state_dict(), "optimizer": optimizer.state_dict()}, tmp)
    os.replace(tmp, ckpt_dir / "latest.pt")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--ckpt-dir", required=True, type=pathlib.Path)
    parser.add_argument("--checkpoint-every", type=int, default=5)
    parser.add_argument("--step-time", type=float, default=0.0,
                        help="seconds of pretend work per step, to watch the run")
    parser.add_argument("--pid-dir", type=pathlib.Path,
                        help="write each rank's pid here (lets a test kill one rank)")
    parser.add_argument("--backend", choices=["gloo", "cohort"], default="gloo",
                        help="torch.distributed backend; cohort needs the ranks started under MPI")
    args = parser.parse_args()

    if args.backend == "cohort":
        import cohort.torch  # noqa: F401  registers the backend
        # mpirun numbers its ranks without torchrun's names; the launch contract's win.
        os.environ.setdefault("RANK", os.environ.get("OMPI_COMM_WORLD_RANK", "0"))
        os.environ.setdefault("WORLD_SIZE", os.environ.get("OMPI_COMM_WORLD_SIZE", "1"))
    dist.init_process_group(args.backend, init_method="env://")
    rank, world = dist.get_rank(), dist.get_world_size()
    restart = int(os.environ.get("COHORT_RESTART_COUNT", "0"))
    beat()
    if args.pid_dir:
        args.pid_dir.mkdir(parents=True, exist_ok=True)
        (args.pid_dir / f"rank-{rank}.restart-{restart}").write_text(f"{os.getpid()}\n")

    torch.manual_seed(0)
    model = DistributedDataParallel(torch.nn.Linear(16, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    args.ckpt_dir.mkdir(parents=True, exist_ok=True)
    start = 0
    latest = args.ckpt_dir / "latest.pt"
    if latest.exists():
        state = torch.load(latest)
        model.module.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start = state["step"]
        print(f"rank {rank}: resumed from step {start} (restart {restart})", flush=True)

    target = torch.arange(16, dtype=torch.float32) / 16
    for step in range(start, args.steps):
        generator = torch.Generator().manual_seed(step * world + rank)
        x = torch.randn(64, 16, generator=generator)
        loss = torch.nn.functional.mse_loss(model(x).squeeze(1), x @ target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        beat()
        if args.step_time:
            time.sleep(args.step_time)
        done = step + 1
        print(f"rank {rank}: step {done} loss {loss.item():.5f}", flush=True)
        # Every rank must agree to stop at the same step, or the next collective hangs.
        stop_votes = torch.tensor([1 if checkpoint_requested() else 0])
        dist.all_reduce(stop_votes, op=dist.ReduceOp.MAX)
        stop = bool(stop_votes.item())
        if rank == 0 and (done % args.checkpoint_every == 0 or done == args.steps or stop):
            save(args.ckpt_dir, done, model.module, optimizer)
        if stop:
            dist.barrier()
            print(f"rank {rank}: checkpointed at step {done} on request", flush=True)
            break
    else:
        print(f"rank {rank}: finished {args.steps} steps", flush=True)
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
