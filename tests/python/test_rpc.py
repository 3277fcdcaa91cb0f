"""The Python RPCClient against a real vineyardd's TCP endpoint: every method of the
reference, RemoteBlob and RemoteBlobBuilder, put/get of every data type (equal to the
same object read over IPC), zstd on the wire, logins, and faults."""
import os
import signal
import subprocess
import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import vineyard
from vineyard import _C

from conftest import Server


@pytest.fixture
def rpc(rpc_server):
    c = vineyard.connect("127.0.0.1", rpc_server.port)
    yield c
    c.close()


@pytest.fixture
def ipc(rpc_server):
    c = vineyard.connect(rpc_server.socket)
    yield c
    c.close()


VALUES = {
    "int64 array": np.arange(1000, dtype=np.int64),
    "2-d float": np.random.default_rng(0).random((64, 33)),
    "F-order": np.asfortranarray(np.arange(12.0).reshape(3, 4)),
    "0-d": np.array(7, dtype=np.int32),
    "empty": np.zeros((0, 3)),
    "bool": np.array([True, False, True]),
    "datetime": np.array(["2024-01-01", "2025-06-30"], dtype="datetime64[ns]"),
    "strings": np.array(["a", "bc", ""]),
    "int": 42, "float": 2.5, "str": "hello", "bool scalar": True,
    "tuple": (1, "two", 3.0), "list": [1, 2, 3],
    "dict (pickled)": {"a": [1, 2], "b": None}, "None": None,
    "DataFrame": pd.DataFrame({"i": np.arange(5), "f": np.linspace(0, 1, 5),
                               "s": list("abcde"),
                               "c": pd.Categorical(["x", "y", "x", "y", "x"])}),
    "Series": pd.Series([1.5, 2.5], index=["p", "q"], name="s"),
    "Index": pd.Index([3, 1, 2], name="idx"),
    "arrow array": pa.array([1, None, 3]),
    "arrow strings": pa.array(["x", None, "zz"], pa.large_string()),
    "arrow list": pa.array([[1, 2], [], None], pa.large_list(pa.int64())),
    "RecordBatch": pa.record_batch({"x": pa.array([1, 2]), "y": pa.array([0.5, 1.5])}),
    "Table": pa.Table.from_batches([pa.record_batch({"x": pa.array([i, i + 1])})
                                    for i in range(0, 20, 2)]),
}


def assert_same(a, b):
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, pd.DataFrame):
        pd.testing.assert_frame_equal(a, b)
    elif isinstance(a, pd.Series):
        pd.testing.assert_series_equal(a, b)
    elif isinstance(a, pd.Index):
        pd.testing.assert_index_equal(a, b)
    elif isinstance(a, (pa.Array, pa.ChunkedArray, pa.RecordBatch, pa.Table)):
        assert a.equals(b)
    else:
        assert a == b and type(a) is type(b)


@pytest.mark.parametrize("compression", [False, True])
@pytest.mark.parametrize("key", list(VALUES))
def test_put_get_over_rpc_equals_ipc(rpc, ipc, key, compression):
    rpc.compression = compression
    value = VALUES[key]
    oid = rpc.put(value)
    over_rpc, over_ipc = rpc.get(oid), ipc.get(oid)
    assert_same(tuple(value) if isinstance(value, list) else value, over_rpc)  # a Sequence
    assert_same(over_ipc, over_rpc)
    # and the other way round: put over IPC, read over RPC
    assert_same(rpc.get(ipc.put(value)), ipc.get(oid))


def test_get_object_over_rpc_has_remote_blobs(rpc, ipc):
    arr = np.arange(100, dtype=np.float64)
    obj = rpc.get_object(ipc.put(arr))
    blob = obj.meta.get_buffer(obj.meta.member("buffer_").id)
    assert isinstance(blob, vineyard.RemoteBlob) and isinstance(blob, vineyard.Blob)
    assert blob.instance_id == ipc.instance_id and blob.size == arr.nbytes
    got = rpc.get(obj.id)
    assert not got.flags.writeable  # a copy in this process, still immutable
    with pytest.raises(ValueError):
        got[0] = 1


def test_large_array_round_trip(rpc, ipc):
    arr = np.random.default_rng(3).random(8 << 20)  # 64 MiB
    oid = rpc.put(arr, persist=True, name="rpc-large")
    assert ipc.get_name("rpc-large") == oid
    np.testing.assert_array_equal(rpc.get(name="rpc-large"), arr)
    np.testing.assert_array_equal(ipc.get(oid), arr)
    rpc.delete(oid)


