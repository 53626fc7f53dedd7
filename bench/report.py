#!/usr/bin/env python3
"""Turns what bench/run collected in WORK/ into the table and the targets check.

usage: report.py WORK [RESULTS.md]
WORK/rows.tsv          row id, label (in table order)
WORK/runs/<id>.jsonl   one BENCHJSON object per wrk run of that row
WORK/meta.json         settings, machine, import, reload, peak RSS (written by bench/run)
Prints a plain-text report; with RESULTS.md also writes it as Markdown.
"""
import json
import os
import sys


def load(work):
    rows = []
    with open(os.path.join(work, "rows.tsv")) as f:
        for line in f:
            rid, label = line.rstrip("\n").split("\t", 1)
            runs = []
            path = os.path.join(work, "runs", rid + ".jsonl")
            if os.path.exists(path):
                with open(path) as r:
                    runs = [json.loads(x) for x in r if x.strip()]
            rows.append((rid, label, runs))
    with open(os.path.join(work, "meta.json")) as f:
        meta = json.load(f)
    return rows, meta


def rps(run):
    return run["requests"] / (run["duration_us"] / 1e6)


def ms(us):
    return f"{us / 1000:.2f} ms"


def main():
    work = sys.argv[1]
    out_md = sys.argv[2] if len(sys.argv) > 2 else None
    rows, meta = load(work)
    best = {}
    for rid, _, runs in rows:
        if runs:
            b = max(runs, key=rps)
            # best of N for each figure on its own: most req/s, lowest p50, lowest p99 (a stall
            # caused by another process on this shared machine spoils one run, not the row)
            best[rid] = dict(b, rps=rps(b), p50_us=min(r["p50_us"] for r in runs),
                             p99_us=min(r["p99_us"] for r in runs), spread=(min(map(rps, runs)), max(map(rps, runs))),
                             non2xx_all=sum(r["non2xx"] for r in runs),
                             sockerr_all=sum(r["connect"] + r["read"] + r["write"] + r["timeout"] for r in runs),
                             n=len(runs),
                             cpu_us=min((r["server_cpu_s"] * 1e6 / r["requests"] for r in runs
                                         if r.get("server_cpu_s") is not None and r["requests"]), default=None))
    ng = best.get("nginx")
    rss = meta.get("rss_kib", {})

    table = [["server / row", "req/s (best)", "req/s range", "p50", "p99", "ratio to nginx",
              "p99 / nginx p99", "server CPU / request", "non-2xx", "socket errors", "peak RSS"]]
    for rid, label, runs in rows:
        b = best.get(rid)
        if not b:
            table.append([label, "not run", "", "", "", "", "", "", "", "", ""])
            continue
        ratio = f"{b['rps'] / ng['rps']:.2f}" if ng else "n/a"
        p99r = f"{b['p99_us'] / ng['p99_us']:.2f}×" if ng and ng["p99_us"] else "n/a"
        r = rss.get(rid)
        table.append([label, f"{b['rps']:,.0f}", f"{b['spread'][0]:,.0f}–{b['spread'][1]:,.0f}",
                      ms(b["p50_us"]), ms(b["p99_us"]), ratio, p99r,
                      f"{b['cpu_us']:.1f} µs" if b["cpu_us"] is not None else "",
                      f"{b['non2xx_all']}", f"{b['sockerr_all']}",
                      f"{r / 1024:.1f} MiB" if r else ""])

    imp = meta.get("import")
    rel = meta.get("reload")
    plain, plug = best.get("plain"), best.get("plugins"),
    rnd, one = best.get("big_random"), best.get("big_fixed")
    js = best.get("json_server")
    inq_rss = [v for k, v in rss.items() if k in ("plain", "plain_nometrics", "plugins", "big_random", "big_fixed", "big_plugins_random")]

    def check(name, target, value, ok):
        return [name, target, value, "holds" if ok else ("FAILS" if ok is not None else "not measured")]

    targets = [["figure", "target", "measured", "verdict"]]
    if plain and ng:
        v = plain["rps"] / ng["rps"]
        targets.append(check("full path, no plugins / nginx static", "≥ 0.80", f"{v:.2f}", v >= 0.80))
    else:
        targets.append(check("full path, no plugins / nginx static", "≥ 0.80", "", None))
    nometrics = best.get("plain_nometrics")
    if plain and nometrics:
        v = plain["rps"] / nometrics["rps"]
        targets.append(check("no plugins: metrics on / metrics off", "≥ 0.95", f"{v:.2f}", v >= 0.95))
    else:
        targets.append(check("no plugins: metrics on / metrics off", "≥ 0.95", "", None))
    if plug and ng:
        v = plug["rps"] / ng["rps"]
        targets.append(check("full path, shipped plugins / nginx static", "≥ 0.60", f"{v:.2f}", v >= 0.60))
    else:
        targets.append(check("full path, shipped plugins / nginx static", "≥ 0.60", "", None))
    ng_rnd, ng_one = best.get("nginx_rooms_random"), best.get("nginx_rooms_fixed")
    if rnd and one:
        v = rnd["rps"] / one["rps"]
        extra = []
        if ng_rnd and ng_one:
            extra.append(f"nginx on the same documents as files: {ng_rnd['rps'] / ng_one['rps']:.2f}")
        if plain:
            extra.append(f"vs the 1-room DB row: {rnd['rps'] / plain['rps']:.2f}")
        extra = f" ({'; '.join(extra)})" if extra else ""
        targets.append(check("200k inquiries, random rooms / 1 room", "≥ 0.90",
                             f"{v:.2f}{extra}", v >= 0.90))
    else:
        targets.append(check("200k inquiries, random rooms / 1 room", "≥ 0.90", "", None))
    if plain and ng:
        v = plain["p99_us"] / ng["p99_us"]
        vp = f", shipped plugins {plug['p99_us'] / ng['p99_us']:.2f}×" if plug else ""
        targets.append(check("p99 latency / nginx p99", "≤ 2×", f"no plugins {v:.2f}×{vp}", v <= 2.0))
    else:
        targets.append(check("p99 latency / nginx p99", "≤ 2×", "", None))
    if imp:
        ex, served = imp.get("existing_seconds"), imp.get("served_seconds")
        ex_rps = imp["records"] / min(ex) if ex else None
        ex_text = f"; into an existing one {ex_rps:,.0f}" if ex_rps else ""
        served_text = (f"; into one a server is serving (WAL) {imp['records'] / min(served):,.0f}"
                       if served else "")
        targets.append(check("import", "≥ 100,000 records/s",
                             f"{imp['best_rps']:,.0f} records/s into a new database{ex_text}{served_text}",
                             imp["best_rps"] >= 100_000 and (ex_rps is None or ex_rps >= 100_000)))
    else:
        targets.append(check("import", "≥ 100,000 records/s", "", None))
    if rel:
        ok = rel["p99_ms"] <= 300 and rel["failures"] == 0
        targets.append(check("plugin reload, p99", "≤ 300 ms",
                             f"p50 {rel['p50_ms']} ms, p99 {rel['p99_ms']} ms, {rel['failures']} missed", ok))
    else:
        targets.append(check("plugin reload, p99", "≤ 300 ms", "", None))
    if inq_rss:
        m = max(inq_rss) / 1024
        targets.append(check("peak RSS under load", "≤ 64 MiB", f"{m:.1f} MiB (largest inquiryd)", m <= 64))
    else:
        targets.append(check("peak RSS under load", "≤ 64 MiB", "", None))
    if js and plain:
        v = js["rps"] / plain["rps"]
        targets.append(check("json-server / inquiryd full path", "≤ 0.10", f"{v:.3f}", v <= 0.10))
    else:
        targets.append(check("json-server / inquiryd full path", "≤ 0.10", "json-server not installed", None))

    s = meta["settings"]
    settings = (f"wrk {s['wrk_version']}: -t{s['threads']} -c{s['connections']} -d{s['duration']}, "
                f"{s['repeat']} rounds (rows interleaved per round), best of {s['repeat']}; "
                f"server workers: {s['workers']} (nginx worker_processes: {s['workers']}); "
                f"server RUST_LOG={s['rust_log']}; load average before/after: "
                f"{meta['machine'].get('load_before', '?')} / {meta['machine'].get('load', '?')}")
    other = []
    if imp:
        other.append(f"import into a new database: {imp['records']:,} NDJSON inquiries ({imp['bytes_per_record']:.0f} B each), "
                     f"best of {len(imp['seconds'])}: {imp['best_rps']:,.0f} records/s "
                     f"(runs: {', '.join(f'{x:.2f} s' for x in imp['seconds'])})")
        existing = imp.get("existing_seconds")
        if existing:
            other.append(f"import into an existing database nothing else has open (through a rollback journal, "
                         f"then back to WAL), best of {len(existing)}: {imp['records'] / min(existing):,.0f} records/s "
                         f"(runs: {', '.join(f'{x:.2f} s' for x in existing)})")
        served = imp.get("served_seconds")
        if served:
            other.append(f"import into an existing database while a server serves it (through the WAL; the server's "
                         f"checkpointer copies it into the file afterwards), best of {len(served)}: "
                         f"{imp['records'] / min(served):,.0f} records/s "
                         f"(runs: {', '.join(f'{x:.2f} s' for x in served)})")
        floor = imp.get("floor_seconds")
        if floor:
            best = min(floor)
            twice = (f"; while a server serves the database the import writes every page to the WAL once "
                     f"({min(served) / best:.1f}× the one-write floor) and the server writes it again into the "
                     f"file in the background, after the import has returned") if served else ""
            other.append(f"disk floor: writing the resulting {imp['db_mb']} MB once with fsync, best of {len(floor)}: "
                         f"{best:.2f} s (runs: {', '.join(f'{x:.2f} s' for x in floor)}). A new database, or an "
                         f"existing one nothing else has open, is written once: the best import took "
                         f"{min(imp['seconds']) / best:.1f}× that, and none can beat "
                         f"{imp['records'] / best:,.0f} records/s here{twice}")
    if rel:
        other.append(f"reload: {rel['edits']} edits, p50 {rel['p50_ms']} ms, p99 {rel['p99_ms']} ms "
                     f"(nearest rank over {rel['edits']} samples: below 100 samples p99 is the slowest), min {rel['min_ms']} ms, "
                     f"missed {rel['failures']}; samples ms: {rel['samples_ms']}")

    def text_table(t):
        w = [max(len(str(r[i])) for r in t) for i in range(len(t[0]))]
        lines = []
        for j, r in enumerate(t):
            lines.append("  ".join(str(c).ljust(w[i]) for i, c in enumerate(r)).rstrip())
            if j == 0:
                lines.append("  ".join("-" * x for x in w))
        return "\n".join(lines)

    def md_table(t):
        lines = ["| " + " | ".join(t[0]) + " |", "|" + "---|" * len(t[0])]
        lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in t[1:]]
        return "\n".join(lines)

    print()
    print(settings)
    print()
    print(text_table(table))
    print()
    for o in other:
        print(o)
    print()
    print(text_table(targets))

    if out_md:
        m = meta["machine"]
        with open(out_md, "w") as f:
            f.write("# inquiryd benchmark results\n\n")
            f.write("Written by `bench/run --results bench/RESULTS.md`; see `bench/README.md` for what each row "
                    "means. Every figure that matters is a ratio between rows of this one run.\n\n")
            f.write(f"- date: {m['date']}\n- commit: {m['commit']}\n- machine: {m['nproc']} CPUs, "
                    f"{m['model']}, {m['mem']}\n- kernel: {m['kernel']}\n- {settings}\n\n")
            f.write("```\n" + m["lscpu"].rstrip() + "\n```\n\n")
            f.write("## Throughput and latency\n\n" + md_table(table) + "\n\n")
            for o in other:
                f.write(f"- {o}\n")
            f.write("\n## Targets (issue 5)\n\n" + md_table(targets) + "\n")


if __name__ == "__main__":
    main()
