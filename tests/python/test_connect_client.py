"""vineyard.connect (every overload and resolution source) and the IPCClient facade."""
import os

import numpy as np
import pytest

import vineyard
from vineyard import _C

ENV = ("VINEYARD_IPC_SOCKET", "VINEYARD_RPC_ENDPOINT", "VINEYARD_CONFIG")


@pytest.fixture
def clean_env(monkeypatch):
    for k in ENV:
        monkeypatch.delenv(k, raising=False)
    return monkeypatch


@pytest.fixture
def vc(vineyardd_socket):
    c = vineyard.connect(vineyardd_socket)
    yield c
    c.close()


# ------------------------------------------------------------------ connect()
def test_connect_socket_and_auth_ignored(vineyardd_socket):
    with vineyard.connect(vineyardd_socket, username="u", password="p") as c:
        assert c.connected and c.ipc_socket == vineyardd_socket
    with vineyard.connect(socket=vineyardd_socket) as c:
        assert c.connected
    assert not c.connected


def test_connect_env_socket(clean_env, vineyardd_socket):
    clean_env.setenv("VINEYARD_IPC_SOCKET", vineyardd_socket)
    with vineyard.connect() as c:
        assert c.ipc_socket == vineyardd_socket
    with vineyard.connect(None, username="x", password="y") as c:
        assert c.connected


def test_connect_config(clean_env, vineyardd_socket, tmp_path):
    conf = tmp_path / "vineyard-config.yaml"
    conf.write_text(f"Vineyard:\n  IPCSocket: {vineyardd_socket}\n  RPCEndpoint: h:1\n")
    clean_env.setenv("VINEYARD_CONFIG", str(conf))
    with vineyard.connect() as c:
        assert c.ipc_socket == vineyardd_socket


