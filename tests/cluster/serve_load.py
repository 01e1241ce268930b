# Load on a service for the serve cluster tests: CLIENTS clients send requests to the slow
# model until DONE (a shell condition) holds, for at most 120 s. Any failed request fails;
# so does a condition that never held.
#   serve_load.py URL TOKEN_FILE CLIENTS DONE
import json, subprocess, sys, threading, time
import requests
url, token_file, clients, done = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
token = open(token_file).read().strip()
body = json.dumps({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]})
stop, lock, answered, failures = threading.Event(), threading.Lock(), [0], []
def client():
    s = requests.Session()
    s.headers["Authorization"] = "Bearer " + token
    while not stop.is_set():
        r = s.post(url + "/models/slow/infer", data=body, timeout=60)
        with lock:
            answered[0] += 1
            if r.status_code != 200:
                failures.append((r.status_code, r.text))
threads = [threading.Thread(target=client) for _ in range(clients)]
for t in threads: t.start()
deadline = time.monotonic() + 120
while time.monotonic() < deadline and subprocess.run(["bash", "-c", done]).returncode != 0:
    stop.wait(0.5)
reached = time.monotonic() < deadline
stop.set()
for t in threads: t.join()
print(f"{clients} clients: {answered[0]} requests, {len(failures)} failed")
assert not failures, failures[:3]
assert reached, "the condition did not hold within 120 s"
