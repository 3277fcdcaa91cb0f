"""More data types: pandas SparseArray and NDArrayArray columns, pyarrow buffers, fixed-size
binary, list, dictionary and struct arrays (alone and as RecordBatch/Table columns), the
C++ client's vineyard::Array<T>, ObjectBuilder, and RPC clients building objects from
wrapped remote blobs. Each round trip is compared exactly, zero copy is checked where it
is claimed (the data lies inside the mapped blob), the published 0.24.2 client reads
ours and writes what ours reads, and bad input fails clearly."""
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import vineyard
from vineyard import _C
from vineyard.data.dataframe import NDArrayArray, NDArrayDtype


@pytest.fixture(scope="module")
def c(rpc_server):
    client = vineyard.connect(rpc_server.socket)
    yield client
    client.close()


@pytest.fixture(scope="module")
def rpc(rpc_server):
    client = vineyard.connect("127.0.0.1", rpc_server.port)
    yield client
    client.close()


def inside(address, blob):
    """True if ``address`` lies in the mapped bytes of ``blob``."""
    return blob.address <= address < blob.address + blob.size


def tensor_blob(obj):
    return obj.member("buffer_")


# --------------------------------------------------------------------------- pandas


SPARSE = {
    "float-nan": pd.arrays.SparseArray([0.0, np.nan, 1.5, np.nan, 2.0]),
    "int-zero": pd.arrays.SparseArray(np.array([0, 0, 3, 4, 0, 5], dtype=np.int64), fill_value=0),
    "block": pd.arrays.SparseArray([0, 0, 3, 4, 0, 5], fill_value=0, kind="block"),
    "bool": pd.arrays.SparseArray([False, True, False, False], fill_value=False),
}


@pytest.mark.parametrize("name", sorted(SPARSE))
def test_sparse_array_round_trips_exactly_in_place(c, name):
    value = SPARSE[name]
    oid = c.put(value)
    meta = c.get_meta(oid)
    assert meta.typename == f"vineyard::SparseArray<{value.dtype.name}>"
    assert meta["value_type_"] == value.dtype.name and meta["sp_index_size"] == len(value)
    assert meta["sp_index_name"] == type(value.sp_index).__name__
    got = c.get(oid)
    assert isinstance(got, pd.arrays.SparseArray) and got.dtype == value.dtype
    assert type(got.sp_index) is type(value.sp_index) and got.sp_index.equals(value.sp_index)
    np.testing.assert_array_equal(got.sp_values, value.sp_values)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(value))
    values_blob = tensor_blob(c.get_object(oid).member("sp_values"))
    if got.sp_values.size:
        assert inside(got.sp_values.ctypes.data, values_blob)  # no copy of the values


def test_sparse_columns_and_series(c):
    frame = pd.DataFrame({"dense": np.arange(4.0),
                          "sparse": pd.arrays.SparseArray([0, 1, 0, 2], fill_value=0)})
    got = c.get(c.put(frame))
    assert got.dtypes.tolist() == frame.dtypes.tolist()
    pd.testing.assert_frame_equal(got, frame)
    series = pd.Series(SPARSE["block"], name="s", index=list("abcdef"))
    got = c.get(c.put(series))
    pd.testing.assert_series_equal(got, series)
    assert got.array.sp_index.equals(series.array.sp_index)


def ndarray_frame():
    rows = np.arange(24, dtype=np.float32).reshape(4, 2, 3)
    return rows, pd.DataFrame({"id": np.arange(4), "t": NDArrayArray(rows)})


def test_ndarray_column_round_trips_in_place(c):
    rows, frame = ndarray_frame()
    assert str(frame.dtypes["t"]) == "NDArray(shape=(2, 3), dtype=dtype('float32'))"
    oid = c.put(frame)
    column = c.get_object(oid).member("__values_-value-1")
    assert column.typename == "vineyard::Tensor<float>"
    assert column.meta["shape_"] == "[4, 2, 3]"  # the rows are the first axis
    got = c.get(oid)
    assert got.dtypes["t"] == NDArrayDtype((2, 3), np.float32)
    values = got["t"].ndarray.values
    np.testing.assert_array_equal(values, rows)
    assert values.dtype == np.float32 and not values.flags.writeable
    assert inside(values.ctypes.data, tensor_blob(column))  # the column is the blob
    np.testing.assert_array_equal(got["t"][2], rows[2])
    assert got["t"].ndarray.shape == (2, 3) and got["t"].ndarray.ndim == 2
    assert got["t"].ndarray.dtype == np.float32
    picked = got.iloc[[3, 1]]  # pandas operations keep the extension type
    np.testing.assert_array_equal(picked["t"].ndarray.values, rows[[3, 1]])
    doubled = pd.concat([got, got])
    np.testing.assert_array_equal(doubled["t"].ndarray.values, np.concatenate([rows, rows]))


