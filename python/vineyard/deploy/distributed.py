"""Launch a vineyard cluster over ssh: etcd on the first host (unless given), then one
``vineyardd`` per host, each checked to have joined; all stopped on exit or failure.

Every host must accept ``ssh <host>`` without a password (keys, an agent, or what
``~/.ssh/config`` says; more options through ``ssh_options``), have ``vineyardd`` at
``vineyardd_path`` (default: this machine's path of it) and, to start etcd, ``etcd`` on
the first host. This process talks to each instance's RPC port to check it joined, so
``host:rpc_socket_port`` must be reachable from here.
"""
from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
import tempfile
import threading
import time
from typing import Dict, Generator, List, Optional, Tuple

from .utils import DeployError, child_env, etcd_args, etcd_healthy, find_vineyardd, wait_until

__all__ = ["start_vineyardd", "RemoteProcess", "DeployError"]

SSH_DEFAULTS = ["-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
                "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3"]
_PID_MARK = "VINEYARD-PID"


def _address(host: str) -> str:
    """The host part of ``[user@]host``."""
    return host.rsplit("@", 1)[-1]


class RemoteProcess:
    """A program started on ``host`` over ssh, in the foreground of the ssh session.

    ``ssh -tt`` gives it a terminal: when the session ends without ``stop()`` (this
    process killed), the remote side hangs up and the program gets SIGHUP. Its output
    goes to ``log_path`` on this machine."""

    def __init__(self, host: str, argv: List[str], what: str, workdir: str,
                 ssh: str = "ssh", ssh_options: Optional[List[str]] = None,
                 prologue: str = "", raw_args: str = "") -> None:
        self.host, self.what = host, what
        # ssh keeps the first value of an option: the caller's come first.
        self.ssh = [ssh, *(ssh_options or []), *SSH_DEFAULTS]
        self.pid: Optional[int] = None
        self.extra: List[str] = []  # words after the pid on the marker line
        self.log_path = os.path.join(workdir, f"{what}-{_address(host)}.log")
        # `prologue` may set $d (a directory made there), reported after the pid;
        # `raw_args` go unquoted after argv (to use $d).
        script = f"{prologue}echo {_PID_MARK} $$ {'$d' if prologue else ''}; " \
                 f"exec {' '.join(shlex.quote(a) for a in argv)} {raw_args} 2>&1"
        self._pid_seen = threading.Event()
        self.proc = subprocess.Popen(
            [*self.ssh, "-tt", host, script], stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=child_env(),
            start_new_session=True)
        self._pump = threading.Thread(target=self._copy_output, daemon=True)
        self._pump.start()

    def _copy_output(self) -> None:
        with open(self.log_path, "w", errors="replace") as log:
            for raw in self.proc.stdout:
                line = raw.decode(errors="replace").rstrip("\r\n")
                if self.pid is None and line.startswith(_PID_MARK):
                    words = line.split()
                    try:
                        self.pid = int(words[1])
                        self.extra = words[2:]
                    except (IndexError, ValueError):
                        pass
                    self._pid_seen.set()
                    continue
                log.write(line + "\n")
                log.flush()
        self._pid_seen.set()

    def wait_started(self, timeout: float) -> None:
        """Until the remote program runs; DeployError naming the host otherwise."""
        self._pid_seen.wait(timeout)
        if self.pid is None:
            self.kill_session()
            raise DeployError(f"{self.host}: could not start {self.what} over ssh "
                              f"(ssh exit code {self.proc.poll()}): {self.log_tail()}")

    def running(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, limit: int = 1500) -> str:
        self._pump.join(timeout=0.5)
        try:
            with open(self.log_path, errors="replace") as f:
                text = f.read().strip()
        except OSError:
            text = ""
        return " ".join(text[-limit:].split()) or "(no output)"

    def _run(self, command: str, timeout: float = 20.0) -> None:
        try:
            subprocess.run([*self.ssh, self.host, command], stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           env=child_env(), timeout=timeout)
        except (subprocess.TimeoutExpired, OSError):
            pass

    def stop(self, timeout: float = 15.0, cleanup: str = "") -> None:
        """SIGTERM the remote program, SIGKILL it after ``timeout``; ends the session."""
        if self.pid is not None and self.running():
            self._run(f"kill -TERM {self.pid} 2>/dev/null")
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._run(f"kill -KILL {self.pid} 2>/dev/null")
        if cleanup:
            self._run(cleanup)
        self.kill_session()

    def kill_session(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, 9)
            except (ProcessLookupError, PermissionError):
                self.proc.kill()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self._pump.join(timeout=2)

    def __repr__(self) -> str:
        return f"RemoteProcess({self.what} on {self.host}, pid {self.pid})"


def _instances_joined(hosts: List[str], rpc_port: int) -> Dict[str, int]:
    """host -> instance id, once every host's instance answers and each sees all of them
    in the cluster."""
    from ..core.client import RPCClient

    found: Dict[str, int] = {}
    for host in hosts:
        with RPCClient(_address(host), rpc_port) as client:
            endpoints = {e.get("rpc_endpoint") for e in client.meta.values()}
            if not all(f"{_address(h)}:{rpc_port}" in endpoints for h in hosts):
                return {}
            found[host] = client.remote_instance_id
    return found


