#!/usr/bin/python3
"""`cohort serve start` against real clients: Python `requests` and curl, on loopback.

    server_test.py COHORT_BIN

TorchScript models are made here with Python torch, served from a Triton-layout repository,
and every answer is compared with the same model run in Python torch, exactly. The server
takes a free port (--port 0) and the test reads it from the server's "listening" line.
"""
import json
import os
import select
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import unittest

import numpy
import requests
import torch

import v2_client
from loopback import free_port

COHORT = None
DEADLINE_S = 60  # a bound on waits that normally end at once, never a measurement


def save(module, path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    torch.jit.script(module).save(path)


class Pair(torch.nn.Module):
    """INT64 in; twice it and its sum out: two outputs, whole numbers."""

    def forward(self, x: torch.Tensor):
        return x * 2, x.sum()


class Negate(torch.nn.Module):
    def forward(self, flags: torch.Tensor):
        return torch.logical_not(flags)


def make_repository(root):
    torch.manual_seed(1)
    for version in (1, 2):
        mlp = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
        save(mlp, f"{root}/mlp/{version}/model.pt")
    with open(f"{root}/mlp/config.yaml", "w") as f:
        f.write("max_batch_size: 8\n"
                "inputs: [{name: x, datatype: FP32, dims: [4]}]\n"
                "outputs: [{name: y, datatype: FP32, dims: [2]}]\n"
                "version_policy: all\n")
    save(Pair(), f"{root}/pair/1/model.pt")
    with open(f"{root}/pair/config.yaml", "w") as f:
        f.write("inputs: [{name: x, datatype: INT64, dims: [-1]}]\n"
                "outputs: [{name: twice, datatype: INT64, dims: [-1]}, {name: total, datatype: INT64, dims: []}]\n")
    save(Negate(), f"{root}/negate/1/model.pt")
    with open(f"{root}/negate/config.yaml", "w") as f:
        f.write("inputs: [{name: flags, datatype: BOOL, dims: [-1]}]\n"
                "outputs: [{name: out, datatype: BOOL, dims: [-1]}]\n")


class Server:
    """A running `cohort serve start` (or another verb that serves); its port as it printed it."""

    def __init__(self, args, env=None, verb="start"):
        self.proc = subprocess.Popen([COHORT, "serve", verb, "--port", "0"] + args, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env, text=True, bufsize=0)
        text = ""
        end = time.monotonic() + DEADLINE_S
        while "listening on" not in text or not text.endswith("\n"):
            ready, _, _ = select.select([self.proc.stdout], [], [], max(0.0, end - time.monotonic()))
            chunk = os.read(self.proc.stdout.fileno(), 4096).decode() if ready else ""
            if not chunk:
                self.proc.kill()
                raise AssertionError(f"no 'listening' line: {text!r} {self.proc.stderr.read()}")
            text += chunk
        self.lines = text.splitlines(keepends=True)
        self.port = int(self.lines[-1].split("(port ")[1].rstrip(")\n"))
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=DEADLINE_S)


def infer_body(data, shape, datatype="FP32", name="x", **extra):
    body = {"inputs": [{"name": name, "shape": shape, "datatype": datatype, "data": data}]}
    body.update(extra)
    return body


class ServeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.repo = os.path.join(cls.tmp.name, "repo")
        make_repository(cls.repo)
        env = dict(os.environ, XDG_CONFIG_HOME=os.path.join(cls.tmp.name, "config"))
        cls.server = Server(["--repository", cls.repo, "--threads", "2", "--max-body", "64K"], env=env)
        cls.token_file = os.path.join(cls.tmp.name, "config", "cohort", "serve-token")
        with open(cls.token_file) as f:
            cls.token = f.read().strip()
        cls.http = requests.Session()
        cls.http.headers["Authorization"] = f"Bearer {cls.token}"

    @classmethod
    def tearDownClass(cls):
        assert cls.server.stop() == 0
        cls.tmp.cleanup()

    def get(self, path):
        return self.http.get(self.server.url + path, timeout=DEADLINE_S)

    def post(self, path, body):
        data = body if isinstance(body, (str, bytes)) else json.dumps(body)
        return self.http.post(self.server.url + path, data=data, timeout=DEADLINE_S)

    def expect_error(self, response, status, words):
        self.assertEqual(response.status_code, status, response.text)
        self.assertEqual(response.headers["Content-Type"], "application/json")
        self.assertIn(words, response.json()["error"])

    def mlp(self, version):
        return torch.jit.load(f"{self.repo}/mlp/{version}/model.pt")

    def test_token_file_is_created_private_and_printed(self):
        self.assertEqual(stat.S_IMODE(os.stat(self.token_file).st_mode), 0o600)
        self.assertEqual(stat.S_IMODE(os.stat(os.path.dirname(self.token_file)).st_mode), 0o700)
        self.assertGreaterEqual(len(self.token), 32)
        self.assertIn(f"Bearer {self.token}", "".join(self.server.lines))

    def test_a_token_file_in_a_folder_of_the_users_leaves_that_folders_mode(self):
        # Only a folder made for the token is made private: --token-file /tmp/t must not
        # close /tmp (or a home directory) to everyone else.
        with tempfile.TemporaryDirectory() as tmp:
            shared = os.path.join(tmp, "shared")
            os.mkdir(shared)
            os.chmod(shared, 0o1777)
            server = Server(["--repository", f"{self.tmp.name}/repo", "--token-file", f"{shared}/token"])
            try:
                self.assertEqual(stat.S_IMODE(os.stat(shared).st_mode), 0o1777)
                self.assertEqual(stat.S_IMODE(os.stat(f"{shared}/token").st_mode), 0o600)
            finally:
                server.stop()

    def test_server_metadata_and_health(self):
        self.assertEqual(self.get("/v2").json()["name"], "cohort")
        self.assertEqual(self.get("/v2/health/live").status_code, 200)
        self.assertEqual(self.get("/v2/health/ready").status_code, 200)

    def test_model_metadata_names_signature_and_versions(self):
        meta = self.get("/v2/models/mlp").json()
        self.assertEqual(meta["name"], "mlp")
        self.assertEqual(meta["versions"], ["1", "2"])
        self.assertEqual(meta["inputs"], [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}])
        self.assertEqual(meta["outputs"], [{"name": "y", "datatype": "FP32", "shape": [-1, 2]}])
        self.assertEqual(self.get("/v2/models/mlp/versions/1").json()["versions"], ["1"])
        self.assertEqual(self.get("/v2/models/mlp/ready").status_code, 200)
        self.assertEqual(self.get("/v2/models/mlp/versions/2/ready").status_code, 200)

    def test_outputs_equal_python_torch_for_each_version(self):
        x = torch.randn(3, 4)
        for version, path in ((2, "/v2/models/mlp/infer"), (1, "/v2/models/mlp/versions/1/infer"),
                              (2, "/v2/models/mlp/versions/2/infer")):
            reply = self.post(path, infer_body(x.flatten().tolist(), [3, 4], id="req-7"))
            self.assertEqual(reply.status_code, 200, reply.text)
            body = reply.json()
            self.assertEqual((body["model_name"], body["model_version"], body["id"]), ("mlp", str(version), "req-7"))
            out = body["outputs"][0]
            self.assertEqual((out["name"], out["datatype"], out["shape"]), ("y", "FP32", [3, 2]))
            got = torch.tensor(out["data"], dtype=torch.float32).reshape(3, 2)
            with torch.no_grad():
                self.assertTrue(torch.equal(got, self.mlp(version)(x)), f"version {version}")

    def test_nested_data_reads_as_flat(self):
        x = torch.randn(2, 4)
        flat = self.post("/v2/models/mlp/infer", infer_body(x.flatten().tolist(), [2, 4])).json()
        nested = self.post("/v2/models/mlp/infer", infer_body(x.tolist(), [2, 4])).json()
        self.assertEqual(flat["outputs"], nested["outputs"])
        self.assertNotIn("id", flat)

    def test_requested_outputs_and_integers(self):
        body = infer_body([1, -2, 2**40], [3], datatype="INT64")
        both = self.post("/v2/models/pair/infer", body).json()["outputs"]
        self.assertEqual([o["name"] for o in both], ["twice", "total"])
        self.assertEqual(both[0]["data"], [2, -4, 2**41])
        self.assertEqual((both[1]["shape"], both[1]["data"]), ([], [2**40 - 1]))
        body["outputs"] = [{"name": "total"}]
        only = self.post("/v2/models/pair/infer", body).json()["outputs"]
        self.assertEqual([o["name"] for o in only], ["total"])
        body["outputs"] = [{"name": "nope"}]
        self.expect_error(self.post("/v2/models/pair/infer", body), 400, "no such output")

    def test_a_v2_client_written_from_the_spec_gets_every_answer_right(self):
        client = v2_client.InferenceServerClient(self.server.url, token=self.token)
        try:
            self.assertTrue(client.is_server_live() and client.is_server_ready())
            self.assertIn("name", client.server_metadata())
            self.assertTrue(client.is_model_ready("mlp") and client.is_model_ready("mlp", 1))
            self.assertFalse(client.is_model_ready("mlp", 9) or client.is_model_ready("absent"))
            meta = client.model_metadata("pair")
            self.assertEqual([(t["name"], t["datatype"]) for t in meta["outputs"]], [("twice", "INT64"), ("total", "INT64")])
            x = numpy.random.default_rng(3).standard_normal((6, 4), dtype=numpy.float32)
            with torch.no_grad():
                expected = {v: self.mlp(v)(torch.from_numpy(x)).numpy() for v in (1, 2)}
            for version, binary in ((None, False), (None, True), (1, False), (1, True)):
                result = client.infer("mlp", {"x": x}, version=version, binary=binary, request_id=f"r{version}{binary}")
                self.assertEqual((result.model_version, result.id), (str(version or 2), f"r{version}{binary}"))
                self.assertTrue(numpy.array_equal(result.as_numpy("y"), expected[version or 2]), (version, binary))
            ints = numpy.array([3, -1, 2**40], dtype=numpy.int64)
            for binary in (False, True):
                result = client.infer("pair", {"x": ints}, outputs=["total"], binary=binary)
                self.assertEqual(result.names(), ["total"])
                self.assertEqual(result.as_numpy("total").tolist(), 2**40 + 2)
            flags = client.infer("negate", {"flags": numpy.array([True, False, True])}, binary=True)
            self.assertEqual(flags.as_numpy("out").tolist(), [False, True, False])
            with self.assertRaises(v2_client.V2Error) as e:
                client.infer("mlp", {"x": numpy.zeros((2, 5), dtype=numpy.float32)})
            self.assertEqual(e.exception.status, 400)
            with self.assertRaises(v2_client.V2Error) as e:
                client.infer("mlp", {"x": x.astype(numpy.float64)}, binary=True)
            self.assertEqual(e.exception.status, 400)
        finally:
            client.close()

    def test_bool_tensors(self):
        out = self.post("/v2/models/negate/infer", infer_body([True, False], [2], "BOOL", "flags")).json()
        self.assertEqual(out["outputs"][0]["data"], [False, True])
        self.expect_error(self.post("/v2/models/negate/infer", infer_body([1, 0], [2], "BOOL", "flags")), 400,
                          "true or false")

    def test_without_token_is_401(self):
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {self.token}"}):
            reply = requests.get(self.server.url + "/v2/models/mlp", headers=headers, timeout=DEADLINE_S)
            self.expect_error(reply, 401, "token")
            self.assertEqual(reply.headers["WWW-Authenticate"], "Bearer")
        reply = requests.post(self.server.url + "/v2/models/mlp/infer", data="{}", timeout=DEADLINE_S)
        self.assertEqual(reply.status_code, 401)

    def test_unknown_model_version_or_path_is_404(self):
        self.expect_error(self.get("/v2/models/nope"), 404, "unknown model 'nope'")
        self.expect_error(self.post("/v2/models/nope/infer", infer_body([1], [1])), 404, "unknown model")
        self.expect_error(self.get("/v2/models/mlp/versions/9"), 404, "no version '9'")
        self.expect_error(self.get("/v2/models/mlp/unknown"), 404, "no endpoint")
        self.expect_error(self.get("/v3"), 404, "no endpoint")

    def test_bad_requests_are_400(self):
        bad = {
            "malformed": ("{\"inputs\": [", "the request body"),
            "not an object": ("[1, 2]", "JSON object"),
            "wrong shape": (infer_body([0.0] * 6, [2, 3]), "does not match [-1, 4]"),
            "batch too large": (infer_body([0.0] * 36, [9, 4]), "batch 9 is not 1..8"),
            "wrong datatype": (infer_body([1, 2, 3, 4], [1, 4], "INT64"), "not the model's FP32"),
            "unknown datatype": (infer_body([1, 2, 3, 4], [1, 4], "FP8"), "not the model's FP32"),
            "too few elements": (infer_body([1.0, 2.0], [1, 4]), "needs 4"),
            "not numbers": (infer_body(["a", "b", "c", "d"], [1, 4]), "expected a number"),
            "missing input": ({"inputs": []}, "input 'x' is missing"),
            "unknown input": (infer_body([1.0] * 4, [1, 4], name="z"), "no such input"),
        }
        for case, (body, words) in bad.items():
            with self.subTest(case):
                self.expect_error(self.post("/v2/models/mlp/infer", body), 400, words)
        self.expect_error(self.post("/v2/models/pair/infer", infer_body([2**63 - 1 + 1.0e5], [1], "INT64")), 400,
                          "integer")

    def test_body_over_limit_is_413(self):
        reply = self.post("/v2/models/mlp/infer", infer_body([0.5] * 20000, [5000, 4]))
        self.expect_error(reply, 413, "over 65536 bytes")

    def test_wrong_method_is_an_error_not_a_crash(self):
        self.assertEqual(self.http.delete(self.server.url + "/v2/models/mlp", timeout=DEADLINE_S).status_code, 405)
        self.assertEqual(self.get("/v2/models/mlp/infer").status_code, 405)

    def test_keep_alive_serves_many_requests_on_one_connection(self):
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=DEADLINE_S) as s:
            request = (f"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {self.token}\r\n\r\n").encode()
            reader = s.makefile("rb")
            for _ in range(3):
                s.sendall(request)
                self.assertEqual(reader.readline(), b"HTTP/1.1 200 OK\r\n")
                length = 0
                while (line := reader.readline()) != b"\r\n":
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                reader.read(length)

    def test_metrics_count_per_model_and_version_and_promtool_accepts_them(self):
        self.assertEqual(self.post("/v2/models/negate/infer", infer_body([True], [1], "BOOL", "flags")).status_code, 200)
        self.assertEqual(self.post("/v2/models/negate/infer", infer_body([1], [1], "BOOL", "flags")).status_code, 400)
        reply = self.get("/metrics")
        self.assertEqual(reply.status_code, 200)
        self.assertTrue(reply.headers["Content-Type"].startswith("text/plain; version=0.0.4"))
        series = dict(line.rsplit(" ", 1) for line in reply.text.splitlines() if not line.startswith("#"))
        labels = 'model="negate",version="1"'
        self.assertGreaterEqual(int(series[f"cohort_inference_request_success_total{{{labels}}}"]), 1)
        self.assertGreaterEqual(int(series[f"cohort_inference_request_failure_total{{{labels}}}"]), 1)
        self.assertGreaterEqual(int(series[f'cohort_inference_request_duration_seconds_bucket{{{labels},le="+Inf"}}']), 1)
        self.assertGreater(float(series["process_resident_memory_bytes"]), 0)
        check = subprocess.run(["promtool", "check", "metrics"], input=reply.text, capture_output=True, text=True,
                               timeout=DEADLINE_S)
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
        self.assertEqual(requests.get(self.server.url + "/metrics", timeout=DEADLINE_S).status_code, 401)

    def test_a_real_prometheus_scrapes_it_with_the_token(self):
        self.assertEqual(self.post("/v2/models/negate/infer", infer_body([True], [1], "BOOL", "flags")).status_code, 200)
        with tempfile.TemporaryDirectory() as tmp:
            port = free_port()  # for Prometheus' own API
            with open(f"{tmp}/prometheus.yml", "w") as f:
                f.write("global: {scrape_interval: 1s, scrape_timeout: 1s}\n"
                        "scrape_configs:\n"
                        "  - job_name: cohort\n"
                        f"    authorization: {{credentials_file: {self.token_file}}}\n"
                        f"    static_configs: [{{targets: ['127.0.0.1:{self.server.port}']}}]\n")
            prometheus = subprocess.Popen(["prometheus", f"--config.file={tmp}/prometheus.yml",
                                           f"--storage.tsdb.path={tmp}/data", f"--web.listen-address=127.0.0.1:{port}"],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            try:
                value = self.query_until_found(port, 'cohort_inference_request_success_total{model="negate",version="1"}')
                self.assertGreaterEqual(float(value), 1)
                self.assertEqual(self.query_until_found(port, 'up{job="cohort"}'), "1")
            finally:
                prometheus.terminate()
                log = prometheus.communicate(timeout=DEADLINE_S)[1]
            self.assertNotIn("level=error", log)

    def query_until_found(self, port, query):
        """The value Prometheus holds for `query`, asked until it has scraped one."""
        end = time.monotonic() + DEADLINE_S
        while time.monotonic() < end:
            try:
                reply = requests.get(f"http://127.0.0.1:{port}/api/v1/query", params={"query": query}, timeout=5)
                result = reply.json()["data"]["result"] if reply.status_code == 200 else []
            except requests.ConnectionError:
                result = []  # not listening yet
            if result:
                return result[0]["value"][1]
            time.sleep(0.2)  # polling a condition with a deadline
        self.fail(f"Prometheus never held {query}")

    def test_statistics_per_model_and_version(self):
        before = self.get("/v2/models/pair/stats").json()["model_stats"][0]
        body = infer_body([1, 2], [2], datatype="INT64")
        for _ in range(2):
            self.assertEqual(self.post("/v2/models/pair/infer", body).status_code, 200)
        self.assertEqual(self.post("/v2/models/pair/infer", infer_body([1.5], [1], "INT64")).status_code, 400)
        after = self.get("/v2/models/pair/stats").json()["model_stats"][0]
        self.assertEqual((after["name"], after["version"]), ("pair", "1"))
        success, fail = after["inference_stats"]["success"], after["inference_stats"]["fail"]
        self.assertEqual(success["count"] - before["inference_stats"]["success"]["count"], 2)
        self.assertEqual(fail["count"] - before["inference_stats"]["fail"]["count"], 1)
        self.assertGreater(success["ns"], 0)
        self.assertEqual(after["execution_count"] - before["execution_count"], 2)
        self.assertGreater(after["last_inference"], 0)
        every = self.get("/v2/models/stats").json()["model_stats"]
        self.assertIn(("mlp", "1"), {(e["name"], e["version"]) for e in every})
        self.assertIn(("mlp", "2"), {(e["name"], e["version"]) for e in every})
        one = self.get("/v2/models/mlp/versions/1/stats").json()["model_stats"]
        self.assertEqual([e["version"] for e in one], ["1"])

    def binary_request(self, x, json_extra=None, size=None, tail=b""):
        """A request of the binary tensor extension: its JSON, then x's float32 bytes."""
        raw = x.numpy().astype("<f4").tobytes()
        head = {"inputs": [{"name": "x", "shape": list(x.shape), "datatype": "FP32",
                            "parameters": {"binary_data_size": len(raw) if size is None else size}}]}
        head.update(json_extra or {})
        text = json.dumps(head).encode()
        return self.http.post(self.server.url + "/v2/models/mlp/infer", data=text + raw + tail, timeout=DEADLINE_S,
                              headers={"Inference-Header-Content-Length": str(len(text)),
                                       "Content-Type": "application/octet-stream"})

    def test_binary_tensors_in_and_out_equal_python_torch(self):
        x = torch.randn(5, 4)
        with torch.no_grad():
            expected = self.mlp(2)(x)
        reply = self.binary_request(x, {"outputs": [{"name": "y", "parameters": {"binary_data": True}}]})
        self.assertEqual(reply.status_code, 200, reply.text)
        length = int(reply.headers["Inference-Header-Content-Length"])
        head = json.loads(reply.content[:length])
        out = head["outputs"][0]
        self.assertEqual((out["shape"], out["parameters"]["binary_data_size"]), ([5, 2], 40))
        self.assertNotIn("data", out)
        got = torch.frombuffer(bytearray(reply.content[length:]), dtype=torch.float32).reshape(5, 2)
        self.assertTrue(torch.equal(got, expected))
        as_json = self.binary_request(x)
        self.assertNotIn("Inference-Header-Content-Length", as_json.headers)
        self.assertTrue(torch.equal(torch.tensor(as_json.json()["outputs"][0]["data"]).reshape(5, 2), expected))
        every = self.binary_request(x, {"parameters": {"binary_data_output": True}})
        self.assertEqual(every.content[int(every.headers["Inference-Header-Content-Length"]):], got.numpy().tobytes())

    def test_binary_tensors_that_do_not_add_up_are_400(self):
        x = torch.randn(2, 4)
        self.expect_error(self.binary_request(x, size=40), 400, "is not the 32 bytes of shape [2, 4]")
        self.expect_error(self.binary_request(x, tail=b"\0" * 3), 400, "3 byte(s) of binary data beyond")
        head = json.dumps({"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32",
                                       "parameters": {"binary_data_size": 32}}]}).encode()
        truncated = self.http.post(self.server.url + "/v2/models/mlp/infer", data=head + b"\0" * 20, timeout=DEADLINE_S,
                                   headers={"Inference-Header-Content-Length": str(len(head))})
        self.expect_error(truncated, 400, "12 byte(s) short")
        lying = self.http.post(self.server.url + "/v2/models/mlp/infer", data=head, timeout=DEADLINE_S,
                               headers={"Inference-Header-Content-Length": str(len(head) + 1)})
        self.expect_error(lying, 400, "past the body")
        bad = self.http.post(self.server.url + "/v2/models/mlp/infer", data=head, timeout=DEADLINE_S,
                             headers={"Inference-Header-Content-Length": "many"})
        self.expect_error(bad, 400, "byte count")

    def test_curl_against_every_endpoint(self):
        auth = f"Authorization: Bearer {self.token}"
        x = torch.randn(1, 4)
        cases = [
            (["/v2"], 200), (["/v2/health/live"], 200), (["/v2/health/ready"], 200), (["/v2/models/mlp"], 200),
            (["/v2/models/mlp/versions/1"], 200), (["/v2/models/mlp/ready"], 200),
            (["/v2/models/mlp/versions/1/ready"], 200),
            (["/v2/models/mlp/versions/1/infer", "-d", json.dumps(infer_body(x.flatten().tolist(), [1, 4]))], 200),
            (["/v2/models/nope"], 404), (["/metrics"], 200), (["/v2/models/stats"], 200),
            (["/v2/models/mlp/versions/1/stats"], 200),
            (["/v2/repository/index", "-X", "POST"], 200), (["/v2/repository/models/pair/load", "-X", "POST"], 200),
        ]
        for args, status in cases:
            with self.subTest(args[0]):
                result = subprocess.run(["curl", "-sS", "-H", auth, "-w", "\n%{http_code}", self.server.url + args[0]]
                                        + args[1:], capture_output=True, text=True, timeout=DEADLINE_S, check=True)
                body, code = result.stdout.rsplit("\n", 1)
                self.assertEqual(int(code), status, body)
                if args[0] != "/metrics":
                    json.loads(body)
        result = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", self.server.url + "/v2"],
                                capture_output=True, text=True, timeout=DEADLINE_S, check=True)
        self.assertEqual(result.stdout, "401")


