"""vineyard._C, the nanobind bindings of the C++ client, against a real vineyardd.

Run: PYTHONPATH=python python3 -m pytest -q tests/python/test_native.py
"""

import copy
import os
import pickle
import signal
import threading
import time
import uuid

import pytest

from vineyard import _C

try:
    import numpy as np
except ImportError:  # pragma: no cover
    np = None


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def put_bytes(client, payload, typename="test::Bytes", **fields):
    """Puts `payload` as one blob member of a new object; returns (id, meta)."""
    builder = client.create_blob(len(payload))
    builder.copy(0, payload)
    meta = _C.ObjectMeta()
    meta.typename = typename
    meta.nbytes = len(payload)
    meta.add_member("buffer_", builder)
    for k, v in fields.items():
        meta[k] = v
    oid = client.put_object(meta, [builder])
    return oid, meta


# ------------------------------------------------------------------ ObjectID, ObjectName

def test_object_id_forms():
    value = 0x0CA84CE53CC00001
    oid = _C.ObjectID(value)
    assert repr(oid) == "o0ca84ce53cc00001"
    assert str(oid) == 'ObjectID <"o0ca84ce53cc00001">'
    assert int(oid) == value
    assert _C.ObjectID("o0ca84ce53cc00001") == oid
    assert _C.ObjectID(oid) == oid
    assert oid == value and value == oid
    assert oid != value + 1
    assert oid != "o0ca84ce53cc00001"  # no implicit conversion from str
    assert hash(oid) == hash(value)
    assert {oid: 1}[_C.ObjectID(value)] == 1
    assert value in {oid}
    assert pickle.loads(pickle.dumps(oid)) == oid
    assert copy.copy(oid) == oid
    assert sorted([_C.ObjectID(3), _C.ObjectID(1), _C.ObjectID(2)]) == [1, 2, 3]
    assert _C.ObjectID(1) < _C.ObjectID(2) <= 2 and _C.ObjectID(3) > 2
    assert _C.ObjectID(1 << 63).is_blob and not oid.is_blob
    assert hex(_C.ObjectID(255)) == "0xff"  # __index__
    with pytest.raises(_C.InvalidException):
        _C.ObjectID("not-an-id")
    with pytest.raises(TypeError):
        _C.ObjectID(-1)


def test_object_name():
    name = _C.ObjectName("my-name")
    assert repr(name) == "'my-name'"
    assert str(name) == "my-name"
    assert name == _C.ObjectName("my-name") and name != _C.ObjectName("other")
    assert hash(name) == hash("my-name")
    assert pickle.loads(pickle.dumps(name)) == name


# ------------------------------------------------------------------ exceptions

def test_exception_hierarchy():
    assert issubclass(_C.VineyardException, Exception)
    expected = {
        "ObjectNotExistsException": KeyError,
        "KeyErrorException": KeyError,
        "TypeErrorException": TypeError,
        "NotEnoughMemoryException": MemoryError,
        "ConnectionFailedException": ConnectionError,
        "ConnectionErrorException": ConnectionError,
        "IOErrorException": IOError,
        "InvalidException": None,
        "ObjectExistsException": None,
        "ObjectSealedException": None,
        "MetaTreeInvalidException": None,
        "UnknownErrorException": None,
    }
    for name, builtin in expected.items():
        cls = getattr(_C, name)
        assert issubclass(cls, _C.VineyardException), name
        if builtin is not None:
            assert issubclass(cls, builtin), name
    assert not issubclass(_C.InvalidException, KeyError)
    assert _C.ObjectNotExistsException.code == 12
    assert _C.exception_for_code(41) is _C.NotEnoughMemoryException
    assert _C.exception_for_code(9999) is _C.UnknownErrorException
    e = _C.status_to_exception(33, "nobody home")
    assert isinstance(e, _C.ConnectionFailedException) and "nobody home" in str(e)


def test_connect_failure_raises_connection_failed(tmp_path):
    with pytest.raises(_C.ConnectionFailedException) as info:
        _C.connect_ipc(str(tmp_path / "no-such.sock"))
    assert isinstance(info.value, ConnectionError)


def test_missing_object_raises_object_not_exists(client):
    missing = _C.ObjectID(0x0123456789ABCDE)
    with pytest.raises(_C.ObjectNotExistsException) as info:
        client.get_meta(missing)
    assert isinstance(info.value, KeyError)
    assert not client.exists(missing)


# ------------------------------------------------------------------ client basics

