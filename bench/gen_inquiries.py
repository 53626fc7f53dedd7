#!/usr/bin/env python3
"""Writes N inquiries as NDJSON (one compact document per line, ~1 KB each), deterministic.

Room ids are `room-<n>` for n in 0..N-1 (what bench/wrk.lua asks for); `_id` is 24 hex digits, as a
Mongo ObjectId would be. Each document is the demo inquiry's shape with varied values.

usage: gen_inquiries.py N OUT.ndjson
"""
import json
import random
import sys

WORDS = ("hello could you help me with my order it has not arrived yet and the tracking page "
         "says it was delivered yesterday afternoon but nobody rang the bell so I wonder").split()
STATUSES = ("queued", "taken", "ready")
SOURCES = ("widget", "email", "sms", "api", "app")


def doc(n: int, rng: random.Random) -> dict:
    oid = f"{0x6560940c + n:08x}{n:016x}"
    vid = f"{0x65609057 + n:08x}{(n * 7919) % (1 << 64):016x}"
    msg = " ".join(rng.choice(WORDS) for _ in range(rng.randint(18, 26)))
    day = 1 + n % 28
    hh, mm, ss, ms = n % 24, n % 60, (n * 7) % 60, n % 1000
    ts = f"2023-11-{day:02d}T{hh:02d}:{mm:02d}:{ss:02d}.{ms:03d}Z"
    return {
        "_id": oid,
        "rid": f"room-{n}",
        "name": f"visitor {n}",
        "ts": ts,
        "message": msg,
        "status": STATUSES[n % 3],
        "v": {
            "_id": vid,
            "username": f"guest-{n}",
            "token": f"{n * 2654435761 % (1 << 64):016x}{n:018x}",
            "status": "online",
            "activity": ["2023-11"],
        },
        "t": "l",
        "priorityWeight": n % 100,
        "estimatedWaitingTimeQueue": 9999999,
        "source": {"type": SOURCES[n % len(SOURCES)]},
        "_updatedAt": ts,
        "department": f"dept-{n % 17:02d}",
        "lastMessage": {
            "_id": f"msg{n:014d}",
            "rid": f"room-{n}",
            "msg": msg,
            "ts": ts,
            "u": {"_id": vid[:17], "username": f"guest-{n}", "name": f"visitor {n}"},
            "_updatedAt": ts,
            "urls": [],
            "mentions": [],
            "channels": [],
            "md": [{"type": "PARAGRAPH", "value": [{"type": "PLAIN_TEXT", "value": msg}]}],
        },
        "takenAt": ts,
    }


def main() -> None:
    n, out = int(sys.argv[1]), sys.argv[2]
    rng = random.Random(20231124)
    total = 0
    with open(out, "w", encoding="utf-8") as f:
        for i in range(n):
            line = json.dumps(doc(i, rng), separators=(",", ":")) + "\n"
            total += len(line)
            f.write(line)
    print(f"{n} inquiries, {total / n:.0f} bytes each on average, {total / 1e6:.0f} MB", file=sys.stderr)


if __name__ == "__main__":
    main()
