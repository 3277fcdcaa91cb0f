"""The "server under load" section of docs/benchmarks.md: how our vineyardd keeps small
requests fast while other work goes on. Three measures, ours only (they are targets of the
server, not comparisons):

- a small get_meta's latency (p50/p99) alone, then while another client puts and gets a
  pyarrow Table of 10,000 chunks (a tree of 80,000 nodes) in a loop;
- the latency of deleting a small object with 1 name held and with 100,000 names held;
- (the heap per object is scenario 8 of the main page).

Run by `make bench` through bench/py_bench.py --cpp; alone: python3 bench/server_section.py.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import sys
import time
from typing import Any, Dict, List

from peers.base import start_vineyardd, stop_vineyardd

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "python"))


def _percentiles(samples: List[float]) -> Dict[str, float]:
    s = sorted(samples)
    return {"p50_us": s[len(s) // 2] * 1e6, "p99_us": s[min(len(s) - 1, int(len(s) * 0.99))] * 1e6,
            "max_us": s[-1] * 1e6, "count": len(s)}


def _big_tree_loop(sock: str, chunks: int, stop: Any, ready: Any, rounds: Any) -> None:
    import numpy as np
    import pyarrow as pa
    import vineyard
    client = vineyard.connect(sock)
    ints = np.arange(chunks * 100, dtype=np.int64)
    table = pa.table({"a": pa.chunked_array([pa.array(ints[i:i + 100])
                                             for i in range(0, len(ints), 100)]),
                      "b": pa.chunked_array([pa.array(ints[i:i + 100] * 0.5)
                                             for i in range(0, len(ints), 100)])})
    oid = client.put(table)
    ready.set()
    while not stop.is_set():
        client.get(oid)
        other = client.put(table)
        client.delete(other)
        rounds.value += 1


def small_under_load(binary: str, quick: bool) -> Dict[str, Any]:
    import numpy as np
    import vineyard
    chunks = 2000 if quick else 10000
    seconds = 3.0 if quick else 8.0
    proc, sock, workdir = start_vineyardd(binary, ["--size=4Gi", "--meta=local", "--norpc"],
                                         "vy-server-bench-")
    try:
        client = vineyard.connect(sock)
        small = client.put(np.arange(8))

        def measure(duration: float) -> List[float]:
            out = []
            end = time.perf_counter() + duration
            while time.perf_counter() < end:
                t0 = time.perf_counter()
                client.get_meta(small)
                out.append(time.perf_counter() - t0)
                time.sleep(0.0005)  # a request every half millisecond, not a busy loop
            return out

        alone = measure(2.0)
        ctx = mp.get_context("spawn")
        stop, ready, rounds = ctx.Event(), ctx.Event(), ctx.Value("i", 0)
        loader = ctx.Process(target=_big_tree_loop, args=(sock, chunks, stop, ready, rounds))
        loader.start()
        if not ready.wait(300):
            raise RuntimeError("the loading client did not start")
        loaded = measure(seconds)
        stop.set()
        loader.join(120)
        return {"alone": _percentiles(alone), "loaded": _percentiles(loaded),
                "chunks": chunks, "rounds": rounds.value, "seconds": seconds}
    finally:
        stop_vineyardd(proc, workdir)


def delete_latency(binary: str, quick: bool) -> Dict[str, Any]:
    import numpy as np
    import vineyard
    names = 10000 if quick else 100000
    proc, sock, workdir = start_vineyardd(binary, ["--size=4Gi", "--meta=local", "--norpc"],
                                         "vy-server-bench-")
    try:
        client = vineyard.connect(sock)
        value = np.arange(8)

        def deletes(n: int) -> List[float]:
            out = []
            for _ in range(n):
                oid = client.put(value)
                t0 = time.perf_counter()
                client.delete(oid)
                out.append(time.perf_counter() - t0)
            return out

        first = client.put(value, persist=True)
        client.put_name(first, "the-only-name")
        deletes(200)
        one = deletes(2000)
        for i in range(names - 1):
            client.put_name(client.put(value, persist=True), f"name-{i:06d}")
        deletes(200)
        many = deletes(2000)
        return {"one": _percentiles(one), "many": _percentiles(many), "names": names}
    finally:
        stop_vineyardd(proc, workdir)


def measure(build_dir: str, quick: bool) -> Dict[str, Any]:
    binary = os.path.abspath(os.path.join(build_dir, "vineyardd"))
    out: Dict[str, Any] = {}
    for key, fn in (("small_under_load", small_under_load), ("delete", delete_latency)):
        try:
            out[key] = fn(binary, quick)
        except Exception as e:  # noqa: BLE001 (reported on the page)
            out[key] = {"error": f"{type(e).__name__}: {e}"}
    return out


def render(d: Dict[str, Any]) -> str:
    L = ["## Server under load: small requests next to large ones, deletes among many names",
         ""]
    s = d.get("small_under_load", {})
    if "error" in s:
        L.append(f"Small requests under load did not run: `{s['error']}`")
    else:
        L.append(f"`bench/server_section.py`: one client sends a `get_meta` of a small object "
                 f"every 0.5 ms, alone for 2 s, then for {s['seconds']:g} s while another "
                 f"process puts, gets and deletes a pyarrow Table of {s['chunks']:,} chunks "
                 f"(a tree of {s['chunks'] * 8:,} nodes) in a loop ({s['rounds']} rounds).")
        L.append("")
        L.append("| small get_meta | p50 µs | p99 µs | max µs | requests |")
        L.append("|---|---|---|---|---|")
        for label, key in (("alone", "alone"), ("while a 10k-chunk Table is put and got",
                                                 "loaded")):
            r = s[key]
            L.append(f"| {label} | {r['p50_us']:.0f} | {r['p99_us']:.0f} | {r['max_us']:.0f} "
                     f"| {r['count']:,} |")
        L.append("")
        L.append("Target: p99 under 1 ms while the large tree is put and got.")
    L.append("")
    dl = d.get("delete", {})
    if "error" in dl:
        L.append(f"Delete latency did not run: `{dl['error']}`")
    else:
        L.append(f"Delete of a small unnamed object (put just before, not timed), 2,000 times, "
                 f"with 1 name held and with {dl['names']:,} names held.")
        L.append("")
        L.append("| names held | delete p50 µs | delete p99 µs |")
        L.append("|---|---|---|")
        for label, key in (("1", "one"), (f"{dl['names']:,}", "many")):
            r = dl[key]
            L.append(f"| {label} | {r['p50_us']:.0f} | {r['p99_us']:.0f} |")
        L.append("")
        L.append("Target: flat in the number of names.")
    L.append("")
    return "\n".join(L)


def run_and_render(build_dir: str, quick: bool = False) -> str:
    return render(measure(build_dir, quick))


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--build-dir", default="build")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    print(run_and_render(args.build_dir, args.quick))
