#!/usr/bin/python3
"""The torch.distributed backend "cohort" against gloo, in one run on the same ranks.

    OMPI_MCA_rmaps_base_oversubscribe=1 MASTER_ADDR=127.0.0.1 MASTER_PORT=29500 \\
    PYTHONPATH=build/python mpirun -n 2 /usr/bin/python3 bench/torch_backend.py \\
        [--sizes 8:64M] [--ddp-steps 10] [--json | --out FILE]

    MASTER_ADDR=127.0.0.1 MASTER_PORT=29500 PYTHONPATH=build/python \\
        /usr/bin/python3 bench/torch_backend.py --spawn 2 [...]

The second form starts the ranks without MPI, as torchrun does: this process is rank 0 and
starts the others, and the backend's ranks meet through torch's store.
`cohort bench torch` runs either (mpirun included) and prints its results in the format of
every cohort benchmark: --out writes them there as that JSON ({"context", "tables",
"figures", "notes"}).

Every rank runs the same script: the default group is cohort's, and a gloo group over the
same ranks (dist.new_group(backend="gloo")) is the baseline. For each message size
(float32: powers of 8 from the first size, 1M and the last) dist.all_reduce runs on each backend
in turn, alternating which goes first, and so does the cohort group's communicator alone on
the same tensor (a C++ loop of Communicator::allreduce on the group's worker thread, what
`cohort bench collectives` times): dist.all_reduce's time over the communicator's is the
backend's own overhead. A time is the median over the repetitions of the mean time per
call of a timed loop; the overhead is the median of each repetition's own ratio, whose
two loops ran one after the other, so that a machine whose load changes between
repetitions moves it less. Then a DDP step (forward, backward with its gradient
allreduce, SGD step) of an MLP of about 29 M parameters, 2048-4096-4096-1024, batch 32,
is timed on each backend from the same weights and data (twice, each backend going first
once; the better median of the two counts), and the gradients of the first step are
compared. Rank 0 prints; the others only take part.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch
import torch.distributed as dist

os.environ.setdefault("RANK", os.environ.get("OMPI_COMM_WORLD_RANK", "0"))
os.environ.setdefault("WORLD_SIZE", os.environ.get("OMPI_COMM_WORLD_SIZE", "1"))

import cohort.torch  # noqa: E402  registers the backend

UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def size(text):
    return int(text[:-1]) * UNITS[text[-1].upper()] if text[-1].upper() in UNITS else int(text)


def human(n):
    for unit, scale in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale}{unit}"
    return str(n)


def loop_time(tensor, group, iterations):
    """Mean seconds per all_reduce over `iterations`, the ranks lined up before and after."""
    dist.barrier(group=group)
    start = time.perf_counter()
    for _ in range(iterations):
        dist.all_reduce(tensor, group=group)
    dist.barrier(group=group)
    return (time.perf_counter() - start) / iterations


def communicator_time(tensor, group, iterations):
    """Mean seconds per call of the cohort group's communicator alone, on rank 0's clock."""
    seconds = group._communicator_allreduce_seconds(tensor, iterations)
    timed = torch.tensor([seconds], dtype=torch.float64)
    dist.broadcast(timed, 0, group=group)
    return timed.item()


def allreduce_rows(sizes, groups, repeat):
    rows = []
    # The communicator between the two backends, so that it runs right next to cohort's either way.
    timers = {"cohort": lambda t, n: loop_time(t, groups["cohort"], n),
              "communicator": lambda t, n: communicator_time(t, groups["cohort"], n),
              "gloo": lambda t, n: loop_time(t, groups["gloo"], n)}
    for nbytes in sizes:
        tensor = torch.ones(max(nbytes // 4, 1))
        iterations = max(3, min(1000, (64 << 20) // max(nbytes, 1) // 4))
        for timer in timers.values():
            timer(tensor, 2)  # first touch: connections, shared segments
        times = {name: [] for name in timers}
        for r in range(repeat):
            order = list(timers.items()) if r % 2 == 0 else list(reversed(timers.items()))
            for name, timer in order:
                times[name].append(timer(tensor, iterations))
        cohort_s, gloo_s = statistics.median(times["cohort"]), statistics.median(times["gloo"])
        communicator_s = statistics.median(times["communicator"])
        overhead = statistics.median(b / c for b, c in zip(times["cohort"], times["communicator"]))
        rows.append({"bytes": nbytes, "cohort_us": cohort_s * 1e6, "gloo_us": gloo_s * 1e6,
                     "speedup": gloo_s / cohort_s, "communicator_us": communicator_s * 1e6,
                     "overhead": overhead})
    return rows


def mlp():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(2048, 4096), torch.nn.ReLU(), torch.nn.Linear(4096, 4096),
                               torch.nn.ReLU(), torch.nn.Linear(4096, 1024))


def ddp_run(group, steps, rank):
    model = mlp()
    ddp = torch.nn.parallel.DistributedDataParallel(model, process_group=group)
    optimizer = torch.optim.SGD(ddp.parameters(), lr=1e-3)
    data = torch.Generator().manual_seed(rank)
    x, y = torch.randn(32, 2048, generator=data), torch.randn(32, 1024, generator=data)
    first_grads, times = None, []
    for step in range(steps + 1):
        dist.barrier(group=group)
        start = time.perf_counter()
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(ddp(x), y).backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
        if step == 0:
            first_grads = [p.grad.clone() for p in model.parameters()]
    params = sum(p.numel() for p in model.parameters())
    return statistics.median(times[1:]), first_grads, params


def column(name, unit="", digits=2, text=False):
    return {"name": name, "unit": unit, "digits": digits, "text": text}


def bench_report(report, args):
    """The results in the shape of cohort's benchmark reports (common/bench.hpp)."""
    rows = [[human(r["bytes"]), r["cohort_us"], r["gloo_us"], r["speedup"], r["communicator_us"], r["overhead"]]
            for r in report["allreduce"]]
    tables = [{"name": "allreduce", "title": f"dist.all_reduce of float32, median of {args.repeat} "
                                             "alternating timed loops, against gloo and the communicator alone "
                                             "on the same ranks",
               "columns": [column("size", text=True), column("cohort", "us", 1), column("gloo", "us", 1),
                           column("gloo/cohort"), column("communicator", "us", 1),
                           column("cohort/communicator")],
               "rows": rows}]
    figures = []
    if rows:
        largest = report["allreduce"][-1]
        figures.append({"name": "largest_speedup", "label": f"all_reduce of {human(largest['bytes'])}",
                        "value": largest["speedup"], "unit": "x", "digits": 2, "note": "gloo's time / cohort's"})
        figures.append({"name": "largest_overhead", "label": f"backend overhead at {human(largest['bytes'])}",
                        "value": largest["overhead"], "unit": "x", "digits": 2,
                        "note": "dist.all_reduce's time / the communicator's alone"})
    ddp = report["ddp"]
    if ddp:
        tables.append({"name": "ddp", "title": "one DDP step (forward, backward with its gradient allreduce, SGD), "
                                               "median, the better of two runs each",
                       "columns": [column("model", text=True), column("parameters", "M", 1), column("cohort", "ms", 1),
                                   column("gloo", "ms", 1), column("gloo/cohort"), column("grad diff", digits=-1)],
                       "rows": [["MLP 2048-4096-4096-1024, batch 32", ddp["parameters"] / 1e6, ddp["cohort_ms"],
                                 ddp["gloo_ms"], ddp["speedup"], ddp["max_grad_difference"]]]})
        figures.append({"name": "ddp_speedup", "label": "DDP step", "value": ddp["speedup"], "unit": "x",
                        "digits": 2, "note": "gloo's step time / cohort's"})
    return {"context": {"ranks": report["ranks"], "torch": report["torch"], "baseline": "gloo",
                        "bootstrap": report["bootstrap"]},
            "tables": tables, "figures": figures,
            "notes": ["the ranks share this machine's cores; each figure is against gloo in the same run"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="8:64M", help="first:last message size in bytes (powers of 8 between, 1M and the last)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--ddp-steps", type=int, default=10, help="timed DDP steps per backend (0: none)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--out", help="write the results as cohort bench's report JSON here (rank 0)")
    parser.add_argument("--spawn", type=int, default=0, metavar="N",
                        help="start N ranks without MPI, as torchrun does: this process is rank 0")
    args = parser.parse_args()
    peers = []
    if args.spawn > 1:
        os.environ.update(RANK="0", WORLD_SIZE=str(args.spawn), LOCAL_RANK="0")
        # The same measurement, without what only rank 0 does or the spawning itself.
        argv = ["--sizes", args.sizes, "--repeat", str(args.repeat), "--ddp-steps", str(args.ddp_steps)]
        for r in range(1, args.spawn):
            env = dict(os.environ, RANK=str(r), LOCAL_RANK=str(r))
            peers.append(subprocess.Popen([sys.executable, __file__] + argv, env=env,
                                          stdout=subprocess.DEVNULL))

    dist.init_process_group("cohort", init_method="env://")
    rank = dist.get_rank()
    groups = {"cohort": dist.group.WORLD, "gloo": dist.new_group(backend="gloo")}
    first, last = (size(s) for s in args.sizes.split(":"))
    sizes = {last} | ({1 << 20} if first <= 1 << 20 <= last else set())
    while first <= last:
        sizes.add(first)
        first *= 8
    sizes = sorted(sizes)
    rows = allreduce_rows(sizes, groups, args.repeat)

    ddp = {}
    if args.ddp_steps:
        # Twice, each backend first once: the first model built in a process pays for memory
        # the second finds mapped.
        results = {name: [] for name in groups}
        for order in (list(groups.items()), list(reversed(groups.items()))):
            for name, group in order:
                results[name].append(ddp_run(group, args.ddp_steps, rank))
        step = {name: min(r[0] for r in runs) for name, runs in results.items()}
        worst = max((a - b).abs().max().item() for a, b in zip(results["cohort"][0][1], results["gloo"][0][1]))
        ddp = {"parameters": results["cohort"][0][2], "cohort_ms": step["cohort"] * 1e3,
               "gloo_ms": step["gloo"] * 1e3, "speedup": step["gloo"] / step["cohort"],
               "max_grad_difference": worst}

    if rank == 0:
        report = {"bench": "torch", "ranks": dist.get_world_size(), "torch": torch.__version__,
                  "bootstrap": cohort.torch.bootstrap(), "allreduce": rows, "ddp": ddp}
        if args.out:
            with open(args.out, "w") as f:
                json.dump(bench_report(report, args), f)
        elif args.json:
            print(json.dumps(report, indent=1))
        else:
            print(f"dist.all_reduce, float32, {dist.get_world_size()} ranks (median of {args.repeat})")
            print(f"{'bytes':>8} {'cohort us':>11} {'gloo us':>11} {'gloo/cohort':>12} {'comm us':>11} "
                  f"{'cohort/comm':>12}")
            for row in rows:
                print(f"{human(row['bytes']):>8} {row['cohort_us']:11.1f} {row['gloo_us']:11.1f} {row['speedup']:11.1f}x "
                      f"{row['communicator_us']:11.1f} {row['overhead']:11.2f}x")
            if ddp:
                print(f"DDP step, MLP of {ddp['parameters'] / 1e6:.1f} M parameters, batch 32: cohort "
                      f"{ddp['cohort_ms']:.1f} ms, gloo {ddp['gloo_ms']:.1f} ms ({ddp['speedup']:.2f}x); "
                      f"first step's gradients differ by at most {ddp['max_grad_difference']:.3g}")
    dist.destroy_process_group()
    if any(p.wait() != 0 for p in peers):
        sys.exit("torch_backend.py: a spawned rank failed (its stderr above says why)")


if __name__ == "__main__":
    main()
