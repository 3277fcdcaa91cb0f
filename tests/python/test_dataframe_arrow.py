"""pandas DataFrame/Series/Index and pyarrow arrays/RecordBatch/Table put/get, and interop
with the published client (vineyard 0.24.2 in build/venv-compat).

Run: VINEYARDD=$PWD/build/vineyardd PYTHONPATH=python python3 -m pytest -q tests/python
"""

import json
import os
import subprocess
import textwrap

import pytest

np = pytest.importorskip("numpy")
pd = pytest.importorskip("pandas")
pa = pytest.importorskip("pyarrow")

import vineyard  # noqa: E402



@pytest.fixture
def vc(vineyardd_socket):
    c = vineyard.connect(vineyardd_socket)
    yield c
    c.close()


def sample_frame():
    return pd.DataFrame({
        "i": np.arange(5, dtype=np.int64), "f": np.linspace(0, 1, 5), "i32": np.arange(5, dtype=np.int32),
        "s": ["a", "bb", None, "dddd", ""], "b": [True, False, True, True, False],
        "t": pd.date_range("2020-01-01", periods=5, freq="D"),
    })


# ------------------------------------------------------------------ pandas round trips

@pytest.mark.parametrize("index", [None, pd.Index(list("vwxyz"), name="key"),
                                   pd.Index([10, 20, 30, 40, 50], name=3),
                                   pd.date_range("2021-01-01", periods=5, name="when"),
                                   pd.MultiIndex.from_tuples([(i, str(i)) for i in range(5)])])
def test_dataframe_round_trip(vc, index):
    df = sample_frame()
    if index is not None:
        df.index = index
    got = vc.get(vc.put(df))
    pd.testing.assert_frame_equal(got, df, check_freq=False)  # DatetimeIndex.freq is not stored


def test_dataframe_layout_and_zero_copy(vc):
    df = sample_frame()
    oid = vc.put(df)
    meta = vc.get_meta(oid)
    assert meta.typename == "vineyard::DataFrame"
    assert json.loads(meta["columns_"]) == list(df.columns)
    assert meta["__values_-size"] == 6 and meta["__values_-key-3"] == '"s"'
    assert meta["partition_index_row_"] == -1 and meta["row_batch_index_"] == 0
    assert meta["__values_-value-2"].typename == "vineyard::Tensor<int>"
    assert meta["__values_-value-5"].typename == "vineyard::Tensor<datetime64[ns]>"
    s = meta["__values_-value-3"]
    assert s.typename == "vineyard::Tensor<std::string>" and s["value_type_"] == "string"
    arr = s["buffer_"]
    assert arr.typename == "vineyard::BaseBinaryArray<arrow::LargeStringArray>"
    assert arr["length_"] == 5 and arr["null_count_"] == 1
    assert meta["index_"].typename == "vineyard::Index" and meta["index_"]["name"] == "null"
    got = vc.get(oid)
    col = got["f"].to_numpy()
    blob = vc.get_object(oid).member("__values_-value-1").member("buffer_")
    assert col.ctypes.data == blob.address
    assert not col.flags.writeable


def test_dataframe_non_string_names_and_empty(vc):
    df = pd.DataFrame({0: [1.5, 2.5], 1: [3, 4], 2.5: ["x", "y"]})
    pd.testing.assert_frame_equal(vc.get(vc.put(df)), df)
    dup = pd.DataFrame([[1, 2], [3, 4]], columns=["a", "a"])
    pd.testing.assert_frame_equal(vc.get(vc.put(dup)), dup)
    empty = pd.DataFrame({"a": np.array([], dtype=np.float64), "s": np.array([], dtype=object)})
    got = vc.get(vc.put(empty))
    assert list(got.columns) == ["a", "s"] and len(got) == 0 and got["a"].dtype == np.float64


def test_dataframe_extension_and_object_columns(vc):
    df = pd.DataFrame({"cat": pd.Categorical(["a", "b", "a"]), "n": pd.array([1, None, 3], dtype="Int64"),
                       "mixed": [1, "x", 2.5], "nan": ["a", np.nan, "c"],
                       "tz": pd.date_range("2020", periods=3, tz="UTC")})
    pd.testing.assert_frame_equal(vc.get(vc.put(df)), df)


