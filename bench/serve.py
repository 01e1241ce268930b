#!/usr/bin/python3
"""`cohort bench serve`: cohort's model server under Debian's wrk, against baselines in the same run.

    serve.py --cohort BIN [--duration S] [--repeat N] [--connections C] [--cpus N] [--out FILE]

`cohort bench serve` runs this script and prints what it writes to FILE: one JSON object
naming the report's context, tables (with their columns' units and digits), figures and
notes, which the C++ side prints in the one format every `cohort bench` area shares.
Progress goes to stderr.

Every case is a pair measured in alternation, `--repeat` times each, for `--duration`
seconds a run (medians reported), on loopback:
  ceiling   an identity model over V2 JSON against nginx answering a static 200 (the HTTP
            stack alone): the fraction of the machine's HTTP ceiling the server reaches;
  flask     the Fashion-MNIST MLP (784-256-10) served by cohort against the same TorchScript
            file behind a threaded Flask app, what users write instead;
  batching  a compute-bound MLP (784, 4 layers of 2048, 10) with dynamic batching on and off;
  binary    the 784-float request as binary tensor data against the same as JSON;
  router    the Fashion-MNIST MLP through `cohort serve router` in front of one replica
            against the replica alone: throughput, and p99 at half the replica's maximum
            rate (paced by wrk's per-request delay), both ways;
and the Fashion-MNIST MLP's latency at one connection (p50, p99). Models are made here
with torch and saved as TorchScript; torch's threads are set alike on both sides of a case.
"""
import argparse
import contextlib
import json
import os
import re
import select
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

DEADLINE_S = 60  # a bound on waits for a process to come up, never a measurement


