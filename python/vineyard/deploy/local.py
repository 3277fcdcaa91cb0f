"""Launch vineyardd on this host: ``start_vineyardd`` (a context manager) and the default
instance of a process (``try_init``, ``get_current_socket``, ``shutdown``), which a bare
``vineyard.connect()`` starts and every later bare ``connect()`` reuses."""
from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import subprocess
import tempfile
import threading
from typing import Generator, List, Optional, Tuple

from .utils import (DeployError, child_env, find_vineyardd, log_tail, port_in_use,
                    socket_in_use, start_local_etcd, stop_process, wait_until)

__all__ = ["start_vineyardd", "try_init", "get_current_socket", "shutdown", "DeployError"]

_META_BACKENDS = ("etcd", "local")
_DEFAULT_RPC_PORT = 9600


def _check_socket(socket: str) -> None:
    if socket_in_use(socket):
        raise DeployError(f"the socket {socket} is already served by another vineyardd: stop "
                          f"it, or pass another socket= (None: a fresh temporary one)")
    if not os.path.isdir(os.path.dirname(socket)):
        raise DeployError(f"the directory of the socket {socket} does not exist: create it, "
                          f"or pass socket=None for a fresh temporary one")


def _vineyardd_argv(binary: str, socket: str, meta: str, etcd_endpoint: Optional[str],
                    etcd_prefix: Optional[str], size: Optional[str], rpc: bool,
                    rpc_socket_port, debug: bool, extra: List[str]) -> List[str]:
    argv = [binary, f"--socket={socket}", f"--size={'' if size is None else size}",
            f"--meta={meta}"]
    if meta == "etcd":
        argv += [f"--etcd_endpoint={etcd_endpoint}", "--skip_launch_etcd"]
        if etcd_prefix:
            argv.append(f"--etcd_prefix={etcd_prefix}")
    if not rpc:
        argv.append("--norpc")
    elif int(rpc_socket_port) != _DEFAULT_RPC_PORT:
        # vineyardd moves off its default 9600 when that is taken; any other port is
        # asked for explicitly, and taken is an error.
        argv.append(f"--rpc_socket_port={int(rpc_socket_port)}")
    argv.append(f"--log_level={'debug' if debug else 'info'}")
    return argv + list(extra)


@contextlib.contextmanager
def start_vineyardd(meta: Optional[str] = "etcd", etcd_endpoints: Optional[str] = None,
                    etcd_prefix: Optional[str] = None, vineyardd_path: Optional[str] = None,
                    size: Optional[str] = "", socket: Optional[str] = None,
                    rpc: Optional[bool] = True, rpc_socket_port: Optional[int] = 9600,
                    debug: bool = False, *, timeout: float = 60.0,
                    extra_args: Optional[List[str]] = None,
                    ) -> Generator[Tuple[subprocess.Popen, str, Optional[str]], None, None]:
    """Launch ``vineyardd`` on this host; a context manager yielding
    ``(process, ipc_socket, rpc_endpoint)``.

    * ``meta``: ``"etcd"`` (a cluster through etcd) or ``"local"`` (one instance alone).
      With ``"etcd"`` and no ``etcd_endpoints``, a one-member etcd is started on free
      loopback ports with its data in a temporary directory, and stopped on exit.
    * ``etcd_endpoints``: etcd's client URLs (comma-separated); ``etcd_prefix``: the key
      prefix that instances of one cluster share (vineyardd's default: ``vineyard``).
    * ``vineyardd_path``: the server binary (default: $VINEYARDD, the bundled one, or
      build/vineyardd of a development tree).
    * ``size``: the shared memory limit (``"4Gi"``, ``"512M"``...); ``""`` is the cgroup
      limit or physical memory.
    * ``socket``: the UNIX socket; None is a fresh path in a temporary directory.
    * ``rpc``/``rpc_socket_port``: the TCP port; the default 9600 moves to a free port when
      taken (as vineyardd's does), another taken port is an error. ``rpc_endpoint`` is
      None with ``rpc=False``.
    * ``debug``: debug logs, printed to this process's stderr (else to a log file in the
      temporary directory, whose tail is shown when start-up fails).
    * ``timeout``: seconds to wait for etcd and then vineyardd to serve.

    A socket already served, or a taken explicit port, raises ``DeployError`` before
    anything starts. Leaving the block stops vineyardd (SIGTERM, then SIGKILL after 10 s)
    and the etcd started for it, and removes the temporary directory.
    """
    if meta not in _META_BACKENDS:
        raise ValueError(f"meta={meta!r} is not supported: use 'etcd' or 'local'")
    binary = find_vineyardd(vineyardd_path)
    if socket is not None:
        socket = os.path.abspath(os.path.expanduser(socket))
        _check_socket(socket)
    if rpc and int(rpc_socket_port) != _DEFAULT_RPC_PORT and int(rpc_socket_port) != 0 \
            and port_in_use(int(rpc_socket_port)):
        raise DeployError(f"the RPC port {rpc_socket_port} is already taken on this host: "
                          f"pass another rpc_socket_port= (0: any free port), or rpc=False")

    workdir = tempfile.mkdtemp(prefix="vineyard-")
    etcd_proc = None
    proc = None
    try:
        if socket is None:
            socket = os.path.join(workdir, "vineyard.sock")
        endpoint = etcd_endpoints
        if meta == "etcd" and not endpoint:
            etcd_proc, endpoint = start_local_etcd(workdir, timeout=timeout)
        argv = _vineyardd_argv(binary, socket, meta, endpoint, etcd_prefix, size, bool(rpc),
                               rpc_socket_port, debug, extra_args or [])
        log_path = None if debug else os.path.join(workdir, "vineyardd.log")
        out = None if debug else open(log_path, "wb")
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT if out else None, cwd=workdir,
                                    env=child_env(), start_new_session=True)
        finally:
            if out is not None:
                out.close()
        rpc_endpoint = _wait_serving(proc, socket, timeout, log_path, argv)
        yield proc, socket, rpc_endpoint
    finally:
        if proc is not None:
            stop_process(proc)
        if etcd_proc is not None:
            stop_process(etcd_proc)
        shutil.rmtree(workdir, ignore_errors=True)


