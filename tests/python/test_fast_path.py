"""The fast path of put and get: numpy arrays in one native call, whole trees in one
request, str columns straight into Arrow buffers. What it writes must be what the Python
builders write (the published layouts), and a failure must leave nothing behind."""
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import vineyard
from vineyard.core.builder import builder_context
from vineyard.core.resolver import resolver_context
from vineyard.data import tensor

from conftest import Server

MiB = 1 << 20
FIELDS = ("typename", "shape_", "partition_index_", "order_", "value_type_",
          "value_type_meta_", "nbytes")


@pytest.fixture
def vc(vineyardd_socket):
    c = vineyard.connect(vineyardd_socket)
    yield c
    c.close()


def fields(meta):
    return {k: meta[k] if k != "typename" else meta.typename for k in FIELDS if k in meta
            or k == "typename"}


ARRAYS = {
    "int64": np.arange(8),
    "empty": np.zeros((0, 3), dtype=np.float32),
    "scalar": np.array(3.5),
    "2d": np.arange(12, dtype=np.int32).reshape(3, 4),
    "bool": np.array([True, False, True]),
    "complex": np.arange(4) * (1 + 2j),
    "float16": np.arange(5, dtype=np.float16),
    "big-endian": np.arange(6, dtype=">i4"),
    "uint8-large": np.arange(3 * MiB, dtype=np.uint64).astype(np.uint8),  # > inline size
    # not for the native put: they take the Python builder
    "fortran": np.asfortranarray(np.arange(12.0).reshape(3, 4)),
    "strided": np.arange(20)[::3],
    "datetime": np.array(["2024-01-01", "2025-06-30"], dtype="M8[D]"),
}


@pytest.mark.parametrize("name", list(ARRAYS))
def test_native_put_writes_what_the_python_builder_writes(vc, name):
    value = ARRAYS[name]
    fast = vc.put(value)
    with builder_context({np.ndarray: tensor.numpy_ndarray_builder}) as ctx:
        slow = vc.put(value, builder=ctx)  # an explicit context: the Python builder
    assert fields(vc.get_meta(fast)) == fields(vc.get_meta(slow))
    for oid in (fast, slow):
        got = vc.get(oid)
        assert got.dtype == value.dtype and got.shape == value.shape
        np.testing.assert_array_equal(got, value)
        assert not got.flags.writeable
    if value.nbytes and value.flags.c_contiguous:
        assert vc.is_shared_memory(vc.get(fast)), "a get maps the blob, no copy"
    vc.delete([fast, slow])


def test_user_builders_and_resolvers_still_win(vc):
    seen = []

    def my_builder(client, value, **kw):
        seen.append("built")
        return client.put(value.tolist())

    with builder_context({np.ndarray: my_builder}):
        oid = vc.put(np.arange(3))
    assert seen == ["built"]
    assert vc.get(oid) == (0, 1, 2)

    plain = vc.put(np.arange(4))
    with resolver_context({"vineyard::Tensor": lambda obj, **kw: "mine"}):
        assert vc.get(plain) == "mine"
    np.testing.assert_array_equal(vc.get(plain), np.arange(4))


def test_native_put_with_name_and_persist(vc):
    oid = vc.put(np.arange(5), name="fast-path-named")
    assert vc.get_name("fast-path-named") == oid
    assert vc.get_meta(oid).islocal and vc.get_meta(oid).ispersist
    np.testing.assert_array_equal(vc.get(name="fast-path-named"), np.arange(5))
    vc.drop_name("fast-path-named")


STRINGS = {
    "words": np.array(["a", "héllo", "", "x" * 300, "日本"], dtype=object),
    "with None": np.array(["a", None, "b", None], dtype=object),
    "all None": np.array([None, None], dtype=object),
    "unicode dtype": np.array(["ab", "c"], dtype="U3"),
}


@pytest.mark.parametrize("name", list(STRINGS))
def test_str_columns_round_trip(vc, name):
    value = STRINGS[name]
    got = vc.get(vc.put(value))
    assert got.dtype == value.dtype
    assert list(got) == list(value)
    frame = pd.DataFrame({"s": value, "n": np.arange(len(value))})
    back = vc.get(vc.put(frame))
    pd.testing.assert_frame_equal(back, frame)


def test_object_columns_that_are_not_all_str_are_kept_exactly(vc):
    from vineyard import _C
    mixed = np.array(["a", 1.5, None], dtype=object)
    assert _C.encode_str_array(mixed) is None
    lone = np.array(["a", "\ud800"], dtype=object)  # not UTF-8: arrow refuses it too
    assert _C.encode_str_array(lone) is None
    for value in (mixed, lone, np.array(["a", float("nan")], dtype=object)):
        got = vc.get(vc.put(value))
        assert got.dtype == object
        assert [str(x) for x in got] == [str(x) for x in value]
    assert _C.encode_str_array(np.arange(3)) is None  # not an object array


