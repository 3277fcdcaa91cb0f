"""vineyard.connect / IPCClient.put / get of Python values against a real vineyardd.

Run: VINEYARDD=$PWD/build/vineyardd PYTHONPATH=python python3 -m pytest -q tests/python
"""

import json
import os
import subprocess
import textwrap
import uuid

import pytest

np = pytest.importorskip("numpy")

import vineyard  # noqa: E402
from vineyard import _C  # noqa: E402


DTYPES = ["bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
          "float16", "float32", "float64", "complex64", "complex128"]


@pytest.fixture
def vc(vineyardd_socket):
    c = vineyard.connect(vineyardd_socket)
    yield c
    c.close()


def sample(dtype, shape):
    n = int(np.prod(shape))
    a = (np.arange(n) % 7 - 3)
    if dtype == "bool":
        a = a > 0
    return a.astype(dtype).reshape(shape)


def check_same(got, want):
    assert isinstance(got, np.ndarray)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    assert not got.flags.writeable


# ------------------------------------------------------------------ connect

def test_put_bytes_outlives_its_client(vineyardd_socket):
    # A bare blob no object holds dies with its creator unless adopted; put() adopts it.
    writer = vineyard.connect(vineyardd_socket)
    oid = writer.put(b"kept after close")
    writer.close()
    reader = vineyard.connect(vineyardd_socket)
    assert bytes(reader.get(oid)) == b"kept after close"
    reader.delete(oid)
    reader.close()


def test_connect_forms(vineyardd_socket, monkeypatch):
    c = vineyard.connect(vineyardd_socket)
    assert isinstance(c, vineyard.IPCClient) and c.connected and c.ipc_socket == vineyardd_socket
    assert isinstance(c.status, vineyard.InstanceStatus)
    c.close()
    monkeypatch.setenv("VINEYARD_IPC_SOCKET", vineyardd_socket)
    c = vineyard.connect()
    assert c.instance_id == c.status.instance_id
    oid = vineyard.put(41, client=c)
    assert vineyard.get(oid, client=c) == 41
    c.close()
    # Nobody serves this TCP port (the session server runs --norpc): the error names it.
    with pytest.raises(vineyard.ConnectionFailedException, match="127.0.0.1:1"):
        vineyard.connect("127.0.0.1", 1)
    # A socket that nobody serves: the error names what was tried.
    monkeypatch.setenv("VINEYARD_IPC_SOCKET", vineyardd_socket + ".missing")
    with pytest.raises(vineyard.ConnectionFailedException, match="VINEYARD_IPC_SOCKET"):
        vineyard.connect()


def test_exports():
    for name in ["connect", "IPCClient", "Object", "ObjectID", "ObjectName", "ObjectMeta", "Blob",
                 "BlobBuilder", "InstanceStatus", "VineyardException", "ObjectNotExistsException",
                 "NotEnoughMemoryException", "builder_context", "default_resolver_context",
                 "put", "get", "vineyardd_path", "__version__"]:
        assert hasattr(vineyard, name), name
    for name in dir(_C):
        if name.endswith("Exception"):
            assert getattr(vineyard, name) is getattr(_C, name)


# ------------------------------------------------------------------ numpy

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(), (0,), (7,), (2, 3), (3, 0, 2), (2, 3, 4)])
def test_ndarray_roundtrip(vc, dtype, shape):
    want = sample(dtype, shape)
    oid = vc.put(want)
    assert isinstance(oid, vineyard.ObjectID)
    check_same(vc.get(oid), want)


@pytest.mark.parametrize("dtype", ["int32", "float64", "bool"])
def test_ndarray_fortran_and_strided(vc, dtype):
    want = np.asfortranarray(sample(dtype, (3, 4)))
    got = vc.get(vc.put(want))
    check_same(got, want)
    assert got.flags.f_contiguous and not got.flags.c_contiguous
    strided = sample(dtype, (6, 5))[::2, 1::2]
    check_same(vc.get(vc.put(strided)), strided)


def test_ndarray_layout_matches_protocol(vc):
    a = np.arange(6, dtype=np.float64).reshape(2, 3)
    meta = vc.get_meta(vc.put(a))
    assert meta.typename == "vineyard::Tensor<double>"
    assert meta["shape_"] == "[2, 3]" and meta["partition_index_"] == "[]"
    assert meta["order_"] == '"C"' and meta["value_type_"] == "float64"
    assert meta["value_type_meta_"] == "<f8" and meta.nbytes == 48
    assert meta["buffer_"].typename == "vineyard::Blob"
    names = {np.int32: "int", np.float32: "float", np.int64: "int64", np.uint64: "uint64",
             np.uint32: "uint32", np.bool_: "bool", np.int8: "int8"}
    for ty, cpp in names.items():
        assert vc.get_meta(vc.put(np.zeros(2, dtype=ty))).typename == f"vineyard::Tensor<{cpp}>"
    f = vc.get_meta(vc.put(np.asfortranarray(a)))
    assert f["order_"] == '"F"'