def test_client_identity_and_status(client, vineyardd_socket):
    assert client.connected and client.is_ipc and not client.is_rpc
    assert client.ipc_socket == vineyardd_socket
    assert isinstance(client.instance_id, int)
    assert isinstance(client.version, str) and client.version
    assert isinstance(client.rpc_endpoint, str)
    status = client.status
    assert isinstance(status, _C.InstanceStatus)
    assert status.instance_id == client.instance_id
    assert status.memory_limit == 512 * 1024 * 1024
    assert status.ipc_connections >= 1 and status.rpc_connections == 0
    assert isinstance(status.deployment, str)
    text = repr(status)
    assert text.startswith("InstanceStatus:") and "memory_limit: 536870912" in text
    meta = client.meta
    assert isinstance(meta, dict) and meta
    assert isinstance(client.memory_trim(), bool)
    client.flush_releases()
    assert "IPCClient" in repr(client)


# ------------------------------------------------------------------ blobs

def test_blob_create_copy_seal_get(client):
    payload = os.urandom(4096)
    builder = client.create_blob(len(payload))
    assert isinstance(builder, _C.BlobBuilder)
    assert builder.size == len(payload) == len(builder)
    assert builder.id.is_blob and builder.writable and not builder.sealed
    assert builder.address != 0
    builder.copy(0, payload[:1000])
    view = memoryview(builder)
    assert not view.readonly and view.nbytes == len(payload)
    view[1000:] = payload[1000:]
    del view
    blob = builder.seal(client)
    assert isinstance(blob, _C.Blob)
    assert blob.id == builder.id and blob.size == len(payload) and not blob.is_empty
    assert not builder.writable
    with pytest.raises(BufferError):
        memoryview(builder)
    with pytest.raises(_C.ObjectSealedException):
        builder.copy(0, b"x")
    assert bytes(blob) == payload
    assert bytes(memoryview(blob)) == payload

    got = client.get_blob(blob.id)
    assert got.id == blob.id and got.size == len(payload) and len(got) == len(payload)
    assert bytes(memoryview(got)) == payload
    [again] = client.get_blobs([blob.id])
    assert bytes(again) == payload


def test_blob_is_read_only(client):
    builder = client.create_blob(16)
    builder.copy(0, b"0123456789abcdef")
    blob = builder.seal()
    view = memoryview(blob)
    assert view.readonly
    with pytest.raises(TypeError):
        view[0] = 0
    with pytest.raises(TypeError):
        memoryview(blob).cast("B")[0:4] = b"xxxx"
    import ctypes
    with pytest.raises(TypeError):  # a writable export is refused
        ctypes.c_char.from_buffer(blob)
    if np is not None:
        arr = np.frombuffer(blob, dtype=np.uint8)
        assert not arr.flags.writeable
        with pytest.raises(ValueError):
            arr[0] = 1
    assert bytes(blob) == b"0123456789abcdef"


def test_blob_zero_copy(client):
    np_ = pytest.importorskip("numpy")
    payload = bytes(range(256)) * 64
    builder = client.create_blob(len(payload))
    builder.copy(0, payload)
    assert np_.frombuffer(builder, dtype=np_.uint8).ctypes.data == builder.address
    blob = builder.seal()
    arr = np_.frombuffer(blob, dtype=np_.uint8)
    assert arr.ctypes.data == blob.address
    first = client.get_blob(blob.id)
    second = client.get_blob(blob.id)
    assert first.address == second.address == blob.address
    assert np_.frombuffer(second, dtype=np_.uint8).ctypes.data == blob.address
    assert bytes(arr) == payload


def test_blob_view_outlives_blob_object(client):
    payload = b"keep me mapped" * 100
    builder = client.create_blob(len(payload))
    builder.copy(0, payload)
    blob = builder.seal()
    oid = blob.id
    view = memoryview(client.get_blob(oid))
    del blob, builder
    client.flush_releases()
    assert bytes(view) == payload


def test_blob_copy_from_address_and_shrink(client):
    np_ = pytest.importorskip("numpy")
    src = np_.arange(1024, dtype=np_.uint8)
    builder = client.create_blob(4096)
    builder.copy(0, src.ctypes.data, src.nbytes, concurrency=2)
    builder.shrink(src.nbytes)
    assert builder.size == src.nbytes
    blob = builder.seal()
    assert blob.size == src.nbytes
    assert bytes(blob) == src.tobytes()
    with pytest.raises(_C.InvalidException):
        client.create_blob(8).copy(4, b"0123456789")  # overflows


def test_blob_abort_and_many(client):
    builders = client.create_blob([10, 20, 30])
    assert [b.size for b in builders] == [10, 20, 30]
    assert len({int(b.id) for b in builders}) == 3
    victim = builders[0]
    victim.abort()
    assert not victim.writable
    with pytest.raises(_C.ObjectNotExistsException):
        client.get_blob(victim.id, unsafe=True)
    unsealed = client.get_blob(builders[1].id, unsafe=True)
    assert unsealed.size == 20


