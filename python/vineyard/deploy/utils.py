"""What the launchers share: finding binaries, probing sockets and ports, starting etcd,
waiting with a bound, and stopping a process group."""
from __future__ import annotations

import os
import shutil
import signal
import socket as _pysocket
import subprocess
import time
import urllib.error
import urllib.request
from typing import Callable, List, Optional, Tuple

# Variables that would send etcd and HTTP traffic of children through a proxy.
PROXY_VARS = ("http_proxy", "https_proxy", "grpc_proxy", "all_proxy", "no_proxy",
              "HTTP_PROXY", "HTTPS_PROXY", "GRPC_PROXY", "ALL_PROXY", "NO_PROXY")


class DeployError(RuntimeError):
    """A launcher could not start what it was asked to; the message says what and why
    (with the tail of the process's log when there is one)."""


def child_env(extra: Optional[dict] = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARS}
    env.update(extra or {})
    return env


def find_vineyardd(vineyardd_path: Optional[str] = None) -> str:
    """``vineyardd_path`` when given, else $VINEYARDD, the bundled binary or build/vineyardd
    of a development tree (as ``vineyard.connect()`` finds it)."""
    if vineyardd_path:
        path = shutil.which(vineyardd_path) or vineyardd_path
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            raise DeployError(f"vineyardd_path={vineyardd_path!r} is not an executable file")
        return os.path.abspath(path)
    from ..core.client import _find_vineyardd

    binary, tried = _find_vineyardd()
    if binary is None:
        raise DeployError("no vineyardd found; pass vineyardd_path= or set $VINEYARDD; tried: "
                          + "; ".join(tried))
    return binary


def find_etcd(etcd_path: Optional[str] = None) -> str:
    path = shutil.which(etcd_path or "etcd")
    if path is None:
        raise DeployError(f"no {etcd_path or 'etcd'} executable on PATH: install etcd "
                          "(Debian: apt-get install etcd-server) or pass etcd_endpoints=")
    return path


def socket_in_use(path: str) -> bool:
    """True when a server accepts connections on the UNIX socket ``path``."""
    if not os.path.exists(path):
        return False
    s = _pysocket.socket(_pysocket.AF_UNIX, _pysocket.SOCK_STREAM)
    s.settimeout(1.0)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


def port_in_use(port: int, host: str = "0.0.0.0") -> bool:
    """True when the TCP ``port`` cannot be bound on ``host`` (someone listens there)."""
    with _pysocket.socket(_pysocket.AF_INET, _pysocket.SOCK_STREAM) as s:
        s.setsockopt(_pysocket.SOL_SOCKET, _pysocket.SO_REUSEADDR, 1)
        try:
            s.bind((host, int(port)))
            return False
        except OSError:
            return True


def free_port(host: str = "127.0.0.1") -> int:
    with _pysocket.socket(_pysocket.AF_INET, _pysocket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_until(predicate: Callable[[], object], timeout: float, interval: float = 0.05):
    """Polls ``predicate`` until it returns a true value (returned) or ``timeout`` seconds
    pass (None). An exception from ``predicate`` counts as not yet."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception:  # noqa: BLE001
            pass
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)


def log_tail(path: Optional[str], limit: int = 3000) -> str:
    if not path:
        return ""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - limit))
            return f.read().decode(errors="replace").strip()
    except OSError:
        return ""


def stop_process(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM the process group ``proc`` leads, SIGKILL it after ``timeout`` seconds."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
    try:  # whatever of the group is left (also after a clean exit of the leader)
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)


def etcd_healthy(endpoint: str, timeout: float = 1.0) -> bool:
    """True when etcd at ``endpoint`` (``http://host:port``) answers its /health."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(endpoint.rstrip("/") + "/health", timeout=timeout) as r:
            return b'"true"' in r.read()
    except (OSError, urllib.error.URLError, ValueError):
        return False


def etcd_args(name: str, data_dir: str, host: str, client_port: int, peer_port: int,
              listen_host: Optional[str] = None) -> List[str]:
    """The flags of a one-member etcd serving clients at ``http://host:client_port``."""
    listen = listen_host or host
    return [f"--name={name}", f"--data-dir={data_dir}",
            f"--listen-client-urls=http://{listen}:{client_port}",
            f"--advertise-client-urls=http://{host}:{client_port}",
            f"--listen-peer-urls=http://{listen}:{peer_port}",
            f"--initial-advertise-peer-urls=http://{host}:{peer_port}",
            f"--initial-cluster={name}=http://{host}:{peer_port}",
            "--initial-cluster-state=new", "--log-level=warn"]


def start_local_etcd(workdir: str, timeout: float = 30.0,
                     etcd_path: Optional[str] = None) -> Tuple[subprocess.Popen, str]:
    """A one-member etcd on free loopback ports with its data in ``workdir``; returns the
    process and its client endpoint once it is healthy."""
    binary = find_etcd(etcd_path)
    client_port, peer_port = free_port(), free_port()
    while peer_port == client_port:
        peer_port = free_port()
    endpoint = f"http://127.0.0.1:{client_port}"
    log_path = os.path.join(workdir, "etcd.log")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [binary, *etcd_args("vineyard-etcd", os.path.join(workdir, "etcd-data"),
                                "127.0.0.1", client_port, peer_port)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=workdir,
            env=child_env(), start_new_session=True)
    ok = wait_until(lambda: proc.poll() is not None or etcd_healthy(endpoint), timeout)
    if not ok or proc.poll() is not None:
        stop_process(proc)
        raise DeployError(f"etcd at {endpoint} did not become healthy within {timeout}s "
                          f"(exit code {proc.returncode}); its log:\n{log_tail(log_path)}")
    return proc, endpoint
