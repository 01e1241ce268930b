#!/usr/bin/python3
"""`cohort serve router` in front of real `cohort serve start` replicas, with real clients, on
loopback.

    router_test.py COHORT_BIN

The load is bounded (a fixed number of requests from a fixed number of threads); a replica is
killed once a set number of requests has been answered, never after a sleep.
"""
import json
import os
import signal
import sys
import tempfile
import threading
import time
import unittest

import requests
import torch

import server_test
from server_test import DEADLINE_S, Server, infer_body, make_repository


def metric(text, name, replica):
    """The value of NAME{replica="REPLICA",...} in Prometheus text."""
    for line in text.splitlines():
        if line.startswith(name + "{") and f'replica="{replica}"' in line:
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {name} for {replica} in:\n{text}")


class Service:
    """Replicas of one repository and a router in front of them, sharing one token."""

    def __init__(self, replicas, traffic=(), router_args=()):
        self.tmp = tempfile.TemporaryDirectory()
        self.repo = os.path.join(self.tmp.name, "repo")
        make_repository(self.repo)
        self.env = dict(os.environ, XDG_CONFIG_HOME=os.path.join(self.tmp.name, "config"))
        self.replicas = [Server(["--repository", self.repo, "--threads", "2"], env=self.env) for _ in range(replicas)]
        with open(os.path.join(self.tmp.name, "config", "cohort", "serve-token")) as f:
            self.token = f.read().strip()
        args = ["--threads", "2"] + list(router_args)
        for i, r in enumerate(self.replicas):
            args += ["--replica", f"127.0.0.1:{r.port}={traffic[i][0] if traffic else ''}".rstrip("=")]
        for version, percent in dict(traffic).items():
            args += ["--traffic", f"{version}={percent}"]
        self.router = Server(args, env=self.env, verb="router")
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {self.token}"
        self.wait_ready()

    def wait_ready(self):
        """Until every replica is in the rotation: the router's metrics say when."""
        end = time.monotonic() + DEADLINE_S
        while time.monotonic() < end:
            text = self.get("/metrics").text
            if all(metric(text, "cohort_router_replica_ready", f"127.0.0.1:{r.port}") == 1 for r in self.replicas):
                return
            time.sleep(0.05)
        raise AssertionError("the router never found its replicas ready")

    def get(self, path, **kw):
        return self.http.get(self.router.url + path, timeout=DEADLINE_S, **kw)

    def infer(self, session, rows):
        return session.post(self.router.url + "/v2/models/mlp/infer", timeout=DEADLINE_S,
                            data=json.dumps(infer_body(sum(rows, []), [len(rows), 4])))

    def close(self):
        assert self.router.stop() == 0
        for r in self.replicas:
            r.stop()
        self.tmp.cleanup()


class RouterTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.service = Service(2)

    @classmethod
    def tearDownClass(cls):
        cls.service.close()

    def test_answers_are_the_models(self):
        rows = [[0.5, -1.0, 2.0, 0.25]]
        r = self.service.infer(self.service.http, rows)
        self.assertEqual(r.status_code, 200, r.text)
        expected = torch.jit.load(f"{self.service.repo}/mlp/2/model.pt")(torch.tensor(rows)).flatten().tolist()
        self.assertEqual(r.json()["outputs"][0]["data"], expected)
        meta = self.service.get("/v2/models/mlp")
        self.assertEqual(meta.json()["name"], "mlp")

    def test_requests_without_the_token_are_refused_at_the_router(self):
        bare = requests.post(self.service.router.url + "/v2/models/mlp/infer", timeout=DEADLINE_S,
                             data=json.dumps(infer_body([0.0] * 4, [1, 4])))
        self.assertEqual(bare.status_code, 401)
        wrong = requests.get(self.service.router.url + "/v2/models/mlp", timeout=DEADLINE_S,
                             headers={"Authorization": "Bearer " + "x" * 48})
        self.assertEqual(wrong.status_code, 401)

    def test_load_is_spread_over_the_replicas(self):
        before = self.service.get("/metrics").text
        for _ in range(20):
            self.assertEqual(self.service.infer(self.service.http, [[1.0, 2.0, 3.0, 4.0]]).status_code, 200)
        after = self.service.get("/metrics").text
        for r in self.service.replicas:
            name = f"127.0.0.1:{r.port}"
            sent = metric(after, "cohort_router_requests_total", name) - metric(before, "cohort_router_requests_total", name)
            self.assertGreater(sent, 0, f"replica {name} had no request")

    def test_errors_of_the_model_pass_through(self):
        r = self.service.http.post(self.service.router.url + "/v2/models/nosuch/infer", timeout=DEADLINE_S,
                                   data=json.dumps(infer_body([0.0] * 4, [1, 4])))
        self.assertEqual(r.status_code, 404, r.text)
        self.assertIn("nosuch", r.json()["error"])