def progress(line):
    print(f"cohort bench serve: {line}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, proc, name, log):
    end = time.monotonic() + DEADLINE_S
    while time.monotonic() < end:
        if proc.poll() is not None:
            with open(log) as f:
                raise SystemExit(f"cohort bench serve: {name} exited at start ({proc.returncode}):\n{f.read()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)  # polling a condition with a deadline
    raise SystemExit(f"cohort bench serve: {name} did not listen on port {port} within {DEADLINE_S} s")


@contextlib.contextmanager
def running(args, port, name, env=None):
    """A server, its output in a file beside it (a pipe nobody reads would stall a server
    that logs every request, as Flask's does)."""
    log = f"{tempfile.gettempdir()}/cohort-bench-serve-{os.getpid()}-{port}.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        wait_for_port(port, proc, name, log)
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=DEADLINE_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        os.unlink(log)


def make_models(root, torch):
    """TorchScript files: identity, the Fashion-MNIST MLP, the compute-bound MLP."""
    torch.manual_seed(0)

    class Identity(torch.nn.Module):
        def forward(self, x: torch.Tensor):
            return x

    def mlp(widths):
        layers = []
        for a, b in zip(widths, widths[1:]):
            layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
        return torch.nn.Sequential(*layers[:-1]).eval()

    models = {
        "identity": (Identity(), "max_batch_size: 0\ninputs: [{name: x, datatype: FP32, dims: [4]}]\n"
                                 "outputs: [{name: y, datatype: FP32, dims: [4]}]\n"),
        "fmnist": (mlp([784, 256, 10]), "max_batch_size: 64\ninputs: [{name: x, datatype: FP32, dims: [784]}]\n"
                                        "outputs: [{name: y, datatype: FP32, dims: [10]}]\n"),
    }
    big = mlp([784, 2048, 2048, 2048, 2048, 10])
    io = "inputs: [{name: x, datatype: FP32, dims: [784]}]\noutputs: [{name: y, datatype: FP32, dims: [10]}]\n"
    models["unbatched"] = (big, "max_batch_size: 64\n" + io)
    models["batched"] = (big, "max_batch_size: 64\n" + io + "dynamic_batching: {max_queue_delay_us: 2000}\n")
    for name, (module, config) in models.items():
        os.makedirs(f"{root}/{name}/1")
        torch.jit.script(module).save(f"{root}/{name}/1/model.pt")
        with open(f"{root}/{name}/config.yaml", "w") as f:
            f.write(config)


def json_body(values, shape):
    return json.dumps({"inputs": [{"name": "x", "shape": shape, "datatype": "FP32", "data": values}]}).encode()


def binary_body(values, shape):
    header = json.dumps({"inputs": [{"name": "x", "shape": shape, "datatype": "FP32",
                                     "parameters": {"binary_data_size": 4 * len(values)}}],
                         "parameters": {"binary_data_output": True}}).encode()
    return header + struct.pack(f"<{len(values)}f", *values), len(header)


def wrk_script(tmp, name, body, headers, delay_ms=None):
    """A wrk Lua script POSTing `body` (read from a file: it may be binary) with `headers`; with
    `delay_ms`, each connection waits that long before each request (a paced load)."""
    with open(f"{tmp}/{name}.body", "wb") as f:
        f.write(body)
    lines = ['wrk.method = "POST"', f'local f = io.open("{tmp}/{name}.body", "rb")', "wrk.body = f:read('*a')",
             "f:close()"]
    lines += [f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items()]
    if delay_ms is not None:
        lines += [f"function delay() return {delay_ms} end"]
    with open(f"{tmp}/{name}.lua", "w") as f:
        f.write("\n".join(lines) + "\n")
    return f"{tmp}/{name}.lua"


UNITS_S = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


def wrk(url, script, connections, duration, latency=False):
    """Requests/s, and with `latency` the p50 and p99 in microseconds; failures are fatal."""
    threads = min(2, connections)
    args = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "-s", script] + (["--latency"] if latency else [])
    out = subprocess.run(args + [url], capture_output=True, text=True, timeout=duration + DEADLINE_S).stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not rate:
        raise SystemExit(f"cohort bench serve: wrk gave no rate for {url}:\n{out}")
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if bad:
        raise SystemExit(f"cohort bench serve: {bad.group(1)} requests to {url} failed:\n{out}")
    result = {"rps": float(rate.group(1))}
    if latency:
        for pct in ("50", "99"):
            m = re.search(rf"^\s+{pct}(?:\.000)?%\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
            result[f"p{pct}_us"] = float(m.group(1)) * UNITS_S[m.group(2)] * 1e6 if m else None
    return result


def settle(port):
    """Returns once a cohort server has answered every request wrk left behind: its counts of
    answered requests stop moving. Requests whose clients have gone still run, and would
    otherwise weigh on the next run."""
    def answered():
        with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE_S) as s:
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            text = b""
            while chunk := s.recv(65536):
                text += chunk
        return sum(float(line.rsplit(b" ", 1)[1]) for line in text.splitlines()
                   if line.startswith((b"cohort_inference_request_success_total", b"cohort_inference_request_failure_total")))
    end = time.monotonic() + 10 * DEADLINE_S
    last = answered()
    while time.monotonic() < end:
        time.sleep(0.25)  # polling a condition with a deadline
        now = answered()
        if now == last:
            return
        last = now
    raise SystemExit(f"cohort bench serve: the server on port {port} was still busy after {10 * DEADLINE_S} s")


def alternate(repeat, measures):
    """Each measure's median over `repeat` rounds, the measures run one after another in a round,
    after a round not kept (TorchScript's executor settles on its first calls, caches fill)."""
    samples = [[] for _ in measures]
    for measure in measures:
        measure()
    for _ in range(repeat):
        for i, measure in enumerate(measures):
            samples[i].append(measure())
    return [statistics.median(s) for s in samples], samples


FLASK_APP = '''
import itertools, sys, torch
from flask import Flask, request
torch.set_num_threads(int(sys.argv[3]))
model = torch.jit.load(sys.argv[1])
app = Flask("fmnist")
answered = itertools.count()
done = 0

@app.post("/v2/models/fmnist/infer")
def infer():
    global done
    tensor = request.get_json()["inputs"][0]
    with torch.inference_mode():
        y = model(torch.tensor(tensor["data"], dtype=torch.float32).reshape(tensor["shape"]))
    done = next(answered) + 1
    return {"model_name": "fmnist", "outputs": [{"name": "y", "shape": list(y.shape), "datatype": "FP32",
                                                 "data": y.flatten().tolist()}]}

@app.get("/metrics")  # answered requests, named as cohort names them, for the benchmark's settle()
def metrics():
    return f"cohort_inference_request_success_total {done}\\n"

app.run(host="127.0.0.1", port=int(sys.argv[2]), threaded=True)
'''

NGINX_CONF = '''
worker_processes {workers};
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log;
daemon off;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {tmp}/nginx-body;
  server {{
    listen 127.0.0.1:{port};
    location / {{ default_type application/json; return 200 '{{"outputs":[]}}'; }}
  }}
}}
'''


class Bench:
    def __init__(self, args, tmp):
        self.args, self.tmp = args, tmp
        self.repo = f"{tmp}/repo"
        self.threads = max(1, min(args.cpus, os.cpu_count() or 1))
        self.env = dict(os.environ, OMP_NUM_THREADS=str(self.threads))
        self.env.pop("COHORT_CPUS", None)

    def cohort(self, models, extra=()):
        port = free_port()
        args = [self.args.cohort, "serve", "start", "--repository", self.repo, "--no-auth", "--port", str(port),
                "--threads", str(self.threads)] + [a for m in models for a in ("--model", m)] + list(extra)
        return running(args, port, "cohort serve start", env=self.env), port

    def load(self, url, script, settle_port=None):
        def run():
            rps = wrk(url, script, self.args.connections, self.args.duration)["rps"]
            if settle_port:
                settle(settle_port)
            return rps
        return run

    def against(self, baseline, model, script):
        """Medians of (baseline, cohort) req/s for `model`, each behind its own server: requests
        a client has given up on still run, and must not weigh on the other side's runs."""
        (base, base_port), (server, port) = baseline, self.cohort([model])
        with base, server:
            medians, _ = alternate(self.args.repeat, [
                self.load(f"http://127.0.0.1:{base_port}/v2/models/{baseline_model(model)}/infer", script,
                          None if model == "identity" else base_port),
                self.load(f"http://127.0.0.1:{port}/v2/models/{model}/infer", script, port)])
        return medians

    def ceiling(self):
        progress("ceiling: identity model against nginx's static 200")
        port = free_port()
        conf = f"{self.tmp}/nginx.conf"
        with open(conf, "w") as f:
            f.write(NGINX_CONF.format(workers=self.threads, tmp=self.tmp, port=port))
        script = wrk_script(self.tmp, "identity", json_body([0.5, 1.5, 2.5, 3.5], [4]), {"Content-Type": "application/json"})
        return self.against((running(["nginx", "-c", conf, "-p", self.tmp], port, "nginx"), port), "identity", script)

    def flask(self, script):
        progress("flask: the Fashion-MNIST MLP against the same file behind Flask")
        port = free_port()
        with open(f"{self.tmp}/flask_app.py", "w") as f:
            f.write(FLASK_APP)
        app = ["/usr/bin/python3", f"{self.tmp}/flask_app.py", f"{self.repo}/fmnist/1/model.pt", str(port),
               str(self.threads)]
        return self.against((running(app, port, "the Flask app", env=self.env), port), "fmnist", script)

    def batching(self, script):
        progress("batching: MLP 784-4x2048-10, dynamic batching off and on")
        return self.against(self.cohort(["unbatched"]), "batched", script)

    def binary_and_latency(self, json_script, values):
        progress("binary: 784 floats as JSON and as binary tensor data; latency at one connection")
        body, json_length = binary_body(values, [1, 784])
        binary_script = wrk_script(self.tmp, "binary", body, {"Content-Type": "application/octet-stream",
                                                               "Inference-Header-Content-Length": json_length})
        server, port = self.cohort(["fmnist"])
        url = f"http://127.0.0.1:{port}/v2/models/fmnist/infer"
        with server:
            medians, _ = alternate(self.args.repeat, [self.load(url, json_script, port),
                                                      self.load(url, binary_script, port)])
            latency = [wrk(url, json_script, 1, self.args.duration, latency=True) for _ in range(self.args.repeat)]
        p50 = statistics.median(l["p50_us"] for l in latency if l["p50_us"] is not None)
        p99 = statistics.median(l["p99_us"] for l in latency if l["p99_us"] is not None)
        return medians, (p50, p99, statistics.median(l["rps"] for l in latency))


    def router(self, body):
        """(alone, routed) req/s medians, and per side the paced runs' (rate, p50, p99) medians."""
        progress("router: the Fashion-MNIST MLP through the router with one replica, against the replica alone")
        headers = {"Content-Type": "application/json"}
        script = wrk_script(self.tmp, "router", body, headers)
        server, port = self.cohort(["fmnist"])
        router_port = free_port()
        router = running([self.args.cohort, "serve", "router", "--no-auth", "--port", str(router_port), "--threads",
                          str(self.threads), "--replica", f"127.0.0.1:{port}"], router_port, "cohort serve router",
                         env=self.env)
        alone = f"http://127.0.0.1:{port}/v2/models/fmnist/infer"
        routed = f"http://127.0.0.1:{router_port}/v2/models/fmnist/infer"
        with server, router:
            wait_until_ready(router_port)
            medians, _ = alternate(self.args.repeat, [self.load(alone, script, port), self.load(routed, script, port)])
            # Each connection waits so long before each request that together they ask for
            # half the replica's maximum rate; wrk times a request from its sending.
            delay_ms = max(1, round(1000 * self.args.connections / max(medians[0] / 2, 1)))
            paced = wrk_script(self.tmp, "router-paced", body, headers, delay_ms)

            def latency(url):
                def run():
                    r = wrk(url, paced, self.args.connections, self.args.duration, latency=True)
                    settle(port)
                    return r
                return run
            runs = [[], []]
            for _ in range(self.args.repeat):
                for side, url in enumerate((alone, routed)):
                    runs[side].append(latency(url)())
        paced_medians = [tuple(statistics.median(r[k] for r in side) for k in ("rps", "p50_us", "p99_us"))
                         for side in runs]
        return medians, paced_medians


def wait_until_ready(port):
    """Until the router has found its replica ready."""
    end = time.monotonic() + DEADLINE_S
    while time.monotonic() < end:
        with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE_S) as s:
            s.sendall(b"GET /v2/health/ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            if s.recv(64).startswith(b"HTTP/1.1 200"):
                return
        time.sleep(0.05)  # polling a condition with a deadline
    raise SystemExit(f"cohort bench serve: the router on port {port} found no replica ready within {DEADLINE_S} s")


def baseline_model(model):
    """The model a baseline serves for `model`'s case: batching's baseline is the same MLP unbatched."""
    return "unbatched" if model == "batched" else model


def ratio(a, b):
    return a / b if b else None


def column(name, unit="", digits=2, text=False):
    return {"name": name, "unit": unit, "digits": digits, "text": text}


def report(args, threads, ceiling, flask, batching, binary, latency, router):
    rows = [
        ["ceiling", "identity, V2 JSON", "nginx static 200", ceiling[1], ceiling[0], ratio(ceiling[1], ceiling[0]), 0.5],
        ["flask", "MLP 784-256-10, JSON", "Flask + torch", flask[1], flask[0], ratio(flask[1], flask[0]), 10.0],
        ["batching", "MLP 784-4x2048-10", "batching off", batching[1], batching[0], ratio(batching[1], batching[0]),
         2.0],
        ["binary", "784 floats, binary", "the same as JSON", binary[1], binary[0], ratio(binary[1], binary[0]), 2.0],
        ["router", "MLP 784-256-10, routed", "the replica alone", router[0][1], router[0][0],
         ratio(router[0][1], router[0][0]), 0.8],
    ]
    met = [r[0] for r in rows if r[5] is not None and r[5] >= r[6]]
    (alone_rps, alone_p50, alone_p99), (routed_rps, routed_p50, routed_p99) = router[1]
    added_p99 = routed_p99 - alone_p99
    if added_p99 <= 1000:
        met.append("router p99")
    return {
        "context": {"connections": args.connections, "duration_s": args.duration, "repeat": args.repeat,
                    "threads": threads, "client": "wrk"},
        "tables": [
            {"name": "throughput", "title": f"medians of {args.repeat} alternating runs of {args.duration} s, "
                                            f"{args.connections} connections, against a baseline in the same run",
             "columns": [column("case", text=True), column("served", text=True), column("against", text=True),
                         column("cohort", "req/s", 0), column("baseline", "req/s", 0), column("ratio"),
                         column("target")],
             "rows": rows},
            {"name": "latency", "title": "one connection, the Fashion-MNIST MLP over V2 JSON",
             "columns": [column("model", text=True), column("p50", "us", 0), column("p99", "us", 0),
                         column("rate", "req/s", 0)],
             "rows": [["MLP 784-256-10", latency[0], latency[1], latency[2]]]},
            {"name": "router_latency",
             "title": f"{args.connections} connections paced to half the replica's maximum rate, "
                      f"medians of {args.repeat} runs of {args.duration} s",
             "columns": [column("path", text=True), column("rate", "req/s", 0), column("p50", "us", 0),
                         column("p99", "us", 0)],
             "rows": [["the replica alone", alone_rps, alone_p50, alone_p99],
                      ["through the router", routed_rps, routed_p50, routed_p99]]},
        ],
        "figures": [
            {"name": "targets_met", "label": "targets met", "value": len(met), "unit": "", "digits": 0,
             "note": f"of {len(rows) + 1}" + (f" ({', '.join(met)})" if met else "")},
            {"name": "router_p99_added_us", "label": "p99 the router adds at half the maximum rate",
             "value": added_p99, "unit": "us", "digits": 0, "note": "(target <= 1000 us)"},
            {"name": "p50_us", "label": "p50 at one connection", "value": latency[0], "unit": "us", "digits": 0,
             "note": "(Triton's published 'simple' model over HTTP: 690 us on its hardware)"},
        ],
        "notes": [f"torch and the servers use {threads} threads (--cpus); wrk shares the machine's cores"],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cohort", required=True)
    parser.add_argument("--duration", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--cpus", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", help="write the results there instead of stdout")
    args = parser.parse_args()
    for tool, package in (("wrk", "wrk"), ("nginx", "nginx")):
        if not shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/sbin"):
            raise SystemExit(f"cohort bench serve: needs {tool} (Debian package {package}; scripts/install-deps)")
    try:
        import torch  # noqa: F401 (Debian's python3-torch)
        import flask  # noqa: F401
    except ImportError as e:
        raise SystemExit(f"cohort bench serve: needs {e.name} for /usr/bin/python3 "
                         "(Debian python3-torch, python3-flask; scripts/install-deps)")
    os.environ["PATH"] += ":/usr/sbin"
    with tempfile.TemporaryDirectory(prefix="cohort-bench-serve.") as tmp:
        bench = Bench(args, tmp)
        progress("making the models with torch")
        make_models(bench.repo, torch)
        values = [((i * 37) % 255) / 255.0 for i in range(784)]
        fm_script = wrk_script(tmp, "fmnist", json_body(values, [1, 784]), {"Content-Type": "application/json"})
        ceiling = bench.ceiling()
        flask_rates = bench.flask(fm_script)
        batching = bench.batching(fm_script)
        binary, latency = bench.binary_and_latency(fm_script, values)
        router = bench.router(json_body(values, [1, 784]))
    results = json.dumps(report(args, bench.threads, ceiling, flask_rates, batching, binary, latency, router))
    if args.out:
        with open(args.out, "w") as f:
            f.write(results + "\n")
    else:
        print(results)


if __name__ == "__main__":
    main()
