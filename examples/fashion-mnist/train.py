#!/usr/bin/python3
"""Training on Fashion-MNIST under cohort: DDP, checkpoints, heartbeats, sweep metrics, export.

    /usr/bin/python3 train.py --data data.h5 --ckpt-dir ckpt [--model cnn|mlp] [--epochs 5]
        [--lr 0.05] [--momentum 0.9] [--width 128] [--dropout 0.25] [--batch-size 64]
        [--backend auto|cohort|gloo] [--export model.pt] [--metrics-file metrics.json]

One process, or every rank of a job (cohort launch, srun --mpi=pmix, mpirun, torchrun):
with more than one rank it is DDP, on cohort's torch.distributed backend where the ranks
were started under MPI (`--backend auto`), else gloo. Each epoch every rank trains on its
share of a shuffled training set (the same shuffle everywhere, from --seed and the epoch),
then rank 0 scores the validation set and reports `loss` and `accuracy` for the epoch with
cohort.sweep.report, the lines a Katib sweep reads (medianstop compares them). Every epoch
ends in an asynchronous cohort.checkpoint save; a restarted or requeued run resumes from the
newest good one; a checkpoint asked for by the launcher (Slurm's warning before preemption)
is taken at once, and the run stops there to be requeued. Heartbeats go to the launcher
every step. At the end rank 0 scores the test set (`test_accuracy`), writes the metrics to
--metrics-file and, with --export, the model as TorchScript for `cohort serve`: input
float32 [N, 1, 28, 28] normalised as prepare.py does, output the 10 classes' logits.
"""
import argparse
import json
import os
import pathlib
import sys
import time

import h5py
import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

import cohort.checkpoint as ckpt
import cohort.launch as launch
import cohort.sweep as sweep


class CNN(nn.Module):
    """Two convolutions and a hidden layer: about 0.91 on the test set in a few epochs."""

    def __init__(self, width, dropout):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.drop = nn.Dropout(dropout)
        self.fc1 = nn.Linear(64 * 7 * 7, width)
        self.fc2 = nn.Linear(width, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = self.drop(torch.flatten(x, 1))
        return self.fc2(self.drop(F.relu(self.fc1(x))))


class MLP(nn.Module):
    """Two hidden layers: the dataset's published MLP baselines score 0.87-0.89."""

    def __init__(self, width, dropout):
        super().__init__()
        self.layers = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, width), nn.ReLU(), nn.Dropout(dropout),
                                    nn.Linear(width, width), nn.ReLU(), nn.Dropout(dropout), nn.Linear(width, 10))

    def forward(self, x):
        return self.layers(x)


