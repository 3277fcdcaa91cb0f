"""The "torch" section of docs/benchmarks.md: a torch tensor (1 KiB, 1 MiB, 256 MiB) and the
state dict of a ~100 MB model handed from one process to another, in one run:

- ours: ``put`` here, ``get`` in a reader process (a tensor over the mapped blob);
- torch.save / torch.load through shared memory: a file in /dev/shm written here,
  ``torch.load`` in the same kind of reader process (its bytes copied into new tensors);
- Ray's object store, when the bench's Ray environment (build/venv-ray, made by
  bench/py_bench.py) has torch: ``ray.put`` in a driver, ``ray.get`` in an actor.

Each figure is the median of the runs. Run by `make bench` through bench/py_bench.py
--cpp; alone: python3 bench/torch_section.py [--quick].
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict

from peers.base import stop_vineyardd
from stream_section import _env, _start

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

READER = r"""
import json, sys, time
import torch
kind, where, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
if kind == "ours":
    import vineyard
    from vineyard.contrib.ml.torch import torch_context
    c = vineyard.connect(where)
    torch_context().__enter__()  # Tensors as torch, state dicts as dicts
times = []
for line in sys.stdin:
    key = line.strip()
    start = time.perf_counter()
    if kind == "ours":
        value = c.get(vineyard.ObjectID(key))
    else:
        value = torch.load(key, weights_only=True)
    times.append(time.perf_counter() - start)
    del value
    print("done", flush=True)
