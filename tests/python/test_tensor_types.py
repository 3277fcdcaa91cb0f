"""numpy str/object/datetime64/timedelta64 arrays <-> vineyard::Tensor (reference layouts)."""
import numpy as np
import pytest

import vineyard

STR_CASES = {
    "u1d": np.array(["ab", "c", "", "héllo"]),
    "u_empty": np.array([], dtype="U3"),
    "u0d": np.array("solo"),
    "u2d_c": np.array([["a", "bb"], ["ccc", "d"]]),
    "u2d_f": np.asfortranarray(np.array([["a", "bb", "x"], ["ccc", "d", "y"]])),
    "u_strided": np.array(["a", "b", "c", "d"])[::2],
    "o1d": np.array(["a", None, "ccc", ""], dtype=object),
    "o_empty": np.array([], dtype=object),
    "o0d": np.array("x", dtype=object),
    "o2d_c": np.array([["a", None], ["b", "c"]], dtype=object),
    "o2d_f": np.asfortranarray(np.array([["a", None], ["b", "c"]], dtype=object)),
}

UNITS = ["", "Y", "M", "W", "D", "h", "m", "s", "ms", "us", "ns", "ps", "fs", "as"]


@pytest.fixture
def vc(vineyardd_socket):
    c = vineyard.connect(vineyardd_socket)
    yield c
    c.close()


def same(got, want):
    assert isinstance(got, np.ndarray)
    assert got.dtype == want.dtype and got.shape == want.shape
    assert got.tolist() == want.tolist()
    if want.ndim > 1 and want.size:
        assert got.flags.f_contiguous == (want.flags.f_contiguous and not want.flags.c_contiguous) \
            or got.flags.c_contiguous == want.flags.c_contiguous


@pytest.mark.parametrize("name", sorted(STR_CASES))
def test_str_roundtrip(vc, name):
    value = STR_CASES[name]
    same(vc.get(vc.put(value)), value)


@pytest.mark.parametrize("value", [STR_CASES["u1d"], STR_CASES["o1d"], STR_CASES["u_empty"]])
def test_str_layout_is_reference(vc, value):
    meta = vc.get_meta(vc.put(value))
    assert meta.typename == "vineyard::Tensor<std::string>"
    assert meta["value_type_"] == "string" and meta["value_type_meta_"] == "str"
    assert meta["shape_"] == "[%d]" % len(value) and meta["order_"] == '"C"'
    assert meta["buffer_"].typename == "vineyard::BaseBinaryArray<arrow::LargeStringArray>"


@pytest.mark.parametrize("value", [
    np.array([1, "a", None], dtype=object), np.array(["a", float("nan")], dtype=object),
    np.array([b"x", "y"], dtype=object), np.array([{"k": 1}, (1, 2)], dtype=object)])
def test_arbitrary_objects_pickled(vc, value):
    oid = vc.put(value)
    assert vc.get_meta(oid).typename != "vineyard::Tensor<std::string>"
    got = vc.get(oid)
    assert got.dtype == object and len(got) == len(value)
    for a, b in zip(got, value):
        assert type(a) is type(b)
        assert a == b or (a != a and b != b)


@pytest.mark.parametrize("kind", ["M8", "m8"])
@pytest.mark.parametrize("unit", UNITS)
def test_datetime_roundtrip(vc, kind, unit):
    dtype = np.dtype("%s[%s]" % (kind, unit) if unit else kind)
    base = np.array([0, 1, -5, 123456, np.iinfo(np.int64).min], dtype=np.int64).view(dtype)
    cases = [base, base[::2], np.array(base[1]), base[:0],
             np.asfortranarray(np.arange(6, dtype=np.int64).view(dtype).reshape(2, 3)),
             np.zeros((0, 3), dtype=dtype, order="F")]
    for value in cases:
        oid = vc.put(value)
        got = vc.get(oid)
        assert got.dtype == value.dtype and got.shape == value.shape
        assert np.array_equal(got.view(np.int64), value.view(np.int64))
        if value.ndim > 1 and value.size:
            assert got.flags.f_contiguous
        if value.ndim == 1 and value.size and value.flags.c_contiguous:
            assert got.ctypes.data == vc.get_object(oid).member("buffer_").address


def test_interop_published_reads_our_str(vc, vineyardd_socket, run_published):
    ids = [int(vc.put(STR_CASES["u1d"])), int(vc.put(STR_CASES["o1d"]))]
    res = run_published("""
        import json, sys, vineyard
        c = vineyard.connect(sys.argv[1])
        out = [c.get(vineyard.ObjectID(i)) for i in %r]
        print(json.dumps([[a.tolist(), str(a.dtype)] for a in out]))
    """ % (ids,), vineyardd_socket)
    assert res[0] == [STR_CASES["u1d"].tolist(), "object"]
    assert res[1] == [STR_CASES["o1d"].tolist(), "object"]


def test_interop_we_read_published_str(vc, vineyardd_socket, run_published):
    res = run_published("""
        import json, sys, numpy as np, vineyard
        c = vineyard.connect(sys.argv[1])
        vals = [np.array(["ab", "c", "h\\u00e9"]), np.array(["a", None], dtype=object),
                np.array([["a", "bb"]]), np.array([], dtype="U1")]
        print(json.dumps([int(c.put(v)) for v in vals]))
    """, vineyardd_socket)
    metas = [vc.get_meta(vineyard.ObjectID(i)) for i in res]
    assert metas[0].typename == "vineyard::Tensor<std::string>"
    got = [vc.get(vineyard.ObjectID(i)) for i in res]
    same(got[0], np.array(["ab", "c", "hé"], dtype=object))
    same(got[1], np.array(["a", None], dtype=object))
    same(got[2], np.array([["a", "bb"]]))
    same(got[3], np.array([], dtype=object))
    # our meta for the same value matches the published client's field for field
    ours = vc.get_meta(vc.put(np.array(["ab", "c", "hé"], dtype=object)))
    for key in ("typename", "shape_", "order_", "value_type_", "value_type_meta_",
                "partition_index_", "nbytes"):
        a = getattr(ours, key) if key in ("typename", "nbytes") else ours[key]
        b = getattr(metas[0], key) if key in ("typename", "nbytes") else metas[0][key]
        assert a == b, key