class RepositoryTest(unittest.TestCase):
    """Triton's repository extension, and a version switch under load."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.repo = os.path.join(self.tmp.name, "repo")
        make_repository(self.repo)
        os.rename(f"{self.repo}/mlp/2", f"{self.tmp.name}/mlp-2")  # v2 arrives later
        self.server = Server(["--repository", self.repo, "--model", "mlp", "--no-auth", "--threads", "4"])

    def tearDown(self):
        self.assertEqual(self.server.stop(), 0)
        self.tmp.cleanup()

    def post(self, path, body=None):
        return requests.post(self.server.url + path, data=json.dumps(body or {}), timeout=DEADLINE_S)

    def test_index_load_and_unload(self):
        index = self.post("/v2/repository/index").json()
        self.assertIn({"name": "mlp", "version": "1", "state": "READY", "reason": ""}, index)
        self.assertIn({"name": "pair", "state": "UNAVAILABLE", "reason": "unloaded"}, index)
        self.assertEqual(requests.get(self.server.url + "/v2/models/pair", timeout=DEADLINE_S).status_code, 404)
        self.assertEqual(self.post("/v2/repository/models/pair/load").status_code, 200)
        self.assertEqual(requests.get(self.server.url + "/v2/models/pair/ready", timeout=DEADLINE_S).status_code, 200)
        self.assertEqual(self.post("/v2/repository/models/pair/unload").status_code, 200)
        self.assertEqual(requests.get(self.server.url + "/v2/models/pair", timeout=DEADLINE_S).status_code, 404)
        self.assertEqual(self.post("/v2/repository/models/pair/unload").status_code, 404)
        self.assertEqual(self.post("/v2/repository/models/nope/load").status_code, 400)
        self.assertEqual(requests.get(self.server.url + "/v2/repository/index", timeout=DEADLINE_S).status_code, 405)

    def test_version_switch_under_load_drops_nothing(self):
        import threading
        switched, stop = threading.Event(), threading.Event()
        results = []  # (started after the switch, status, version)
        x = torch.randn(2, 4)
        body = json.dumps(infer_body(x.flatten().tolist(), [2, 4]))

        def client():
            with requests.Session() as http:
                while not stop.is_set():
                    after = switched.is_set()
                    reply = http.post(self.server.url + "/v2/models/mlp/infer", data=body, timeout=DEADLINE_S)
                    version = reply.json().get("model_version") if reply.status_code == 200 else None
                    results.append((after, reply.status_code, version))

        threads = [threading.Thread(target=client) for _ in range(3)]
        for t in threads:
            t.start()
        try:
            self.wait_for(lambda: len(results) >= 30)
            os.rename(f"{self.tmp.name}/mlp-2", f"{self.repo}/mlp/2")
            self.assertEqual(self.post("/v2/repository/models/mlp/load").status_code, 200)
            switched.set()
            self.wait_for(lambda: sum(1 for r in results if r[0]) >= 30)
        finally:
            stop.set()
            for t in threads:
                t.join()
        self.assertEqual([r for r in results if r[1] != 200], [])
        self.assertEqual({r[2] for r in results if r[0]}, {"2"})
        self.assertIn("1", {r[2] for r in results if not r[0]})
        with torch.no_grad():
            expected = torch.jit.load(f"{self.repo}/mlp/2/model.pt")(x)
        reply = self.post("/v2/models/mlp/infer", infer_body(x.flatten().tolist(), [2, 4])).json()
        self.assertTrue(torch.equal(torch.tensor(reply["outputs"][0]["data"]).reshape(2, 2), expected))

    def wait_for(self, condition):
        end = time.monotonic() + DEADLINE_S
        while not condition():
            self.assertLess(time.monotonic(), end, "the clients made too few requests")
            time.sleep(0.01)  # polling a condition with a deadline, not synchronising on time


class Rows(torch.nn.Module):
    """Twice its input, and beside each row the number of rows it ran with: what shows a batch."""

    def forward(self, x: torch.Tensor):
        return x * 2, torch.full([x.shape[0], 1], x.shape[0], dtype=torch.int64)


class BatchingTest(unittest.TestCase):
    """Dynamic batching: requests that arrive together run as one batch, a full queue is 503.
    The server has one thread: a request waiting for its batch holds none."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        repo = os.path.join(self.tmp.name, "repo")
        outputs = "outputs: [{name: y, datatype: FP32, dims: [2]}, {name: rows, datatype: INT64, dims: [1]}]\n"
        # Delays far past any wait of the tests': a batch that runs early was told to.
        for name, batching in (("merged", "{max_queue_delay_us: 60000000}\ninstances: 2"),
                               ("bounded", "{max_queue_delay_us: 60000000, max_queue_size: 2}"),
                               ("preferred", "{max_queue_delay_us: 60000000, preferred_batch_sizes: [1, 2]}")):
            save(Rows(), f"{repo}/{name}/1/model.pt")
            with open(f"{repo}/{name}/config.yaml", "w") as f:
                f.write(f"max_batch_size: 4\ninputs: [{{name: x, datatype: FP32, dims: [2]}}]\n{outputs}"
                        f"dynamic_batching: {batching}\n")
        self.server = Server(["--repository", repo, "--no-auth", "--threads", "1"])

    def tearDown(self):
        self.assertEqual(self.server.stop(), 0)
        self.tmp.cleanup()

    def infer(self, model, rows, results, timeout=DEADLINE_S):
        x = torch.randn(rows, 2)
        reply = requests.post(f"{self.server.url}/v2/models/{model}/infer", timeout=timeout,
                              data=json.dumps(infer_body(x.flatten().tolist(), [rows, 2])))
        results.append((x, reply))

    def metric(self, name, model):
        text = requests.get(self.server.url + "/metrics", timeout=DEADLINE_S).text
        for line in text.splitlines():
            if line.startswith(f'{name}{{model="{model}"'):
                return int(line.rsplit(" ", 1)[1])
        return 0

    def pending(self, model):
        return self.metric("cohort_inference_pending_requests", model)

    def test_concurrent_requests_run_as_one_batch_and_get_their_own_rows(self):
        import threading
        results = []
        threads = [threading.Thread(target=self.infer, args=("merged", rows, results)) for rows in (1, 2, 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()  # the fourth row fills the batch of 4: no waiting for the delay
        self.assertEqual(len(results), 3, "a request was not answered")
        for x, reply in results:
            self.assertEqual(reply.status_code, 200, reply.text)
            y, rows = reply.json()["outputs"]
            self.assertEqual(y["shape"], [x.shape[0], 2])
            self.assertTrue(torch.equal(torch.tensor(y["data"]).reshape(x.shape), x * 2))
            self.assertEqual(rows["data"], [4] * x.shape[0])
        self.assertEqual(self.metric("cohort_inference_request_success_total", "merged"), 3)
        self.assertEqual(self.metric("cohort_inference_count_total", "merged"), 4)
        self.assertEqual(self.metric("cohort_inference_exec_count_total", "merged"), 1)  # one run of the model
        text = requests.get(self.server.url + "/metrics", timeout=DEADLINE_S).text
        series = dict(line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))
        labels = 'model="merged",version="1"'
        self.assertEqual(series[f'cohort_inference_batch_size_bucket{{{labels},le="2"}}'], "0")
        self.assertEqual(series[f'cohort_inference_batch_size_bucket{{{labels},le="4"}}'], "1")  # one run of 4 rows
        self.assertEqual(series[f"cohort_inference_queue_duration_seconds_count{{{labels}}}"], "3")
        self.assertGreater(float(series[f"cohort_inference_queue_duration_seconds_sum{{{labels}}}"]), 0)

    def test_a_batch_of_the_largest_preferred_size_runs_without_waiting(self):
        import threading
        results = []
        # Answered well before the 60 s delay, or the client gives up and the test fails.
        threads = [threading.Thread(target=self.infer, args=("preferred", 1, results, DEADLINE_S / 2)) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(len(results), 2, "a request was not answered")
        for x, reply in results:
            self.assertEqual(reply.status_code, 200, reply.text)
            self.assertEqual(reply.json()["outputs"][1]["data"], [2])
        self.assertEqual(self.metric("cohort_inference_exec_count_total", "preferred"), 1)

    def test_a_full_queue_is_503_with_retry_after(self):
        import threading
        results = []
        waiting = [threading.Thread(target=self.infer, args=("bounded", 1, results)) for _ in range(2)]
        for t in waiting:
            t.start()
        end = time.monotonic() + DEADLINE_S
        while self.pending("bounded") < 2:
            self.assertLess(time.monotonic(), end, "the two requests never queued")
            time.sleep(0.01)  # polling a condition with a deadline
        full = []
        self.infer("bounded", 1, full)
        self.assertEqual(full[0][1].status_code, 503, full[0][1].text)
        self.assertEqual(full[0][1].headers["Retry-After"], "1")
        self.assertIn("queue is full", full[0][1].json()["error"])
        self.server.proc.send_signal(signal.SIGTERM)  # a drain runs the queue without waiting
        for t in waiting:
            t.join()
        self.assertEqual(self.server.proc.wait(timeout=DEADLINE_S), 0)
        self.assertEqual([r.status_code for _, r in results], [200, 200])
        for x, reply in results:
            self.assertTrue(torch.equal(torch.tensor(reply.json()["outputs"][0]["data"]).reshape(1, 2), x * 2))


class BadInputTest(unittest.TestCase):
    """Bad command lines exit 2 with one line; bad requests from a bounded random generator each
    get a 4xx, the server stays up, and its memory stays bounded."""

    def test_bad_command_lines_exit_2_naming_what_is_wrong(self):
        with tempfile.TemporaryDirectory() as tmp:
            os.makedirs(f"{tmp}/repo/m/1")
            open(f"{tmp}/repo/m/1/model.pt", "w").close()
            with open(f"{tmp}/repo/m/config.yaml", "w") as f:
                f.write("inputs: [{name: x, datatype: FLOAT, dims: [1]}]\n")
            cases = [
                ([], "give --repository REPO or --model NAME=PATH"),
                (["--model", "x"], "expected NAME=PATH"),
                (["--model", f"x={tmp}/none.pt"], "is not a file"),
                (["--repository", f"{tmp}/none"], "not a directory"),
                (["--repository", f"{tmp}/repo"], "m/config.yaml: inputs[0].datatype: datatype 'FLOAT'"),
                (["--model", f"x={tmp}/repo/m/1/model.pt", "--no-auth"], "not a TorchScript model"),
                (["--model", f"x={tmp}/repo/m/1/model.pt", "--port", "70000"], "--port 70000"),
            ]
            for args, words in cases:
                with self.subTest(args):
                    r = subprocess.run([COHORT, "serve", "start"] + args, capture_output=True, text=True,
                                       timeout=DEADLINE_S)
                    self.assertEqual(r.returncode, 2, r.stderr)
                    self.assertEqual(len(r.stderr.splitlines()), 1, r.stderr)
                    self.assertIn(words, r.stderr)

    def rss_kib(self, pid):
        with open(f"/proc/{pid}/status") as f:
            return int(next(line for line in f if line.startswith("VmRSS:")).split()[1])

    def raw(self, port, data):
        """Sends bytes, half-closes, and returns the status line's code (None: closed unanswered)."""
        with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE_S) as s:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            reply = b""
            while chunk := s.recv(65536):
                reply += chunk
        return int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/1.1 ") else None

    def test_random_bad_requests_get_4xx_and_the_server_lives(self):
        import random
        rng = random.Random(14)
        with tempfile.TemporaryDirectory() as tmp:
            make_repository(f"{tmp}/repo")
            server = Server(["--repository", f"{tmp}/repo", "--no-auth", "--max-body", "64K"])
            try:
                self.exercise(server, rng)
            finally:
                server.stop()

    def exercise(self, server, rng):
        good = json.dumps(infer_body([0.5] * 4, [1, 4])).encode()
        def request(body, length=None, extra=b"", path=b"/v2/models/mlp/infer"):
            length = len(body) if length is None else length
            return (b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Length: " + str(length).encode() +
                    b"\r\n" + extra + b"\r\n" + body)
        makers = {
            "malformed JSON": lambda: (request(good[:rng.randrange(1, len(good))]), {400}),
            "wrong shape": lambda: (request(json.dumps(infer_body([0.5] * 6, [2, 3])).encode()), {400}),
            "wrong datatype": lambda: (request(json.dumps(infer_body([1] * 4, [1, 4], "INT32")).encode()), {400}),
            "garbage bytes": lambda: (request(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))), {400}),
            "truncated binary": lambda: (request(good + b"\0" * 3, extra=b"Inference-Header-Content-Length: "
                                                 + str(len(good) + 5).encode() + b"\r\n"), {400}),
            "short body": lambda: (request(good, length=len(good) + 10), {None}),
            "too large": lambda: (request(b"{}", length=1 << 20), {413}),
            "huge header": lambda: (request(good, extra=b"X-Big: " + b"a" * 20000 + b"\r\n"), {431}),
            "not HTTP": lambda: (b"\x16\x03\x01 hello\r\n\r\n", {400}),
            "unknown model": lambda: (request(good, path=b"/v2/models/nope/infer"), {404}),
        }
        before = self.rss_kib(server.proc.pid)
        seen = {}
        for _ in range(400):
            name = rng.choice(sorted(makers))
            data, statuses = makers[name]()
            status = self.raw(server.port, data)
            self.assertIn(status, statuses, name)
            seen[name] = seen.get(name, 0) + 1
        self.assertEqual(set(seen), set(makers))
        self.assertEqual(requests.get(server.url + "/v2/health/live", timeout=DEADLINE_S).status_code, 200)
        after = self.rss_kib(server.proc.pid)
        print(f"RSS before {before} KiB, after 400 bad requests {after} KiB", file=sys.stderr)
        self.assertLess(after - before, 64 * 1024)


