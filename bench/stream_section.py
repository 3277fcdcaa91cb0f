"""The "streams and I/O" section of docs/benchmarks.md, side by side in one run:

- ByteStream throughput between two processes (a writer filling 4 MiB chunks, a reader
  taking each one): ours, a pipe moving the same bytes (os.write / readinto), and the
  published vineyard 0.24.2 client on its own vineyardd;
- vineyard.io.read of a CSV and of a Parquet file into a pandas DataFrame (accumulate=True),
  against pyarrow reading the same file directly and converting it (to_pandas).

Every writer starts on a signal once its reader is ready; the time runs from the signal to
the reader's last byte. Run by `make bench` through bench/py_bench.py --cpp; alone:
python3 bench/stream_section.py [--quick].
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional

from peers.base import start_vineyardd, stop_vineyardd

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CHUNK = 4 << 20

WRITER = r"""
import sys, time
kind, where, total, chunk = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
data = b"\x5a" * chunk
if kind == "pipe":
    import os
    fd = int(where)
    sys.stdin.readline()
    n = 0
    while n < total:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        n += chunk
    os.close(fd)
else:
    import vineyard
    from vineyard.io.byte import ByteStream
    c = vineyard.connect(where)
    s = ByteStream.new(c)
    print(repr(s.id), flush=True)
    w = s.open_writer(c)
    sys.stdin.readline()
    n = 0
    while n < total:
        m = w.next(chunk)
        m[:] = data
        n += chunk
    w.finish()
"""

READER = r"""
import sys, time
kind, where, total, chunk = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
got = 0
if kind == "pipe":
    import os
    fd = int(where)
    buf = bytearray(chunk)
    view = memoryview(buf)
    print("ready", flush=True)
    while True:
        n = os.readv(fd, [view])
        if n == 0:
            break
        got += n
else:
    import vineyard
    c = vineyard.connect(where)
    stream = sys.stdin.readline().strip()
    s = c.get(vineyard.ObjectID(stream))
    r = s.open_reader(c)
    print("ready", flush=True)
    while True:
        try:
            m = r.next()
        except StopIteration:
            break
        got += len(m)
        del m
