"""The cluster section of docs/benchmarks.md: bench/cluster_bench.py run for our
vineyardd and for the published vineyardd 0.24.2 (its own client), one after the
other in the same `make bench`, each a cluster of two instances in two network
namespaces sharing one etcd."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from typing import Any, Dict, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def published_binary(build_dir: str) -> str:
    import glob
    found = glob.glob(os.path.join(build_dir, "venv-compat", "lib", "python3*",
                                   "site-packages", "vineyard", "bdist", "vineyardd"))
    return found[0] if found else ""


def measure_one(label: str, binary: str, python: str, pythonpath: Optional[str],
                quick: bool) -> Dict[str, Any]:
    out = tempfile.mktemp(prefix="vy-cluster-", suffix=".json")
    argv = [sys.executable, os.path.join(HERE, "cluster_bench.py"), "--vineyardd", binary,
            "--python", python, "--label", label, "--json", out]
    if pythonpath:
        argv += ["--pythonpath", pythonpath]
    if quick:
        argv.append("--quick")
    done = subprocess.run(argv, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0 or not os.path.exists(out):
        return {"label": label, "error": (done.stderr or done.stdout)[-1500:]}
    with open(out) as f:
        data = json.load(f)
    os.unlink(out)
    return data


def measure(build_dir: str, quick: bool) -> Dict[str, Dict[str, Any]]:
    runs = {"ours": measure_one("ours", os.path.abspath(os.path.join(build_dir, "vineyardd")),
                                sys.executable, os.path.join(ROOT, "python"), quick)}
    published = published_binary(os.path.abspath(build_dir))
    python = os.path.abspath(os.path.join(build_dir, "venv-compat", "bin", "python"))
    if published and os.path.exists(python):
        runs["published 0.24.2"] = measure_one("published 0.24.2", published, python, None,
                                               quick)
    else:
        runs["published 0.24.2"] = {"error": "build/venv-compat is missing (make compat-venv)"}
    return runs


def _latency(d: Dict[str, Any], key: str, unit: str) -> str:
    r = d.get(key)
    if not isinstance(r, dict) or f"p50_{unit}" not in r:
        return "n/a"
    fmt = "{:.2f}" if unit == "ms" else "{:.0f}"
    return f"{fmt.format(r[f'p50_{unit}'])} / {fmt.format(r[f'p99_{unit}'])} {unit}"


def _rate(d: Dict[str, Any], key: str) -> str:
    r = d.get(key)
    if not isinstance(r, dict):
        return "n/a"
    if "error" in r:
        return "failed: " + r["error"].splitlines()[0][:120]
    return f"{r['gib_s']:.2f} GiB/s"


def render(runs: Dict[str, Dict[str, Any]], quick: bool) -> str:
    labels = list(runs)
    lines = ["## Cluster: two instances in two network namespaces, one etcd", ""]
    lines.append("`bench/cluster_section.py` runs `bench/cluster_bench.py` for each system "
                 "(two vineyardd, each in its own namespace on one bridge, an etcd in a "
                 "third; each system's own client). Visibility: from A's `persist` call to "
                 "B's first successful `get_meta`, B learning through its server's watch, "
                 "or asking with `sync_remote=True`. Migration: B's `get(id, fetch=True)` of "
                 f"A's {'256 MiB' if quick else '1 GiB'} array of random bytes, against a plain "
                 "TCP copy of as many bytes between the same two namespaces.")
    lines.append("")
    lines.append("| measure | " + " | ".join(labels) + " |")
    lines.append("|---|" + "---|" * len(labels))
    rows = [
        ("persist -> visible elsewhere, p50 / p99", lambda d: _latency(
            d, "persist_visible_watch", "ms")),
        ("persist -> visible, polling with sync_remote, p50 / p99", lambda d: _latency(
            d, "persist_visible_sync", "ms")),
        ("get_meta of a remote object, p50 / p99", lambda d: _latency(
            d, "remote_get_meta", "us")),
        ("get_meta with sync_remote, p50 / p99", lambda d: _latency(
            d, "remote_get_meta_sync", "us")),
        ("migration (get with fetch=True)", lambda d: _rate(d, "migration")),
        ("plain TCP copy, same hosts", lambda d: _rate(d, "tcp_copy")),
        ("migration / plain copy", lambda d: (
            f"{d['migration']['gib_s'] / d['tcp_copy']['gib_s']:.2f}x"
            if "gib_s" in d.get("migration", {}) and "gib_s" in d.get("tcp_copy", {})
            else "n/a")),
    ]
    for title, cell in rows:
        cells = []
        for label in labels:
            d = runs[label]
            cells.append("did not run (below)" if "error" in d else cell(d))
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    lines.append("")
    for label in labels:
        if "error" in runs[label]:
            lines.append(f"{label} did not run: `{runs[label]['error'].strip().splitlines()[-1]}`")
            lines.append("")
    lines.append("Targets: visibility p50 under 5 ms; migration at least 0.9x the plain copy. "
                 "The machine's 2 cores run both instances, etcd and the clients, so p99 "
                 "moves from run to run.")
    lines.append("")
    return "\n".join(lines)


def run_and_render(build_dir: str, quick: bool = False) -> str:
    return render(measure(build_dir, quick), quick)


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--build-dir", default="build")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    print(run_and_render(args.build_dir, args.quick))