class FailoverTest(unittest.TestCase):
    def test_a_replica_killed_under_load_loses_no_request(self):
        service = Service(2)
        try:
            threads, per_thread, kill_after = 4, 150, 100
            answered = []
            failures = []
            killed = threading.Event()
            lock = threading.Lock()
            victim = service.replicas[0]

            def client():
                session = requests.Session()
                session.headers["Authorization"] = f"Bearer {service.token}"
                for i in range(per_thread):
                    r = service.infer(session, [[float(i), 1.0, 2.0, 3.0]])
                    with lock:
                        (answered if r.status_code == 200 else failures).append(r.status_code)
                        if len(answered) == kill_after and not killed.is_set():
                            victim.proc.send_signal(signal.SIGKILL)
                            killed.set()

            workers = [threading.Thread(target=client) for _ in range(threads)]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            self.assertTrue(killed.is_set())
            self.assertEqual(failures, [])
            self.assertEqual(len(answered), threads * per_thread)
            text = service.get("/metrics").text
            self.assertGreaterEqual(metric(text, "cohort_router_ejections_total", f"127.0.0.1:{victim.port}"), 1)
            self.assertEqual(metric(text, "cohort_router_replica_ready", f"127.0.0.1:{victim.port}"), 0)
        finally:
            service.close()


def hammer(service, threads, per_thread):
    """THREADS clients sending PER_THREAD requests each; the statuses that were not 200."""
    failures, lock = [], threading.Lock()

    def client():
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {service.token}"
        for i in range(per_thread):
            r = service.infer(session, [[float(i), 1.0, 2.0, 3.0]] * 8)
            if r.status_code != 200:
                with lock:
                    failures.append((r.status_code, r.text))

    workers = [threading.Thread(target=client) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return failures


class ContainerConcurrencyTest(unittest.TestCase):
    def peaks(self, router_args):
        service = Service(2, router_args=router_args)
        try:
            self.assertEqual(hammer(service, 8, 20), [])
            text = service.get("/metrics").text
            return [metric(text, "cohort_router_outstanding_peak", f"127.0.0.1:{r.port}") for r in service.replicas]
        finally:
            service.close()

    def test_a_replica_never_has_more_requests_than_its_bound(self):
        # Without the bound 8 clients on 2 replicas put more than one request on some replica
        # at once: the bound's check below could fail.
        self.assertGreater(max(self.peaks([])), 1)
        self.assertEqual(self.peaks(["--replica-concurrency", "1"]), [1, 1])


class CanaryTest(unittest.TestCase):
    def test_each_version_takes_its_share(self):
        service = Service(2, traffic=[("1", 80), ("2", 20)])
        try:
            for _ in range(200):
                self.assertEqual(service.infer(service.http, [[1.0, 2.0, 3.0, 4.0]]).status_code, 200)
            text = service.get("/metrics").text
            canary = metric(text, "cohort_router_requests_total", f"127.0.0.1:{service.replicas[1].port}")
            self.assertLessEqual(abs(canary / 200 - 0.20), 0.05, canary)
        finally:
            service.close()


if __name__ == "__main__":
    server_test.COHORT = sys.argv.pop(1)
    unittest.main(verbosity=2)