class ConnectionLimitTest(unittest.TestCase):
    def test_connections_past_the_limit_are_503_until_one_closes(self):
        with tempfile.TemporaryDirectory() as tmp:
            save(torch.nn.Linear(4, 2), f"{tmp}/lin.pt")
            server = Server(["--model", f"lin={tmp}/lin.pt", "--no-auth", "--max-connections", "2"])
            try:
                held = [self.open_and_ask(server.port) for _ in range(2)]
                for sock, status in held:
                    self.assertEqual(status, b"200")
                extra, status = self.open_and_ask(server.port)
                self.assertEqual(status, b"503")
                extra.close()
                held[0][0].close()
                end = time.monotonic() + DEADLINE_S
                while True:  # the closed connection's place is free once the server has seen it close
                    sock, status = self.open_and_ask(server.port)
                    sock.close()
                    if status == b"200":
                        break
                    self.assertLess(time.monotonic(), end, "no place freed after a connection closed")
                    time.sleep(0.01)  # polling a condition with a deadline
                held[1][0].close()
            finally:
                self.assertEqual(server.stop(), 0)

    def test_a_client_trickling_its_headers_is_cut_off_and_others_are_served(self):
        with tempfile.TemporaryDirectory() as tmp:
            save(torch.nn.Linear(4, 2), f"{tmp}/lin.pt")
            server = Server(["--model", f"lin={tmp}/lin.pt", "--no-auth", "--max-connections", "2",
                             "--read-timeout", "1"])
            try:
                slow = socket.create_connection(("127.0.0.1", server.port), timeout=DEADLINE_S)
                slow.sendall(b"GET /v2/health/live HTTP/1.1\r\n")
                # A header line every 0.1 s for up to 60 s: far longer than --read-timeout 1. The
                # deadline covers the whole request, so fresh bytes do not buy more time.
                closed = False
                for i in range(600):
                    try:
                        slow.sendall(b"X-Slow-%d: 1\r\n" % i)
                    except (BrokenPipeError, ConnectionResetError):
                        closed = True
                        break
                    readable, _, _ = select.select([slow], [], [], 0.1)  # the client's own pace
                    if readable and not slow.recv(4096):
                        closed = True
                        break
                slow.close()
                self.assertTrue(closed, "a request trickled for 60 s was never cut off")
                sock, status = self.open_and_ask(server.port)
                sock.close()
                self.assertEqual(status, b"200")
            finally:
                self.assertEqual(server.stop(), 0)

    def open_and_ask(self, port):
        """A connection kept open after one request, and the status of that request."""
        s = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE_S)
        s.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        reply = b""
        while b"\r\n\r\n" not in reply:
            chunk = s.recv(4096)
            if not chunk:
                break
            reply += chunk
        return s, reply.split(b" ", 2)[1] if reply else b""


