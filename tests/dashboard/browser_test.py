#!/usr/bin/python3
"""`cohort dashboard` behind its token, against real clients: urllib, and Debian's Chromium
headless loading every page.

    browser_test.py COHORT_BIN MAKE_STATE OUT_DIR
    browser_test.py --base URL --token TOKEN --checks CHECKS OUT_DIR

The first form starts a dashboard over a store, sweep, pipeline run and launch made by
make_state.sh on this machine. The second drives a dashboard already running at URL (as
tests/cluster/dashboard_browser.sh starts one over the mini-cluster's work), with the pages
and what each must hold read from the JSON file CHECKS:

    {"pages": {NAME: [PATH, [REGEX, ...]], ...}, "hidden": [TEXT, ...]}

Without the token every page, and the same path under api/, must answer 401 and hold none
of the "hidden" texts (data only a page with the token shows). Each page is then loaded by
`chromium --headless --dump-dom` (the DOM after its script ran) and checked against its
REGEXes, and a screenshot of it is saved as OUT_DIR/NAME.png. Without chromium the browser half is skipped
(exit 77) after the urllib half has run.
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.request

DEADLINE_S = 60  # a bound on waits that normally end at once, never a measurement


def fail(message):
    print("browser_test: " + message, file=sys.stderr)
    sys.exit(1)


def start(cohort, work):
    token_file = os.path.join(work, "cfg", "dashboard-token")
    server = subprocess.Popen([cohort, "dashboard", "--port", "0", "--store", os.path.join(work, "lineage.db"),
                               "--token-file", token_file, "--services", os.path.join(work, "services")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    # A server that never says it listens is killed, which ends the reading below.
    watchdog = threading.Timer(DEADLINE_S, server.kill)
    watchdog.start()
    for line in server.stdout:
        lines.append(line)
        if "listening on" in line:
            break
    watchdog.cancel()
    if not lines or "listening on" not in lines[-1]:
        server.kill()
        fail("the dashboard did not start: " + "".join(lines) + server.stderr.read())
    url = re.search(r"(http://\S+/)\?token=(\S+)", "".join(lines))
    if not url:
        fail("the dashboard printed no URL with its token: " + "".join(lines))
    return server, url.group(1), url.group(2)


def get(url, headers=None):
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=DEADLINE_S) as r:
            return r.status, r.read().decode(), r.headers
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), e.headers


def check_token(base, token):
    for path in ("", "sweeps/1", "api/sweeps", "api/sweeps/1", "assets/style.css"):
        for headers in ({}, {"Authorization": "Bearer wrong-token-of-some-length"}, {"Cookie": "cohort_token=wrong"}):
            status, body, _ = get(base + path, headers)
            if status != 401 or "quadratic" in body or "<script>" in body:
                fail(f"/{path} with {headers or 'no token'}: {status}, {body[:200]}")
    status, body, _ = get(base + "api/sweeps", {"Authorization": "Bearer " + token})
    if status != 200 or '"trials": 4' not in body:
        fail(f"/api/sweeps with the bearer token: {status}, {body[:200]}")
    status, body, headers = get(base + "sweeps?token=" + token)
    cookie = headers.get("Set-Cookie", "")
    if status != 200 or "HttpOnly" not in cookie or "SameSite=Strict" not in cookie:
        fail(f"?token= gave {status} and the cookie '{cookie}'")
    status, body, _ = get(base + "api/pipelines", {"Cookie": cookie.split(";")[0]})
    if status != 200 or '"state": "Succeeded"' not in body:
        fail(f"/api/pipelines with the cookie: {status}, {body[:200]}")


def chromium(args, profile):
    r = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        "--user-data-dir=" + profile] + args, capture_output=True, text=True, timeout=DEADLINE_S * 2)
    if r.returncode != 0:
        fail(f"chromium {' '.join(args)}: exit {r.returncode}: {r.stderr[-500:]}")
    return r.stdout


# Each page: what its DOM must hold once loaded.
PAGES = {
    "overview": ("", [r"1 sweeps", r"1 pipeline runs", r"1 launches"]),
    "jobs": ("jobs", [r'id="launches"', r"COMPLETE", r'href="/jobs/\d+"']),
    "job": ("jobs/{launch}", [r'id="state">COMPLETE<', r'(?s)id="ranks".*(exited with 0.*){2}', r"rank 1 \(\S+\) exited with 3",
                              r'id="log-1">&lt;img src=x onerror=alert\(2\)&gt; rank 1 attempt 0']),
    "sweeps": ("sweeps", [r'href="/sweeps/1"', r"quadratic", r"Succeeded"]),
    "sweep": ("sweeps/1", [r'id="trial-count">4<', r'id="best-value">1<', r'id="best-trial">0<',
                           r"&lt;script&gt;alert\(1\)&lt;/script&gt;", r"class=\"parallel\"", r"best so far",
                           r'class="curves"', r"trial 0, the best", r'(?s)(class="spark".*){3}',
                           r"(?s)(Succeeded.*){3}", r"Failed"]),
    "pipelines": ("pipelines", [r'href="/pipelines/2"', r"5 succeeded"]),
    "pipeline": ("pipelines/2", [r"<svg", r"(?s)(state-succeeded.*){5}", r"report", r"total=30"]),
    "models": ("models", [r'href="/models/1"', r"Dataset"]),
    "model": ("models/1", [r"<svg", r'href="/models/1"', r"make-data", r"Used by"]),
    "endpoints": ("endpoints", [r"No model server", r"mnist", r"version 1: 90%, version 2: 10%", r"10\.0\.0\.2:9002",
                                r"(?s)(state-ready.*){2}state-starting"]),
}


def refused_without_token(base, pages, hidden, profile):
    """Every page and its API twin without the token: 401 to a program, and no data in what
    a browser shows."""
    for path in [p for p, _ in pages.values()] + ["api/" + p for p, _ in pages.values()]:
        status, body, _ = get(base + path)
        shown = [h for h in hidden if h in body]
        if status != 401 or shown:
            fail(f"/{path} without the token: {status}, holding {shown}: {body[:200]}")
    path = next(iter(pages.values()))[0]
    dom = chromium(["--dump-dom", base + path], profile)
    shown = [h for h in hidden if h in dom]
    if shown:
        fail(f"/{path} without the token shows {shown} in the browser: {dom[:300]}")


def check_pages(base, token, pages, hidden, out, profile):
    """Each page loaded with the token (the first sets the cookie), checked, and shot."""
    refused_without_token(base, pages, hidden, profile)
    for name, (path, wanted) in pages.items():
        url = base + path + "?token=" + token
        shot = os.path.join(out, name + ".png")
        # One browser start gives both the DOM after the page's script ran and the picture.
        dom = chromium(["--window-size=1280,1000", "--screenshot=" + shot, "--dump-dom", url], profile)
        if "<script>alert" in dom or "<img src" in dom:
            fail(f"/{path}: a parameter's <script> or a log's <img> became markup")
        for pattern in wanted:
            if not re.search(pattern, dom):
                fail(f"/{path}: the page lacks {pattern!r}: {dom[:2000]}")
        if not os.path.isfile(shot):
            fail(f"/{path}: chromium saved no screenshot at {shot}")
        print(f"browser_test: /{path} ok, {shot}")


def local_state(cohort, make_state, out):
    """The first form: a dashboard over state made on this machine, its token checked too."""
    with tempfile.TemporaryDirectory(prefix="cohort-dashboard-") as work:
        subprocess.run(["bash", make_state, cohort, work], check=True)
        server, base, token = start(cohort, work)
        try:
            check_token(base, token)
            if not shutil.which("chromium"):
                print("browser_test: SKIPPED the browser half: chromium is not installed (scripts/install-deps)")
                return 77
            # The launch's id is the store's: asked, as a user's script would.
            _, jobs, _ = get(base + "api/jobs", {"Authorization": "Bearer " + token})
            launch = json.loads(jobs)["launches"][0]["id"]
            pages = {name: (path.format(launch=launch), wanted) for name, (path, wanted) in PAGES.items()}
            check_pages(base, token, pages, ["quadratic", "trial-count"], out, os.path.join(work, "chromium"))
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=DEADLINE_S)
    return 0


def running_dashboard(base, token, checks, out):
    """The second form: a dashboard someone else started, and what its pages must hold."""
    with open(checks) as f:
        spec = json.load(f)
    pages = {name: (path, wanted) for name, (path, wanted) in spec["pages"].items()}
    if not pages:
        fail(f"{checks}: no pages to check")
    if not shutil.which("chromium"):
        fail("chromium is not installed (scripts/install-deps installs it)")
    with tempfile.TemporaryDirectory(prefix="cohort-chromium-") as profile:
        check_pages(base.rstrip("/") + "/", token, pages, spec.get("hidden", []), out, profile)
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", help="the URL of a running dashboard")
    parser.add_argument("--token", help="its token")
    parser.add_argument("--checks", help="a JSON file of the pages to load and what each must hold")
    parser.add_argument("args", nargs="+", metavar="ARG", help="COHORT_BIN MAKE_STATE OUT_DIR, or OUT_DIR with --base")
    a = parser.parse_args()
    if a.base:
        if not (a.token and a.checks and len(a.args) == 1):
            parser.error("--base needs --token, --checks and one OUT_DIR")
        os.makedirs(a.args[0], exist_ok=True)
        return running_dashboard(a.base, a.token, a.checks, a.args[0])
    if len(a.args) != 3:
        parser.error("give COHORT_BIN MAKE_STATE OUT_DIR, or --base URL --token TOKEN --checks FILE OUT_DIR")
    os.makedirs(a.args[2], exist_ok=True)
    return local_state(*a.args)


sys.exit(main())