def test_remote_blob_builder_and_remote_blob(rpc, ipc):
    payload = bytes(range(256)) * 40
    builder = vineyard.RemoteBlobBuilder(len(payload))
    assert builder.size == len(payload) and builder.address != 0
    memoryview(builder)[:10] = payload[:10]  # writable buffer
    builder.copy(10, payload[10:])
    meta = rpc.create_remote_blob(builder)
    assert meta.typename == "vineyard::Blob" and meta.nbytes == len(payload)
    blob = rpc.get_remote_blob(meta.id)
    assert isinstance(blob, vineyard.RemoteBlob)
    assert blob.id == meta.id and blob.size == len(payload) and not blob.is_empty
    assert blob.instance_id == rpc.remote_instance_id and blob.address != 0
    assert bytes(memoryview(blob)) == payload
    with pytest.raises(TypeError):
        memoryview(blob)[0] = 1  # read-only
    assert bytes(memoryview(ipc.get_blob(meta.id))) == payload

    # copy from a raw address, several builders in one request
    src = np.arange(16, dtype=np.uint8)
    b1, b2 = vineyard.RemoteBlobBuilder(16), vineyard.RemoteBlobBuilder(3)
    b1.copy(0, src.ctypes.data, 16)
    b2.copy(0, b"xyz")
    metas = rpc.create_remote_blob([b1, b2])
    blobs = rpc.get_remote_blobs([m.id for m in metas])
    assert bytes(memoryview(blobs[0])) == src.tobytes() and bytes(memoryview(blobs[1])) == b"xyz"

    aborted = vineyard.RemoteBlobBuilder(8)
    aborted.abort()
    with pytest.raises(BufferError):
        memoryview(aborted)
    with pytest.raises(vineyard.VineyardException):
        rpc.create_remote_blob(aborted)


def test_every_rpc_client_method(rpc, ipc):
    assert rpc.connected and rpc.is_rpc and not rpc.is_ipc
    assert rpc.instance_id == rpc.remote_instance_id == ipc.instance_id
    assert rpc.ipc_socket == ipc.ipc_socket
    assert rpc.rpc_endpoint.endswith(f":{int(rpc.rpc_endpoint.rsplit(':', 1)[1])}")
    assert rpc.version == ipc.version
    assert rpc.status.rpc_connections >= 1
    assert ipc.instance_id in rpc.meta

    meta = vineyard.ObjectMeta()
    meta["typename"] = "test::Plain"
    meta["answer"] = 42
    meta = rpc.create_metadata(meta)
    assert rpc.is_fetchable(meta)
    assert rpc.exists(meta.id)
    assert rpc.get_meta(meta.id)["answer"] == 42
    assert [m["answer"] for m in rpc.get_metas([meta.id])] == [42]
    assert rpc.get_object(meta.id).typename == "test::Plain"
    assert [o.id for o in rpc.get_objects([meta.id])] == [meta.id]
    assert meta.id in [m.id for m in rpc.list_metadatas("test::Plain")]
    assert meta.id in [o.id for o in rpc.list_objects("test::Plain")]
    rpc.persist(meta.id)
    rpc.put_name(meta.id, "rpc-plain")
    assert rpc.get_name("rpc-plain") == meta.id
    assert "rpc-plain" in rpc.list_names("rpc-*")
    copy = rpc.shallow_copy(meta.id, extra_metadata={"note": "copied"})
    assert rpc.get_meta(copy)["note"] == "copied"
    rpc.drop_name("rpc-plain")
    with pytest.raises(vineyard.ObjectNotExistsException):
        rpc.get_name("rpc-plain")
    rpc.delete([meta.id, copy])
    assert not rpc.exists(meta.id)
    rpc.sync_meta()
    assert isinstance(rpc.memory_trim(), bool)
    forked = rpc.fork()
    assert forked.remote_instance_id == rpc.remote_instance_id
    forked.close()
    rpc.close()
    assert not rpc.connected
    with pytest.raises(vineyard.ConnectionErrorException):
        rpc.exists(meta.id)


def test_clear_and_reset_over_rpc():
    server = Server(rpc=True)
    try:
        rpc = vineyard.connect("127.0.0.1", server.port)
        oid = rpc.put(np.arange(10))
        rpc.clear()
        assert not rpc.exists(oid)
        oid = rpc.put(np.arange(10))
        rpc.reset()
        assert not rpc.exists(oid)
        rpc.close()
    finally:
        server.stop()


def test_put_over_the_limit_leaves_nothing():
    # A server of its own: on the shared one, other tests' sessions may still be giving
    # memory back while this one measures.
    server = Server(rpc=True)
    try:
        rpc = vineyard.connect("127.0.0.1", server.port)
        ipc = vineyard.connect(server.socket)
        baseline = ipc.status.memory_usage
        objects = len(ipc.list_metadatas("*", limit=1000))
        df = pd.DataFrame({"a": np.zeros(40 << 20), "b": np.zeros(40 << 20)})  # 2 x 320 MiB
        with pytest.raises(vineyard.NotEnoughMemoryException):
            rpc.put(df)
        assert ipc.status.memory_usage == baseline
        assert len(ipc.list_metadatas("*", limit=1000)) == objects
        assert rpc.get(rpc.put(np.arange(3))).tolist() == [0, 1, 2]  # still serving
        rpc.close()
        ipc.close()
    finally:
        server.stop()


def test_unknown_ids_over_rpc(rpc):
    with pytest.raises(vineyard.ObjectNotExistsException):
        rpc.get(vineyard.ObjectID("o0000000000001234"))
    with pytest.raises(vineyard.ObjectNotExistsException):
        rpc.get_remote_blob(vineyard.ObjectID("o8000000000001234"))