def test_ndarray_zero_copy_and_read_only(vc):
    a = np.arange(4096, dtype=np.int64)
    oid = vc.put(a)
    obj = vc.get_object(oid)
    blob = obj.member("buffer_")
    assert isinstance(blob, vineyard.Blob)
    got = vc.get(oid)
    assert got.ctypes.data == blob.address
    assert vc.get(oid).ctypes.data == blob.address
    assert not got.flags.writeable
    with pytest.raises(ValueError):
        got[0] = 1
    with pytest.raises(ValueError):
        got.flags.writeable = True
    np.testing.assert_array_equal(got, a)


# ------------------------------------------------------------------ other values

@pytest.mark.parametrize("value", [0, -5, 2**62, True, False, 0.0, -2.5, 1e300, "", "héllo",
                                   "x" * 10000])
def test_scalar_roundtrip(vc, value):
    oid = vc.put(value)
    got = vc.get(oid)
    assert got == value and type(got) is type(value)


def test_scalar_layout(vc):
    meta = vc.get_meta(vc.put(5))
    assert meta.typename == "vineyard::Scalar<int>"
    assert meta["value_"] == 5 and meta["type_"] == "int" and meta.nbytes == 0
    meta = vc.get_meta(vc.put(2.5))
    assert meta.typename == "vineyard::Scalar<double>" and meta["type_"] == "float"
    meta = vc.get_meta(vc.put("s"))
    assert meta.typename == "vineyard::Scalar<std::string>" and meta["value_"] == "s"


def test_bytes_roundtrip(vc):
    for payload in [b"hello", os.urandom(100000), memoryview(b"from a view"), b""]:
        oid = vc.put(payload)
        got = vc.get(oid)
        assert isinstance(got, memoryview) and got.readonly
        assert bytes(got) == bytes(payload)
    oid = vc.put(b"blob")
    assert oid.is_blob and vc.get_meta(oid).typename == "vineyard::Blob"


def test_sequence_roundtrip(vc):
    value = (1, "a", 2.5, True, b"raw", np.arange(3), (None, [4]), {"k": "v"})
    oid = vc.put(value)
    got = vc.get(oid)
    assert isinstance(got, tuple) and len(got) == len(value)
    assert got[:4] == value[:4] and bytes(got[4]) == b"raw"
    check_same(got[5], value[5])
    assert got[6] == (None, (4,)) and got[7] == {"k": "v"}
    assert vc.get(vc.put([1, 2, 3])) == (1, 2, 3)
    assert vc.get(vc.put([])) == ()
    meta = vc.get_meta(vc.put(("x", 1)))
    assert meta.typename == "vineyard::Sequence"
    assert meta["size_"] == 2 and meta["__elements_-size"] == 2
    assert meta["__elements_-1"].typename == "vineyard::Scalar<int>"


@pytest.mark.parametrize("value", [{"a": 1, "b": [1, 2]}, None, {1, 2, 3}, complex(1, 2),
                                   np.array([{"a": 1}, 2], dtype=object)])
def test_pickle_roundtrip(vc, value):
    oid = vc.put(value)
    got = vc.get(oid)
    if isinstance(value, np.ndarray):
        np.testing.assert_array_equal(got, value)
    else:
        assert got == value
    meta = vc.get_meta(oid)
    assert meta.typename == "vineyard::PickleBuffer" and meta["size_"] == meta.nbytes


def test_persist_and_name(vc):
    name = "pg-" + uuid.uuid4().hex[:10]
    a = np.arange(12).reshape(3, 4)
    oid = vc.put(a, persist=True, name=name)
    assert vc.get_name(name) == oid and vc.get_meta(oid).ispersist
    check_same(vc.get(name=name), a)
    assert vc.get_object(oid).ispersist
    plain = vc.put(a)
    assert not vc.get_meta(plain).ispersist
    oid2 = vc.put({"x": 1}, persist=True)
    assert vc.get_meta(oid2).ispersist
    named_scalar = vc.put(7, name=name + "-s")
    assert vc.get(name=name + "-s") == 7 and vc.get_object(named_scalar).ispersist


def test_object_accessors(vc):
    oid = vc.put(np.arange(5, dtype=np.int32))
    obj = vc.get_object(oid)
    assert isinstance(obj, vineyard.Object)
    assert obj.id == oid and obj.typename == "vineyard::Tensor<int>" and obj.nbytes == 20
    assert obj.signature == obj.meta.signature != 0
    assert obj.islocal and not obj.isglobal and not obj.ispersist
    assert vineyard.Object.from_(obj.meta).id == oid
    [again] = vc.get_objects([oid])
    assert again == obj
    with pytest.raises(KeyError):
        obj.member("missing")


def test_unknown_id_raises(vc):
    missing = vineyard.ObjectID(0x0123456789ABCDE)
    with pytest.raises(vineyard.ObjectNotExistsException):
        vc.get(missing)
    with pytest.raises(vineyard.ObjectNotExistsException):
        vc.get_object(missing)
    with pytest.raises(vineyard.ObjectNotExistsException):
        vc.get(name="no-such-name-" + uuid.uuid4().hex)


