#!/usr/bin/python3
"""cohort.checkpoint from Python against the C++ checkpointer and torch.save, in one run.

    PYTHONPATH=build/python /usr/bin/python3 bench/python_ckpt.py --cohort build/bin/cohort \\
        --dir DIR --bytes 1G --tensors 100 --repeat 3

The same state (float32 torch tensors, BYTES in TENSORS of them) is saved by
cohort.checkpoint.save, saved asynchronously (the time the caller is blocked), loaded back,
and written by torch.save followed by fsync (a checkpoint is durable once save returns;
torch.save alone is not) and read by torch.load. `cohort bench ckpt` runs in the same
process's run on the same directory for the C++ figures. Before each read the files' pages
are dropped from the page cache (posix_fadvise), as cohort bench ckpt drops its own. Each
figure is the median of the repetitions, which alternate which side goes first.
GB/s are 10^9 bytes per second.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

import torch

import cohort.checkpoint as ckpt

UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def size(text):
    return int(text[:-1]) * UNITS[text[-1].upper()] if text[-1].upper() in UNITS else int(text)


def drop_cache(path):
    files = [os.path.join(r, n) for r, _, names in os.walk(path) for n in names] if os.path.isdir(path) else [path]
    for name in files:
        fd = os.open(name, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def cohort_side(state, back, directory, step):
    save_s, _ = timed(lambda: ckpt.save(state, directory, step, retention=1))
    handle = None

    def start():
        nonlocal handle
        handle = ckpt.save(state, directory, step + 1, retention=1, async_=True)
    blocked_s, _ = timed(start)
    async_total_s, _ = timed(handle.wait)
    drop_cache(directory)
    load_s, _ = timed(lambda: ckpt.load(back, directory))
    assert all(torch.equal(back[n], state[n]) for n in state), "cohort.checkpoint loaded other values"
    return {"save": save_s, "blocked": blocked_s, "async_total": blocked_s + async_total_s, "load": load_s}


def torch_side(state, path):
    def save():
        with open(path, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
    save_s, _ = timed(save)
    drop_cache(path)
    load_s, back = timed(lambda: torch.load(path))
    assert all(torch.equal(back[n], state[n]) for n in state), "torch.load read other values"
    return {"save": save_s, "load": load_s}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cohort", required=True, help="the cohort executable, for cohort bench ckpt")
    parser.add_argument("--dir", required=True)
    parser.add_argument("--bytes", type=size, default=1 << 30)
    parser.add_argument("--tensors", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    per_tensor = args.bytes // args.tensors // 4
    generator = torch.Generator().manual_seed(0)
    state = {f"layer{i}.weight": torch.randn(per_tensor, generator=generator) for i in range(args.tensors)}
    total = per_tensor * 4 * args.tensors
    # Loads go into tensors that exist, as a model's parameters do: their pages are already
    # there, and the C++ benchmark's buffers are the same.
    back = {name: torch.zeros_like(t) for name, t in state.items()}
    work = os.path.join(args.dir, "python-ckpt-bench")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    try:
        cohort_runs, torch_runs = [], []
        for r in range(args.repeat):
            sides = [lambda: cohort_runs.append(cohort_side(state, back, os.path.join(work, "cohort"), 2 * r)),
                     lambda: torch_runs.append(torch_side(state, os.path.join(work, "state.pt")))]
            for side in sides if r % 2 == 0 else reversed(sides):
                side()
        cpp = json.loads(subprocess.run(
            [args.cohort, "bench", "ckpt", "--dir", work, "--bytes", str(total), "--tensors", str(args.tensors),
             "--repeat", str(args.repeat), "--async", "--json"],
            check=True, capture_output=True, text=True).stdout)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def median(runs, key):
        return statistics.median(run[key] for run in runs)

    rates = {row["io"] + " " + row["path"]: row["rate"] for row in cpp["tables"][0]["rows"]}
    figures = {
        "bytes": total, "tensors": args.tensors, "repeat": args.repeat,
        "cpp_save_gbs": rates["write checkpoint"], "cpp_load_gbs": rates["read checkpoint"],
        "python_save_gbs": total / median(cohort_runs, "save") / 1e9,
        "python_load_gbs": total / median(cohort_runs, "load") / 1e9,
        "torch_save_gbs": total / median(torch_runs, "save") / 1e9,
        "torch_load_gbs": total / median(torch_runs, "load") / 1e9,
        "async_blocked_s": median(cohort_runs, "blocked"),
        "sync_save_s": median(cohort_runs, "save"),
    }
    if args.json:
        print(json.dumps(figures))
        return 0
    f = figures
    print(f"{total / 1e9:.3f} GB in {args.tensors} float32 tensors, 1 rank, median of {args.repeat}, {args.dir}")
    print(f"{'':28}{'save GB/s':>10}{'ratio':>8}{'load GB/s':>11}{'ratio':>8}")
    print(f"{'C++ checkpointer (baseline)':28}{f['cpp_save_gbs']:10.2f}{1:8.2f}{f['cpp_load_gbs']:11.2f}{1:8.2f}")
    print(f"{'cohort.checkpoint':28}{f['python_save_gbs']:10.2f}{f['python_save_gbs'] / f['cpp_save_gbs']:8.2f}"
          f"{f['python_load_gbs']:11.2f}{f['python_load_gbs'] / f['cpp_load_gbs']:8.2f}")
    print(f"{'torch.save + fsync / load':28}{f['torch_save_gbs']:10.2f}{f['torch_save_gbs'] / f['cpp_save_gbs']:8.2f}"
          f"{f['torch_load_gbs']:11.2f}{f['torch_load_gbs'] / f['cpp_load_gbs']:8.2f}")
    print(f"cohort.checkpoint against torch.save: save {f['python_save_gbs'] / f['torch_save_gbs']:.2f}x, "
          f"load {f['python_load_gbs'] / f['torch_load_gbs']:.2f}x")
    print(f"async_=True blocked the caller {f['async_blocked_s']:.3f} s of a {f['sync_save_s']:.3f} s save "
          f"({100 * f['async_blocked_s'] / f['sync_save_s']:.1f} %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