def test_ndarray_series_alone_and_dtype_names(c):
    rows = np.arange(12, dtype=np.int64).reshape(3, 4)
    series = pd.Series(NDArrayArray(rows), name="v")
    got = c.get(c.put(series))
    assert got.name == "v" and got.dtype == series.dtype
    np.testing.assert_array_equal(got.ndarray.values, rows)
    # on its own an NDArrayArray is its backing tensor
    np.testing.assert_array_equal(c.get(c.put(NDArrayArray(rows))), rows)
    dtype = NDArrayDtype((2, 3), "float64")
    assert pd.api.types.pandas_dtype(str(dtype)) == dtype
    assert NDArrayDtype.construct_from_string("NDArray") == NDArrayDtype()
    assert NDArrayArray([np.zeros(2), np.ones(2)]).ndarray_shape == (2,)


def test_pandas_bad_input(c):
    with pytest.raises(TypeError, match="tuple"):
        NDArrayDtype([2, 3])
    with pytest.raises(ValueError, match="numpy dtype"):
        NDArrayDtype((2,), "no-such-dtype")
    with pytest.raises(TypeError, match="Cannot construct"):
        NDArrayDtype.construct_from_string("NDArray(shape=__import__('os'))")
    with pytest.raises(ValueError, match="at least one dimension"):
        NDArrayArray(np.float64(1.0))
    _, frame = ndarray_frame()
    got = c.get(c.put(frame))
    with pytest.raises(ValueError, match="read-only"):  # a view of shared memory
        got["t"].array[0] = np.zeros((2, 3))
    with pytest.raises(AttributeError, match="ndarray accessor"):
        pd.Series([1, 2]).ndarray
    # a sparse array whose index kind is unknown: a clear error, the object intact
    good = c.get_meta(c.put(SPARSE["float-nan"]))
    bad = _C.ObjectMeta()
    bad.typename = good.typename
    for key in ("value_type_", "sp_index_size"):
        bad[key] = good[key]
    bad["sp_index_name"] = "NoSuchIndex"
    bad.add_member("sp_index", good["sp_index"].id)
    bad.add_member("sp_values", good["sp_values"].id)
    bad_id = c.create_metadata(bad).id
    with pytest.raises(ValueError, match="NoSuchIndex"):
        c.get(bad_id)
    np.testing.assert_array_equal(np.asarray(c.get(good.id)), np.asarray(SPARSE["float-nan"]))


# --------------------------------------------------------------------------- pyarrow


ARRAYS = {
    "fixed_size_binary": pa.array([b"abcd", None, b"wxyz"], pa.binary(4)),
    "list": pa.array([[1, 2], None, [], [3]], pa.list_(pa.int64())),
    "large_list": pa.array([["a", None], ["bc"]], pa.large_list(pa.string())),
    "sliced_list": pa.array([[1], [2, 3], None, [4]], pa.list_(pa.int32())).slice(1, 3),
    "dictionary": pa.array(["x", "y", None, "x"]).dictionary_encode(),
    "ordered_dictionary": pa.DictionaryArray.from_arrays(
        pa.array([1, 0, 1], pa.int8()), pa.array([1.5, 2.5]), ordered=True),
    "struct": pa.array([{"a": 1, "b": "s", "c": [1.5]}, None, {"a": None, "b": "t", "c": []}]),
    "sliced_struct": pa.array([{"a": 1}, None, {"a": 3}, {"a": 4}]).slice(1, 2),
    "nested": pa.array([[{"k": [1, 2]}], [], None]),
}

def read_back_type(t):
    """The type an array of type ``t`` has once read back (strings and lists widened)."""
    from vineyard.data.arrow import _large_type
    return _large_type(t)


@pytest.mark.parametrize("name", sorted(ARRAYS))
def test_arrow_arrays_round_trip_exactly(c, name):
    value = ARRAYS[name]
    got = c.get(c.put(value))
    assert got.type == read_back_type(value.type)
    assert got.to_pylist() == value.to_pylist()
    assert got.equals(value.cast(got.type) if got.type != value.type else value)
    got.validate(full=True)


