"""Every method and property of the reference's IPCClient, and every member of the
vineyard._C classes, called through the public package with a user-visible check.

One case per name; ``test_*_cases_are_complete`` fails when a name of the reference
has no case (or the package lacks it).
"""
import os
import stat
import uuid

import numpy as np
import pytest

import vineyard
from vineyard import Blob, BlobBuilder, InstanceStatus, Object, ObjectID, ObjectMeta, ObjectName
from vineyard.core.builder import BuilderContext


def unique(prefix="cov"):
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def new_meta(client, typename=None, **fields):
    meta = ObjectMeta()
    meta["typename"] = typename or f"cov::{uuid.uuid4().hex[:8]}"
    meta["nbytes"] = 0
    for k, v in fields.items():
        meta[k] = v
    return client.create_metadata(meta)


# ====================================================================== IPCClient

def c_allocated_size(c, priv):
    oid = c.put(np.arange(100, dtype=np.int64))
    assert c.allocated_size(oid) == 800
    assert c.allocated_size(c.get_object(oid)) == 800
    blob_id = c.get_meta(oid)["buffer_"].id
    assert c.allocated_size(blob_id) == 800


def c_clear(c, priv):
    oid = priv.put(np.arange(3))
    priv.clear()
    assert not priv.exists(oid) and priv.list_objects("*") == []


def c_reset(c, priv):
    oid = priv.put(np.arange(3))
    priv.reset()
    assert not priv.exists(oid)


def c_close(c, priv):
    other = vineyard.connect(c.ipc_socket)
    assert other.connected
    other.close()
    assert not other.connected


def c_connected(c, priv):
    assert c.connected is True


def c_create_blob(c, priv):
    one = c.create_blob(16)
    assert isinstance(one, BlobBuilder) and one.size == 16
    many = c.create_blob([1, 2, 3])
    assert [b.size for b in many] == [1, 2, 3]
    for b in [one] + many:
        b.abort()


def c_create_empty_blob(c, priv):
    empty = c.create_empty_blob()
    assert isinstance(empty, Blob) and empty.size == 0 and empty.is_empty
    assert empty.id == ObjectID.empty_blob()


def c_create_metadata(c, priv):
    meta = ObjectMeta()
    meta["typename"] = "cov::One"
    assert c.create_metadata(meta) is meta and c.exists(meta.id)
    pair = [ObjectMeta(), ObjectMeta()]
    for m in pair:
        m["typename"] = "cov::Two"
    out = c.create_metadata(pair, instance_id=c.instance_id)
    assert [m.typename for m in out] == ["cov::Two"] * 2 and all(c.exists(m.id) for m in out)
    elsewhere = ObjectMeta()
    elsewhere["typename"] = "cov::Elsewhere"
    with pytest.raises(vineyard.InvalidException, match="connect to that instance"):
        c.create_metadata(elsewhere, instance_id=c.instance_id + 1)


def c_delete(c, priv):
    by_id, by_meta, by_object = (c.put(np.arange(4)) for _ in range(3))
    listed = [c.put(np.arange(4)) for _ in range(2)]
    c.delete(by_id)
    c.delete(c.get_meta(by_meta), force=False, deep=True)
    c.delete(c.get_object(by_object), memory_trim=True)
    c.delete(listed, force=True, deep=True)
    assert not any(c.exists(i) for i in [by_id, by_meta, by_object] + listed)
    shallow = c.put(np.arange(4))
    blob_id = c.get_meta(shallow)["buffer_"].id
    c.delete(shallow, deep=False)
    assert not c.exists(shallow) and c.exists(blob_id)  # not deep: the member stays
    c.delete(blob_id)


def c_drop_name(c, priv):
    oid = c.put(1, persist=True)
    name = unique()
    c.put_name(oid, name)
    c.drop_name(name)
    with pytest.raises(vineyard.ObjectNotExistsException):
        c.get_name(name)
    c.put_name(oid, name)
    c.drop_name(ObjectName(name))
    assert name not in c.list_names(name)


def c_exists(c, priv):
    oid = c.put("here")
    assert c.exists(oid) is True and c.exists(ObjectID("o7fffffffffff0002")) is False


