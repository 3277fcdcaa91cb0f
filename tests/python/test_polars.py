"""polars frames and series in vineyard's arrow Table layout: exact round trips of numeric,
string, null, boolean and categorical columns, numeric columns read in place, and the
published client reading what we write."""
import numpy as np
import polars as pl
import pytest

import vineyard


@pytest.fixture
def c(client):
    return vineyard.connect(client.ipc_socket)


def sample():
    return pl.DataFrame({
        "i": pl.Series([1, 2, None, 4], dtype=pl.Int64),
        "f": [0.5, 1.5, 2.5, 3.5],
        "u8": pl.Series([1, 2, 3, 255], dtype=pl.UInt8),
        "s": ["a", None, "ccc", ""],
        "n": pl.Series([None] * 4, dtype=pl.Null),
        "b": [True, False, None, True],
        "cat": pl.Series(["x", "y", "x", None], dtype=pl.Categorical),
    })


def test_a_frame_round_trips_exactly(c):
    frame = sample()
    oid = c.put(frame)
    meta = c.get_meta(oid)
    assert meta.typename == "vineyard::Table" and meta["from_polars"] is True
    assert meta["num_rows_"] == 4 and meta["num_columns_"] == 7
    got = c.get(oid)
    assert isinstance(got, pl.DataFrame)
    assert got.schema == frame.schema and got.equals(frame)
    empty = frame.clear()
    got = c.get(c.put(empty))
    assert got.schema == empty.schema and got.height == 0


def test_numeric_columns_are_read_in_place(c):
    values = np.random.default_rng(1).random(1 << 20)
    oid = c.put(pl.DataFrame({"key": np.arange(1 << 20), "value": values}))
    got = c.get(oid)
    column = got["value"].to_numpy()  # a view when polars holds the arrow buffer as is
    blob = c.get_object(oid).member("partitions_-0").member("__columns_-1").member("buffer_")
    assert column.ctypes.data == blob.address and not column.flags.writeable
    assert np.array_equal(column, values)


def test_a_series_round_trips_as_a_series(c):
    for series in (pl.Series("x", [1.0, None, 3.0]), pl.Series("names", ["a", "b", None]),
                   pl.Series("flag", [True, None]),
                   pl.Series("c", ["p", "q", "p"], dtype=pl.Categorical)):
        oid = c.put(series)
        assert c.get_meta(oid)["from_polars_series"] is True
        got = c.get(oid)
        assert isinstance(got, pl.Series) and got.name == series.name
        assert got.dtype == series.dtype and got.equals(series)


def test_a_frame_of_object_values_is_refused(c):
    usage = c.status.memory_usage
    frame = pl.DataFrame({"o": pl.Series([object(), object()], dtype=pl.Object)})
    with pytest.raises(TypeError, match="pl.Object"):
        c.put(frame)
    assert c.status.memory_usage == usage


def test_the_published_client_reads_a_polars_frame_as_a_table(c, client, run_published):
    # Its categorical column is a dictionary array, a layout the published client lacks.
    frame = sample().drop("cat")
    oid = c.put(frame)
    c.persist(oid)
    out = run_published(f"""
    import json, sys, vineyard
    c = vineyard.connect(sys.argv[1])
    t = c.get(vineyard.ObjectID({repr(oid)!r}))
    print(json.dumps([type(t).__name__, t.column_names, t.to_pydict()]))
    """, client.ipc_socket)
    kind, names, data = out
    assert kind == "Table" and names == frame.columns
    assert data == frame.to_dict(as_series=False)


def test_over_rpc(rpc_server):
    rpc = vineyard.connect("127.0.0.1", rpc_server.port)
    frame = sample()
    got = rpc.get(rpc.put(frame))
    assert isinstance(got, pl.DataFrame) and got.equals(frame)
    series = pl.Series("v", [3, None, 1])
    assert rpc.get(rpc.put(series)).equals(series)
    rpc.close()