def _wait_serving(proc: subprocess.Popen, socket: str, timeout: float,
                  log_path: Optional[str], argv: List[str]) -> Optional[str]:
    """Waits until vineyardd answers a client on ``socket``; its RPC endpoint."""
    from ..core.client import IPCClient

    def ready():
        if proc.poll() is not None:
            return True
        with IPCClient(socket) as client:
            return client.rpc_endpoint or "0.0.0.0:0"

    endpoint = wait_until(ready, timeout)
    if proc.poll() is not None or not endpoint:
        code = proc.returncode
        log = log_tail(log_path) if log_path else "(printed above: debug=True)"
        raise DeployError(
            (f"vineyardd exited with code {code}" if code is not None else
             f"vineyardd did not serve on {socket} within {timeout}s") +
            f": {' '.join(argv)}\n{log}")
    return None if endpoint == "0.0.0.0:0" else endpoint


# ---------------------------------------------------------------- the default instance

class _DefaultInstance:
    """The vineyardd a process starts for bare ``connect()`` calls (--meta=local,
    --norpc, 256 MiB), stopped by ``shutdown()`` or at interpreter exit."""

    def __init__(self, **kwargs) -> None:
        self.owner = os.getpid()
        self._cm = start_vineyardd(**kwargs)
        self.proc, self.socket, self.rpc_endpoint = self._cm.__enter__()

    def alive(self) -> bool:
        if os.getpid() != self.owner:  # a forked child: not its own child process
            return socket_in_use(self.socket)
        return self.proc.poll() is None

    def stop(self) -> None:
        # A forked child shares the parent's instance but never stops it.
        if os.getpid() == self.owner:
            self._cm.__exit__(None, None, None)


_default: Optional[_DefaultInstance] = None
_lock = threading.Lock()


def try_init(size: str = "256Mi", vineyardd_path: Optional[str] = None, **kwargs) -> str:
    """The socket of this process's default vineyardd, started on first use (a fresh
    temporary socket, --meta=local, without RPC, ``size`` of shared memory). Later calls,
    and every bare ``vineyard.connect()``, reuse it while it runs; one that died is
    started again. It stops at ``shutdown()`` or when the interpreter exits."""
    global _default
    with _lock:
        if _default is not None and _default.alive():
            return _default.socket
        if _default is not None:
            _default.stop()
            _default = None
        options = dict(meta="local", rpc=False, size=size, vineyardd_path=vineyardd_path)
        options.update(kwargs)
        _default = _DefaultInstance(**options)
        return _default.socket


def get_current_socket() -> str:
    """The socket of the default vineyardd ``try_init()`` (or a bare ``connect()``)
    started. ValueError when there is none."""
    with _lock:
        if _default is None or not _default.alive():
            raise ValueError("vineyard is not initialized: call vineyard.try_init() (or a "
                             "bare vineyard.connect()) first")
        return _default.socket


def shutdown() -> None:
    """Stops the default vineyardd, if this process started one (idempotent). Clients
    connected to it see their connection closed."""
    global _default
    with _lock:
        instance, _default = _default, None
    if instance is not None:
        instance.stop()


atexit.register(shutdown)
