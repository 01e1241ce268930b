#!/usr/bin/python3
"""Batch prediction's throughput: `cohort serve predict` as one process against two workers
(SLURM_PROCID 0 and 1 of SLURM_NTASKS 2) on the same input, in the same run.

    bench/predict.py COHORT_BIN [ROWS] [REPEATS]

An MLP 784-256-10 in TorchScript over ROWS (default 200 000) rows of 784 float32 in HDF5,
batches of 256, one intra-op thread per process (OMP_NUM_THREADS=1), so that two workers
have what two ranks of a step would. Each case runs REPEATS times (default 3), alternating;
the median wall time counts, from start to the output written (model load and join included).
"""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np
import torch


def run_case(cohort, work, workers):
    out = f"{work}/out.h5"
    if os.path.exists(out):
        os.remove(out)
    shutil.rmtree(out + ".parts", ignore_errors=True)
    args = [cohort, "serve", "predict", "--model", f"{work}/mlp.pt", "--input", f"{work}/x.h5", "--output", out,
            "--batch-size", "256"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env["OMP_NUM_THREADS"] = "1"
    start = time.monotonic()
    procs = [subprocess.Popen(args, env={**env, "SLURM_PROCID": str(i), "SLURM_NTASKS": str(workers), "SLURM_STEP_ID": "0"},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for i in range(workers)]
    if any(p.wait() != 0 for p in procs):
        raise SystemExit(f"cohort serve predict failed with {workers} worker(s)")
    return time.monotonic() - start


def main():
    cohort = sys.argv[1]
    rows = int(sys.argv[2]) if len(sys.argv) > 2 else 200_000
    repeats = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    with tempfile.TemporaryDirectory() as work:
        torch.manual_seed(0)
        mlp = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))
        torch.jit.script(mlp).save(f"{work}/mlp.pt")
        with h5py.File(f"{work}/x.h5", "w") as f:
            f["x"] = np.random.default_rng(0).standard_normal((rows, 784)).astype(np.float32)
        times = {1: [], 2: []}
        for _ in range(repeats):
            for workers in (1, 2):
                times[workers].append(run_case(cohort, work, workers))
        one, two = statistics.median(times[1]), statistics.median(times[2])
        print(f"# cohort serve predict: MLP 784-256-10, {rows} rows, batch 256, medians of {repeats}")
        print(f"{'workers':>8} {'seconds':>8} {'rows/s':>10} {'ratio':>6}")
        print(f"{1:>8} {one:>8.2f} {rows / one:>10.0f} {1.0:>6.2f}")
        print(f"{2:>8} {two:>8.2f} {rows / two:>10.0f} {one / two:>6.2f}")


if __name__ == "__main__":
    main()
