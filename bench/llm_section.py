"""The "LLM KV cache" section of docs/benchmarks.md: vineyard.llm (ours, on our
vineyardd) against the published vineyard-llm 0.24.2 (on the published vineyardd
0.24.2) in the same run, on a realistic shape: 32 layers, 8 KiB per K and per V
per token per layer (512 KiB per token), prompts of 1k-8k tokens in pairs sharing
their first half.

Per prompt length: update tokens/s (a new prompt; the second of a pair, whose
first half is cached), query tokens/s into caller buffers against a memcpy
(numpy.copyto, one thread) of the same bytes, a zero-copy query, and the latency
of a lookup against the prefix length. bench/llm_worker.py runs each side.

Run by `make bench` through bench/py_bench.py --cpp; alone:
  python3 bench/llm_section.py [--quick]   (quick: 8 layers, prompts of 256-1024)
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from typing import Any, Dict, Optional

from peers.base import start_vineyardd, stop_vineyardd

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# Memory: the server reserves `size`; the worker holds two buffers of the
# largest prompt (4 GiB each at 8k tokens of 512 KiB). The cache holds
# `capacity` tokens (5 GiB in full) and evicts beyond.
FULL = {"layers": 32, "prompts": "1024,2048,4096,8192", "size": "6Gi", "capacity": 10240}
QUICK = {"layers": 8, "prompts": "256,512,1024", "size": "2Gi", "capacity": 65536}


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_free(port: int) -> bool:
    import socket
    with socket.socket() as s:
        try:
            s.bind(("0.0.0.0", port))
            return True
        except OSError:
            return False


def _start(binary: str, size: str, etcd: str, rpc_port: int = 0):
    """A server with etcd metadata: the published module's shared-memory backend
    takes a lock that the published vineyardd only serves with etcd (and reaches
    the server's RPC endpoint, which it finds only on the default port 9600)."""
    workdir = tempfile.mkdtemp(prefix="vy-llm-bench-")
    prefix = "vyllmbench" + os.path.basename(workdir).replace("-", "").replace("_", "")
    proc, sock, _ = start_vineyardd(binary, ["--size", size, "--meta=etcd",
                                             f"--etcd_endpoint={etcd}", f"--etcd_prefix={prefix}",
                                             f"--rpc_socket_port={rpc_port or _free_port()}",
                                             "--reserve_memory"], workdir=workdir, cwd=True,
                                    settle=3.0)  # the socket accepts before the published
    # server has registered with etcd, and a lock asked for before that drops the connection
    return proc, sock, workdir


def published_setup(build_dir: str) -> tuple:
    """(python, vineyardd) of the published vineyard + vineyard-llm 0.24.2, or why not."""
    venv = os.path.join(build_dir, "venv-compat")
    python = os.path.join(venv, "bin", "python")
    if not os.path.exists(python):
        return None, None, "no build/venv-compat (make compat-venv)"
    check = subprocess.run([python, "-c", "import vineyard.llm"], capture_output=True, text=True)
    if check.returncode != 0:
        pip = subprocess.run([python, "-m", "pip", "install", "-q", "vineyard-llm==0.24.2"],
                             capture_output=True, text=True)
        if pip.returncode != 0:
            return None, None, "vineyard-llm==0.24.2 did not install: " + pip.stderr[-300:]
    import glob
    found = glob.glob(os.path.join(venv, "lib", "python3*", "site-packages", "vineyard",
                                   "bdist", "vineyardd"))
    if not found:
        return None, None, "the published vineyardd is missing from build/venv-compat"
    return python, found[0], None


def run_side(python: str, binary: Optional[str], env: Dict[str, str], cfg: Dict[str, Any],
             timeout: float, etcd: str = "", rpc_port: int = 0,
             extra: tuple = ()) -> Dict[str, Any]:
    """The worker against a fresh server at `binary`, or with no binary against
    the file backend in a fresh directory."""
    if binary:
        proc, sock, workdir = _start(binary, cfg["size"], etcd, rpc_port)
        where = ["--socket", sock]
    else:
        proc, workdir = None, tempfile.mkdtemp(prefix="vy-llm-files-", dir=ROOT + "/build")
        where = ["--root", os.path.join(workdir, "cache")]
    try:
        argv = [python, os.path.join(HERE, "llm_worker.py"), *where,
                "--layers", str(cfg["layers"]), "--prompts", cfg["prompts"],
                "--capacity", str(cfg["capacity"]), *extra]
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout,
                              cwd=workdir)
        if done.returncode != 0:
            return {"error": (done.stderr or done.stdout).strip().splitlines()[-1:] or ["failed"]}
        return json.loads(done.stdout.strip().splitlines()[-1])
    except subprocess.TimeoutExpired:
        return {"error": [f"did not finish within {timeout:.0f} s"]}
    finally:
        if proc is not None:
            stop_vineyardd(proc, workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def measure(build_dir: str, quick: bool = False) -> Dict[str, Any]:
    cfg = QUICK if quick else FULL
    build_dir = os.path.abspath(build_dir)
    before = {s for s in os.listdir("/dev/shm") if s.startswith("vineyard-llm-")}
    ours_env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"))
    results: Dict[str, Any] = {"config": cfg}
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    import cluster_harness as ch
    with ch.EtcdCluster(1) as etcd:
        results["ours"] = run_side(sys.executable, os.path.join(build_dir, "vineyardd"),
                                   ours_env, cfg, 1800, etcd.endpoints)
        for seg in {s for s in os.listdir("/dev/shm") if s.startswith("vineyard-llm-")} - before:
            os.unlink(os.path.join("/dev/shm", seg))  # the index of the server just stopped
        results["ours_files"] = run_side(sys.executable, None, ours_env, cfg, 1800)
        python, binary, why = published_setup(build_dir)
        if why:
            results["published"] = results["published_files"] = {"error": [why]}
        else:
            env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
            if _port_free(9600):
                # Its shared-memory backend stores nothing more once a sequence
                # diverging from a cached one was stored (update returns 0):
                # a new cache for each prompt length keeps it measurable.
                results["published"] = run_side(python, binary, env, cfg, 1800,
                                                etcd.endpoints, 9600, ("--cache-per-prompt",))
            else:
                results["published"] = {"error": ["port 9600, which the published module "
                                                   "needs its server on, is taken"]}
            results["published_files"] = run_side(python, None, env, cfg, 1800)
    return results


def _rate(tokens: int, seconds: float) -> str:
    return f"{tokens / seconds:,.0f}" if seconds > 0 else "-"


def _gbs(nbytes: int, seconds: float) -> str:
    return f"{nbytes / seconds / 1e9:.2f}" if seconds > 0 else "-"


def render(results: Dict[str, Any]) -> str:
    cfg = results["config"]
    lines = ["## LLM KV cache (vineyard.llm)\n",
             f"{cfg['layers']} layers, 8 KiB per K and per V per token per layer, block of 16 "
             f"tokens, prompts of {cfg['prompts']} tokens in pairs sharing their first half; "
             f"servers --size={cfg['size']} --reserve_memory --meta=etcd (one etcd), cache_capacity={cfg['capacity']} tokens. Ours: vineyard.llm on our vineyardd; published: "
             "vineyard-llm 0.24.2 on the published vineyardd 0.24.2. Query into caller buffers is "
             "compared with numpy.copyto of the same bytes (one thread, into touched memory); "
             "the published shared-memory side uses a new cache per prompt length (it stores "
             "nothing more after a half-shared prompt, update returning 0); "
             "'first query' is the same query the first time, when this process also maps "
             "the server's pages; 'zero-copy query' is the best of 3 (fresh lists of "
             "KVTensor(0, 0) each time).\n"]
    titles = {"ours": "ours, shared memory", "published": "published, shared memory (blobs)",
              "ours_files": "ours, files", "published_files": "published, files"}
    lines += _speedups(results)
    for side in ("ours", "published", "ours_files", "published_files"):
        r = results.get(side, {})
        lines.append(f"### {titles[side]}\n")
        if "error" in r:
            lines.append(f"Did not run: {' '.join(r['error'])}\n")
            continue
        lines.append("| tokens | update new (tok/s, GB/s) | update half-shared (tok/s) | "
                     "query copy (tok/s, GB/s) | first query (tok/s) | memcpy GB/s | query/memcpy | "
                     "zero-copy query (tok/s) | bytes identical |")
        lines.append("|---|---|---|---|---|---|---|---|---|")
        for p in r["prompts"]:
            if "error" in p:
                lines.append(f"| {p['tokens']} | failed: {p['error']} |" + " |" * 7)
                continue
            n, b = p["tokens"], p["bytes"]
            ratio = p["memcpy_s"] / p["query_copy_s"] if p["query_copy_s"] else 0
            lines.append(
                f"| {n} | {_rate(n, p['update_new_s'])}, {_gbs(b, p['update_new_s'])} | "
                f"{_rate(n, p['update_half_shared_s'])} | "
                f"{_rate(p['query_matched'], p['query_copy_s'] or 0)}, "
                f"{_gbs(b, p['query_copy_s'] or 0)} | "
                f"{_rate(p['query_matched'], p['query_copy_cold_s'] or 0)} | "
                f"{_gbs(b, p['memcpy_s'])} | {f'{ratio:.2f}x' if ratio else '-'} | "
                f"{_rate(p['query_zero_copy_matched'], p['query_zero_copy_s']) if p['query_zero_copy_s'] else '-'} | "
                f"{'yes' if p['query_correct'] else 'NO'} |")
        lines.append("")
        short = [f"{p['tokens']}-token prompt: {p['update_new_tokens']} stored"
                 for p in r["prompts"] if "error" not in p
                 and p["update_new_tokens"] != p["tokens"]]
        if short:
            lines.append("Updates that stored less than asked: " + "; ".join(short) + "\n")
        refused = {p["query_copy_error"] for p in r["prompts"] if p.get("query_copy_error")}
        if refused:
            lines.append("Queries into caller buffers refused: " + "; ".join(refused) + "\n")
        how = "into caller buffers" if r.get("lookup_copies", True) else "without a copy"
        lines.append(f"Lookup (query of the block after a cached prefix, {how}), p50 of 20: " + ", ".join(
            f"{x['prefix']} tokens {x['p50_us']:.0f} µs" for x in r["lookup"])
            + (f"; after a prefix: {r['lookup_error']}" if r.get("lookup_error") else "") + "\n")
    return "\n".join(lines) + "\n"


def _speedups(results: Dict[str, Any]) -> list:
    """Ours against the published module, per backend that ran on both sides."""
    out = []
    for ours, theirs, what in (("ours", "published", "shared memory"),
                               ("ours_files", "published_files", "files")):
        a, b = results.get(ours, {}), results.get(theirs, {})
        if "prompts" not in a or "prompts" not in b:
            continue
        parts = []
        for pa, pb in zip(a["prompts"], b["prompts"]):
            complete = all("error" not in x and x["update_new_tokens"] == x["tokens"]
                           and x["query_correct"] for x in (pa, pb))
            if not complete:
                parts.append(f"{pa['tokens']} tokens: not comparable (a side failed or "
                             "stored less)")
                continue
            up = pb["update_new_s"] / pa["update_new_s"] if pa["update_new_s"] else 0
            part = f"{pa['tokens']} tokens: update {up:.1f}x"
            if pa["query_copy_s"] and pb["query_copy_s"]:
                part += f", query {pb['query_copy_s'] / pa['query_copy_s']:.1f}x"
                if pa.get("memcpy_s"):  # no query that copies can beat a memcpy
                    part += f" (a memcpy would be {pb['query_copy_s'] / pa['memcpy_s']:.1f}x)"
            if pa["query_zero_copy_s"] and pb["query_zero_copy_s"]:
                part += (f", zero-copy query "
                         f"{pb['query_zero_copy_s'] / pa['query_zero_copy_s']:.1f}x")
            parts.append(part)
        out.append(f"Ours against the published module ({what}): " + "; ".join(parts) + ".\n")
    return out


def run_and_render(build_dir: str, quick: bool = False) -> str:
    return render(measure(build_dir, quick))


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--build-dir", default="build")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", help="also write the measures here")
    args = ap.parse_args()
    res = measure(args.build_dir, args.quick)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)
    print(render(res))
