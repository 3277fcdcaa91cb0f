#!/usr/bin/env python3
"""Python benchmarks of our vineyard against its peers, side by side in one run.

    python3 bench/py_bench.py [--quick | --smoke] [--peers ours,ray,...] [--cpp]
                              [--build-dir build] [--output docs/benchmarks.md]

Installs each peer into its own virtual environment under the build directory (once),
starts one worker per peer (bench/worker.py, in that environment), then runs every
scenario with the repetitions interleaved: repetition r runs each system in turn, the
order rotated by r. Tables give the median over repetitions and the spread (min..max).
With --cpp it also runs the C++ benchmark (bench/run_bench.py) and puts its tables in the
same page. --smoke runs the smallest case of everything once and writes no page.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import report  # noqa: E402

MIB, GIB = 1 << 20, 1 << 30

# -- environments ------------------------------------------------------------------------

# venv name -> (pip requirements, see the system's site-packages); a marker file holding
# the requirements makes a second run skip the install.
VENVS = {
    "bench": (["matplotlib"], True),
    "compat": (["vineyard==0.24.2", "numpy<2", "pandas<2.2", "pyarrow<16", "pytest"], False),
    # (torch: the torch section's Ray column; the local CPU build, as in the Makefile)
    "ray": (["ray==2.60.0", "numpy", "pandas<3", "pyarrow", "torch==2.13.0"], False),
    "plasma": (["pyarrow==11.0.0", "numpy<2", "pandas<2.2"], False),
}
# peer -> the venv it runs in
PEER_VENV = {"ours": "bench", "baseline": "bench", "published": "compat", "ray": "ray",
             "plasma": "plasma", "shm": "bench", "pickle": "bench"}
# peers that run only some scenarios (the others run all); the baseline server is there to
# compare the concurrency models, on latency (s1) and concurrent clients (s7)
PEER_SCENARIOS = {"baseline": {"s1", "s7"}}


def venv_dir(build: str, name: str) -> str:
    return os.path.join(build, f"venv-{name}")


def ensure_venv(build: str, name: str) -> Optional[str]:
    """Create and fill the venv unless done already; None, or why it could not be made."""
    reqs, system_site = VENVS[name]
    path = venv_dir(build, name)
    marker = os.path.join(path, ".bench-done")
    spec = "\n".join(reqs)
    if name == "compat" and os.path.exists(os.path.join(path, ".done")):
        return None  # made by `make compat-venv` with the same requirements
    if os.path.exists(marker) and open(marker).read() == spec:
        return None
    print(f"installing {name}: {' '.join(reqs)} into {path}", flush=True)
    cmd = [sys.executable, "-m", "venv"] + (["--system-site-packages"] if system_site else [])
    subprocess.check_call(cmd + [path])
    pip = subprocess.run([os.path.join(path, "bin", "pip"), "install", "-q", *reqs],
                         capture_output=True, text=True)
    if pip.returncode != 0:
        lines = [ln for ln in pip.stderr.splitlines() if ln.startswith("ERROR")]
        return (lines or pip.stderr.splitlines() or ["pip failed"])[-1]
    with open(marker, "w") as f:
        f.write(spec)
    return None


# -- workers -------------------------------------------------------------------------------

class WorkerProc:
    """A bench/worker.py process for one peer; call() sends a command, waits for its reply."""

    def __init__(self, peer: str, python: str, env: Dict[str, str], log: str) -> None:
        self.peer = peer
        self.proc = subprocess.Popen(
            [python, os.path.join(HERE, "worker.py"), peer], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=open(log, "ab"), env=env, text=True,
            start_new_session=True)
        self.replies: "queue.Queue[str]" = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.replies.put(line)
        self.replies.put("")

    def call(self, timeout: float, **cmd: Any) -> Dict[str, Any]:
        try:
            self.proc.stdin.write(json.dumps(cmd) + "\n")
            self.proc.stdin.flush()
            line = self.replies.get(timeout=timeout)
        except (BrokenPipeError, queue.Empty):
            self.kill()
            return {"error": f"no answer within {timeout:.0f} s", "timeout": timeout}
        if not line:
            return {"error": "the worker exited (see its log)"}
        return json.loads(line)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """Ends the worker and everything it started (its own process group, and the
        daemons it started in groups of their own are ended by its stop or by the OS)."""
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


class Peers:
    """The running workers; restarts one that had to be killed (a call that timed out)."""

    def __init__(self, names: List[str], build: str, vineyardd: str, pythonpath: str,
                 workdir: str, store_size: int, baseline: str = "") -> None:
        self.build, self.workdir, self.store_size = build, workdir, store_size
        self.env = dict(os.environ, BENCH_VINEYARDD=vineyardd, PYTHONPATH=pythonpath,
                        BENCH_BASELINE_VINEYARDD=baseline)
        self.workers: Dict[str, WorkerProc] = {}
        self.versions: Dict[str, str] = {}
        self.infos: Dict[str, Dict[str, Any]] = {}
        self.failed: Dict[str, str] = {}
        for name in names:
            self.spawn(name)

    def spawn(self, name: str) -> None:
        env = dict(self.env)
        if name not in ("ours", "baseline"):  # both use our Python package
            env.pop("PYTHONPATH")
        python = os.path.join(venv_dir(self.build, PEER_VENV[name]), "bin", "python")
        wd = os.path.join(self.workdir, name)
        shutil.rmtree(wd, ignore_errors=True)
        w = WorkerProc(name, python, env, os.path.join(self.workdir, f"{name}.log"))
        reply = w.call(180, op="start", workdir=wd, size=self.store_size)
        if "error" in reply:
            self.failed[name] = reply["error"].strip().splitlines()[-1]
            w.kill()
            return
        self.workers[name] = w
        self.versions[name] = reply["version"]
        self.infos[name] = reply["info"]

    def call(self, name: str, timeout: float, **cmd: Any) -> Dict[str, Any]:
        reply = self.workers[name].call(timeout, **cmd)
        if "timeout" in reply:
            self.spawn(name)  # fresh worker and daemon for the next scenarios
        return reply

    def restart(self, name: str) -> None:
        """A fresh daemon for the peer (a clean baseline for memory measurements)."""
        reply = self.workers[name].call(180, op="restart")
        if "error" in reply:
            self.workers.pop(name).kill()
            self.failed[name] = reply["error"].strip().splitlines()[-1]
            return
        self.infos[name] = reply["info"]

    def names(self, scenario: str = "") -> List[str]:
        """The running peers (that take part in ``scenario``, when given)."""
        return [n for n in self.workers
                if not scenario or scenario in PEER_SCENARIOS.get(n, {scenario})]

    def stop(self) -> None:
        for w in self.workers.values():
            w.call(60, op="stop")
            w.kill()


# -- the plan --------------------------------------------------------------------------------

def plan(mode: str) -> Dict[str, Dict[str, Any]]:
    """Scenario -> parameters and repetitions for full, quick and smoke runs."""
    full, quick, smoke = mode == "full", mode == "quick", mode == "smoke"
    pick = (lambda f, q, s: f if full else q if quick else s)
    return {
        "s1": {"reps": pick(5, 3, 1), "iterations": pick(1000, 300, 20), "warmup": pick(100, 50, 2)},
        "s2": {"reps": pick(5, 3, 1), "bytes": pick(GIB, 256 * MIB, 8 * MIB)},
        "s3": {"reps": pick(3, 2, 1), "rows": pick(1_000_000, 200_000, 1000)},
        # vineyard 0.24.2 takes minutes for 10,000 chunks: it gets a minute, then gives up
        "s4": {"reps": pick(3, 2, 1), "chunks": pick(10_000, 1000, 100), "timeout": 60},
        "s5": {"reps": pick(5, 3, 1), "iterations": pick(1000, 500, 20)},
        "s6": {"reps": pick(3, 2, 1), "bytes": pick(64 * MIB, 64 * MIB, 4 * MIB),
               "count": pick(100, 20, 4), "window": 4},
        "s7": {"reps": pick(3, 2, 1), "clients": pick(8, 8, 2), "seconds": pick(2.0, 1.0, 0.2)},
        "s8": {"reps": 1, "objects": pick(100_000, 10_000, 100), "fresh_server": True},
    }


def settings(mode: str) -> Dict[str, Any]:
    full = mode == "full"
    return {
        "store_size": {"full": 4 * GIB, "quick": 2 * GIB, "smoke": 256 * MIB}[mode],
        # one repetition only for a system slower than this; a call longer than the
        # timeout is abandoned (the worker killed and restarted)
        "slow_s": 30.0 if full else 10.0,
        "timeout_s": 240.0 if full else 60.0,
        # the round-trip counts: value kind -> size
        "round_trips": {"small": 0, "array": GIB if full else 256 * MIB,
                        "dataframe": 1_000_000 if full else 200_000,
                        "table": 10_000 if full else 1000} if mode != "smoke" else
                       {"small": 0, "array": 8 * MIB, "dataframe": 1000, "table": 100},
    }


def run_scenarios(peers: Peers, scenarios: Dict[str, Dict[str, Any]],
                  cfg: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    """scenario -> system -> list of per-repetition results (or unsupported / error)."""
    results: Dict[str, Dict[str, Any]] = {}
    for key, params in scenarios.items():
        params = dict(params)
        reps = params.pop("reps")
        timeout = params.pop("timeout", cfg["timeout_s"])
        if params.pop("fresh_server", False):
            for name in peers.names(key):
                peers.restart(name)
        out: Dict[str, Any] = {name: [] for name in peers.names(key)}
        # scenario 2's memcpy reference runs in a worker of the bench venv
        memcpy_host = next((n for n in ("ours", "shm", "pickle") if n in peers.workers), None)
        if key == "s2" and memcpy_host:
            out["memcpy"] = []
        skip: Dict[str, Any] = {}
        print(f"{key}: {params}", flush=True)
        for rep in range(reps):
            order = list(out)
            order = order[rep % len(order):] + order[:rep % len(order)]
            for name in order:
                if name in skip:
                    continue
                t0 = time.time()
                if name == "memcpy":
                    reply = peers.call(memcpy_host, cfg["timeout_s"], op="memcpy", params=params)
                else:
                    reply = peers.call(name, timeout, op="run", scenario=key,
                                       params=params)
                took = time.time() - t0
                if "unsupported" in reply or "error" in reply:
                    skip[name] = reply
                    print(f"  {name}: {reply}", flush=True)
                    continue
                out[name].append(reply)
                if took > cfg["slow_s"] and rep == 0:
                    skip[name] = None  # keep its one repetition
                    print(f"  {name}: {took:.0f} s, one repetition only", flush=True)
        for name in peers.names(key):
            peers.call(name, 60, op="forget")
        for name, why in skip.items():
            if why is not None:
                out[name] = why
        results[key] = out
    return results


def count_one(peers: Peers, proxy: Any, name: str, kind: str, size: int,
              timeout: float) -> Dict[str, Any]:
    """Requests sent by one put and one get of ``kind`` through ``proxy``."""
    row: Dict[str, Any] = {"size": size}
    for phase in ("put", "get"):
        before = proxy.snapshot()
        reply = peers.call(name, timeout, op=phase, kind=kind, size=size)
        if "error" in reply:
            row.update({phase: None, "error": reply["error"].strip().splitlines()[-1],
                        "timeout": "timeout" in reply})
            return row
        delta = proxy.snapshot() - before
        row[phase] = sum(delta.values())
        row[phase + "_types"] = dict(delta)
    peers.call(name, timeout, op="drop", kind=kind)
    return row


def count_round_trips(peers: Peers, kinds: Dict[str, int], workdir: str,
                      timeout: float) -> Dict[str, Dict[str, Any]]:
    """system -> kind -> {"put": n, "get": n, ...}, through a counting proxy; a value
    that takes longer than ``timeout`` is counted at a tenth of its size instead."""
    from rt_proxy import CountingProxy
    counts: Dict[str, Dict[str, Any]] = {}
    for name in ("ours", "published"):
        if name not in peers.workers:
            continue
        proxy = CountingProxy(os.path.join(workdir, f"{name}-proxy.sock"),
                              peers.infos[name]["socket"])
        peers.call(name, 60, op="attach", socket=proxy.server.getsockname())
        counts[name] = {}
        for kind, size in kinds.items():
            row = count_one(peers, proxy, name, kind, size, timeout)
            if row.get("timeout") and size >= 10:
                # too slow for this size: count a tenth of it (the page says so)
                proxy = CountingProxy(os.path.join(workdir, f"{name}-proxy.sock"),
                                      peers.infos[name]["socket"])
                peers.call(name, 60, op="attach", socket=proxy.server.getsockname())
                row = dict(count_one(peers, proxy, name, kind, size // 10, timeout),
                           gave_up_at=size)
            counts[name][kind] = row
            print(f"  round trips {name} {kind}: {row.get('put')} / {row.get('get')}",
                  flush=True)
    return counts


# -- the machine -------------------------------------------------------------------------------

def machine() -> Dict[str, Any]:
    def read(path: str) -> str:
        try:
            return open(path).read()
        except OSError:
            return ""
    cpu = next((ln.split(":", 1)[1].strip() for ln in read("/proc/cpuinfo").splitlines()
                if ln.startswith("model name")), platform.processor())
    mem = next((int(ln.split()[1]) * 1024 / GIB for ln in read("/proc/meminfo").splitlines()
                if ln.startswith("MemTotal:")), 0.0)
    u = platform.uname()
    return {"cpu": cpu, "cores": os.cpu_count(), "mem_gib": mem,
            "kernel": f"{u.system} {u.release} ({u.machine})",
            "python": platform.python_version(),
            "load": read("/proc/loadavg").split()[:3]}


def git_commit() -> str:
    try:
        return subprocess.check_output(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                                       text=True).strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


# -- main --------------------------------------------------------------------------------------

def _section(title: str, module: Any, build: str, quick: bool) -> str:
    """One section's page; a section that fails says so on the page instead of ending
    the run (the other sections' figures are kept)."""
    try:
        return module.run_and_render(build, quick)
    except Exception as e:  # noqa: BLE001 - reported on the page and on stderr
        import traceback

        traceback.print_exc()
        return f"## {title}\n\nDid not run: {type(e).__name__}: {e}\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", default="build")
    ap.add_argument("--output", default="docs/benchmarks.md")
    ap.add_argument("--images", default="docs/img")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="reduced sizes, under 5 minutes")
    mode.add_argument("--smoke", action="store_true",
                      help="smallest case once, no page (make test runs this)")
    ap.add_argument("--peers", default="ours,published,ray,plasma,shm,pickle",
                    help="with --baseline, the baseline peer is added")
    ap.add_argument("--scenarios", default="s1,s2,s3,s4,s5,s6,s7,s8,c1000",
                    help="c1000: the 1,000 concurrent clients of build/many_clients_bench")
    ap.add_argument("--baseline", help="the thread-per-connection vineyardd "
                    "(build/baseline/vineyardd, made by `make baseline`): run in scenarios "
                    "1, 7 and c1000 next to ours, with our client")
    ap.add_argument("--cpp", action="store_true",
                    help="also run the C++ benchmark (build/blob_bench) into the page")
    ap.add_argument("--json", help="keep the raw results here (default: "
                    "<build-dir>/bench-results.json)")
    ap.add_argument("--vineyardd", help="our server (default: <build-dir>/vineyardd)")
    ap.add_argument("--pythonpath", default=os.path.join(ROOT, "python"),
                    help="where our vineyard package is (default: python/)")
    args = ap.parse_args()
    mode_name = "smoke" if args.smoke else "quick" if args.quick else "full"
    build = os.path.abspath(args.build_dir)
    start = time.time()
    cfg = settings(mode_name)

    vineyardd = os.path.abspath(args.vineyardd or os.path.join(build, "vineyardd"))
    if not os.access(vineyardd, os.X_OK):
        sys.exit(f"{vineyardd} not found: run `make build` first")

    wanted = args.peers.split(",")
    baseline = ""
    if args.baseline:
        baseline = os.path.abspath(args.baseline)
        if not os.access(baseline, os.X_OK):
            sys.exit(f"{baseline} not found: run `make baseline` first")
        if "baseline" not in wanted:
            wanted.insert(wanted.index("ours") + 1 if "ours" in wanted else 0, "baseline")
    unavailable: Dict[str, str] = {}
    for name in ["bench"] + sorted({PEER_VENV[p] for p in wanted} - {"bench"}):
        why = ensure_venv(build, name)
        if why:
            for p in wanted:
                if PEER_VENV[p] == name:
                    unavailable[p] = f"did not install: {why}"
    for p, why in unavailable.items():
        print(f"{p}: {why}", flush=True)

    cpp_page = rpc_page = cluster_page = server_page = stream_page = spill_page = None
    llm_page = None  # the LLM KV cache section (bench/llm_section.py)
    torch_page = None  # torch tensors between processes (bench/torch_section.py)
    dask_page = None  # Dask over vineyard (bench/dask_section.py)
    if args.cpp:
        import cluster_section
        import rpc_section
        import run_bench
        import server_section
        import stream_section
        cpp_page = run_bench.run_and_render(build, args.quick)
        rpc_page = _section("RPC", rpc_section, build, args.quick)
        cluster_page = _section("Cluster", cluster_section, build, args.quick)
        server_page = _section("Server under load", server_section, build, args.quick)
        stream_page = _section("Streams and I/O", stream_section, build, args.quick)
        import spill_section
        spill_page = _section("Spilling to disk", spill_section, build, args.quick)
        import llm_section
        llm_page = _section("LLM KV cache", llm_section, build, args.quick)
        import torch_section
        torch_page = _section("torch tensors", torch_section, build, args.quick)
        import dask_section
        dask_page = _section("Dask over vineyard", dask_section, build, args.quick)
    many = None
    if "c1000" in args.scenarios.split(","):
        # alone on the machine, before the peers' daemons start
        import many_clients
        servers = {"ours": vineyardd, **({"baseline": baseline} if baseline else {})}
        print(f"c1000: {many_clients.PLAN[mode_name]}", flush=True)
        many = many_clients.measure(build, servers, mode_name)

    workdir = tempfile.mkdtemp(prefix="vy-bench-")
    scenarios = {k: v for k, v in plan(mode_name).items() if k in args.scenarios.split(",")}
    peers = Peers([p for p in wanted if p not in unavailable], build, vineyardd,
                  os.path.abspath(args.pythonpath), workdir, cfg["store_size"], baseline)
    try:
        unavailable.update({p: f"did not start: {why}" for p, why in peers.failed.items()})
        results = run_scenarios(peers, scenarios, cfg)
        round_trips = count_round_trips(peers, cfg["round_trips"], workdir, 60.0)
    finally:
        peers.stop()
    ok = not any(isinstance(r, dict) and "error" in r
                 for per in results.values() for r in per.values())
    data = {
        "mode": mode_name, "machine": machine(), "commit": git_commit(),
        "versions": peers.versions, "unavailable": unavailable, "plan": scenarios,
        "results": results, "round_trips": round_trips, "store_size": cfg["store_size"],
        "command": "make bench" + (" QUICK=1" if args.quick else "") + "  (python3 "
                   + " ".join(shlex.quote(a) for a in sys.argv) + ")",
        "wall_s": time.time() - start, "many_clients": many,
    }
    with open(args.json or os.path.join(build, "bench-results.json"), "w") as f:
        json.dump(data, f, indent=1)
    if args.smoke:
        errors = {k: {n: r for n, r in per.items() if isinstance(r, dict) and "error" in r}
                  for k, per in results.items()}
        errors = {k: v for k, v in errors.items() if v}
        if many is not None:
            import many_clients
            errors.update({"c1000": e} if (e := many_clients.failures(many)) else {})
        if errors or unavailable.keys() & {"ours"}:
            sys.exit(f"smoke run failed: {json.dumps(errors, indent=1)} {unavailable}")
        print(f"smoke run passed ({len(scenarios) + (many is not None)} scenarios x "
              f"{len(peers.versions)} systems, "
              f"{time.time() - start:.0f} s)")
        shutil.rmtree(workdir, ignore_errors=True)
        return

    data["images"] = report.plot(data, args.images,
                                 os.path.join(venv_dir(build, "bench"), "bin", "python"),
                                 os.path.dirname(os.path.abspath(args.output)))
    data["wall_s"] = time.time() - start
    text = report.render(data, cpp_page, rpc_page, cluster_page, server_page, stream_page,
                         spill_page)
    if llm_page:
        text += "\n" + llm_page
    if torch_page:
        text += "\n" + torch_page
    if dask_page:
        text += "\n" + dask_page
    with open(args.output, "w") as f:
        f.write(text)
    shutil.rmtree(workdir, ignore_errors=True)
    print(f"wrote {args.output} ({data['wall_s']:.0f} s)" + ("" if ok else "; some runs failed"))


if __name__ == "__main__":
    main()
