#!/usr/bin/python3
"""Scores the test split through a served model's V2 endpoint, as any KServe client would.

    /usr/bin/python3 client.py --url http://HOST:PORT --token-file TOKEN --data data.h5 \\
        [--model fashion-mnist] [--batch 100] [--expect ACCURACY]
    /usr/bin/python3 client.py --serve REPOSITORY --data data.h5 [--expect ACCURACY]

With --serve it starts `cohort serve start` on the repository itself (any free port, a
token file of its own), scores through it, and drains it with SIGTERM at the end.

Sends the test images in batches as V2 inference requests (JSON, FP32 [N, 1, 28, 28]),
takes the argmax of each row's logits, and prints `served_test_accuracy=…` and the requests'
latency. With --expect (export.py's offline figure) it exits 1 unless the two are equal: the
served model answers exactly what the checkpoint does.
"""
import argparse
import contextlib
import json
import pathlib
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import h5py
import numpy as np


def infer(url, model, token, batch):
    body = json.dumps({"inputs": [{"name": "image", "datatype": "FP32", "shape": list(batch.shape),
                                   "data": batch.ravel().tolist()}]}).encode()
    request = urllib.request.Request(f"{url}/v2/models/{model}/infer", data=body, method="POST",
                                     headers={"Content-Type": "application/json",
                                              "Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=60) as reply:
            answer = json.load(reply)
    except urllib.error.HTTPError as e:
        sys.exit(f"client: {url}: {e.code} {e.read().decode(errors='replace')}")
    out = answer["outputs"][0]
    return np.asarray(out["data"], dtype=np.float32).reshape(out["shape"])


@contextlib.contextmanager
def served(repository, cohort):
    """A `cohort serve start` of the repository: yields its URL and token file."""
    with tempfile.TemporaryDirectory(prefix="fashion-mnist-serve.") as tmp:
        token = pathlib.Path(tmp) / "token"
        server = subprocess.Popen([cohort, "serve", "start", "--repository", str(repository), "--port", "0",
                                   "--token-file", str(token)], stdout=subprocess.PIPE, text=True)
        try:
            url = None
            for line in server.stdout:  # the server says where it listens once it does
                m = re.search(r"listening on (http://[^/\s]+)", line)
                if m:
                    url = m.group(1)
                    break
            if not url:
                sys.exit(f"client: cohort serve start --repository {repository} ended ({server.wait()}) without listening")
            print(f"client: serving {repository} at {url}", flush=True)
            yield url, token
        finally:
            server.send_signal(signal.SIGTERM)
            if server.wait(timeout=60) != 0:
                print(f"client: the server exited {server.returncode} after its drain", file=sys.stderr)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--url")
    where.add_argument("--serve", type=pathlib.Path, metavar="REPOSITORY")
    p.add_argument("--token-file", type=pathlib.Path)
    p.add_argument("--cohort", default="cohort", help="the cohort command, for --serve")
    p.add_argument("--data", required=True, type=pathlib.Path)
    p.add_argument("--model", default="fashion-mnist")
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--expect", type=float)
    args = p.parse_args()
    if args.url and not args.token_file:
        p.error("--url needs --token-file")
    with h5py.File(args.data, "r") as f:
        x, y = f["test/images"][...], f["test/labels"][...]
    if args.serve:
        with served(args.serve, args.cohort) as (url, token_file):
            accuracy = score(url, token_file, args, x, y)
    else:
        accuracy = score(args.url, args.token_file, args, x, y)
    if args.expect is not None and round(accuracy, 4) != round(args.expect, 4):
        sys.exit(f"client: the served model scores {accuracy:.4f}, the checkpoint offline {args.expect:.4f}")


def score(url, token_file, args, x, y):
    token = token_file.read_text().strip()
    correct, latencies = 0, []
    for i in range(0, len(x), args.batch):
        began = time.monotonic()
        logits = infer(url.rstrip("/"), args.model, token, x[i:i + args.batch])
        latencies.append(time.monotonic() - began)
        correct += int((logits.argmax(1) == y[i:i + args.batch]).sum())
    accuracy = correct / len(x)
    print(f"served_test_accuracy={accuracy:.4f} ({len(x)} images in {len(latencies)} requests, "
          f"median {1000 * float(np.median(latencies)):.1f} ms a request)", flush=True)
    return accuracy


if __name__ == "__main__":
    main()
