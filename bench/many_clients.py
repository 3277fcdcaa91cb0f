"""The "1,000 concurrent clients" section of docs/benchmarks.md: build/many_clients_bench
against our vineyardd (event loops + worker pool) and, when given, the thread-per-connection
baseline (build/baseline/vineyardd), repetitions interleaved, the order rotated."""
from __future__ import annotations

import json
import os
import statistics
import subprocess
from typing import Any, Dict, List, Optional

# mode -> (clients, client threads, seconds per run, repetitions)
PLAN = {"full": (1000, 8, 10.0, 3), "quick": (1000, 8, 3.0, 1), "smoke": (100, 4, 0.5, 1)}


def measure(build_dir: str, servers: Dict[str, str], mode: str) -> Dict[str, Any]:
    """{"plan": {...}, "runs": {system: [run JSON, or {"error": text}]}}; each server's
    output goes to <build_dir>/many-clients-<system>.log."""
    clients, threads, seconds, reps = PLAN[mode]
    binary = os.path.join(build_dir, "many_clients_bench")
    runs: Dict[str, List[Dict[str, Any]]] = {name: [] for name in servers}
    logs = {name: os.path.join(build_dir, f"many-clients-{name}.log") for name in servers}
    for log in logs.values():
        open(log, "w").close()
    names = list(servers)
    for rep in range(reps):
        for name in names[rep % len(names):] + names[:rep % len(names)]:
            cmd = [binary, f"--vineyardd={servers[name]}", f"--clients={clients}",
                   f"--threads={threads}", f"--seconds={seconds}", f"--label={name}",
                   f"--log={logs[name]}"]
            try:
                out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120)
                line = next((ln for ln in out.stdout.splitlines() if ln.startswith("{")), None)
                if line is None:
                    tail = out.stderr.strip().splitlines() or [f"exit {out.returncode}"]
                    run: Dict[str, Any] = {"error": tail[-1]}
                else:
                    run = json.loads(line)
            except subprocess.TimeoutExpired:
                run = {"error": f"no result within {seconds + 120:.0f} s"}
            runs[name].append(run)
            print(f"  {clients} clients, {name}: "
                  + (run["error"] if "error" in run else
                     f"{run['completed']}/{run['clients']} completed, "
                     f"{run['pairs_per_s']:.0f} put+get/s, {run['errors']} errors, "
                     f"{run['server_threads']} server threads"), flush=True)
    return {"plan": {"clients": clients, "threads": threads, "seconds": seconds, "reps": reps},
            "runs": runs}


def failures(result: Dict[str, Any]) -> Dict[str, str]:
    """system -> what went wrong (a run that failed, a client left out, an error)."""
    out = {}
    for name, runs in result["runs"].items():
        for r in runs:
            if "error" in r:
                out[name] = r["error"]
            elif r["connected"] != r["clients"] or r["completed"] != r["clients"] or r["errors"]:
                out[name] = (f"{r['connected']} connected, {r['completed']} completed, "
                             f"{r['errors']} errors ({r['first_error']})")
    return out


def median(result: Dict[str, Any], name: str, key: str) -> Optional[float]:
    values = [r[key] for r in result["runs"].get(name, []) if "error" not in r]
    return statistics.median(values) if values else None


# metric: (label, run key, digits, higher is better)
METRICS = [("clients connected", "connected", 0, True),
           ("clients with a put+get", "completed", 0, True),
           ("put+get per s", "pairs_per_s", 0, True),
           ("put+get p50 µs", "p50_us", 0, False),
           ("put+get p99 µs", "p99_us", 0, False),
           ("errors", "errors", 0, False),
           ("server threads", "server_threads", 0, False),
           ("server RSS MiB", "server_rss_mib", 1, False),
           ("time to connect all, s", "connect_seconds", 2, False)]


def _with_mib(result: Dict[str, Any]) -> Dict[str, Any]:
    for runs in result["runs"].values():
        for r in runs:
            if "server_rss_kib" in r:
                r["server_rss_mib"] = r["server_rss_kib"] / 1024
    return result


def render(result: Dict[str, Any], labels: Dict[str, str]) -> str:
    result = _with_mib(result)
    p = result["plan"]
    names = list(result["runs"])
    header = ["metric"] + [labels.get(n, n) for n in names]
    rows = []
    for label, key, digits, _ in METRICS:
        cells = []
        for n in names:
            m = median(result, n, key)
            cells.append("n/a" if m is None else f"{m:,.{digits}f}")
        rows.append([label] + cells)
    lines = [
        f"## {p['clients']:,} concurrent clients\n",
        f"`build/many_clients_bench --clients={p['clients']} --threads={p['threads']} "
        f"--seconds={p['seconds']:g}`: {p['clients']:,} C++ clients (`vineyard::Client`) "
        f"connect to one vineyardd and all stay connected; {p['threads']} threads own "
        f"{p['clients'] // p['threads']} clients each and cycle through them, so every "
        f"client does a put + get in turn (`CreateBlob(64)` + `Put` of an `ObjectMeta` with "
        f"that blob, then `GetObject`; a deep delete after each, not timed) for "
        f"{p['seconds']:g} s. Only the server differs between the columns. Server threads "
        f"and RSS (`/proc/<pid>/status`) are the largest seen while all clients were "
        f"connected. Median of {p['reps']} interleaved run(s).\n",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
        *["| " + " | ".join(row) + " |" for row in rows],
        "",
    ]
    for name, why in failures(result).items():
        lines.append(f"- {labels.get(name, name)}: {why}")
    if failures(result):
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--build-dir", default="build")
    ap.add_argument("--baseline", help="the thread-per-connection vineyardd")
    ap.add_argument("--mode", choices=list(PLAN), default="quick")
    args = ap.parse_args()
    servers = {"ours": os.path.join(args.build_dir, "vineyardd")}
    if args.baseline:
        servers["baseline"] = args.baseline
    print(render(measure(args.build_dir, servers, args.mode), {}))