def test_arrow_buffers_are_read_in_place(c):
    fixed = ARRAYS["fixed_size_binary"]
    oid = c.put(fixed)
    assert c.get_meta(oid)["byte_width_"] == 4
    got = c.get(oid)
    assert inside(got.buffers()[1].address, c.get_object(oid).member("buffer_"))
    listed = ARRAYS["list"]
    oid = c.put(listed)
    got = c.get(oid)
    values = c.get_object(oid).member("values_")
    assert inside(got.values.buffers()[1].address, values.member("buffer_"))
    raw = pa.py_buffer(b"arrow buffer bytes")
    oid = c.put(raw)
    view = c.get(oid)
    assert bytes(view) == raw.to_pybytes() and view.readonly
    wrapped = pa.py_buffer(view)
    assert wrapped.address == c.get_object(oid).address  # the blob itself, not a copy


def test_arrow_columns_of_record_batches_and_tables(c):
    columns = {"f": ARRAYS["fixed_size_binary"], "l": ARRAYS["list"].slice(0, 3),
               "d": ARRAYS["dictionary"].slice(1, 3).take([0, 1, 0]),
               "s": ARRAYS["struct"], "n": ARRAYS["nested"]}
    batch = pa.RecordBatch.from_pydict(columns)
    got = c.get(c.put(batch))
    assert got.schema == pa.schema([pa.field(f.name, read_back_type(f.type)) for f in batch.schema])
    assert got.to_pylist() == batch.to_pylist()
    table = pa.Table.from_batches([batch, batch.slice(1, 2)])
    got = c.get(c.put(table))
    assert got.num_rows == 5 and got.to_pylist() == table.to_pylist()


def test_arrow_bad_input(c):
    good = c.get_object(c.put(ARRAYS["struct"]))
    bad = _C.ObjectMeta()
    bad.typename = "vineyard::StructArray"
    for key in ("length_", "null_count_", "offset_", "__fields_-size"):
        bad[key] = good.meta[key]
    bad["fields_"] = '[{"name": "a", "nullable": true}]'  # one name for three children
    bad.add_member("null_bitmap_", good.meta["null_bitmap_"].id)
    for i in range(3):
        bad.add_member("__fields_-%d" % i, good.meta["__fields_-%d" % i].id)
    with pytest.raises(ValueError, match="1 fields, 3 child arrays"):
        c.get(c.create_metadata(bad).id)
    assert c.get(good.id).to_pylist() == ARRAYS["struct"].to_pylist()


# --------------------------------------------------------------------------- Array<T>


def put_cpp_array(c, values):
    """A vineyard::Array<T> as the C++ ArrayBuilder<T> writes it."""
    from vineyard.data.tensor import normalize_cpptype
    meta = _C.ObjectMeta()
    meta.typename = f"vineyard::Array<{normalize_cpptype(values.dtype)}>"
    meta["size_"] = len(values)
    meta.add_member("buffer_", c.put(memoryview(values.view(np.uint8))))
    meta.nbytes = values.nbytes
    return c.create_metadata(meta).id


def test_cpp_array_reads_as_a_numpy_view(c):
    for values in (np.arange(10, dtype=np.int64), np.linspace(0, 1, 7),
                   np.arange(5, dtype=np.int32), np.arange(3, dtype=np.float32)):
        oid = put_cpp_array(c, values)
        got = c.get(oid)
        assert got.dtype == values.dtype and not got.flags.writeable
        np.testing.assert_array_equal(got, values)
        assert inside(got.ctypes.data, c.get_object(oid).member("buffer_"))
    empty = c.get(put_cpp_array(c, np.zeros(0, dtype=np.float64)))
    assert empty.shape == (0,) and empty.dtype == np.float64


# --------------------------------------------------------------------------- builders


def test_object_builder(c):
    builder = c.native.create_blob(8)
    assert isinstance(builder, vineyard.ObjectBuilder) and not builder.issealed
    memoryview(builder)[:] = b"12345678"
    with pytest.raises(TypeError, match="expected an IPCClient, got str"):
        builder.seal("not a client")
    assert not builder.issealed  # nothing happened
    blob = builder.seal(c)
    assert builder.issealed and bytes(blob) == b"12345678"
    with pytest.raises(vineyard.VineyardException):
        builder.seal(c)  # sealed once only
    with pytest.raises(TypeError):
        vineyard.ObjectBuilder()
    with pytest.raises(TypeError):
        vineyard.ObjectBuilder.seal(builder, None)  # the generic seal needs a client