def test_empty_blob(client):
    empty = client.create_empty_blob()
    assert empty.is_empty and empty.size == 0 and bytes(empty) == b""
    assert _C.Blob.empty().id == _C.ObjectID.empty_blob()
    assert memoryview(empty).nbytes == 0


# ------------------------------------------------------------------ metadata

def test_object_meta_local_fields():
    meta = _C.ObjectMeta()
    assert not meta.isglobal and meta.islocal
    meta.typename = "test::Thing"
    meta.nbytes = 42
    meta["s"] = "text"
    meta["i"] = -7
    meta["u"] = 1 << 63
    meta["f"] = 2.5
    meta["b"] = True
    meta["l"] = [1, 2, 3]
    meta["d"] = {"k": "v"}
    assert meta.typename == "test::Thing" and meta.nbytes == 42
    assert meta["s"] == "text" and meta["i"] == -7 and meta["u"] == 1 << 63
    assert meta["f"] == 2.5 and meta["b"] is True
    assert meta["l"] == "[1,2,3]"  # lists are stored as JSON text, as in vineyard
    assert meta["d"] == {"k": "v"}
    assert "s" in meta and "missing" not in meta
    assert meta.get("missing") is None and meta.get("missing", 5) == 5
    with pytest.raises(KeyError):
        meta["missing"]
    with pytest.raises(TypeError):
        meta["bad"] = object()
    keys = list(meta)
    assert {"s", "i", "typename", "nbytes"} <= set(keys)
    assert dict(meta.items())["i"] == -7
    assert set(meta.field_names()) == {"s", "i", "u", "f", "b", "l", "d"}
    assert "test::Thing" in repr(meta) and repr(meta).startswith("ObjectMeta {")
    g = _C.ObjectMeta(global_=True)
    assert g.isglobal
    g.set_global(False)
    assert not g.isglobal
    clone = pickle.loads(pickle.dumps(meta))
    assert clone["d"] == {"k": "v"} and clone.typename == "test::Thing"


def test_meta_roundtrip_through_put_and_get(client):
    payload = os.urandom(10000)
    oid, meta = put_bytes(client, payload, n=3, label="hello", ratio=0.25, flag=False)
    assert isinstance(oid, _C.ObjectID)
    assert meta.id == oid
    assert meta.signature != 0
    assert meta.instance_id == client.instance_id

    got = client.get_object_meta(oid)
    assert got.id == oid and got.typename == "test::Bytes"
    assert got.nbytes == len(payload) and got.memory_usage == len(payload)
    assert got["n"] == 3 and got["label"] == "hello" and got["ratio"] == 0.25
    assert got["flag"] is False
    assert got.signature == meta.signature and got.instance_id == client.instance_id
    assert got["transient"] is True and not got.ispersist

    member = got["buffer_"]
    assert isinstance(member, _C.ObjectMeta)
    assert member.typename == "vineyard::Blob" and member.id.is_blob
    assert got.get_member("buffer_").id == member.id == got.member("buffer_").id
    assert got.get_member("nope") is None
    assert got.member_names() == ["buffer_"]
    assert got.blob_ids() == [member.id]
    blob = got.get_buffer(member.id)
    assert bytes(blob) == payload
    assert member.get_buffer(member.id).address == blob.address

    plain = client.get_meta(oid)
    assert plain.id == oid and plain["n"] == 3
    with pytest.raises(_C.ObjectNotExistsException):
        plain.get_buffer(member.id)  # get_meta maps nothing
    metas = client.get_metas([oid, oid])
    assert [m.id for m in metas] == [oid, oid]
    assert [m.id for m in client.get_object_metas([oid])] == [oid]


def test_nested_members_and_create_metadata(client):
    oid, _ = put_bytes(client, b"inner-bytes", typename="test::Inner")
    outer = _C.ObjectMeta()
    outer.typename = "test::Outer"
    outer["by_id"] = oid                     # an ObjectID value becomes a member
    outer.add_member("by_meta", client.get_meta(oid))
    outer["count"] = 2
    assert outer.member_names() == ["by_id", "by_meta"]
    created = client.create_metadata(outer)
    assert created is outer and outer.id != _C.ObjectID.invalid()
    got = client.get_object_meta(outer.id)
    assert got["by_id"].id == oid and got["by_meta"].typename == "test::Inner"
    inner_blob = got["by_meta"]["buffer_"].id
    assert bytes(got.get_buffer(inner_blob)) == b"inner-bytes"

    a, b = _C.ObjectMeta(), _C.ObjectMeta()
    a.typename = b.typename = "test::Many"
    a["k"], b["k"] = 1, 2
    out = client.create_metadata([a, b])
    assert out[0] is a and a.id != b.id
    assert client.get_meta(b.id)["k"] == 2

    listed = client.list_metadatas("test::Many", limit=100)
    assert {a.id, b.id} <= {m.id for m in listed}