def test_custom_builder_and_resolver(vc):
    class Point:
        def __init__(self, x):
            self.x = x

    def build(client, value, **kw):
        meta = vineyard.ObjectMeta()
        meta.typename = "test::Point"
        meta["x"] = value.x
        return client.create_metadata(meta)

    with vineyard.builder_context({Point: build}), \
            vineyard.resolver_context({"test::Point": lambda obj: Point(obj.meta["x"])}):
        name = "pt-" + uuid.uuid4().hex[:8]
        oid = vc.put(Point(3), persist=True, name=name)
        assert vc.get_meta(oid).typename == "test::Point" and vc.get_name(name) == oid
        assert vc.get(oid).x == 3
    assert isinstance(vc.get(oid), vineyard.Object)  # no resolver outside the context


def test_passthrough_methods(vc):
    oid = vc.put(np.arange(100, dtype=np.uint8))
    assert vc.exists(oid)
    assert vc.allocated_size(oid) == 100
    assert vc.get_metas([oid])[0].id == oid
    assert oid in {o.id for o in vc.list_objects("vineyard::Tensor<uint8>", limit=1000)}
    blob = vc.create_blob(4)
    blob.copy(0, b"abcd")
    assert bytes(blob.seal(vc.native)) == b"abcd"
    vc.delete(oid)
    assert not vc.exists(oid)


# ------------------------------------------------------------------ interop with vineyard 0.24.2


def test_interop_published_client_reads_ours(vc, vineyardd_socket, run_published):
    a = np.arange(24, dtype=np.float64).reshape(4, 6) / 3
    f = np.asfortranarray(np.arange(6, dtype=np.int32).reshape(2, 3))
    ids = [int(vc.put(a)), int(vc.put(42)), int(vc.put(f)), int(vc.put("text"))]
    res = run_published("""
        import json, sys, vineyard
        c = vineyard.connect(sys.argv[1])
        ids = %r
        arr, num, farr, s = [c.get(vineyard.ObjectID(i)) for i in ids]
        print(json.dumps({"arr": arr.tolist(), "dtype": str(arr.dtype), "num": num,
                          "farr": farr.tolist(), "fdtype": str(farr.dtype), "s": s}))
    """ % (ids,), vineyardd_socket)
    assert res["arr"] == a.tolist() and res["dtype"] == "float64"
    assert res["num"] == 42 and res["s"] == "text"
    assert res["farr"] == f.tolist() and res["fdtype"] == "int32"

def test_interop_we_read_published_client(vc, vineyardd_socket, run_published):
    res = run_published("""
        import json, sys, numpy as np, vineyard
        c = vineyard.connect(sys.argv[1])
        a = np.arange(30, dtype=np.int64).reshape(5, 6)
        f = np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3))
        print(json.dumps({"a": int(c.put(a)), "f": int(c.put(f)), "n": int(c.put(7)),
                          "t": int(c.put((1, "z"))), "d": int(c.put({"k": [1, 2]}))}))
    """, vineyardd_socket)
    got = vc.get(vineyard.ObjectID(res["a"]))
    check_same(got, np.arange(30, dtype=np.int64).reshape(5, 6))
    assert got.ctypes.data == vc.get_object(vineyard.ObjectID(res["a"])).member("buffer_").address
    check_same(vc.get(vineyard.ObjectID(res["f"])),
               np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3)))
    assert vc.get(vineyard.ObjectID(res["n"])) == 7
    assert vc.get(vineyard.ObjectID(res["t"])) == (1, "z")
    assert vc.get(vineyard.ObjectID(res["d"])) == {"k": [1, 2]}


def test_delete_then_put_reuses_the_memory_at_once():
    # A client's references to what it put are given back with its next request;
    # a delete (or a put that does not fit) sends them first, so the memory of a
    # deleted object is free for the next put of this client.
    from conftest import Server

    server = Server(size="256Mi")
    try:
        with vineyard.connect(server.socket) as client:
            for _ in range(3):
                oid = client.put(np.ones(20 << 20))  # 160 MiB of 256
                client.delete(oid)
            assert client.status.memory_usage == 0
    finally:
        server.stop()


def test_names_follow_their_object_through_moves_and_deletes(vc):
    a, b, c = (vc.put(i) for i in range(3))
    for oid in (a, b, c):
        vc.persist(oid)
    vc.put_name(a, "follow-1")
    vc.put_name(a, "follow-2")
    vc.put_name(b, "follow-3")
    vc.put_name(b, "follow-2")  # moves from a to b
    many = [f"follow-many-{i}" for i in range(10000)]
    for name in many:
        vc.put_name(c, name)
    vc.delete(a)
    names = vc.list_names("follow-*", limit=20000)
    assert "follow-1" not in names
    assert names["follow-2"] == b and names["follow-3"] == b
    assert sum(1 for n in names if n.startswith("follow-many-")) == 10000
    vc.delete(b)
    assert set(vc.list_names("follow-*", limit=20000)) == set(many)
    vc.delete(c)
    assert vc.list_names("follow-*", limit=20000) == {}