def options():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, type=pathlib.Path, help="prepare.py's HDF5 file")
    p.add_argument("--ckpt-dir", required=True, type=pathlib.Path)
    p.add_argument("--model", choices=["cnn", "mlp"], default="cnn")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--dropout", type=float, default=0.25)
    p.add_argument("--batch-size", type=int, default=64, help="per rank")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backend", choices=["auto", "cohort", "gloo"], default="auto")
    p.add_argument("--export", type=pathlib.Path, help="write the trained model here as TorchScript")
    p.add_argument("--metrics-file", type=pathlib.Path, help="write the final metrics here as JSON")
    p.add_argument("--pid-dir", type=pathlib.Path, help="write each rank's pid here (lets a demo kill one)")
    args = p.parse_args()
    for name in ("epochs", "width", "batch_size"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if not 0 <= args.dropout < 1 or args.lr <= 0:
        p.error("--dropout must be in [0, 1) and --lr above 0")
    return args


def architecture(args):
    """What export.py needs to rebuild the network from a checkpoint: kept as its metadata."""
    return {"model": args.model, "width": args.width, "dropout": args.dropout}


def build(arch):
    return (CNN if arch["model"] == "cnn" else MLP)(int(arch["width"]), float(arch["dropout"]))


def load_split(data, split):
    try:
        with h5py.File(data, "r") as f:
            return torch.from_numpy(f[f"{split}/images"][...]), torch.from_numpy(f[f"{split}/labels"][...])
    except (OSError, KeyError) as e:
        sys.exit(f"train: {data}: no {split} split readable ({e}); make it with prepare.py")


def start_group(backend):
    """DDP's process group when there is more than one rank; None for one process."""
    if "RANK" not in os.environ and "OMPI_COMM_WORLD_RANK" in os.environ:  # mpirun's names
        os.environ["RANK"] = os.environ["OMPI_COMM_WORLD_RANK"]
        os.environ["WORLD_SIZE"] = os.environ["OMPI_COMM_WORLD_SIZE"]
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    under_mpi = any(v in os.environ for v in ("OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK"))
    if backend == "auto":
        backend = "cohort" if under_mpi else "gloo"
    if backend == "cohort":
        import cohort.torch  # noqa: F401  registers the backend
    dist.init_process_group(backend, init_method="env://")
    return backend


def evaluate(model, x, y, batch=1000):
    model.eval()
    loss, correct = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            out = model(x[i:i + batch])
            loss += F.cross_entropy(out, y[i:i + batch], reduction="sum").item()
            correct += (out.argmax(1) == y[i:i + batch]).sum().item()
    model.train()
    return loss / len(x), correct / len(x)


def main():
    args = options()
    backend = start_group(args.backend)
    rank, world = (dist.get_rank(), dist.get_world_size()) if backend else (0, 1)
    launch.heartbeat()
    launch.checkpoint_requested()  # listens for the launcher's request from here on
    if args.pid_dir:
        args.pid_dir.mkdir(parents=True, exist_ok=True)
        (args.pid_dir / f"rank-{rank}.restart-{launch.restart_count()}").write_text(f"{os.getpid()}\n")

    train_x, train_y = load_split(args.data, "train")
    val_x, val_y = load_split(args.data, "validation")
    torch.manual_seed(args.seed)
    net = build(architecture(args))
    model = DistributedDataParallel(net) if backend else net
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)

    def state(epoch):
        return {"model": net.state_dict(), "optim": optimizer.state_dict(), "epoch": epoch}

    args.ckpt_dir.mkdir(parents=True, exist_ok=True)
    first = 0
    loaded = state(0)
    if ckpt.load_latest(loaded, args.ckpt_dir):
        net.load_state_dict(loaded["model"])
        optimizer.load_state_dict(loaded["optim"])
        first = int(loaded["epoch"])
        print(f"rank {rank}: resumed after epoch {first} (restart {launch.restart_count()})", flush=True)

    pending, stopped, metrics = None, False, {}
    for epoch in range(first, args.epochs):
        began = time.monotonic()
        order = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(args.seed * 1009 + epoch))
        mine = order[rank::world]
        steps = len(mine) // args.batch_size  # every rank takes the same number of steps
        for step in range(steps):
            batch = mine[step * args.batch_size:(step + 1) * args.batch_size]
            loss = F.cross_entropy(model(train_x[batch]), train_y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            launch.heartbeat()
            if step % 50 == 0 and rank == 0:
                print(f"epoch {epoch + 1} step {step}/{steps} train_loss {loss.item():.4f}", flush=True)
            vote = torch.tensor([1 if launch.checkpoint_requested() else 0])
            if backend:
                dist.all_reduce(vote, op=dist.ReduceOp.MAX)  # every rank stops at the same step
            if vote.item():
                stopped = True
                break
        if stopped:
            # The epoch is redone from its start after the requeue: the checkpoint holds the
            # last finished one, so a resumed run sees the data in the same order.
            if pending:
                pending.wait()
            launch.acknowledge_checkpoint()
            print(f"rank {rank}: stopping in epoch {epoch + 1} on the launcher's request", flush=True)
            break
        seconds = time.monotonic() - began
        if pending:
            pending.wait()  # one save in flight at a time: its errors surface here
        pending = ckpt.save(state(epoch + 1), args.ckpt_dir, epoch + 1, async_=True, retention=2,
                            metadata=architecture(args))
        if rank == 0:
            val_loss, val_acc = evaluate(net, val_x, val_y)
            sweep.report(step=epoch + 1, loss=val_loss, accuracy=val_acc)
            print(f"epoch {epoch + 1}: validation loss {val_loss:.4f} accuracy {val_acc:.4f}; "
                  f"{seconds:.1f} s on each of {world} rank(s)", flush=True)
            metrics = {"epoch": epoch + 1, "validation_loss": val_loss, "validation_accuracy": val_acc,
                       "seconds_per_epoch": seconds, "ranks": world}
    if pending:
        pending.wait()
    if not stopped and rank == 0:
        test_x, test_y = load_split(args.data, "test")
        test_loss, test_acc = evaluate(net, test_x, test_y)
        metrics.update(test_loss=test_loss, test_accuracy=test_acc)
        print(f"test_accuracy={test_acc:.4f} test_loss={test_loss:.4f}", flush=True)
        if args.metrics_file:
            args.metrics_file.write_text(json.dumps(metrics, indent=2) + "\n")
        if args.export:
            net.eval()
            args.export.parent.mkdir(parents=True, exist_ok=True)
            torch.jit.script(net).save(str(args.export))
            print(f"exported {args.export} (TorchScript)", flush=True)
    if backend:
        dist.destroy_process_group()
    return 3 if stopped else 0


if __name__ == "__main__":
    sys.exit(main())