def test_series_and_index(vc):
    s = pd.Series([1.0, 2.0, 3.0], index=["a", "b", "c"], name="s")
    oid = vc.put(s)
    assert vc.get_meta(oid).typename == "vineyard::Series"
    pd.testing.assert_series_equal(vc.get(oid), s)
    for s in [pd.Series(["x", None, "z"], name=None), pd.Series([True, False], name=7),
              pd.Series(pd.Categorical(["u", "v"]))]:
        pd.testing.assert_series_equal(vc.get(vc.put(s)), s)
    ri = pd.RangeIndex(5)
    got = vc.get(vc.put(ri))
    pd.testing.assert_index_equal(got, ri, exact="equiv")
    for idx in [pd.Index(["a", "b"], name="n"), pd.Index([1.5, 2.5]), pd.date_range("2020", periods=2)]:
        oid = vc.put(idx)
        assert vc.get_meta(oid).typename == "vineyard::Index"
        pd.testing.assert_index_equal(vc.get(oid), idx, exact=True) if not isinstance(idx, pd.DatetimeIndex) \
            else pd.testing.assert_index_equal(vc.get(oid), idx._with_freq(None))


# ------------------------------------------------------------------ pyarrow round trips

def test_arrow_arrays(vc):
    cases = [pa.array([1, 2, None, 4], pa.int64()), pa.array([1.5, 2.5], pa.float32()),
             pa.array([1, 2, 3], pa.uint8()), pa.array([1.0, None], pa.float64()),
             pa.array([True, None, False]), pa.array(["a", None, "ccc"], pa.large_string()),
             pa.array([b"x", b"yz"], pa.large_binary()), pa.array([1, 2, 3, 4, 5], pa.int32()).slice(1, 3)]
    for arr in cases:
        got = vc.get(vc.put(arr))
        assert got.type == arr.type and got.equals(arr), (arr, got)
    names = {vc.get_meta(vc.put(a)).typename for a in cases[:5]}
    assert names == {"vineyard::NumericArray<int64>", "vineyard::NumericArray<float>",
                     "vineyard::NumericArray<uint8>", "vineyard::NumericArray<double>",
                     "vineyard::BooleanArray"}
    s = pa.array(["p", None, "qq"])  # 32-bit offsets: stored (and returned) as large_string
    oid = vc.put(s)
    assert vc.get_meta(oid).typename == "vineyard::BaseBinaryArray<arrow::LargeStringArray>"
    assert vc.get(oid).equals(s.cast(pa.large_string()))
    oid = vc.put(pa.array(np.arange(100, dtype=np.int64)))  # zero-copy get
    assert vc.get(oid).buffers()[1].address == vc.get_object(oid).member("buffer_").address


def test_arrow_table_and_batch(vc):
    t = pa.table({"x": [1, 2, 3], "y": pa.array(["p", None, "r"], pa.large_string()),
                  "z": [True, None, False], "w": pa.array([1, 2, 3], pa.float32())})
    oid = vc.put(t)
    meta = vc.get_meta(oid)
    assert meta.typename == "vineyard::Table" and meta["batch_num_"] == 1 and meta["num_rows_"] == 3
    assert meta["schema_"].typename == "vineyard::SchemaProxy"
    assert meta["partitions_-0"].typename == "vineyard::RecordBatch"
    assert vc.get(oid).equals(t)
    multi = pa.concat_tables([t, t])
    assert vc.get(vc.put(multi)).equals(multi)
    st = pa.table({"s": ["a", "b"]})
    assert vc.get(vc.put(st)).equals(st.cast(pa.schema([("s", pa.large_string())])))
    b = t.to_batches()[0]
    assert vc.get(vc.put(b)).equals(b)
    empty = t.slice(0, 0)
    got = vc.get(vc.put(empty))
    assert got.num_rows == 0 and got.schema.equals(t.schema)


# ------------------------------------------------------------------ interop with vineyard 0.24.2


