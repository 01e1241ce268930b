#!/usr/bin/python3
"""The best trial's settings of a finished sweep, as train.py options.

    /usr/bin/python3 best.py SWEEP_DIR [--cohort cohort]   prints: --lr=… --width=… --dropout=…

Reads `cohort sweep best SWEEP_DIR --json` and turns each parameter the experiment tuned
into the train.py option of the same name.
"""
import argparse
import json
import shlex
import subprocess
import sys


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("sweep_dir")
    p.add_argument("--cohort", default="cohort")
    args = p.parse_args()
    out = subprocess.run([args.cohort, "sweep", "best", args.sweep_dir, "--json"], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"best: cohort sweep best {args.sweep_dir}: {out.stderr.strip()}")
    best = json.loads(out.stdout)
    print(" ".join(shlex.quote(f"--{name}={value}") for name, value in sorted(best["parameters"].items())))


if __name__ == "__main__":
    main()