class LineageTest(unittest.TestCase):
    def test_the_models_served_are_recorded_with_the_server_that_served_them(self):
        with tempfile.TemporaryDirectory() as tmp:
            save(torch.nn.Linear(4, 2), f"{tmp}/lin.pt")
            env = dict(os.environ, COHORT_LINEAGE=f"{tmp}/lineage.db", COHORT_LINEAGE_SPOOL="0")
            server = Server(["--model", f"lin={tmp}/lin.pt", "--no-auth"], env=env)
            self.assertEqual(server.stop(), 0)
            listed = subprocess.run([COHORT, "lineage", "list", "--store", f"{tmp}/lineage.db", "--json"],
                                    capture_output=True, text=True, timeout=DEADLINE_S)
            self.assertEqual(listed.returncode, 0, listed.stderr)
            store = json.loads(listed.stdout)
            [model] = [a for a in store["artifacts"] if a["type"] == "Model"]
            self.assertEqual(model["uri"], os.path.abspath(f"{tmp}/lin.pt"))
            self.assertTrue(model["digest"].startswith("crc32c:"))
            [serve] = [e for e in store["executions"] if e["type"] == "Serve"]
            self.assertEqual(serve["state"], "COMPLETE")  # drained
            self.assertEqual(serve["properties"]["url"], f"http://127.0.0.1:{server.port}/v2")


