"""vineyard.deploy.local: start_vineyardd (with the etcd it starts, or alone), its bad
input (a taken socket or port, a server that fails), and the default instance of a
process (try_init, get_current_socket, shutdown, bare connect() reusing it).

Run: PYTHONPATH=python python3 -m pytest -q tests/python/test_deploy_local.py
"""
import os
import socket as pysocket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import vineyard
from vineyard.deploy import local
from vineyard.deploy.utils import DeployError, free_port

from conftest import ROOT, vineyardd_binary

HAS_ETCD = any(os.access(os.path.join(d, "etcd"), os.X_OK)
               for d in os.environ.get("PATH", "").split(os.pathsep))


def procs_mentioning(fragment):
    """Pids of live processes whose command line contains ``fragment``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{entry}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    continue
        except OSError:
            continue
        if fragment in cmd:
            found.append(int(entry))
    return found


@pytest.mark.skipif(not HAS_ETCD, reason="no etcd on PATH (apt-get install etcd-server)")
def test_start_with_its_own_etcd_and_stop():
    with local.start_vineyardd(vineyardd_path=vineyardd_binary(), size="64Mi",
                               rpc_socket_port=0) as (proc, sock, rpc):
        workdir = os.path.dirname(sock)
        assert proc.poll() is None and os.path.exists(sock)
        assert rpc and int(rpc.rsplit(":", 1)[1]) > 0
        etcd = [p for p in procs_mentioning(workdir) if p != proc.pid]
        assert len(etcd) == 1, "one etcd started for it"
        with vineyard.connect(sock) as c:
            assert c.instance_id in c.meta  # registered in etcd
            oid = c.put(np.arange(6), persist=True, name="in-etcd")
            assert c.get_name("in-etcd") == oid
        with vineyard.connect(rpc.replace(rpc.split(":")[0], "127.0.0.1")) as r:
            assert (r.get(oid) == np.arange(6)).all()
    assert proc.poll() is not None
    assert not procs_mentioning(workdir), "etcd stopped with it"
    assert not os.path.exists(workdir)


def test_start_local_meta_without_rpc(tmp_path):
    sock = str(tmp_path / "given.sock")
    with local.start_vineyardd(meta="local", rpc=False, socket=sock, size="32Mi",
                               vineyardd_path=vineyardd_binary()) as (proc, got, rpc):
        assert got == sock and rpc is None
        with vineyard.connect(sock) as c:
            assert c.status.memory_limit == 32 << 20
    assert proc.poll() is not None and not os.path.exists(sock)


def test_taken_socket_is_a_clear_error_and_starts_nothing(vineyardd_socket):
    before = procs_mentioning(vineyardd_socket)
    with pytest.raises(DeployError, match="already served by another vineyardd"):
        with local.start_vineyardd(socket=vineyardd_socket, vineyardd_path=vineyardd_binary()):
            pytest.fail("started on a taken socket")
    assert procs_mentioning(vineyardd_socket) == before


def test_taken_port_is_a_clear_error_and_starts_nothing():
    port = free_port("0.0.0.0")
    with pysocket.socket() as taken:
        taken.bind(("0.0.0.0", port))
        taken.listen()
        before = set(procs_mentioning("vineyard-"))
        with pytest.raises(DeployError, match=f"RPC port {port} is already taken"):
            with local.start_vineyardd(rpc_socket_port=port, vineyardd_path=vineyardd_binary()):
                pytest.fail("started on a taken port")
        assert set(procs_mentioning("vineyard-")) <= before


@pytest.mark.skipif(not HAS_ETCD, reason="no etcd on PATH")
def test_a_server_that_fails_shows_its_log_and_leaves_nothing():
    with pytest.raises(DeployError) as e:
        with local.start_vineyardd(size="lots", vineyardd_path=vineyardd_binary()):
            pytest.fail("started with --size=lots")
    msg = str(e.value)
    assert "exited with code" in msg and "--size" in msg, msg
    assert not procs_mentioning("--size=lots")
    assert not [p for p in procs_mentioning("vineyard-etcd") if p in procs_mentioning("/tmp/vineyard-")]


def test_bad_meta_is_refused():
    with pytest.raises(ValueError, match="redis"):
        with local.start_vineyardd(meta="redis"):
            pass


def test_default_instance_per_process(tmp_path):
    """In a fresh interpreter: bare connect()s share one instance; try_init and
    get_current_socket name it; shutdown stops it; at exit it is stopped too."""
    script = textwrap.dedent("""
        import json, os, sys
        import numpy as np
        import vineyard
        out = {}
        try:
            vineyard.get_current_socket()
        except ValueError as e:
            out["before"] = str(e)
        c1 = vineyard.connect()
        oid = c1.put(np.arange(4))
        c2 = vineyard.connect()
        out["same"] = c2.ipc_socket == c1.ipc_socket == vineyard.get_current_socket()
        out["shared_object"] = c2.get(oid).tolist()
        out["try_init"] = vineyard.try_init() == c1.ipc_socket
        c1.close()
        out["alive_after_close"] = vineyard.connect().connected
        first = vineyard.get_current_socket()
        vineyard.shutdown()
        out["gone_after_shutdown"] = not os.path.exists(first)
        try:
            vineyard.get_current_socket()
        except ValueError:
            out["after"] = "ValueError"
        c3 = vineyard.connect()  # a new default instance
        out["restarted"] = c3.ipc_socket != first
        out["socket"] = c3.ipc_socket
        print(json.dumps(out))
    """)
    env = {k: v for k, v in os.environ.items()
           if k not in ("VINEYARD_IPC_SOCKET", "VINEYARD_RPC_ENDPOINT", "VINEYARD_CONFIG")}
    env["VINEYARDD"] = vineyardd_binary()
    env["PYTHONPATH"] = os.path.join(ROOT, "python")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    import json
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert "not initialized" in out["before"]
    assert out["same"] and out["shared_object"] == [0, 1, 2, 3] and out["try_init"]
    assert out["alive_after_close"] and out["gone_after_shutdown"]
    assert out["after"] == "ValueError" and out["restarted"]
    assert not os.path.exists(out["socket"]), "stopped at interpreter exit"
    assert not procs_mentioning(out["socket"])
