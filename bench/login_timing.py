#!/usr/bin/env python3
"""bench/login_timing.py: does a login's answer time tell whether the username exists?

    bench/login_timing.py BASE_URL USER PASSWORD [PAIRS]

Times PAIRS (default 200) adjacent pairs of failed logins, a wrong password for USER and an unknown
username, alternating which goes first, and prints the median of the pairs' ratios (wrong / unknown)
with its interquartile range. Adjacent pairs run under nearly the same load, so load cancels out of
each ratio; a median near 1.00 means the two are indistinguishable. The server needs
[auth] login_max_failures and login_max_failures_per_address above 2 x PAIRS (else it throttles).
The test suite checks the structure instead (tests/api/login.rs: one argon2 run each, same
parameters); this is the figure.
"""
import json
import statistics
import sys
import time
import urllib.error
import urllib.request


def login(base, user, password):
    body = json.dumps({"user": user, "password": password}).encode()
    req = urllib.request.Request(base + "/api/v1/login", data=body,
                                 headers={"Content-Type": "application/json"})
    t = time.perf_counter()
    try:
        urllib.request.urlopen(req).read()
        status = 200
    except urllib.error.HTTPError as e:
        e.read()
        status = e.code
    elapsed = time.perf_counter() - t
    if status != 401:
        sys.exit(f"login {user!r}: expected 401, got {status} (raise the [auth] failure limits)")
    return elapsed


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    base, user, password = sys.argv[1].rstrip("/"), sys.argv[2], sys.argv[3]
    pairs = int(sys.argv[4]) if len(sys.argv) > 4 else 200
    wrong = lambda: login(base, user, password + "-wrong")
    unknown = lambda: login(base, "no-such-user-for-timing", password + "-wrong")
    wrong(), unknown()  # warm both paths
    ratios = []
    for i in range(pairs):
        if i % 2 == 0:
            a = wrong()
            ratios.append(a / unknown())
        else:
            b = unknown()
            ratios.append(wrong() / b)
    q1, med, q3 = statistics.quantiles(ratios, n=4)
    print(f"wrong password / unknown user, {pairs} pairs: median {med:.3f} (IQR {q1:.3f}-{q3:.3f})")


if __name__ == "__main__":
    main()