def test_rpc_client_builds_from_wrapped_remote_blobs(c, rpc):
    values = np.arange(1000, dtype=np.int64)
    wrapped = vineyard.RemoteBlobBuilder.wrap(values)
    assert wrapped.address == values.ctypes.data and wrapped.size == values.nbytes
    assert wrapped.writable
    blob_meta = rpc.create_remote_blob(wrapped)
    meta = _C.ObjectMeta()
    meta.typename = "vineyard::Array<int64>"
    meta["size_"] = len(values)
    meta.add_member("buffer_", blob_meta)
    oid = rpc.create_metadata(meta).id
    np.testing.assert_array_equal(c.get(oid), values)  # over IPC, as sent
    np.testing.assert_array_equal(rpc.get(oid), values)  # and fetched over TCP

    # a tree from get_meta has no bytes; add_remote_blob attaches fetched ones
    tree = rpc.get_meta(oid)
    with pytest.raises(vineyard.VineyardException):
        tree.get_buffer(blob_meta.id)
    tree.add_remote_blob(rpc.get_remote_blob(blob_meta.id))
    np.testing.assert_array_equal(np.frombuffer(tree.get_buffer(blob_meta.id), np.int64), values)
    np.testing.assert_array_equal(vineyard.get_current_resolvers().run(vineyard.Object(tree)),
                                  values)

    partial = vineyard.RemoteBlobBuilder.wrap(b"read-only bytes", 9)
    assert not partial.writable and partial.size == 9
    with pytest.raises(TypeError):
        memoryview(partial)[0] = 1
    with pytest.raises(vineyard.VineyardException, match="read-only"):
        partial.copy(0, b"x")
    sent = rpc.create_remote_blob(partial)
    assert bytes(rpc.get_remote_blob(sent.id)) == b"read-only"
    by_address = vineyard.RemoteBlobBuilder.wrap(values.ctypes.data, 16)
    assert bytes(memoryview(by_address)) == values[:2].tobytes()


def test_remote_blob_bad_input(c, rpc):
    with pytest.raises(TypeError, match="bytes-like"):
        vineyard.RemoteBlobBuilder.wrap("a str")
    with pytest.raises(ValueError, match="cannot wrap 10 bytes of a buffer of 3"):
        vineyard.RemoteBlobBuilder.wrap(b"abc", 10)
    stray = rpc.get_remote_blob(rpc.create_remote_blob(vineyard.RemoteBlobBuilder.wrap(b"x")).id)
    meta = _C.ObjectMeta()
    meta.typename = "my::Thing"
    with pytest.raises(vineyard.ObjectNotExistsException, match="not a member"):
        meta.add_remote_blob(stray)  # not in the tree
    with pytest.raises(TypeError):
        meta.add_remote_blob(c.native.create_blob(4).seal(c))  # a Blob, not a RemoteBlob
    with pytest.raises(TypeError):
        meta.add_remote_blob(None)


# --------------------------------------------------------------------------- published client


def test_the_published_client_reads_ours(c, run_published, rpc_server):
    rows, frame = ndarray_frame()
    frame["s"] = pd.arrays.SparseArray([0, 1, 0, 2], fill_value=0)
    mine = {
        "sparse": c.put(SPARSE["float-nan"]),
        "frame": c.put(frame),
        "fixed": c.put(ARRAYS["fixed_size_binary"]),
        "list": c.put(ARRAYS["sliced_list"]),
        "batch": c.put(pa.RecordBatch.from_pydict({"f": ARRAYS["fixed_size_binary"],
                                                    "l": ARRAYS["list"].slice(0, 3)})),
        "array": put_cpp_array(c, np.arange(6, dtype=np.int64)),
        "buffer": c.put(pa.py_buffer(b"our bytes")),
    }
    for oid in mine.values():
        c.persist(oid)
    out = run_published(f"""
    import json, sys, numpy as np, vineyard
    c = vineyard.connect(sys.argv[1])
    ids = {{k: vineyard.ObjectID(v) for k, v in {({k: repr(v) for k, v in mine.items()})!r}.items()}}
    got = {{k: c.get(v) for k, v in ids.items()}}
    frame = got["frame"]
    print(json.dumps({{
        "sparse": [None if v != v else v for v in np.asarray(got["sparse"]).tolist()],
        "sparse_type": type(got["sparse"]).__name__,
        "t_dtype": str(frame.dtypes["t"]),
        "t": np.asarray(frame["t"].values._ndarray).tolist(),
        "s": np.asarray(frame["s"].values).tolist(),
        "fixed": [None if v is None else v.hex() for v in got["fixed"].to_pylist()],
        "list": got["list"].to_pylist(),
        "batch": [[v.hex() if isinstance(v, bytes) else v for v in r.values()]
                  for r in got["batch"].to_pylist()],
        "array": got["array"].tolist(),
        "buffer": bytes(memoryview(got["buffer"])).decode(),
    }}))
    """, rpc_server.socket, needs=("pandas", "pyarrow"))
    assert out["sparse_type"] == "SparseArray"
    assert out["sparse"] == [None if v != v else v for v in np.asarray(SPARSE["float-nan"]).tolist()]
    assert out["t_dtype"] == "NDArray(shape=(2, 3), dtype=dtype('float32'))"
    assert out["t"] == rows.tolist() and out["s"] == [0, 1, 0, 2]
    assert out["fixed"] == ["61626364", None, "7778797a"]
    assert out["list"] == ARRAYS["sliced_list"].to_pylist()
    assert out["batch"] == [["61626364", [1, 2]], [None, None], ["7778797a", []]]
    assert out["array"] == list(range(6))
    assert out["buffer"] == "our bytes"