def c_find_shared_memory(c, priv):
    oid = c.put(np.arange(10))
    arr = c.get(oid)
    blob_id = c.get_meta(oid)["buffer_"].id
    assert c.find_shared_memory(arr) == blob_id
    assert c.find_shared_memory(arr.__array_interface__["data"][0]) == blob_id
    assert c.find_shared_memory(np.arange(10)) is None


def c_is_shared_memory(c, priv):
    arr = c.get(c.put(np.arange(10)))
    assert c.is_shared_memory(arr) is True
    assert c.is_shared_memory(np.arange(10)) is False


def c_get(c, priv):
    oid = c.put({"k": [1, 2]}, persist=True)
    name = unique()
    c.put_name(oid, name)
    assert c.get(oid) == {"k": [1, 2]}
    assert c.get(name=name) == {"k": [1, 2]}
    ctx = vineyard.get_current_resolvers().extend({"vineyard::PickleBuffer": lambda o: "mine"})
    assert c.get(oid, resolver=ctx) == "mine"
    assert c.get(oid, fetch=True) == {"k": [1, 2]}


def c_get_blob(c, priv):
    builder = c.create_blob(4)
    builder.copy(0, b"abcd")
    assert bytes(c.get_blob(builder.id, unsafe=True)) == b"abcd"  # unsealed: unsafe only
    with pytest.raises(vineyard.VineyardException):
        c.get_blob(builder.id)
    blob = builder.seal(c)
    assert bytes(c.get_blob(blob.id)) == b"abcd"


def c_get_blobs(c, priv):
    builders = c.create_blob([2, 3])
    for b, data in zip(builders, (b"xy", b"xyz")):
        b.copy(0, data)
    assert [bytes(b) for b in c.get_blobs([b.id for b in builders], unsafe=True)] == [b"xy", b"xyz"]
    ids = [b.seal(c).id for b in builders]
    assert [bytes(b) for b in c.get_blobs(ids)] == [b"xy", b"xyz"]


def c_get_meta(c, priv):
    oid = c.put(np.zeros((2, 3)))
    meta = c.get_meta(oid, sync_remote=True)
    assert meta.id == oid and meta["shape_"] == "[2, 3]"


def c_get_metas(c, priv):
    ids = [c.put(np.arange(n + 1)) for n in range(3)]
    metas = c.get_metas(ids)
    assert [m.id for m in metas] == ids and [m["shape_"] for m in metas] == ["[1]", "[2]", "[3]"]


def c_get_name(c, priv):
    oid = c.put(7, persist=True)
    name = unique()
    c.put_name(oid, name)
    assert c.get_name(name) == oid
    assert c.get_name(ObjectName(name), wait=True) == oid  # present: returns at once


def c_get_object(c, priv):
    oid = c.put(np.arange(3))
    obj = c.get_object(oid)
    assert isinstance(obj, Object) and obj.id == oid and obj.typename == "vineyard::Tensor<int64>"


def c_get_objects(c, priv):
    ids = [c.put(np.arange(2)), c.put("s")]
    objs = c.get_objects(ids)
    assert [o.id for o in objs] == ids
    assert [o.typename for o in objs] == ["vineyard::Tensor<int64>", "vineyard::Scalar<std::string>"]


def c_instance_id(c, priv):
    assert c.instance_id == c.status.instance_id


def c_ipc_socket(c, priv):
    assert stat.S_ISSOCK(os.stat(c.ipc_socket).st_mode) and c.ipc_socket != priv.ipc_socket
    with vineyard.connect(priv.ipc_socket) as again:  # the socket the client connected to
        assert again.ipc_socket == priv.ipc_socket


def c_is_ipc(c, priv):
    assert c.is_ipc is True


def c_is_rpc(c, priv):
    assert c.is_rpc is False


def c_rpc_endpoint(c, priv):
    assert isinstance(c.rpc_endpoint, str)


def c_version(c, priv):
    parts = c.version.split(".")
    assert len(parts) == 3 and all(p.isdigit() for p in parts)


def c_list_metadatas(c, priv):
    typename = f"cov::Listed{uuid.uuid4().hex[:8]}"
    for _ in range(3):
        new_meta(c, typename)
    assert len(c.list_metadatas(typename)) == 3
    assert len(c.list_metadatas(typename, limit=2)) == 2
    assert len(c.list_metadatas(f"^{typename}$", regex=True, limit=10, nobuffer=True)) == 3