def test_persist_shallow_copy_label(client):
    oid, _ = put_bytes(client, b"persist-me")
    assert not client.if_persist(oid)
    client.persist(oid)
    assert client.if_persist(oid) and client.is_persisted(oid)
    assert client.get_meta(oid).ispersist
    copy_id = client.shallow_copy(oid, {"extra": "yes"})
    assert copy_id != oid
    copied = client.get_meta(copy_id)
    assert copied["extra"] == "yes"
    assert copied["buffer_"].id == client.get_meta(oid)["buffer_"].id
    client.label(oid, "team", "infra")
    client.label(oid, {"a": "1", "b": "2"})


# ------------------------------------------------------------------ names, delete

def test_names(client):
    oid, _ = put_bytes(client, b"named")
    name = unique("native")
    with pytest.raises(_C.InvalidException):
        client.put_name(oid, name)  # transient objects cannot be named
    client.persist(oid)
    client.put_name(oid, name)
    assert client.get_name(name) == oid
    assert client.get_name(_C.ObjectName(name)) == oid
    names = client.list_names(name)
    assert names == {name: oid} and isinstance(names[name], _C.ObjectID)
    assert client.list_names("^" + name + "$", regex=True) == {name: oid}
    client.drop_name(name)
    with pytest.raises(_C.ObjectNotExistsException):
        client.get_name(name)

    named = unique("putname")
    pid, meta = None, _C.ObjectMeta()
    meta.typename = "test::Named"
    pid = client.put_object(meta, [], persist=True, name=named)
    assert client.get_name(named) == pid and meta.ispersist


def test_get_name_wait_releases_gil(client, vineyardd_socket):
    name = unique("waited")
    result = {}

    def waiter():
        c = _C.connect_ipc(vineyardd_socket)
        try:
            result["id"] = c.get_name(name, wait=True)
        finally:
            c.close()

    t = threading.Thread(target=waiter)
    t.start()
    time.sleep(0.2)  # the waiter blocks in C++ without the GIL: we keep running
    oid, _ = put_bytes(client, b"late")
    client.persist(oid)
    client.put_name(oid, name)
    t.join(10)
    assert not t.is_alive() and result["id"] == oid


def test_delete(client):
    oid, meta = put_bytes(client, b"to-delete")
    blob_id = meta["buffer_"].id
    assert client.exists(oid) and client.exists(blob_id)
    client.delete(oid)
    assert not client.exists(oid)
    assert not client.exists(blob_id)  # deep by default
    with pytest.raises(_C.ObjectNotExistsException):
        client.get_meta(oid)

    ids = [put_bytes(client, b"x")[0] for _ in range(3)]
    client.delete(ids, force=False, deep=True, memory_trim=True)
    assert not any(client.exists(i) for i in ids)

    m_id, m = put_bytes(client, b"by-meta")
    client.delete(client.get_meta(m_id))
    assert not client.exists(m_id)


# ------------------------------------------------------------------ failure modes

def test_closed_client_raises(vineyardd_socket):
    c = _C.connect_ipc(vineyardd_socket)
    builder = c.create_blob(8)
    c.close()
    assert not c.connected
    c.close()  # idempotent
    for call in (lambda: c.status, lambda: c.create_blob(8), lambda: c.get_meta(1),
                 lambda: c.list_names(), lambda: c.exists(1), lambda: builder.seal(),
                 lambda: c.put_object(_C.ObjectMeta(), [])):
        with pytest.raises(_C.ConnectionErrorException) as info:
            call()
        assert isinstance(info.value, ConnectionError)
    del builder  # dropping an unsealed builder of a closed client is harmless


def test_killed_server_raises_connection_error(private_server):
    c = _C.connect_ipc(private_server.socket)
    payload = b"survives the server" * 10
    oid, meta = put_bytes(c, payload)
    got = c.get_object_meta(oid)
    blob = got.get_buffer(got["buffer_"].id)
    private_server.proc.send_signal(signal.SIGKILL)
    private_server.proc.wait(10)
    start = time.monotonic()
    with pytest.raises(ConnectionError) as info:
        c.status
    assert isinstance(info.value, _C.ConnectionErrorException)
    with pytest.raises(_C.ConnectionErrorException):
        c.get_meta(oid)
    assert time.monotonic() - start < 10
    assert not c.connected
    assert bytes(blob) == payload  # the mapping outlives the session
