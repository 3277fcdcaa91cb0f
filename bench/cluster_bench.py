#!/usr/bin/env python3
"""Two vineyardd instances on two hosts (network namespaces) sharing one etcd: how fast
metadata and objects cross from one to the other.

    python3 bench/cluster_bench.py --vineyardd PATH --python PYTHON [--pythonpath DIR]
                                   [--label NAME] [--quick] [--json OUT]

Runs as root (tests/cluster_harness.py makes the hosts): host 0 runs a 1-member etcd,
host 1 vineyardd A, host 2 vineyardd B, each ``--meta=etcd`` on the same prefix with
its RPC port on its host's address (``--rpc_host`` when the binary has it, and
``MY_HOST_NAME``, which the published vineyardd reports as its RPC host). Two client
processes run PYTHON (PYTHONPATH=DIR with --pythonpath) in the root namespace, one on
A's socket and one on B's; they live through the whole run and take one JSON command
per line on a pipe, so no process start-up is timed. Measured:

- persist -> visible: A puts a small array (1,000 int64) and B starts polling
  ``get_meta(id)``; then A persists it; latency = the moment B's poll first succeeds
  minus the moment A called ``persist``. Twice: polling with ``sync_remote=False``
  (B learns through its server's watch on etcd) and with ``sync_remote=True`` (each
  poll asks for remote metadata). 200 rounds each (50 with --quick); p50/p99.
- ``get_meta`` on B of objects persisted by A (already known to B), both ways; p50/p99.
- migration: A puts and persists a 1 GiB (256 MiB with --quick) array of random bytes
  (incompressible), B times ``get(id, fetch=True)`` and checks sampled bytes; GiB/s.
  The reference is a plain TCP copy of as many bytes between the same two hosts (a
  Python sender/receiver, 4 MiB socket buffers, received into one buffer of the full
  size). A binary that cannot migrate here gets its error string instead of a number.

Prints a markdown table; --json writes the results. Everything it starts is removed at
the end, also on errors and Ctrl-C.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))

import cluster_harness as ch  # noqa: E402

MIB, GIB = 1 << 20, 1 << 30
RPC_PORT = 9600
TCP_PORT = 5201

# --------------------------------------------------------------------- client side

# Runs under --python with one vineyard client; one JSON request per line on stdin, one
# JSON answer per line on stdout. Times are time.monotonic(), which is one clock for
# every process of the machine.
CLIENT = r'''
import json, os, sys, time, traceback, zlib
import numpy as np
import vineyard

client = vineyard.connect(sys.argv[1])
out = sys.stdout
sys.stdout = sys.stderr   # anything the library prints stays off the protocol pipe
held = {}

def oid(i):
    return vineyard.ObjectID(int(i))

def samples(arr):
    """crc32 of 64 spread 4 KiB slices of a uint8 array."""
    n = arr.nbytes
    step = max(1, (n - 4096) // 63)
    crc = 0
    for k in range(64):
        start = min(k * step, max(0, n - 4096))
        crc = zlib.crc32(arr[start:start + 4096].tobytes(), crc)
    return crc

def reply(obj):
    out.write(json.dumps(obj) + "\n")
    out.flush()

def handle(req):
    op = req["op"]
    if op == "hello":
        try:
            endpoints = {str(k): dict(v).get("rpc_endpoint") for k, v in client.meta.items()}
        except Exception as e:
            endpoints = f"client.meta: {type(e).__name__}: {e}"
        return {"instance_id": int(client.instance_id), "rpc_endpoints": endpoints,
                "version": getattr(vineyard, "__version__", "?"),
                "numpy": np.__version__}
    if op == "put_small":
        arr = np.arange(req.get("n", 1000), dtype=np.int64)
        return {"id": int(client.put(arr))}
    if op == "persist":
        t0 = time.monotonic()
        client.persist(oid(req["id"]))
        return {"t0": t0, "t1": time.monotonic()}
    if op == "poll":
        # Acknowledge first: the driver persists only once this side is polling.
        reply({"polling": True})
        i, sync = oid(req["id"]), bool(req["sync_remote"])
        deadline = time.monotonic() + req.get("timeout", 5.0)
        polls = 0
        while True:
            polls += 1
            try:
                client.get_meta(i, sync_remote=sync)
                return {"t_seen": time.monotonic(), "polls": polls}
            except Exception as e:
                if time.monotonic() > deadline:
                    return {"error": f"not visible within {req.get('timeout', 5.0)}s "
                                     f"({polls} polls); last: {type(e).__name__}: {e}"[:500]}
            time.sleep(0.0001)
    if op == "get_meta_times":
        sync = bool(req["sync_remote"])
        times = []
        for i in req["ids"]:
            t0 = time.perf_counter()
            client.get_meta(oid(i), sync_remote=sync)
            times.append(time.perf_counter() - t0)
        return {"times": times}
    if op == "put_big":
        rng = np.random.default_rng(req.get("seed", 0))
        arr = np.frombuffer(rng.bytes(req["bytes"]), dtype=np.uint8)
        crc = samples(arr)
        t0 = time.perf_counter()
        i = client.put(arr)
        t1 = time.perf_counter()
        client.persist(i)
        del arr
        return {"id": int(i), "crc": crc, "put_s": t1 - t0}
    if op == "fetch":
        t0 = time.perf_counter()
        value = client.get(oid(req["id"]), fetch=True)
        t1 = time.perf_counter()
        arr = np.asarray(value).reshape(-1).view(np.uint8)
        held[req["id"]] = value
        return {"seconds": t1 - t0, "nbytes": int(arr.nbytes), "crc": samples(arr)}
    if op == "release":
        held.clear()
        return {}
    if op == "clear":  # B's copies of migrated objects (it owns nothing else)
        held.clear()
        client.clear()
        return {}
    if op == "delete":
        client.delete([oid(i) for i in req["ids"]])
        return {}
    raise ValueError(f"unknown op {op!r}")

for line in sys.stdin:
    try:
        answer = handle(json.loads(line))
    except Exception as e:
        answer = {"error": f"{type(e).__name__}: {e}"[:2000],
                  "trace": traceback.format_exc()[-3000:]}
    reply(answer)
'''

# A plain TCP copy between two hosts: RECEIVER runs on one and prints "ready", then the
# seconds from accept to the last byte; SENDER streams N bytes to it.
RECEIVER = r'''
import socket, sys, time
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
srv.bind((host, port)); srv.listen(1)
print("ready", flush=True)
buf = bytearray(n); view = memoryview(buf)
conn, _ = srv.accept()
t0 = time.perf_counter(); got = 0
while got < n:
    k = conn.recv_into(view[got:], min(n - got, 4 << 20))
    if k == 0:
        break
    got += k
t1 = time.perf_counter()
conn.sendall(b"k")
print(f"{got} {t1 - t0}", flush=True)
'''

SENDER = r'''
import os, socket, sys
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
chunk = memoryview(os.urandom(64 << 20))
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
s.connect((host, port))
left = n
while left:
    k = s.send(chunk[:min(left, len(chunk))])
    left -= k
s.shutdown(socket.SHUT_WR)
s.recv(1)
'''


class Client:
    """One long-running client process (CLIENT under --python) on one socket."""

    def __init__(self, python, socket, pythonpath, workdir, name):
        self.name = name
        self.err_path = os.path.join(workdir, f"client-{name}.err")
        env = ch.child_env()
        env.pop("PYTHONPATH", None)
        env.pop("VINEYARD_IPC_SOCKET", None)
        if pythonpath:
            env["PYTHONPATH"] = pythonpath
        with open(self.err_path, "wb") as err:
            self.proc = ch.spawn([python, "-u", "-c", CLIENT, socket], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=err, env=env, cwd=workdir)
        self.buf = b""

    def send(self, req):
        try:
            self.proc.stdin.write((json.dumps(req) + "\n").encode())
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise ch.HarnessError(f"client {self.name} died ({self.proc.poll()}):\n"
                                  f"{ch.log_tail(self.err_path)}")

    def recv(self, timeout):
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ch.HarnessError(f"client {self.name}: no answer within {timeout}s:\n"
                                      f"{ch.log_tail(self.err_path)}")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                data = os.read(fd, 1 << 16)
                if not data:
                    raise ch.HarnessError(f"client {self.name} exited "
                                          f"({self.proc.wait(timeout=5)}):\n"
                                          f"{ch.log_tail(self.err_path)}")
                self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def call(self, req, timeout=60.0):
        self.send(req)
        answer = self.recv(timeout)
        if "error" in answer:
            raise RuntimeError(answer["error"])
        return answer

    def kill(self):
        ch._killpg(self.proc.pid)
        self.proc.wait(timeout=10)

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


# ------------------------------------------------------------------------- helpers

def pct(values, q):
    """The q-th percentile (nearest rank) of values."""
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(round(q / 100.0 * len(s) + 0.5)) - 1))]


def summary(seconds, unit):
    scale = {"ms": 1e3, "us": 1e6}[unit]
    return {f"p50_{unit}": pct(seconds, 50) * scale, f"p99_{unit}": pct(seconds, 99) * scale,
            f"mean_{unit}": statistics.fmean(seconds) * scale, "n": len(seconds)}


def supports_rpc_host(binary):
    try:
        out = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "rpc_host" in out.stdout + out.stderr


def persist_rounds(a, b, rounds, sync_remote, timeout=5.0):
    """``rounds`` persist -> visible measurements; returns (summary, ids)."""
    latencies, persist_calls, polls, errors, ids = [], [], [], [], []
    for _ in range(rounds):
        i = a.call({"op": "put_small"})["id"]
        b.send({"op": "poll", "id": i, "sync_remote": sync_remote, "timeout": timeout})
        ack = b.recv(30)
        if "error" in ack:
            raise RuntimeError(ack["error"])
        p = a.call({"op": "persist", "id": i})
        seen = b.recv(timeout + 30)
        if "error" in seen:
            errors.append(seen["error"])
            if len(errors) >= 3:
                break
            continue
        ids.append(i)
        latencies.append(seen["t_seen"] - p["t0"])
        persist_calls.append(p["t1"] - p["t0"])
        polls.append(seen["polls"])
    out = {"sync_remote": sync_remote, "errors": len(errors)}
    if errors:
        out["first_error"] = errors[0]
    if latencies:
        out.update(summary(latencies, "ms"))
        out["persist_call_p50_ms"] = pct(persist_calls, 50) * 1e3
        out["polls_mean"] = statistics.fmean(polls)
    return out, ids


def tcp_copy(net, src, dst, nbytes, reps):
    """GiB/s of a plain TCP copy of nbytes from host src to host dst, reps times."""
    rates = []
    for r in range(reps):
        port = TCP_PORT + r
        recv = dst.run([sys.executable, "-c", RECEIVER, dst.ip, str(port), str(nbytes)],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = recv.stdout.readline().strip()
        if line != "ready":
            raise ch.HarnessError(f"TCP receiver did not start: {line} {recv.stderr.read()}")
        send = src.call([sys.executable, "-c", SENDER, dst.ip, str(port), str(nbytes)],
                        timeout=120)
        try:
            out, err = recv.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            recv.kill()
            raise ch.HarnessError("TCP receiver did not finish within 120 s")
        if send.returncode != 0 or recv.returncode != 0:
            raise ch.HarnessError(f"TCP copy failed: {send.stderr[-2000:]} {err[-2000:]}")
        got, seconds = out.split()
        if int(got) != nbytes:
            raise ch.HarnessError(f"TCP copy: received {got} of {nbytes} bytes")
        rates.append(nbytes / float(seconds) / GIB)
    return {"bytes": nbytes, "gib_s": statistics.median(rates), "all_gib_s": rates}


def migrations(a, b, nbytes, reps, timeout):
    """GiB/s of B's get(id, fetch=True) of an array A persisted, reps times. A fetch
    that fails, or does not return within ``timeout`` seconds (B's client is then
    killed), ends the measurement with its error."""
    rates, seconds, puts = [], [], []
    for r in range(reps):
        big = a.call({"op": "put_big", "bytes": nbytes, "seed": r}, timeout=300)
        puts.append(big["put_s"])
        try:
            got = b.call({"op": "fetch", "id": big["id"]}, timeout=timeout)
        except ch.HarnessError as e:  # no answer in time, or the client died
            b.kill()
            return {"bytes": nbytes,
                    "error": f"get(id, fetch=True) did not return within {timeout}s "
                             f"(client B killed): {str(e)[:800]}"}
        except RuntimeError as e:  # the error the client reported
            return {"bytes": nbytes, "error": str(e)[:1000]}
        b.call({"op": "clear"})
        a.call({"op": "delete", "ids": [big["id"]]})
        if got["nbytes"] != nbytes or got["crc"] != big["crc"]:
            return {"bytes": nbytes,
                    "error": f"fetched {got['nbytes']} bytes, sample crc {got['crc']} "
                             f"(sent {nbytes}, crc {big['crc']}): the data differ"}
        seconds.append(got["seconds"])
        rates.append(nbytes / got["seconds"] / GIB)
    return {"bytes": nbytes, "gib_s": statistics.median(rates), "all_gib_s": rates,
            "seconds": seconds, "put_s_median": statistics.median(puts)}


# --------------------------------------------------------------------------- report

def fmt(v):
    """3 significant digits, without an exponent."""
    if not isinstance(v, float):
        return str(v)
    return f"{v:.0f}" if abs(v) >= 100 else f"{v:.3g}"


def table(res):
    rows = []
    for key, what in (("persist_visible_watch", "persist -> visible on B, get_meta polls"
                       " (sync_remote=False)"),
                      ("persist_visible_sync", "persist -> visible on B, get_meta polls"
                       " (sync_remote=True)")):
        r = res[key]
        if "p50_ms" in r:
            rows.append((what, f"p50 {fmt(r['p50_ms'])} ms, p99 {fmt(r['p99_ms'])} ms",
                         f"n={r['n']}, persist call p50 {fmt(r['persist_call_p50_ms'])} ms, "
                         f"{fmt(r['polls_mean'])} polls/round, {r['errors']} errors"))
        else:
            rows.append((what, "error", r.get("first_error", "no round succeeded")))
    for key, what in (("remote_get_meta", "get_meta on B of A's object (sync_remote=False)"),
                      ("remote_get_meta_sync", "get_meta on B of A's object (sync_remote=True)")):
        r = res[key]
        if "p50_us" in r:
            rows.append((what, f"p50 {fmt(r['p50_us'])} us, p99 {fmt(r['p99_us'])} us",
                         f"n={r['n']}"))
        else:
            rows.append((what, "error", r.get("error", "")))
    m = res["migration"]
    size = f"{m['bytes'] / GIB:g} GiB"
    if "gib_s" in m:
        rows.append((f"migration A -> B, get(id, fetch=True) of {size}",
                     f"{m['gib_s']:.3f} GiB/s",
                     "median of " + ", ".join(f"{x:.3f}" for x in m["all_gib_s"])))
    else:
        rows.append((f"migration A -> B, get(id, fetch=True) of {size}", "error",
                     m["error"].replace("\n", " ")[:300]))
    t = res["tcp_copy"]
    if "gib_s" in t:
        rows.append((f"plain TCP copy A's host -> B's host, {size}", f"{t['gib_s']:.3f} GiB/s",
                     "median of " + ", ".join(f"{x:.3f}" for x in t["all_gib_s"])))
    else:
        rows.append((f"plain TCP copy A's host -> B's host, {size}", "error", t["error"]))
    lines = [f"### {res['label']}", "",
             f"vineyardd `{res['vineyardd']}`, client `{res['python']}` (vineyard "
             f"{res['client_version']}), {res['cpus']} CPUs, {res['when']}", "",
             "| measure | result | notes |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- main

def run(args):
    quick = args.quick
    rounds = 50 if quick else 200
    nbytes = 256 * MIB if quick else GIB
    reps = 1 if quick else 3
    res = {"label": args.label or os.path.basename(args.vineyardd),
           "vineyardd": os.path.abspath(args.vineyardd), "python": args.python,
           "pythonpath": args.pythonpath, "quick": quick, "rounds": rounds,
           "cpus": os.cpu_count(), "kernel": platform.release(),
           "when": datetime.datetime.now().isoformat(timespec="seconds")}
    rpc_host = supports_rpc_host(args.vineyardd)
    stale = ch.cleanup_stale()
    if stale:
        print(f"removed leftovers of dead runs: {', '.join(stale)}", file=sys.stderr)
    workdir = tempfile.mkdtemp(prefix=f"{ch.PREFIX}h{os.getpid()}-bench-")
    clients = []
    net = ch.Netns(3)
    t_start = time.monotonic()
    try:
        with net, ch.EtcdCluster(1, netns=net, hosts=[0]) as etcd:
            servers = []
            for k, size in ((1, nbytes + 512 * MIB), (2, reps * nbytes + 512 * MIB)):
                host = net.host(k)
                flags = ["--meta=etcd", f"--etcd_endpoint={etcd.endpoints}",
                         f"--etcd_prefix=/vybench{os.getpid()}",
                         f"--rpc_socket_port={RPC_PORT}"]
                if rpc_host:
                    flags.append(f"--rpc_host={host.ip}")
                servers.append(ch.Vineyardd(args.vineyardd, flags, host=host,
                                            size=f"{size // MIB}Mi",
                                            env={"MY_HOST_NAME": host.ip}))
            a_srv, b_srv = servers
            a = Client(args.python, a_srv.socket, args.pythonpath, workdir, "A")
            clients.append(a)
            b = Client(args.python, b_srv.socket, args.pythonpath, workdir, "B")
            clients.append(b)
            ha, hb = a.call({"op": "hello"}), b.call({"op": "hello"})
            res["client_version"] = ha["version"]
            res["instance_ids"] = [ha["instance_id"], hb["instance_id"]]
            res["rpc_endpoints"] = hb["rpc_endpoints"]  # as B's client sees the cluster
            print(f"cluster up in {time.monotonic() - t_start:.1f}s: etcd {etcd.endpoints},"
                  f" A {net.host(1).ip} (instance {ha['instance_id']}), B {net.host(2).ip}"
                  f" (instance {hb['instance_id']})", file=sys.stderr, flush=True)

            res["persist_visible_watch"], ids = persist_rounds(a, b, rounds, False)
            res["persist_visible_sync"], ids2 = persist_rounds(a, b, rounds, True)
            ids = ids + ids2
            for key, sync in (("remote_get_meta", False), ("remote_get_meta_sync", True)):
                try:
                    if not ids:
                        raise RuntimeError("no object became visible on B")
                    times = b.call({"op": "get_meta_times", "ids": ids[:rounds],
                                    "sync_remote": sync})["times"]
                    res[key] = summary(times, "us")
                except RuntimeError as e:
                    res[key] = {"error": str(e)[:1000]}
            print(f"metadata done at {time.monotonic() - t_start:.1f}s", file=sys.stderr,
                  flush=True)

            res["migration"] = migrations(a, b, nbytes, reps, 60 if quick else 120)
            if "error" in res["migration"]:
                res["migration"]["log_A"] = a_srv.log(15)
                res["migration"]["log_B"] = b_srv.log(15)
            try:
                res["tcp_copy"] = tcp_copy(net, net.host(1), net.host(2), nbytes, 3)
            except ch.HarnessError as e:
                res["tcp_copy"] = {"bytes": nbytes, "error": str(e)[:1000]}
            for c in clients:
                c.close()
            for s in servers:
                s.close()
    finally:
        for c in clients:
            c.close()
        shutil.rmtree(workdir, ignore_errors=True)
    res["seconds"] = time.monotonic() - t_start
    left = net.leftovers()
    if left:
        res["leftovers"] = left
        print(f"WARNING: left behind: {left}", file=sys.stderr)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vineyardd", required=True, help="the vineyardd binary to run")
    ap.add_argument("--python", required=True,
                    help="the Python interpreter of the client side (with vineyard, numpy)")
    ap.add_argument("--pythonpath", help="PYTHONPATH for the clients (e.g. python/)")
    ap.add_argument("--label", help="a name for this run in the table and the JSON")
    ap.add_argument("--quick", action="store_true",
                    help="50 rounds and 256 MiB instead of 200 and 1 GiB, one migration")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    # Paths relative to where the script was started: the processes run elsewhere.
    args.vineyardd = os.path.abspath(args.vineyardd)
    if args.pythonpath:
        args.pythonpath = os.pathsep.join(os.path.abspath(p)
                                          for p in args.pythonpath.split(os.pathsep))
    reason = ch.require_root()
    if reason:
        sys.exit(f"cluster_bench: {reason}")
    if not os.path.exists(ch.ETCD):
        sys.exit(f"cluster_bench: no etcd at {ch.ETCD}: apt-get install etcd-server")
    res = run(args)
    print(table(res))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