def c_list_names(c, priv):
    prefix = unique("names")
    ids = {f"{prefix}-{i}": c.put(i, persist=True) for i in range(3)}
    for name, oid in ids.items():
        c.put_name(oid, name)
    assert c.list_names(f"{prefix}-*", limit=10) == ids
    assert len(c.list_names(f"{prefix}-*", limit=2)) == 2
    assert c.list_names(f"^{prefix}-[01]$", regex=True, limit=10) == {
        k: v for k, v in ids.items() if k[-1] in "01"}


def c_list_objects(c, priv):
    typename = f"cov::Obj{uuid.uuid4().hex[:8]}"
    made = {new_meta(c, typename).id for _ in range(3)}
    objs = c.list_objects(typename, limit=10)
    assert all(isinstance(o, Object) for o in objs) and {o.id for o in objs} == made
    assert len(c.list_objects(typename, limit=1)) == 1
    assert len(c.list_objects(typename.replace("::", "::.*") + "$", regex=True, limit=10)) == 3


def c_memory_trim(c, priv):
    assert isinstance(c.memory_trim(), bool)


def c_meta(c, priv):
    assert set(c.meta[c.instance_id]) >= {"hostid", "hostname", "timestamp"}


def c_persist(c, priv):
    a, b, d = c.put(1), c.put(2), c.put(3)
    c.persist(a)
    c.persist(c.get_meta(b))
    c.persist(c.get_object(d))
    assert all(c.get_meta(i).ispersist for i in (a, b, d))


def c_put(c, priv):
    name = unique()
    oid = c.put(np.arange(5), persist=True, name=name)
    assert c.get_name(name) == oid and c.get_meta(oid).ispersist
    ctx = BuilderContext()
    ctx.register(int, lambda client, value, **kw: client.put(str(value), builder=None))
    assert c.get(c.put(42, builder=ctx)) == "42"


def c_put_name(c, priv):
    oid = c.put(5, persist=True)
    names = [unique() for _ in range(3)]
    c.put_name(oid, names[0])
    c.put_name(c.get_meta(oid), ObjectName(names[1]))
    c.put_name(c.get_object(oid), names[2])
    assert all(c.get_name(n) == oid for n in names)


def c_shallow_copy(c, priv):
    oid = c.put(np.arange(4))
    plain = c.shallow_copy(oid)
    extra = c.shallow_copy(oid, extra_metadata={"note": "hi", "n": 3})
    assert plain != oid and c.get_meta(plain).typename == c.get_meta(oid).typename
    assert c.get_meta(extra)["note"] == "hi" and c.get_meta(extra)["n"] == 3
    assert (c.get(extra) == np.arange(4)).all()


def c_status(c, priv):
    status = c.status
    assert isinstance(status, InstanceStatus) and status.memory_limit > 0


def c_sync_meta(c, priv):
    assert c.sync_meta() is None


CLIENT_CASES = {name[2:]: fn for name, fn in globals().items() if name.startswith("c_")}

# The IPCClient methods and properties of the reference.
REFERENCE_CLIENT_NAMES = """
allocated_size clear close connected create_blob create_empty_blob create_metadata delete
drop_name exists find_shared_memory get get_blob get_blobs get_meta get_metas get_name
get_object get_objects instance_id ipc_socket is_ipc is_rpc is_shared_memory list_metadatas
list_names list_objects memory_trim meta persist put put_name reset rpc_endpoint shallow_copy
status sync_meta version
""".split()


def test_client_cases_are_complete():
    assert sorted(CLIENT_CASES) == sorted(REFERENCE_CLIENT_NAMES)
    for name in REFERENCE_CLIENT_NAMES:
        assert hasattr(vineyard.IPCClient, name) or hasattr(vineyard._C.IPCClient, name), name


@pytest.fixture
def clients(vineyardd_socket, private_server):
    c = vineyard.connect(vineyardd_socket)
    priv = vineyard.connect(private_server.socket)
    yield c, priv
    priv.close()
    c.close()


@pytest.mark.parametrize("name", sorted(CLIENT_CASES))
def test_client_method(name, clients):
    CLIENT_CASES[name](*clients)


