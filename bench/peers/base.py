"""The interface every system under test implements, and the default multi-process flows.

A peer runs inside a worker process (bench/worker.py) started with the peer's own Python
environment. It stores and loads Python values; the scenarios (bench/scenarios.py) only use
the methods below, so each peer module stays a thin adapter over its system's API.
"""
from __future__ import annotations

import contextlib
import multiprocessing
import os
import shutil
import subprocess
import tempfile
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple


class Unsupported(Exception):
    """Raised by a peer for a scenario its system cannot do; the message says why."""


class Peer:
    """One system under test. Not thread-safe: one instance per process."""

    name = ""          # registry key (bench/peers/__init__.py)
    label = ""         # shown in the tables
    # scenario key -> why this system cannot do it ("s3": "bytes only", ...)
    cannot: Dict[str, str] = {}
    # what start() returned (set by the worker); scenarios 6 and 7 hand it to new processes
    info: Dict[str, Any] = {}

    # -- life cycle -------------------------------------------------------------------
    def version(self) -> str:
        raise NotImplementedError

    def start(self, workdir: str, size: int) -> Dict[str, Any]:
        """Start the system's daemon(s), if any, and connect; returns the picklable info
        another process passes to attach() to become a client of the same instance."""
        info = {"workdir": workdir}
        self.attach(info)
        return info

    def attach(self, info: Dict[str, Any]) -> None:
        """Connect this process as a client of the instance start() returned."""

    def stop(self) -> None:
        """Disconnect and stop the daemon(s) this process started."""

    def server_pids(self) -> List[int]:
        """Processes holding the stored objects' metadata (for the memory scenario)."""
        return []

    def store_bytes(self) -> Optional[int]:
        """Bytes of shared memory the store holds, by its own account (None: unknown)."""
        return None

    # -- objects ----------------------------------------------------------------------
    def put(self, value: Any) -> Any:
        raise NotImplementedError

    def get(self, ref: Any) -> Any:
        raise NotImplementedError

    def delete(self, ref: Any) -> None:
        """Release the object (the caller holds no view of it any more)."""

    def release(self, ref: Any) -> None:
        """Drop this process's hold of an object it got (the caller holds no view of it);
        the object itself stays for its owner to delete."""

    def token(self, ref: Any) -> Any:
        """A picklable handle that another attached process turns back with from_token."""
        return ref

    def from_token(self, token: Any) -> Any:
        return token

    # -- optional scenarios -----------------------------------------------------------
    def create_and_get_meta(self, members: List[Any]) -> Any:
        """Scenario 5: create a metadata object with ``members`` and read it back."""
        raise Unsupported("no metadata objects")

    def produce_consume(self, array: Any, count: int, window: int) -> Tuple[float, float]:
        """Scenario 6: put ``array`` ``count`` times while another process gets and sums
        each one. Returns (seconds from the first put to the consumer's last sum, the sum).
        Default: a spawned consumer attached to the same instance, handles sent through a
        pipe, at most ``window`` objects in flight (the producer deletes acknowledged ones)."""
        with spawned(_consumer, self.name, self.info) as conn:
            start = time.perf_counter()
            inflight: List[Any] = []
            for _ in range(count):
                ref = self.put(array)
                inflight.append(ref)
                conn.send(self.token(ref))
                if len(inflight) >= window:
                    conn.recv()
                    self.delete(inflight.pop(0))
            conn.send(None)
            for ref in inflight:
                conn.recv()
                self.delete(ref)
            total = conn.recv()
            return time.perf_counter() - start, total


@contextlib.contextmanager
def spawned(target: Callable, *args: Any) -> Iterator[Any]:
    """Run ``target(*args, conn)`` in a spawned process; yields our end of the pipe once the
    child has sent "ready"."""
    ctx = multiprocessing.get_context("spawn")
    here, there = ctx.Pipe()
    child = ctx.Process(target=target, args=(*args, there))
    child.start()
    try:
        if here.recv() != "ready":
            raise RuntimeError("the child process did not start")
        yield here
    finally:
        child.join(60)
        if child.is_alive():
            child.kill()


def _consumer(peer_name: str, info: Dict[str, Any], conn: Any) -> None:
    """Scenario 6's consumer: get each object, sum it, drop it, ack; then send the sum."""
    from . import load
    peer = load(peer_name)
    peer.attach(info)
    conn.send("ready")
    total = 0.0
    while (token := conn.recv()) is not None:
        ref = peer.from_token(token)
        value = peer.get(ref)
        total += float(value.sum())
        del value
        peer.release(ref)
        conn.send("ack")
    conn.send(total)
    peer.stop()


# -- helpers for peers that run a daemon ---------------------------------------------------

def start_daemon(cmd: List[str], socket_path: Optional[str], log_path: str,
                 timeout: float = 30.0, cwd: Optional[str] = None) -> subprocess.Popen:
    """Start ``cmd`` and wait for ``socket_path`` (if any) to appear."""
    with open(log_path, "wb") as log:
        # In the worker's process group: killing the worker's group ends the daemon too.
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=cwd)
    deadline = time.time() + timeout
    while socket_path and not os.path.exists(socket_path):
        if proc.poll() is not None or time.time() > deadline:
            stop_daemon(proc)
            with open(log_path, "rb") as log:
                tail = log.read().decode(errors="replace").strip().splitlines()[-3:]
            raise RuntimeError(f"{cmd[0]} did not start within {timeout:.0f} s (log "
                               f"{log_path}: {' | '.join(tail) or 'empty'})")
        time.sleep(0.05)
    return proc


def stop_daemon(proc: Optional[subprocess.Popen], grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds (some daemons ignore SIGTERM)."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def start_vineyardd(binary: str, args: List[str], prefix: str = "vy-bench-",
                    workdir: Optional[str] = None, settle: float = 0.0,
                    cwd: bool = False) -> Tuple[subprocess.Popen, str, str]:
    """``binary --socket <workdir>/vineyard.sock *args``, once its socket is there (and
    ``settle`` seconds more): (process, socket, workdir). ``workdir`` is made with
    ``prefix`` unless given; the log is ``<workdir>/vineyardd.log``; ``cwd``: run there."""
    made = workdir is None
    workdir = workdir or tempfile.mkdtemp(prefix=prefix)
    sock = os.path.join(workdir, "vineyard.sock")
    try:
        proc = start_daemon([binary, "--socket", sock, *args], sock,
                            os.path.join(workdir, "vineyardd.log"), cwd=workdir if cwd else None)
    except BaseException:
        if made:
            shutil.rmtree(workdir, ignore_errors=True)
        raise
    time.sleep(settle)
    return proc, sock, workdir


def stop_vineyardd(proc: Optional[subprocess.Popen], workdir: str) -> None:
    """Stops what start_vineyardd started and removes its directory."""
    stop_daemon(proc, grace=10.0)
    shutil.rmtree(workdir, ignore_errors=True)


def rss_kib(pid: int, field: str = "RssAnon") -> int:
    """A field of /proc/<pid>/status in KiB (0 if the process is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0