def test_ours_reads_what_the_published_client_writes(c, run_published, rpc_server):
    out = run_published("""
    import json, sys, numpy as np, pandas as pd, pyarrow as pa, vineyard
    from vineyard.data.dataframe import NDArrayArray
    c = vineyard.connect(sys.argv[1])
    values = {
        "sparse": pd.arrays.SparseArray([0.0, np.nan, 1.5, np.nan, 2.0]),
        "frame": pd.DataFrame({"id": np.arange(3),
                               "t": NDArrayArray(np.arange(12.0).reshape(3, 2, 2))}),
        "list": pa.array([[1, 2], None, [], [3]], pa.list_(pa.int64())),
        "batch": pa.RecordBatch.from_pydict({"l": pa.array([[1.5], [], None])}),
        "buffer": pa.py_buffer(b"published bytes"),
    }
    ids = {k: c.put(v) for k, v in values.items()}
    for oid in ids.values():
        c.persist(oid)
    print(json.dumps({k: repr(v) for k, v in ids.items()}))
    """, rpc_server.socket, needs=("pandas", "pyarrow"))
    ids = {k: vineyard.ObjectID(v) for k, v in out.items()}
    sparse = c.get(ids["sparse"])
    assert isinstance(sparse, pd.arrays.SparseArray)
    np.testing.assert_array_equal(np.asarray(sparse), [0.0, np.nan, 1.5, np.nan, 2.0])
    assert sparse.sp_index.equals(SPARSE["float-nan"].sp_index)
    frame = c.get(ids["frame"])
    assert isinstance(frame.dtypes["t"], NDArrayDtype)
    np.testing.assert_array_equal(frame["t"].ndarray.values, np.arange(12.0).reshape(3, 2, 2))
    np.testing.assert_array_equal(frame["id"], np.arange(3))
    listed = c.get(ids["list"])
    assert listed.type == pa.large_list(pa.int64())
    assert listed.to_pylist() == [[1, 2], None, [], [3]]
    assert c.get(ids["batch"]).to_pylist() == [{"l": [1.5]}, {"l": []}, {"l": None}]
    assert bytes(c.get(ids["buffer"])) == b"published bytes"


def test_new_types_over_rpc(c, rpc):
    values = {"sparse": SPARSE["int-zero"], "struct": ARRAYS["struct"],
              "dictionary": ARRAYS["dictionary"], "fixed": ARRAYS["fixed_size_binary"]}
    for name, value in values.items():
        oid = rpc.put(value)
        for reader in (c, rpc):
            got = reader.get(oid)
            if name == "sparse":
                np.testing.assert_array_equal(np.asarray(got), np.asarray(value))
            else:
                assert got.to_pylist() == value.to_pylist()
    _, frame = ndarray_frame()
    got = rpc.get(rpc.put(frame))
    np.testing.assert_array_equal(got["t"].ndarray.values, frame["t"].ndarray.values)
    oid = rpc.put(pa.py_buffer(b"bytes sent over TCP"))
    assert bytes(c.get(oid)) == bytes(rpc.get(oid)) == b"bytes sent over TCP"