@contextlib.contextmanager
def start_vineyardd(hosts: Optional[List[str]] = None, etcd_endpoints: Optional[str] = None,
                    vineyardd_path: Optional[str] = None, size: str = "",
                    socket: str = "/var/run/vineyard.sock", rpc_socket_port: int = 9600,
                    debug: bool = False, *, ssh_options: Optional[List[str]] = None,
                    etcd_path: str = "etcd", etcd_port: int = 2379, etcd_peer_port: int = 2380,
                    etcd_prefix: Optional[str] = None, timeout: float = 60.0,
                    ) -> Generator[Tuple[List[RemoteProcess], str, str], None, None]:
    """Launch ``vineyardd`` on each of ``hosts`` over ssh (default: ``["localhost"]``);
    a context manager yielding ``(processes, socket, etcd_endpoints)``.

    * ``etcd_endpoints``: an etcd the instances share; None starts a one-member etcd on
      the first host (client port ``etcd_port``, peer port ``etcd_peer_port``, data in a
      temporary directory there, removed on exit).
    * Each instance runs ``vineyardd --socket=<socket> --size=<size>
      --rpc_socket_port=<rpc_socket_port> --rpc_host=<host> --deployment=distributed`` in
      a cluster through that etcd (``etcd_prefix``: its key prefix).
    * ``debug``: debug logs. Each process's output is in ``processes[i].log_path``, on
      this machine.

    Start-up is checked: every instance must answer on ``host:rpc_socket_port`` and see
    all the others in the cluster within ``timeout`` seconds. A host that cannot be
    reached, or whose instance fails, raises ``DeployError`` naming it; everything
    started is stopped first. Leaving the block stops the instances (SIGTERM over ssh,
    SIGKILL after 15 s), then etcd.
    """
    hosts = list(hosts or ["localhost"])
    if not hosts:
        raise ValueError("hosts: at least one host")
    if len(set(map(_address, hosts))) != len(hosts):
        raise ValueError(f"hosts: one vineyardd per host, got {hosts}")
    binary = vineyardd_path or find_vineyardd(None)
    workdir = tempfile.mkdtemp(prefix="vineyard-distributed-")
    etcd: Optional[RemoteProcess] = None
    etcd_cleanup = ""
    procs: List[RemoteProcess] = []
    try:
        endpoints = etcd_endpoints
        if not endpoints:
            first = _address(hosts[0])
            endpoints = f"http://{first}:{etcd_port}"
            prologue = "d=$(mktemp -d /tmp/vineyard-etcd.XXXXXX) || exit 1; "
            args = [a for a in etcd_args("vineyard-etcd", "", first, etcd_port, etcd_peer_port)
                    if not a.startswith("--data-dir=")]
            # The data directory is the one mktemp made on that host.
            etcd = RemoteProcess(hosts[0], [etcd_path, *args], "etcd", workdir,
                                 ssh_options=ssh_options, prologue=prologue,
                                 raw_args='--data-dir="$d"')
            etcd.wait_started(timeout)
            if etcd.extra:
                etcd_cleanup = f"rm -rf {shlex.quote(etcd.extra[0])}"
            if not wait_until(lambda: not etcd.running() or etcd_healthy(endpoints), timeout) \
                    or not etcd.running():
                raise DeployError(f"{hosts[0]}: etcd at {endpoints} did not become healthy "
                                  f"within {timeout}s: {etcd.log_tail()}")
        for host in hosts:
            argv = [binary, f"--socket={socket}", f"--size={size}", "--meta=etcd",
                    f"--etcd_endpoint={endpoints}", "--skip_launch_etcd",
                    f"--rpc_socket_port={int(rpc_socket_port)}", f"--rpc_host={_address(host)}",
                    "--deployment=distributed", f"--log_level={'debug' if debug else 'info'}"]
            if etcd_prefix:
                argv.append(f"--etcd_prefix={etcd_prefix}")
            procs.append(RemoteProcess(host, argv, "vineyardd", workdir,
                                       ssh_options=ssh_options))
        failures = []
        for p in procs:
            try:
                p.wait_started(timeout)
            except DeployError as e:
                failures.append(str(e))
        if failures:
            raise DeployError("; ".join(failures))

        def joined():
            for p in procs:
                if not p.running():
                    raise DeployError(f"{p.host}: vineyardd exited (ssh exit code "
                                      f"{p.proc.returncode}): {p.log_tail()}")
            try:
                return _instances_joined(hosts, int(rpc_socket_port))
            except DeployError:
                raise
            except Exception:  # noqa: BLE001  (not up yet)
                return {}

        deadline = time.monotonic() + timeout
        while not joined():
            if time.monotonic() > deadline:
                late = []
                for p in procs:
                    try:
                        _instances_joined([p.host], int(rpc_socket_port))
                    except Exception as e:  # noqa: BLE001
                        late.append(f"{p.host} ({' '.join(str(e).split())[:200]}; log: "
                                    f"{p.log_tail(400)})")
                raise DeployError(f"not every instance joined the cluster within {timeout}s"
                                  + (f": {', '.join(late)}" if late else ""))
            time.sleep(0.2)
        yield procs, socket, endpoints
    finally:
        for p in procs:
            p.stop()
        if etcd is not None:
            etcd.stop(cleanup=etcd_cleanup)
        shutil.rmtree(workdir, ignore_errors=True)
