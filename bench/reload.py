#!/usr/bin/env python3
"""Plugin hot-reload latency: writes a plugin file that sets a marker field to a new value, then polls
the endpoint in a tight loop (one keep-alive connection) until a response shows that value. The time
from just before the write to the first response showing it is one sample.

usage: reload.py HOST PORT PLUGINS_DIR EDITS  (env BENCH_USER, BENCH_TOKEN, BENCH_ROOM)
prints one line `RELOADJSON {...}` with the samples in milliseconds.
"""
import http.client
import json
import math
import os
import sys
import time

TIMEOUT_S = 5.0  # per edit; a slower reload counts as a failure (and as 5000 ms)


def plugin(value: str) -> bytes:
    return json.dumps({
        "name": "bench-marker",
        "description": "bench/reload.py: a marker that changes with every edit",
        "priority": 1000,
        "hooks": [{"on": "inquiry.response",
                   "do": [{"op": "set", "path": "/benchMarker", "value": value}]}],
    }, indent=2).encode()


def main() -> None:
    host, port, pdir, edits = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    headers = {"X-User-Id": os.environ.get("BENCH_USER", "rbAXPnMktTFbNpwtJ"),
               "X-Auth-Token": os.environ.get("BENCH_TOKEN", "RScctEHSmLGZGywfIhWyRpyofhKOiMoUIpimhvheU3f")}
    path = "/api/v1/livechat/inquiries.getOne?roomId=" + os.environ.get("BENCH_ROOM", "yy8SmYKfHQ6GZdnJp")
    target = os.path.join(pdir, "bench-marker.json")
    conn = http.client.HTTPConnection(host, port, timeout=5)

    def shows(marker: bytes) -> bool:
        nonlocal conn
        try:
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
            body = resp.read()
        except (OSError, http.client.HTTPException):
            conn.close()
            conn = http.client.HTTPConnection(host, port, timeout=5)
            return False
        return resp.status == 200 and marker in body

    samples, failures = [], 0
    for i in range(edits + 1):               # edit 0 is a warm-up, not counted
        value = f"edit-{i}-{time.time_ns()}"
        marker = f'"benchMarker":"{value}"'.encode()
        t0 = time.perf_counter()
        with open(target, "wb") as f:        # an in-place write, as a script or `cat >` does
            f.write(plugin(value))
        seen = False
        while time.perf_counter() - t0 < TIMEOUT_S:
            if shows(marker):
                seen = True
                break
        dt = (time.perf_counter() - t0) * 1000.0
        if i > 0:
            samples.append(dt if seen else TIMEOUT_S * 1000.0)
            failures += 0 if seen else 1
        time.sleep(0.2)                      # let the watcher settle before the next edit
    os.remove(target)
    s = sorted(samples)

    def pct(p: float) -> float:              # nearest rank
        return s[max(0, math.ceil(p / 100.0 * len(s)) - 1)]

    print("RELOADJSON " + json.dumps({
        "edits": len(s), "failures": failures, "p50_ms": round(pct(50), 1),
        "p99_ms": round(pct(99), 1), "max_ms": round(s[-1], 1), "min_ms": round(s[0], 1),
        "samples_ms": [round(x, 1) for x in samples]}))


if __name__ == "__main__":
    main()