def test_connect_failure_lists_sources(clean_env, tmp_path):
    clean_env.setenv("VINEYARD_IPC_SOCKET", str(tmp_path / "nope.sock"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("Other: 1\n")
    clean_env.setenv("VINEYARD_CONFIG", str(bad))
    with pytest.raises(vineyard.ConnectionFailedException) as e:
        vineyard.connect()
    msg = str(e.value)
    assert "VINEYARD_IPC_SOCKET" in msg and "nope.sock" in msg
    assert "VINEYARD_CONFIG" in msg and "IPCSocket" in msg
    assert "VINEYARD_RPC_ENDPOINT" in msg


def test_connect_bad_socket_message(tmp_path):
    with pytest.raises(vineyard.ConnectionFailedException, match="missing.sock"):
        vineyard.connect(str(tmp_path / "missing.sock"))


def test_connect_rpc_forms(rpc_server, clean_env):
    """Every RPC form of connect() reaches the same instance over TCP."""
    port = rpc_server.port
    forms = [(("127.0.0.1", port), {}), (("127.0.0.1", str(port)), {}),
             ((("127.0.0.1", port),), {}), ((f"127.0.0.1:{port}",), {}),
             ((), {"host": "127.0.0.1", "port": port}), ((), {"endpoint": ("127.0.0.1", port)}),
             ((), {"endpoint": f"127.0.0.1:{port}"})]
    ipc = vineyard.connect(rpc_server.socket)
    for args, kwargs in forms:
        c = vineyard.connect(*args, **kwargs)
        assert isinstance(c, vineyard.RPCClient) and c.is_rpc and not c.is_ipc, (args, kwargs)
        assert c.remote_instance_id == ipc.instance_id
        c.close()
    clean_env.setenv("VINEYARD_RPC_ENDPOINT", f"127.0.0.1:{port}")
    c = vineyard.connect()
    assert isinstance(c, vineyard.RPCClient)
    c.close()
    ipc.close()


def test_connect_rpc_env_not_answering(clean_env):
    clean_env.setenv("VINEYARD_RPC_ENDPOINT", "127.0.0.1:1")
    with pytest.raises(vineyard.ConnectionFailedException, match="VINEYARD_RPC_ENDPOINT"):
        vineyard.connect()


def test_connect_default_instance(clean_env):
    """A bare connect() starts this process's default vineyardd once; the next reuses
    it, closing a client leaves it running, vineyard.shutdown() stops it (more in
    test_deploy_local.py)."""
    if not os.path.exists("/var/run/vineyard-config.yaml"):
        from vineyard.deploy import local
        vineyard.shutdown()
        c = vineyard.connect()
        server = local._default
        assert server is not None and server.proc.poll() is None
        assert c.ipc_socket == server.socket == vineyard.get_current_socket()
        oid = c.put(np.arange(10))
        c.close()
        with vineyard.connect() as again:
            assert (again.get(oid) == np.arange(10)).all()
        assert server.proc.poll() is None
        vineyard.shutdown()
        assert server.proc.poll() is not None
        assert not os.path.exists(server.socket)
        c.close()  # idempotent


def test_connect_private_server_no_binary(clean_env, tmp_path):
    from vineyard.core import client as mod
    clean_env.setattr(mod, "_find_vineyardd", lambda: (None, ["$VINEYARDD x: not an executable"]))
    with pytest.raises(vineyard.ConnectionFailedException) as e:
        vineyard.connect()
    msg = str(e.value)
    assert "VINEYARD_IPC_SOCKET: not set" in msg and "VINEYARD_CONFIG: not set" in msg
    assert "not an executable" in msg


# ------------------------------------------------------------------ IPCClient
def test_properties(vc):
    assert vc.is_ipc and not vc.is_rpc
    assert isinstance(vc.version, str) and vc.version.count(".") == 2
    assert isinstance(vc.rpc_endpoint, str)
    assert isinstance(vc.instance_id, int)
    assert vc.status.instance_id == vc.instance_id
    assert isinstance(vc.meta, dict) and vc.meta
    assert vc.connected


def test_allocated_size_and_shared_memory(vc):
    arr = np.arange(1000, dtype=np.int64)
    oid = vc.put(arr)
    assert vc.allocated_size(oid) >= arr.nbytes
    obj = vc.get_object(oid)
    assert vc.allocated_size(obj) == vc.allocated_size(oid)
    value = vc.get(oid)
    assert vc.is_shared_memory(value)
    addr = value.__array_interface__["data"][0]
    assert vc.is_shared_memory(addr) and vc.is_shared_memory(addr + arr.nbytes - 1)
    blob_id = obj.meta.blob_ids()[0]
    assert vc.find_shared_memory(addr) == blob_id
    assert vc.find_shared_memory(memoryview(value)) == blob_id
    local = np.arange(10)
    assert not vc.is_shared_memory(local)
    assert not vc.is_shared_memory(local.__array_interface__["data"][0])
    assert vc.find_shared_memory(local) is None
    assert not vc.is_shared_memory(b"abc")
    w = vc.create_blob(64)
    assert vc.is_shared_memory(w.address) and vc.find_shared_memory(w.address) == w.id
    b = w.seal(vc.native)
    blob = vc.get_blob(b.id)
    assert vc.find_shared_memory(blob) == b.id
    with pytest.raises(TypeError):
        vc.is_shared_memory(object())


def test_sync_meta_list_objects(vc):
    vc.sync_meta()
    oid = vc.put(np.zeros(4))
    objs = vc.list_objects("vineyard::Tensor*", limit=1000)
    assert all(isinstance(o, vineyard.Object) for o in objs)
    assert oid in [o.id for o in objs]
    assert vc.list_objects("vineyard::Tensor.*", regex=True, limit=1)
    assert len(vc.list_objects("*", limit=1)) == 1
    assert vc.list_objects("no-such-type") == []


def test_delete_overloads(vc):
    ids = [vc.put(np.arange(3)) for _ in range(5)]
    vc.delete(ids[0])
    vc.delete([ids[1], ids[2]])
    vc.delete(vc.get_meta(ids[3]))
    vc.delete(vc.get_object(ids[4]))
    assert not any(vc.exists(i) for i in ids)


def test_persist_and_put_name_overloads(vc):
    ids = [vc.put(np.arange(3)) for _ in range(3)]
    vc.persist(ids[0])
    vc.persist(vc.get_meta(ids[1]))
    vc.persist(vc.get_object(ids[2]))
    assert all(vc.if_persist(i) for i in ids)
    vc.put_name(ids[0], "cc_a")
    vc.put_name(vc.get_meta(ids[1]), vineyard.ObjectName("cc_b"))
    vc.put_name(vc.get_object(ids[2]), "cc_c")
    assert [vc.get_name(n) for n in ("cc_a", "cc_b", "cc_c")] == ids
    for n in ("cc_a", "cc_b", "cc_c"):
        vc.drop_name(n)


def test_shallow_copy(vc):
    oid = vc.put(np.arange(6))
    c1 = vc.shallow_copy(oid)
    assert c1 != oid and (vc.get(c1) == np.arange(6)).all()
    c2 = vc.shallow_copy(oid, {"extra": "x", "n": 3})
    meta = vc.get_meta(c2)
    assert meta["extra"] == "x" and meta["n"] == 3


def test_reset_and_close(private_server):
    c = vineyard.connect(private_server.socket)
    oid = c.put(np.arange(3))
    c.reset()
    assert not c.exists(oid)
    c.close()
    assert not c.connected
    with pytest.raises(vineyard.VineyardException):
        c.sync_meta()
    with pytest.raises(vineyard.VineyardException):
        c.status