print(json.dumps(times), flush=True)
"""


def _model(nbytes: int) -> Dict[str, Any]:
    """The state dict of a stack of square linear layers of about ``nbytes``."""
    import torch

    width = 1024
    layers = max(1, nbytes // (width * width * 4))
    model = torch.nn.Sequential(*[torch.nn.Linear(width, width) for _ in range(layers)])
    return model.state_dict()


def make_values(quick: bool) -> Dict[str, Any]:
    import torch

    big = (32 if quick else 256) << 20
    model = (16 if quick else 100) << 20
    return {"1 KiB": torch.randn(256), "1 MiB": torch.randn(256 << 10),
            f"{big >> 20} MiB": torch.randn(big // 4),
            f"state dict ({model >> 20} MiB)": _model(model)}


def _runs(quick: bool) -> int:
    return 3 if quick else 7


def ray_child(quick: bool) -> None:
    """In the Ray environment: put each value in this driver, get it in an actor; prints
    {label: {"put": s, "get": s}}."""
    import ray

    values = make_values(quick)
    workdir = tempfile.mkdtemp(prefix="vy-torch-ray-")
    ray.init(num_cpus=2, object_store_memory=(1 if quick else 2) << 30,
             include_dashboard=False, log_to_driver=False, _temp_dir=workdir,
             configure_logging=False)
    try:
        @ray.remote
        class Reader:
            def get(self, box: Any) -> float:
                start = time.perf_counter()
                value = ray.get(box[0])
                seconds = time.perf_counter() - start
                del value
                return seconds

        reader = Reader.remote()
        results = {}
        for label, value in values.items():
            put, get = [], []
            for _ in range(_runs(quick)):
                start = time.perf_counter()
                ref = ray.put(value)
                put.append(time.perf_counter() - start)
                get.append(ray.get(reader.get.remote([ref])))
                del ref
            results[label] = {"put": statistics.median(put), "get": statistics.median(get)}
        print(json.dumps({"version": ray.__version__, "results": results}), flush=True)
    finally:
        ray.shutdown()
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)


def measure_ray(build_dir: str, quick: bool) -> Dict[str, Any]:
    """Ray's figures, or {"skipped": why}."""
    python = os.path.join(build_dir, "venv-ray", "bin", "python")
    if not os.path.exists(python):
        return {"skipped": "no Ray environment (build/venv-ray: run `make bench` once)"}
    check = subprocess.run([python, "-c", "import ray, torch"], capture_output=True, text=True)
    if check.returncode != 0:
        return {"skipped": "the Ray environment has no torch: " +
                (check.stderr.strip().splitlines() or ["import failed"])[-1]}
    out = subprocess.run([python, os.path.abspath(__file__), "--ray-child"] +
                         (["--quick"] if quick else []), capture_output=True, text=True,
                         timeout=1200, env=_env(None))
    if out.returncode != 0:
        return {"skipped": "the Ray run failed: " + (out.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(build_dir: str, quick: bool = False) -> Dict[str, Any]:
    if os.path.join(ROOT, "python") not in sys.path:
        sys.path.insert(0, os.path.join(ROOT, "python"))
    import torch

    from vineyard.contrib.ml.torch import torch_context
    import vineyard

    runs = _runs(quick)
    values = make_values(quick)
    proc, sock, workdir = _start(os.path.join(build_dir, "vineyardd"),
                                 "1Gi" if quick else "2Gi")
    shm = tempfile.mkdtemp(prefix="vy-torch-bench-", dir="/dev/shm")
    env = _env(os.path.join(ROOT, "python"))
    results: Dict[str, Any] = {}
    try:
        client = vineyard.connect(sock)
        readers = {kind: subprocess.Popen(
            [sys.executable, "-c", READER, kind, sock, str(runs)], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True, env=env) for kind in ("ours", "torch.save")}
        for label, value in values.items():
            put, save = [], []
            for i in range(runs):
                start = time.perf_counter()
                with torch_context():  # (for the state dict; tensors need no context)
                    oid = client.put(value)
                put.append(time.perf_counter() - start)
                readers["ours"].stdin.write(repr(oid) + "\n")
                readers["ours"].stdin.flush()
                readers["ours"].stdout.readline()
                client.delete(oid, deep=True)

                path = os.path.join(shm, f"{i}.pt")
                start = time.perf_counter()
                torch.save(value, path)
                save.append(time.perf_counter() - start)
                readers["torch.save"].stdin.write(path + "\n")
                readers["torch.save"].stdin.flush()
                readers["torch.save"].stdout.readline()
                os.unlink(path)
            results[label] = {"put": statistics.median(put), "save": statistics.median(save)}
        for kind, reader in readers.items():
            reader.stdin.close()
            times = json.loads(reader.stdout.readline())
            reader.wait(60)
            for n, label in enumerate(values):
                results[label]["get" if kind == "ours" else "load"] = \
                    statistics.median(times[n * runs:(n + 1) * runs])
        client.close()
    finally:
        stop_vineyardd(proc, workdir)
        import shutil

        shutil.rmtree(shm, ignore_errors=True)
    del values
    return {"quick": quick, "runs": runs, "results": results,
            "ray": measure_ray(build_dir, quick)}


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3f}" if seconds < 0.01 else f"{seconds * 1e3:.1f}"


def render(data: Dict[str, Any]) -> str:
    ray = data["ray"]
    has_ray = "results" in ray
    lines = [
        "## torch tensors between processes",
        "",
        "A tensor (or a model's state dict) made in one process and read in another: ours "
        "puts it and the reader gets a tensor over the shared blob (`torch_context()`); "
        "torch.save writes a file in /dev/shm and the reader's torch.load copies it into "
        "new tensors%s. Median of %d runs, in ms%s." % (
            f"; Ray {ray['version']}: ray.put in the driver, ray.get in an actor"
            if has_ray else "", data["runs"],
            " (quick: smaller sizes)" if data["quick"] else ""),
        "",
        "| value | ours put | ours get | ours total | torch.save | torch.load | torch total |"
        + (" Ray put | Ray get | Ray total |" if has_ray else ""),
        "|---|---:|---:|---:|---:|---:|---:|" + ("---:|---:|---:|" if has_ray else ""),
    ]
    for label, r in data["results"].items():
        row = (f"| {label} | {_ms(r['put'])} | {_ms(r['get'])} | "
               f"{_ms(r['put'] + r['get'])} | {_ms(r['save'])} | {_ms(r['load'])} | "
               f"{_ms(r['save'] + r['load'])} |")
        if has_ray:
            x = ray["results"][label]
            row += f" {_ms(x['put'])} | {_ms(x['get'])} | {_ms(x['put'] + x['get'])} |"
        lines.append(row)
    if not has_ray:
        lines += ["", f"Ray is not in this table: {ray['skipped']}."]
    lines.append("")
    return "\n".join(lines)


def run_and_render(build_dir: str, quick: bool = False) -> str:
    return render(measure(build_dir, quick))


if __name__ == "__main__":
    import argparse

    sys.path.insert(0, os.path.join(ROOT, "python"))
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build"))
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--ray-child", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.ray_child:
        ray_child(a.quick)
    else:
        print(run_and_render(a.build_dir, a.quick))
