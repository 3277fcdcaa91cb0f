"""The RPC section of docs/benchmarks.md: 1 GiB remote blob put and get over TCP
(build/rpc_bench, our vineyardd on loopback) against a plain loopback TCP transfer of
the same bytes, measured in the same run, interleaved."""
from __future__ import annotations

import json
import os
import statistics
import subprocess
from typing import Dict, List

CASES = [
    ("tcp/resident", "plain TCP, into a resident buffer (the physical reference)"),
    ("tcp/fresh", "plain TCP, into a freshly allocated buffer"),
    ("rpc/put", "RPC put: `CreateRemoteBlobs` from the caller's memory into shared memory"),
    ("rpc/get", "RPC get: `GetRemoteBlob` into a new `RemoteBlob`"),
    ("rpc/put+zstd", "RPC put with zstd (random bytes: no gain; one run)"),
    ("rpc/get+zstd", "RPC get with zstd (one run)"),
]


def measure(build_dir: str, quick: bool) -> Dict[str, List[float]]:
    """Runs rpc_bench; {case: [GB/s per repetition]}."""
    size, reps = ("256Mi", 3) if quick else ("1Gi", 7)
    out = subprocess.run([os.path.join(build_dir, "rpc_bench"), f"--size={size}",
                          f"--reps={reps}"], capture_output=True, text=True, timeout=900,
                         check=True)
    rates: Dict[str, List[float]] = {}
    for line in out.stdout.splitlines():
        if line.startswith("{"):
            r = json.loads(line)
            rates.setdefault(r["case"], []).append(r["bytes"] / r["seconds"] / 1e9)
    rates["_size"] = [float(size[:-2]) * (1 << 30 if size.endswith("Gi") else 1 << 20)]
    return rates


def render(rates: Dict[str, List[float]]) -> str:
    size = int(rates.pop("_size")[0])
    ref = statistics.median(rates["tcp/resident"])
    rows = []
    for case, label in CASES:
        values = rates.get(case)
        if not values:
            continue
        median = statistics.median(values)
        rows.append(f"| {label} | {median:.2f} | {min(values):.2f}–{max(values):.2f} | "
                    f"{median / ref:.2f}x |")
    return "\n".join([
        "## RPC: remote blobs over TCP\n",
        f"`build/rpc_bench --size={size >> 20}Mi`: {size >> 20} MiB of random bytes, "
        "our vineyardd on loopback, interleaved repetitions. Rates are GB/s "
        "(median, min–max). The ratio is against a plain TCP transfer into a resident "
        "buffer, measured in the same run. Target: 0.9x.\n",
        "| transfer | GB/s | spread | vs plain TCP |",
        "|---|---|---|---|",
        *rows,
        "",
        "A put sends from the caller's memory straight into shared memory. A get "
        "receives into a new buffer, which becomes the object's memory, so its fair "
        "reference is the `fresh` row: the pages of a new buffer must be faulted in "
        "and zeroed. Buffers of 4 MiB or more use huge pages, which costs one fault per "
        "2 MiB. zstd (level 1) is off by default: on loopback or a LAN, compression costs "
        "more than it saves.\n",
    ])


def run_and_render(build_dir: str, quick: bool = False) -> str:
    return render(measure(build_dir, quick))


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--build-dir", default="build")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    print(run_and_render(args.build_dir, args.quick))