def test_interop_published_client_reads_ours(vc, vineyardd_socket, run_published):
    df = pd.DataFrame({"i": [1, 2, 3], "f": [1.5, 2.5, 3.5], "s": ["a", "bb", "ccc"],
                       "b": [True, False, True]}, index=pd.Index(["x", "y", "z"], name="k"))
    t = pa.table({"x": [1, 2, 3], "y": ["p", "q", "r"]})
    ids = [int(vc.put(df)), int(vc.put(t)), int(vc.put(df["f"]))]
    res = run_published("""
        import json, sys, vineyard
        c = vineyard.connect(sys.argv[1])
        df, t, s = [c.get(vineyard.ObjectID(i)) for i in %r]
        print(json.dumps({"df": df.to_dict(orient="list"), "index": list(df.index),
                          "iname": df.index.name, "dtypes": [str(d) for d in df.dtypes],
                          "t": t.to_pydict(), "ttypes": [str(x) for x in t.schema.types],
                          "s": s.tolist(), "sname": s.name}))
    """ % (ids,), vineyardd_socket, needs=("pandas", "pyarrow"))
    assert res["df"] == {k: v.tolist() for k, v in df.items()}
    assert res["index"] == ["x", "y", "z"] and res["iname"] == "k"
    assert res["dtypes"] == ["int64", "float64", "object", "bool"]
    assert res["t"] == t.to_pydict() and res["ttypes"] == ["int64", "large_string"]
    assert res["s"] == [1.5, 2.5, 3.5] and res["sname"] == "f"

def test_interop_we_read_published_client(vc, vineyardd_socket, run_published):
    res = run_published("""
        import json, sys, numpy as np, pandas as pd, pyarrow as pa, vineyard
        c = vineyard.connect(sys.argv[1])
        df = pd.DataFrame({"i": [1, 2, 3], "f": [1.5, 2.5, 3.5], "s": ["a", "bb", "ccc"],
                           "t": pd.to_datetime(["2020-01-01", "2020-01-02", "2020-01-03"])},
                          index=pd.Index(["x", "y", "z"], name="k"))
        t = pa.table({"x": [1, 2, 3], "y": ["p", None, "r"], "z": [True, False, None]})
        print(json.dumps({"df": int(c.put(df)), "t": int(c.put(t)),
                          "s": int(c.put(pd.Series([4, 5], name="n"))),
                          "ri": int(c.put(pd.DataFrame({0: [1.0, 2.0]})))}))
    """, vineyardd_socket, needs=("pandas", "pyarrow"))
    df = pd.DataFrame({"i": [1, 2, 3], "f": [1.5, 2.5, 3.5], "s": ["a", "bb", "ccc"],
                       "t": pd.to_datetime(["2020-01-01", "2020-01-02", "2020-01-03"])},
                      index=pd.Index(["x", "y", "z"], name="k"))
    pd.testing.assert_frame_equal(vc.get(vineyard.ObjectID(res["df"])), df)
    t = pa.table({"x": [1, 2, 3], "y": pa.array(["p", None, "r"], pa.large_string()),
                  "z": [True, False, None]})
    assert vc.get(vineyard.ObjectID(res["t"])).equals(t)
    pd.testing.assert_series_equal(vc.get(vineyard.ObjectID(res["s"])), pd.Series([4, 5], name="n"))
    pd.testing.assert_frame_equal(vc.get(vineyard.ObjectID(res["ri"])), pd.DataFrame({0: [1.0, 2.0]}))


def test_pandas_is_imported_with_the_first_frame_not_with_vineyard(vc):
    """A process that has not imported pandas gets a DataFrame (pandas comes with it), then
    puts frames, series, sparse and ndarray columns through the builders that registers."""
    frame = sample_frame()
    oid = vc.put(frame)
    script = textwrap.dedent("""
        import sys
        import vineyard
        assert "pandas" not in sys.modules
        c = vineyard.connect(sys.argv[1])
        got = c.get(vineyard.ObjectID(sys.argv[2]))
        import numpy as np, pandas as pd
        from vineyard.data.dataframe import NDArrayArray
        assert isinstance(got, pd.DataFrame), type(got)
        print(got.to_json())
        values = [pd.Series([1.5, None, 3.0], name="x"), pd.Index([3, 1, 2], name="k"),
                  pd.arrays.SparseArray([0, 0, 7, 0])]
        for v in values:
            oid = c.put(v)
            back = c.get(oid)
            assert type(back) is type(v) and repr(back) == repr(v), (repr(back), repr(v))
            assert c.get_meta(oid).typename.split("<")[0] in (
                "vineyard::Series", "vineyard::Index", "vineyard::SparseArray")
        cells = np.arange(12, dtype=np.int64).reshape(3, 4)
        back = c.get(c.put(pd.DataFrame({"v": NDArrayArray(cells)})))
        assert isinstance(back["v"].array, NDArrayArray)
        assert np.array_equal(np.asarray(back["v"].ndarray.values), cells)
    """)
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(vineyard.__file__)))
    out = subprocess.run(["python3", "-c", script, vc.ipc_socket, repr(oid)],
                         capture_output=True, text=True, timeout=60, env=env, cwd="/")
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == frame.to_json()
