"""Fixtures for the compatibility suite: the published vineyard==0.24.2 Python
client, run against OUR vineyardd (path in $VINEYARDD)."""

import os
import shutil
import signal
import socket as pysocket
import subprocess
import tempfile
import time

import pytest
import vineyard

SIZE = "512Mi"
SIZE_BYTES = 512 * 1024 * 1024


def wait_for_socket(path, proc, log_path, timeout=30.0):
    """Waits until a UNIX socket at `path` accepts connections."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            with open(log_path, errors="replace") as f:
                log = f.read()
            pytest.fail(f"server exited early (code {proc.returncode}); log:\n{log}")
        if os.path.exists(path):
            s = pysocket.socket(pysocket.AF_UNIX, pysocket.SOCK_STREAM)
            try:
                s.connect(path)
                return
            except OSError:
                pass
            finally:
                s.close()
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"server socket {path} did not come up within {timeout}s")


def start_server(argv, sock, workdir):
    log_path = os.path.join(workdir, os.path.basename(sock) + ".log")
    log = open(log_path, "wb")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
    log.close()
    wait_for_socket(sock, proc, log_path)
    return proc, log_path


def stop_server(proc, log_path, timeout=20.0, strict=True):
    """SIGTERM, then wait. `strict`: a server that ignores SIGTERM fails the
    test (ours must stop cleanly); otherwise it is killed (the published
    vineyardd, used only for cross-checks, sometimes hangs on SIGTERM)."""
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=timeout if strict else 5.0)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        if not strict:
            return None
        with open(log_path, errors="replace") as f:
            pytest.fail(f"server ignored SIGTERM for {timeout}s; log:\n{f.read()}")


@pytest.fixture(scope="session")
def vineyardd_socket():
    """Our vineyardd on a temporary socket; yields the socket path."""
    binary = os.environ.get("VINEYARDD")
    if not binary:
        pytest.fail("VINEYARDD is not set: export VINEYARDD=/abs/path/to/build/vineyardd",
                    pytrace=False)
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        pytest.fail(f"VINEYARDD={binary!r} is not an executable file", pytrace=False)
    workdir = tempfile.mkdtemp(prefix="vy-compat-")
    sock = os.path.join(workdir, "vineyard.sock")
    proc, log_path = start_server(
        [binary, f"--socket={sock}", f"--size={SIZE}", "--meta=local", "--norpc"], sock, workdir)
    try:
        yield sock
    finally:
        code = stop_server(proc, log_path)
        with open(log_path, errors="replace") as f:
            log = f.read()
        assert code == 0, f"vineyardd exited with {code} on SIGTERM; log:\n{log}"
        assert not os.path.exists(sock), "vineyardd did not remove its socket on SIGTERM"
        shutil.rmtree(workdir, ignore_errors=True)


def _vineyardd_binary():
    binary = os.environ.get("VINEYARDD")
    if not binary:
        pytest.fail("VINEYARDD is not set: export VINEYARDD=/abs/path/to/build/vineyardd",
                    pytrace=False)
    return binary


@pytest.fixture(scope="module", params=["compression", "nocompression"])
def rpc_server(request):
    """Our vineyardd with its TCP endpoint on a free port, offering zstd or not
    (the published client compresses whenever the server offers it); yields
    (ipc socket, port)."""
    workdir = tempfile.mkdtemp(prefix="vy-compat-rpc-")
    sock = os.path.join(workdir, "vineyard.sock")
    proc, log_path = start_server(
        [_vineyardd_binary(), f"--socket={sock}", f"--size={SIZE}", "--meta=local",
         "--rpc_socket_port=0",
         f"--{request.param}"], sock, workdir)
    try:
        c = vineyard.connect(sock)
        port = int(c.rpc_endpoint.rsplit(":", 1)[1])
        c.close()
        yield sock, port
    finally:
        assert stop_server(proc, log_path) == 0
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def client(vineyardd_socket):
    c = vineyard.connect(vineyardd_socket)
    yield c
    try:
        c.close()
    except Exception:
        pass


@pytest.fixture(scope="module")
def reference_socket():
    """The vineyardd bundled with the published wheel (vineyard-bdist), for
    cross-checks; skipped when the wheel ships no binary."""
    binary = os.path.join(os.path.dirname(vineyard.__file__), "bdist", "vineyardd")
    if not os.access(binary, os.X_OK):
        pytest.skip("the published wheel's bundled vineyardd is not available")
    workdir = tempfile.mkdtemp(prefix="vy-ref-")
    sock = os.path.join(workdir, "ref.sock")
    proc, log_path = start_server(
        [binary, f"--socket={sock}", f"--size={SIZE}", "--meta=local", "--rpc=false"],
        sock, workdir)
    try:
        yield sock
    finally:
        stop_server(proc, log_path, strict=False)
        shutil.rmtree(workdir, ignore_errors=True)
