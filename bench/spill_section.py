"""The "spilling to disk" section of docs/benchmarks.md: how fast vineyardd writes
blobs out (--spill_path) and reads them back, against `dd` moving the same bytes to
and from the same directory in the same run, and what a get that must load costs.

- spill: 3x --size of 64 MiB objects, put in batches that stay under the upper mark
  (untimed) and spilled with `evict` (timed: the server writes, flushes with
  fdatasync and drops the written pages from the page cache);
- restore: the same objects loaded back with `load`, batch by batch (timed; each batch
  is spilled again, untimed, to make room for the next);
- dd: the same bytes (the objects' bytes, from /dev/shm) written to files of the spill
  files' size in the same directory with `conv=fdatasync` (timed), dropped from the
  page cache (`iflag=nocache count=0`, untimed), and read back (timed); dd takes its
  turn after each of vineyardd's batches, so both meet the disk in the same state;
- get latency: a get of a 64 MiB object that is on disk (the get loads it), against
  the same get when it is in memory.

Run by `make bench` through bench/py_bench.py --cpp; alone:
python3 bench/spill_section.py [--size 256Mi] [--dir DIR].
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List

from peers.base import start_vineyardd, stop_daemon

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "python"))

MiB = 1 << 20
OBJECT = 64 * MiB


def _parse_size(text: str) -> int:
    units = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "K": 10**3, "M": 10**6, "G": 10**9}
    for u in sorted(units, key=len, reverse=True):
        if text.endswith(u):
            return int(float(text[:-len(u)]) * units[u])
    return int(text)


def _dd(args: List[str]) -> None:
    subprocess.run(["dd", *args, "status=none"], check=True)


def measure(build_dir: str, quick: bool = False, size: str = "", where: str = "") -> Dict[str, Any]:
    import numpy as np
    import vineyard

    size = size or ("256Mi" if quick else "1Gi")
    limit = _parse_size(size)
    total = 3 * limit // OBJECT  # objects: 3x --size
    batch = max(1, int(0.7 * limit) // OBJECT)  # under the upper mark (0.8): no background spill
    file_objects = min(batch, 4)  # spill files hold up to 256 MiB: dd files of the same size
    workdir = tempfile.mkdtemp(prefix="vy-spill-bench-", dir=where or os.path.abspath(build_dir))
    spill = os.path.join(workdir, "spill")
    binary = os.path.join(os.path.abspath(build_dir), "vineyardd")
    out: Dict[str, Any] = {"size": size, "objects": total, "object_mib": OBJECT // MiB,
                           "batch": batch, "dir": workdir}
    base = np.frombuffer(np.random.default_rng(1).bytes(OBJECT), dtype=np.uint8).copy()

    def obj(i: int):
        a = base.copy()
        a[:8] = np.frombuffer(i.to_bytes(8, "little"), dtype=np.uint8)
        return a

    # dd's source: the objects' bytes, in memory (/dev/shm), one spill file's worth.
    src = tempfile.NamedTemporaryFile(dir="/dev/shm", prefix="vy-spill-src-", delete=False)
    for i in range(file_objects):
        src.write(obj(i).tobytes())
    src.close()
    dd_dir = os.path.join(workdir, "dd")
    os.makedirs(dd_dir)

    def dd_files(first: int, count: int) -> List[tuple]:
        """The dd files standing for objects [first, first + count): spill files' sizes."""
        return [(os.path.join(dd_dir, f"dd-{k}"), min(file_objects, first + count - k))
                for k in range(first, first + count, file_objects)]

    # vineyardd and dd take turns batch by batch, so that both meet the disk in the
    # same state (a virtual disk's write bursts, other work on the machine).
    proc, sock, _ = start_vineyardd(binary, ["--size", size, "--meta=local", "--norpc",
                                             f"--spill_path={spill}"], workdir=workdir,
                                    settle=0.1)
    try:
        c = vineyard.connect(sock)
        ids: List[Any] = []
        spill_s = dd_write_s = 0.0
        for first in range(0, total, batch):
            count = min(batch, total - first)
            group = [c.put(obj(i)) for i in range(first, first + count)]
            c.release_objects(group)
            t = time.perf_counter()
            c.evict(group)
            spill_s += time.perf_counter() - t
            ids += group
            t = time.perf_counter()
            for path, n in dd_files(first, count):
                _dd([f"if={src.name}", f"of={path}", "bs=64M", f"count={n}", "conv=fdatasync"])
            dd_write_s += time.perf_counter() - t
            for path, _ in dd_files(first, count):  # out of the page cache, untimed
                _dd([f"if={path}", "iflag=nocache", "count=0"])
        st = c.status.spill
        assert st.spilled_blobs == total, f"{st.spilled_blobs} of {total} spilled"
        load_s = dd_read_s = 0.0
        for first in range(0, total, batch):
            count = min(batch, total - first)
            group = ids[first:first + count]
            t = time.perf_counter()
            c.load(group)
            load_s += time.perf_counter() - t
            c.evict(group)
            t = time.perf_counter()
            for path, _ in dd_files(first, count):
                _dd([f"if={path}", "of=/dev/null", "bs=64M"])
            dd_read_s += time.perf_counter() - t
        nbytes = total * OBJECT
        out["spill_mib_s"] = nbytes / MiB / spill_s
        out["load_mib_s"] = nbytes / MiB / load_s
        out["dd_write_mib_s"] = nbytes / MiB / dd_write_s
        out["dd_read_mib_s"] = nbytes / MiB / dd_read_s
        # A get that must load, against one in memory (the same 64 MiB object).
        on_disk, in_memory = [], []
        oid = ids[0]
        for _ in range(5):
            c.evict([oid])
            t = time.perf_counter()
            v = c.get(oid)
            on_disk.append(time.perf_counter() - t)
            del v
            c.release_object(oid)
            t = time.perf_counter()
            v = c.get(oid)
            in_memory.append(time.perf_counter() - t)
            del v
            c.release_object(oid)
        out["get_loading_ms"] = sorted(on_disk)[len(on_disk) // 2] * 1e3
        out["get_in_memory_ms"] = sorted(in_memory)[len(in_memory) // 2] * 1e3
        c.close()
    finally:
        stop_daemon(proc, grace=30.0)
        os.unlink(src.name)
        shutil.rmtree(workdir, ignore_errors=True)
    return out


def measure_repeated(build_dir: str, quick: bool = False, size: str = "", where: str = "",
                     repeat: int = 3) -> Dict[str, Any]:
    """measure() `repeat` times (the disk is shared and its speed varies): the median of
    each figure, and every run's figures under "runs"."""
    runs = [measure(build_dir, quick, size, where) for _ in range(repeat)]
    out = dict(runs[0])
    for key in ("spill_mib_s", "load_mib_s", "dd_write_mib_s", "dd_read_mib_s",
                "get_loading_ms", "get_in_memory_ms"):
        vals = sorted(r[key] for r in runs)
        out[key] = vals[len(vals) // 2]
    out["runs"] = runs
    return out


def render(d: Dict[str, Any], command: str = "make bench (bench/py_bench.py --cpp)") -> str:
    L = ["## Spilling to disk: spill and restore against dd", ""]
    if "error" in d:
        L += [f"Did not run: `{d['error']}`", ""]
        return "\n".join(L)
    L.append(f"`bench/spill_section.py` ({command}): vineyardd `--size={d['size']}` "
             f"`--spill_path` on the build directory's file system; {d['objects']} objects of "
             f"{d['object_mib']} MiB (3x `--size`), spilled with `evict` and loaded back with "
             f"`load` in batches of {d['batch']}; `dd` moves the same bytes to and from files "
             f"of the spill files' size in the same directory, in the same run "
             f"(written with `conv=fdatasync`, dropped from the page cache with "
             f"`iflag=nocache count=0`, read back). "
             f"Medians of {len(d.get('runs', [d]))} runs, each with its own dd.")
    L.append("")
    L.append("| | vineyardd MiB/s | dd MiB/s | ratio |")
    L.append("|---|---|---|---|")
    L.append(f"| write (spill) | {d['spill_mib_s']:.0f} | {d['dd_write_mib_s']:.0f} | "
             f"{d['spill_mib_s'] / d['dd_write_mib_s']:.2f} |")
    L.append(f"| read (restore) | {d['load_mib_s']:.0f} | {d['dd_read_mib_s']:.0f} | "
             f"{d['load_mib_s'] / d['dd_read_mib_s']:.2f} |")
    L.append("")
    L.append(f"A get of a {d['object_mib']} MiB object on disk (it loads): "
             f"{d['get_loading_ms']:.1f} ms (median of 5); in memory: "
             f"{d['get_in_memory_ms']:.2f} ms.")
    L.append("")
    L.append("Target: at least 0.8x of dd each way.")
    L.append("")
    return "\n".join(L)


def run_and_render(build_dir: str, quick: bool = False) -> str:
    try:
        return render(measure_repeated(build_dir, quick))
    except Exception as e:  # noqa: BLE001 - the page says it did not run
        return render({"error": f"{type(e).__name__}: {e}"})


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", default="build")
    ap.add_argument("--quick", action="store_true", help="--size 256Mi")
    ap.add_argument("--size", default="", help="vineyardd --size (default 1Gi, quick 256Mi)")
    ap.add_argument("--repeat", type=int, default=3, help="runs (medians are shown)")
    ap.add_argument("--dir", default="", help="where the spill directory goes "
                    "(default: the build directory)")
    args = ap.parse_args()
    cmd = "python3 " + " ".join(sys.argv)
    d = measure_repeated(args.build_dir, args.quick, args.size, args.dir, args.repeat)
    for r in d["runs"]:
        print({k: round(v, 1) for k, v in r.items() if isinstance(v, float)}, file=sys.stderr)
    print(render(d, cmd))