def test_closed_port_names_the_endpoint():
    with pytest.raises(vineyard.ConnectionFailedException, match="127.0.0.1:1"):
        vineyard.connect("127.0.0.1", 1)


def test_server_death_mid_session_raises_promptly():
    server = Server(rpc=True)
    try:
        rpc = vineyard.connect("127.0.0.1", server.port)
        rpc.put(np.arange(4))
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait()
        start = time.monotonic()
        with pytest.raises(vineyard.ConnectionErrorException):
            rpc.put(np.arange(4))
        assert time.monotonic() - start < 5
    finally:
        server.stop()


@pytest.fixture
def htpasswd(tmp_path):
    path = str(tmp_path / "users")
    subprocess.run(["htpasswd", "-B", "-b", "-c", path, "alice", "wonderland"], check=True,
                   capture_output=True)
    return path


def test_login_on_both_transports(htpasswd):
    server = Server(f"--htpasswd={htpasswd}", rpc=True)
    try:
        ipc = vineyard.connect(server.socket, username="alice", password="wonderland")
        rpc = vineyard.connect("127.0.0.1", server.port, username="alice", password="wonderland")
        oid = rpc.put(np.arange(5))
        assert ipc.get(oid).tolist() == list(range(5))
        for user, password in [("alice", "wrong"), ("bob", "wonderland"), (None, None)]:
            with pytest.raises(vineyard.ConnectionFailedException):
                vineyard.connect(server.socket, username=user, password=password)
            with pytest.raises(vineyard.ConnectionFailedException):
                vineyard.connect("127.0.0.1", server.port, username=user, password=password)
        assert ipc.exists(oid)  # the others are still served
        for forked in (ipc.fork(), rpc.fork()):  # a fork logs in as its parent did
            assert forked.exists(oid)
            forked.close()
        ipc.close()
        rpc.close()
    finally:
        server.stop()


def test_socket_is_private_by_default(rpc_server):
    assert os.stat(rpc_server.socket).st_mode & 0o777 == 0o600


# The RPCClient methods and properties of the reference; each is exercised above.
REFERENCE_RPC_NAMES = """
clear close connected create_metadata create_remote_blob delete drop_name exists get get_meta
get_metas get_name get_object get_objects get_remote_blob get_remote_blobs instance_id
ipc_socket is_fetchable is_ipc is_rpc list_metadatas list_names list_objects memory_trim meta
persist put put_name remote_instance_id reset rpc_endpoint shallow_copy status sync_meta version
""".split()


def test_rpc_client_has_every_reference_name():
    missing = [n for n in REFERENCE_RPC_NAMES if not hasattr(vineyard.RPCClient, n)]
    assert not missing
    for name in ("address", "id", "instance_id", "is_empty", "size"):
        assert hasattr(vineyard.RemoteBlob, name), name
    for name in ("copy", "abort", "address", "size"):
        assert hasattr(vineyard.RemoteBlobBuilder, name), name


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    """A CA and a server certificate for 127.0.0.1, made with the openssl command."""
    d = tmp_path_factory.mktemp("tls")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run = lambda *args: subprocess.run(args, cwd=d, check=True, capture_output=True)  # noqa
    run("openssl", "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=test-ca")
    run("openssl", "req", "-x509", *ec, "-keyout", "other.key", "-out", "other.pem", "-days",
        "2", "-subj", "/CN=other-ca")
    run("openssl", "req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj",
        "/CN=localhost")
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf")
    return d


def test_tls_rpc_round_trip_and_refusals(tls_files):
    server = Server(f"--rpc_tls_cert={tls_files / 'server.pem'}",
                    f"--rpc_tls_key={tls_files / 'server.key'}", "--rpc_host=127.0.0.1",
                    rpc=True)
    try:
        rpc = vineyard.connect("127.0.0.1", server.port, tls_ca=str(tls_files / "ca.pem"))
        value = np.arange(1 << 20, dtype=np.float64)
        assert np.array_equal(rpc.get(rpc.put(value)), value)
        df = pd.DataFrame({"a": np.arange(1000), "b": np.arange(1000) * 0.5})
        assert rpc.get(rpc.put(df)).equals(df)
        rpc.close()
        # A CA the server's certificate does not chain to: refused, saying TLS.
        with pytest.raises(vineyard.ConnectionFailedException, match="TLS"):
            vineyard.connect("127.0.0.1", server.port, tls_ca=str(tls_files / "other.pem"))
        # Plain TCP to a TLS port gets no session.
        with pytest.raises(vineyard.VineyardException):
            vineyard.connect("127.0.0.1", server.port)
        # The environment variable works as the keyword does.
        os.environ["VINEYARD_RPC_TLS_CA"] = str(tls_files / "ca.pem")
        try:
            again = vineyard.connect("127.0.0.1", server.port)
            assert again.get(again.put([1, 2, 3])) == (1, 2, 3)
            again.close()
        finally:
            del os.environ["VINEYARD_RPC_TLS_CA"]
    finally:
        server.stop()