# ====================================================================== vineyard._C classes

def m_object_id():
    oid = ObjectID("o0000000000000abc")
    assert (repr(oid), str(oid), int(oid)) == ("o0000000000000abc", 'ObjectID <"o0000000000000abc">', 0xabc)
    assert hash(oid) == hash(0xabc) and oid == ObjectID(0xabc)
    import pickle
    assert pickle.loads(pickle.dumps(oid)) == oid


def m_object_name():
    n = ObjectName("x")
    assert str(n) == "x" and n == ObjectName("x") and hash(n) == hash("x")


def m_object_meta(client):
    meta = ObjectMeta()
    meta["typename"] = "cov::Meta"
    meta["k"] = "v"
    assert meta["k"] == "v" and meta.get("k") == "v" and meta.get("nope", 1) == 1
    assert "k" in meta and "k" in list(iter(meta))
    member = client.put(np.arange(3))
    meta.add_member("m", member)
    meta.set_global(True)
    assert meta.isglobal and not meta.islocal
    meta.set_global(False)
    client.create_metadata(meta)
    got = client.get_meta(meta.id)
    assert got.id == meta.id and got.typename == "cov::Meta"
    assert got.get_member("m").id == member and got.member("m").id == member
    assert got["m"].id == member
    assert got.instance_id == client.instance_id and got.islocal and not got.isglobal
    assert got.nbytes == 0 and isinstance(got.signature, int)
    assert got.memory_usage == 24
    assert repr(got).startswith("ObjectMeta {") and '"k": "v"' in repr(got)


def m_object(client):
    oid = client.put(np.arange(3), persist=True)
    obj = client.get_object(oid)
    assert obj.id == oid and obj.meta.id == oid and obj.typename == "vineyard::Tensor<int64>"
    assert obj.nbytes == 24 and isinstance(obj.signature, int)
    assert obj.islocal and not obj.isglobal and obj.ispersist
    assert isinstance(obj.member("buffer_"), Blob) and obj.member("buffer_").size == 24
    assert Object.from_(obj.meta).id == oid


def m_blob(client):
    builder = client.create_blob(3)
    builder.copy(0, b"abc")
    blob = builder.seal(client)
    assert blob.size == 3 and blob.address != 0 and not blob.is_empty
    view = memoryview(blob)
    assert view.readonly and bytes(view) == b"abc"
    assert Blob.empty().is_empty and Blob.empty().size == 0


def m_blob_builder(client):
    src = np.frombuffer(b"0123456789", dtype=np.uint8)
    builder = client.create_blob(10)
    assert builder.id.is_blob and builder.size == 10 and builder.address != 0
    builder.copy(0, b"ab")
    builder.copy(2, src.__array_interface__["data"][0] + 2, 3, 2)  # (offset, address, size, concurrency)
    memoryview(builder)[5] = ord("!")  # writable buffer
    builder.shrink(6)
    assert builder.size == 6
    blob = builder.seal(client)
    assert bytes(blob) == b"ab234!"
    dropped = client.create_blob(4)
    dropped.abort()
    with pytest.raises(vineyard.VineyardException):
        client.get_blob(dropped.id, unsafe=True)


def m_instance_status(client):
    s = client.status
    assert s.instance_id == client.instance_id and s.deployment == "local"
    assert s.memory_limit > 0 and s.memory_usage >= 0 and s.deferred_requests >= 0
    assert s.ipc_connections >= 1 and s.rpc_connections == 0
    assert str(s).startswith("InstanceStatus:")


def m_exceptions(client):
    names = [n for n in dir(vineyard._C) if n.endswith("Exception")]
    assert len(names) >= 30
    for n in names:
        assert issubclass(getattr(vineyard._C, n), vineyard.VineyardException)
        assert getattr(vineyard, n) is getattr(vineyard._C, n)


NATIVE_CASES = {name[2:]: fn for name, fn in globals().items() if name.startswith("m_")}


@pytest.mark.parametrize("name", sorted(NATIVE_CASES))
def test_native_member(name, vineyardd_socket):
    fn = NATIVE_CASES[name]
    if fn.__code__.co_argcount == 0:
        fn()
        return
    with vineyard.connect(vineyardd_socket) as client:
        fn(client)
