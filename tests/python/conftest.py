"""Fixtures for the Python tests: a real vineyardd on a temporary socket.

The server binary is $VINEYARDD, else build/vineyardd of this checkout.
Run: PYTHONPATH=python python3 -m pytest -q tests/python
"""

import os
import shutil
import signal
import socket as pysocket
import subprocess
import tempfile
import json
import textwrap
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SIZE = "512Mi"


def vineyardd_binary():
    binary = os.environ.get("VINEYARDD") or os.path.join(ROOT, "build", "vineyardd")
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        pytest.fail(f"no vineyardd at {binary!r}: build it (cmake --build build) "
                    "or set VINEYARDD", pytrace=False)
    return binary


class Server:
    """One vineyardd process on its own socket in its own temporary directory; with
    ``rpc=True`` also on a free TCP port (``self.port``)."""

    def __init__(self, *args, rpc=False, size=SIZE, socket=None):
        self.workdir = tempfile.mkdtemp(prefix="vy-py-")
        self.socket = socket or os.path.join(self.workdir, "vineyard.sock")
        self.log_path = os.path.join(self.workdir, "vineyardd.log")
        net = ["--rpc_socket_port=0"] if rpc else ["--norpc"]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [vineyardd_binary(), f"--socket={self.socket}", f"--size={size}", "--meta=local",
                 *net, *args],
                stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir)
        self._wait_ready()
        self.port = None
        deadline = time.monotonic() + 30
        while rpc and self.port is None and time.monotonic() < deadline:
            # The socket accepts before the server logs its endpoint: wait for the line.
            for line in self.log().splitlines():  # "... rpc host:port, ..."
                if " rpc " in line and "serving on" in line:
                    self.port = int(line.split(" rpc ", 1)[1].split(",")[0].rsplit(":", 1)[1])
            if self.port is None:
                time.sleep(0.02)

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def _wait_ready(self, timeout=30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"vineyardd exited early ({self.proc.returncode}):\n{self.log()}")
            if os.path.exists(self.socket):
                s = pysocket.socket(pysocket.AF_UNIX, pysocket.SOCK_STREAM)
                try:
                    s.connect(self.socket)
                    return
                except OSError:
                    pass
                finally:
                    s.close()
            time.sleep(0.05)
        self.proc.kill()
        pytest.fail(f"vineyardd did not listen on {self.socket} within {timeout}s")

    def stop(self, timeout=20.0):
        """SIGTERM and wait; a server that ignores SIGTERM fails the test."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                pytest.fail(f"vineyardd ignored SIGTERM for {timeout}s:\n{self.log()}")
        shutil.rmtree(self.workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def vineyardd_socket():
    """The socket of a vineyardd shared by the whole session."""
    server = Server()
    yield server.socket
    server.stop()


@pytest.fixture(scope="session")
def rpc_server():
    """A vineyardd serving IPC and TCP, shared by the session (server.socket, server.port)."""
    server = Server(rpc=True)
    yield server
    server.stop()


@pytest.fixture
def private_server():
    """A vineyardd for one test (which may kill it)."""
    server = Server()
    yield server
    server.stop()


@pytest.fixture
def client(vineyardd_socket):
    """A native IPC client, closed after the test."""
    from vineyard import _C

    c = _C.connect_ipc(vineyardd_socket)
    yield c
    c.close()


COMPAT_PYTHON = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "build", "venv-compat", "bin", "python")


@pytest.fixture
def run_published():
    """Runs a script with the published vineyard 0.24.2 client (build/venv-compat):
    ``run_published(script, socket, needs=("pandas",))`` returns the JSON the script
    prints last. Skips when that venv, or a module in ``needs``, is missing."""
    def run(script, sock, needs=()):
        if not os.path.exists(COMPAT_PYTHON):
            pytest.skip("no published client venv at build/venv-compat (make compat-venv)")
        if needs:
            check = subprocess.run([COMPAT_PYTHON, "-c", "import " + ", ".join(needs)],
                                   capture_output=True)
            if check.returncode != 0:
                pytest.skip(f"{', '.join(needs)} missing in build/venv-compat")
        env = {k: v for k, v in os.environ.items()
               if k not in ("PYTHONPATH", "VINEYARD_IPC_SOCKET")}
        out = subprocess.run([COMPAT_PYTHON, "-c", textwrap.dedent(script), sock],
                             capture_output=True, text=True, timeout=120, env=env, cwd="/")
        assert out.returncode == 0, out.stderr[-3000:]
        return json.loads(out.stdout.strip().splitlines()[-1])
    return run


def sharing_python_objects_example(client1, client2):
    """The example of ../shared/seeds, "Sharing Python Objects with Vineyard", on two
    instances of a cluster, checked as it describes; returns (id1, id2, id_pair)."""
    import numpy as np

    id1 = client1.put(np.zeros(8))
    client1.persist(id1)
    id2 = client2.put(np.ones(4))
    client2.persist(id2)
    obj1 = client1.get_object(id1)
    obj2 = client2.get_object(id2)
    id_pair = client1.put((obj1, obj2))
    obj_pair = client2.get_object(id_pair)
    assert obj_pair.meta.isglobal
    first = obj_pair.meta.member("__elements_-0")
    second = obj_pair.meta.member("__elements_-1")
    assert first.typename == "vineyard::Tensor<double>"
    assert first.instance_id == client1.instance_id
    assert second.instance_id == client2.instance_id
    value_pair = client2.get(id_pair)
    assert value_pair[0] is None  # its payload stays on the first instance
    assert list(value_pair[1]) == [1, 1, 1, 1]
    fetched = client2.get(id_pair, fetch=True)
    assert list(fetched[0]) == [0] * 8 and list(fetched[1]) == [1] * 4
    return id1, id2, id_pair