def _large_str_column(rows, with_none=False):
    words = np.array(["w%04d" % (i % 1000) for i in range(rows)], dtype=object)
    words[::977] = "çà et là, 日本"  # not ASCII: written by the thread holding the GIL
    if with_none:
        words[5::11] = None
    return words


@pytest.mark.parametrize("rows,with_none", [(4096, False), (200_003, True), (300_000, False)])
def test_large_str_columns_are_written_straight_into_blobs(vc, rows, with_none):
    from vineyard import _C
    value = _large_str_column(rows, with_none)
    blobs_before = vc.status.memory_usage
    direct = _C.encode_str_array_into(value, vc.native)
    assert direct is not None  # what put() uses for this column
    validity, offsets, data, nulls = direct
    assert nulls == sum(v is None for v in value) and (validity is not None) == with_none
    expected = pa.array(value, type=pa.large_string())
    assert bytes(memoryview(data)) == expected.buffers()[2].to_pybytes()
    assert bytes(memoryview(offsets)) == expected.buffers()[1].to_pybytes()
    for w in (validity, offsets, data):
        if w is not None:
            w.abort()
    assert vc.status.memory_usage == blobs_before
    frame = pd.DataFrame({"s": value, "n": np.arange(rows)})
    pd.testing.assert_frame_equal(vc.get(vc.put(frame)), frame)
    array = vc.get(vc.put(value))
    assert array.dtype == object and list(array) == list(value)


def test_large_object_columns_that_are_not_all_str_fall_back(vc):
    from vineyard import _C
    value = _large_str_column(10_000)
    value[7777] = 3.25
    before = vc.status.memory_usage
    assert _C.encode_str_array_into(value, vc.native) is None  # nothing allocated
    assert vc.status.memory_usage == before
    got = vc.get(vc.put(value))
    assert got[7777] == 3.25 and list(got[:10]) == list(value[:10])


def test_table_batches_share_one_schema(vc):
    table = pa.table({"a": pa.chunked_array([pa.array(np.arange(i * 10, i * 10 + 10))
                                             for i in range(20)]),
                      "b": pa.chunked_array([pa.array(np.arange(10) * 0.5)] * 20)})
    oid = vc.put(table)
    meta = vc.get_meta(oid)
    schema = meta.get_member("schema_").id
    for i in range(20):
        batch = meta.get_member("partitions_-%d" % i)
        assert batch.typename == "vineyard::RecordBatch"
        assert batch.get_member("schema_").id == schema
    assert vc.get(oid).equals(table)
    # a deep delete takes the batches, the columns and the one schema
    before = {int(o.id) for o in vc.list_objects("*", limit=1 << 20)}
    vc.delete(oid)
    after = {int(o.id) for o in vc.list_objects("*", limit=1 << 20)}
    assert not (after & {int(schema)}) and len(before - after) == 1 + 20 + 40 + 1


def test_deleting_what_a_put_made_gives_its_memory_back_while_connected():
    server = Server()
    try:
        client = vineyard.connect(server.socket)
        baseline = client.status.memory_usage
        values = [np.arange(8), np.arange(3 * MiB, dtype=np.uint8), pa.table({"x": [1, 2]}),
                  pd.DataFrame({"a": np.arange(10), "s": ["x"] * 10}), (np.arange(4), "t")]
        for value in values:
            client.delete(client.put(value))
            assert client.status.memory_usage == baseline, value
        client.close()
    finally:
        server.stop()


def test_a_whole_tree_put_that_fails_leaves_nothing():
    # The server refuses the root (too many nodes) after making every member: all undone.
    server = Server("--meta_max_nodes=100")
    try:
        client = vineyard.connect(server.socket)
        baseline = client.status.memory_usage
        table = pa.table({"a": pa.chunked_array([pa.array(np.arange(10))] * 40)})
        with pytest.raises(vineyard.InvalidException, match="nodes"):
            client.put(table)
        assert client.list_objects("*", limit=1 << 20) == []
        assert client.status.memory_usage == baseline
        # a DataFrame whose last column does not fit: nothing of it stays either
        limit = client.status.memory_limit
        rows = (limit // 2 + MiB) // 8  # each column fits alone, not both
        frame = pd.DataFrame({"a": np.ones(rows), "b": np.empty(rows)})
        with pytest.raises(vineyard.NotEnoughMemoryException):
            client.put(frame)
        assert client.list_objects("*", limit=1 << 20) == []
        assert client.status.memory_usage == baseline
        # str columns written straight into their blobs, then a column that does not fit
        strs = pd.DataFrame({"s": _large_str_column(100_000)})
        with pytest.raises(vineyard.NotEnoughMemoryException):
            client.put({"strs": strs, "big": np.empty(limit // 8 + 1)})
        assert client.list_objects("*", limit=1 << 20) == []
        assert client.status.memory_usage == baseline
        # and the session still puts and gets
        np.testing.assert_array_equal(client.get(client.put(np.arange(3))), np.arange(3))
        client.close()
    finally:
        server.stop()