print(time.time(), got, flush=True)
"""


def _start(binary: str, size: str) -> tuple:
    """(process, socket, workdir) of a vineyardd for this section."""
    return start_vineyardd(binary, ["--size", size, "--meta=local", "--norpc"],
                           "vy-stream-bench-", settle=0.2)


def _env(pythonpath: Optional[str]) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VINEYARD_IPC_SOCKET")}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    return env


def one_transfer(kind: str, python: str, where: str, total: int,
                 pythonpath: Optional[str]) -> float:
    """Bytes per second from the writer's start signal to the reader's last byte."""
    env = _env(pythonpath)
    if kind == "pipe":
        r, w = os.pipe()
        writer = subprocess.Popen([python, "-c", WRITER, kind, str(w), str(total), str(CHUNK)],
                                  stdin=subprocess.PIPE, text=True, env=env, pass_fds=(w,))
        reader = subprocess.Popen([python, "-c", READER, kind, str(r), str(total), str(CHUNK)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                  env=env, pass_fds=(r,))
        os.close(r)
        os.close(w)
    else:
        writer = subprocess.Popen([python, "-c", WRITER, kind, where, str(total), str(CHUNK)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                  env=env)
        stream = writer.stdout.readline().strip()
        reader = subprocess.Popen([python, "-c", READER, kind, where, str(total), str(CHUNK)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                  env=env)
        reader.stdin.write(stream + "\n")
        reader.stdin.flush()
    assert reader.stdout.readline().strip() == "ready"
    start = time.time()
    writer.stdin.write("go\n")
    writer.stdin.flush()
    end, got = reader.stdout.readline().split()
    writer.wait(120)
    reader.wait(120)
    if int(got) != total:
        raise RuntimeError(f"{kind}: read {got} of {total} bytes")
    return total / (float(end) - start)


def streams(build_dir: str, quick: bool) -> Dict[str, Any]:
    sys.path.insert(0, HERE)
    import cluster_section

    total = (256 if quick else 2048) << 20
    size = "1Gi"
    rounds = 1 if quick else 3
    out: Dict[str, Any] = {"total": total, "rounds": rounds}
    best = lambda f: max(f() for _ in range(rounds))  # noqa: E731
    out["pipe"] = best(lambda: one_transfer("pipe", sys.executable, "", total, None))
    proc, sock, workdir = _start(os.path.join(build_dir, "vineyardd"), size)
    try:
        out["ours"] = best(lambda: one_transfer("vineyard", sys.executable, sock, total,
                                                os.path.join(ROOT, "python")))
    finally:
        stop_vineyardd(proc, workdir)
    published = cluster_section.published_binary(build_dir)
    python = os.path.join(build_dir, "venv-compat", "bin", "python")
    if published and os.path.exists(python):
        proc, sock, workdir = _start(published, size)
        try:
            out["published"] = best(lambda: one_transfer("vineyard", python, sock, total, None))
        except Exception as e:  # noqa: BLE001
            out["published"] = f"failed: {e}"
        finally:
            stop_vineyardd(proc, workdir)
    else:
        out["published"] = "build/venv-compat is missing (make compat-venv)"
    return out


# Reads are best-of-N on each side: one read's time varies by half between runs here
# (where the allocators' freed memory went in between); a Parquet read is short.
REPEATS = {"csv": 3, "parquet": 5}


def io_read(build_dir: str, quick: bool) -> Dict[str, Any]:
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    sys.path.insert(0, os.path.join(ROOT, "python"))
    import vineyard
    import vineyard.io

    target = (64 if quick else 1024) << 20
    workdir = tempfile.mkdtemp(prefix="vy-io-bench-")
    rows = target // 40  # ~40 bytes of CSV per row
    rng = np.random.default_rng(1)
    table = pa.table({"id": np.arange(rows), "x": rng.random(rows), "y": rng.random(rows),
                      "k": rng.integers(0, 1000, rows)})
    paths = {"csv": os.path.join(workdir, "t.csv"), "parquet": os.path.join(workdir, "t.parquet")}
    pacsv.write_csv(table, paths["csv"])
    pq.write_table(table, paths["parquet"], row_group_size=max(1, rows // 16))
    del table
    out: Dict[str, Any] = {"files": {k: os.path.getsize(p) for k, p in paths.items()}, "rows": rows}
    proc, sock, sdir = _start(os.path.join(build_dir, "vineyardd"), "6Gi" if not quick else "1Gi")

    def timed_read(path: str, workers: int, n: int) -> float:
        t0 = time.perf_counter()
        got = vineyard.io.read(path, vineyard_ipc_socket=sock, accumulate=True,
                               num_workers=workers)
        seconds = time.perf_counter() - t0
        if len(got) != n:
            raise RuntimeError(f"{path}: {len(got)} rows, expected {n}")
        del got
        vineyard.connect(sock).clear()
        return seconds

    try:
        # The first read of a process starts its worker (an interpreter and the imports);
        # later reads take it from the pool.
        out["parquet_cold"] = timed_read(paths["parquet"], 1, rows)
        for kind, path in paths.items():
            direct = pacsv.read_csv if kind == "csv" else pq.read_table

            def alone() -> float:
                t0 = time.perf_counter()
                df = direct(path).to_pandas()
                seconds = time.perf_counter() - t0
                del df
                return seconds

            # Interleaved, so that each side meets the same state of the machine.
            runs: Dict[str, List[float]] = {"pyarrow": [], "ours_1": [], "ours_2": []}
            for _ in range(REPEATS[kind]):
                runs["pyarrow"].append(alone())
                for workers in (1, 2):
                    runs[f"ours_{workers}"].append(timed_read(path, workers, rows))
            for side, seconds in runs.items():
                out[f"{kind}_{side}"] = min(seconds)
    finally:
        stop_vineyardd(proc, sdir)
        import shutil
        shutil.rmtree(workdir, ignore_errors=True)
    return out


def measure(build_dir: str, quick: bool) -> Dict[str, Any]:
    build_dir = os.path.abspath(build_dir)
    return {"streams": streams(build_dir, quick), "io": io_read(build_dir, quick), "quick": quick}


def render(d: Dict[str, Any]) -> str:
    s, io = d["streams"], d["io"]
    gib = lambda v: f"{v / 2**30:.2f} GiB/s" if isinstance(v, float) else str(v)  # noqa: E731
    L = ["## Streams and I/O\n",
         f"ByteStream between two processes: {s['total'] >> 20} MiB in 4 MiB chunks, best of "
         f"{s['rounds']}; the writer fills each chunk, the reader takes it (a read-only view "
         "for a stream, `readv` into its buffer for the pipe). Stores of 1 GiB.\n",
         "| transport | throughput | vs pipe |", "|---|---:|---:|"]
    for name, label in (("ours", "ours (ByteStream)"), ("pipe", "pipe"),
                        ("published", "published 0.24.2 (ByteStream, its vineyardd)")):
        v = s.get(name)
        ratio = f"{v / s['pipe']:.2f}x" if isinstance(v, float) else ""
        L.append(f"| {label} | {gib(v)} | {ratio} |")
    L += ["", f"`vineyard.io.read(path, accumulate=True)` into a pandas DataFrame against "
          f"pyarrow reading the same file and `to_pandas()` ({io['rows']:,} rows; CSV "
          f"{io['files']['csv'] / 2**20:.0f} MiB, Parquet {io['files']['parquet'] / 2**20:.0f} "
          "MiB; the page cache warm for both; best of "
          f"{REPEATS['csv']} (CSV) and {REPEATS['parquet']} (Parquet) runs of each, "
          "interleaved, the workers already started):\n",
          "| file | pyarrow alone | ours, 1 worker | ours, 2 workers | best ratio |",
          "|---|---:|---:|---:|---:|"]
    for kind in ("csv", "parquet"):
        base = io[f"{kind}_pyarrow"]
        one, two = io[f"{kind}_ours_1"], io[f"{kind}_ours_2"]
        L.append(f"| {kind} | {base:.2f} s | {one:.2f} s | {two:.2f} s | "
                 f"{min(one, two) / base:.2f}x |")
    if "parquet_cold" in io:
        L += ["", f"The first read of a process also starts its worker (a Python interpreter and "
              f"its imports; workers then stay for later reads): the Parquet file with 1 worker "
              f"took {io['parquet_cold']:.2f} s as the first read."]
    L.append("")
    return "\n".join(L)


def run_and_render(build_dir: str, quick: bool = False) -> str:
    return render(measure(build_dir, quick))


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build"))
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    print(run_and_render(a.build_dir, a.quick))