class DrainTest(unittest.TestCase):
    def test_sigterm_finishes_the_request_under_way_and_exits_0(self):
        with tempfile.TemporaryDirectory() as tmp:
            save(torch.nn.Linear(4, 2), f"{tmp}/lin.pt")
            server = Server(["--model", f"lin={tmp}/lin.pt", "--token-file", f"{tmp}/token"])
            try:
                self.drain_while_under_way(server, tmp)
            finally:
                server.proc.kill()
                server.proc.wait()

    def drain_while_under_way(self, server, tmp):
        with open(f"{tmp}/token") as f:
            token = f.read().strip()
        x = torch.randn(1, 4)
        body = json.dumps({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32",
                                       "data": x.flatten().tolist()}]}).encode()
        s = socket.create_connection(("127.0.0.1", server.port), timeout=DEADLINE_S)
        s.sendall((f"POST /v2/models/lin/infer HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
                   f"Expect: 100-continue\r\nContent-Length: {len(body)}\r\n\r\n").encode())
        reader = s.makefile("rb")
        self.assertEqual(reader.readline(), b"HTTP/1.1 100 Continue\r\n")  # the request is under way
        self.assertEqual(reader.readline(), b"\r\n")
        server.proc.send_signal(signal.SIGTERM)
        self.wait_until_refused(server.port)
        s.sendall(body)
        self.assertEqual(reader.readline(), b"HTTP/1.1 200 OK\r\n")
        reply = reader.read().split(b"\r\n\r\n", 1)[1]
        got = torch.tensor(json.loads(reply)["outputs"][0]["data"]).reshape(1, 2)
        with torch.no_grad():
            self.assertTrue(torch.equal(got, torch.jit.load(f"{tmp}/lin.pt")(x)))
        reader.close()
        s.close()
        self.assertEqual(server.proc.wait(timeout=DEADLINE_S), 0)
        self.assertIn("drained", server.proc.stderr.read())

    def wait_until_refused(self, port):
        end = time.monotonic() + DEADLINE_S
        while time.monotonic() < end:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=DEADLINE_S).close()
            except ConnectionRefusedError:
                return
            except ConnectionResetError:
                pass  # accepted into the backlog as the listener closed: ask again
        self.fail("the server still accepts connections after SIGTERM")


if __name__ == "__main__":
    COHORT = sys.argv.pop(1)
    unittest.main(verbosity=2)
