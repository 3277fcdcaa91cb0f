"""pandas DataFrame / Series / Index <-> ``vineyard::DataFrame`` / ``Series`` / ``Index``.

Layouts as the reference client writes them:

- ``vineyard::Index``: ``name`` (JSON), ``value_type_`` (dtype name, ``object`` for strings),
  member ``value_`` (the index values as a Tensor). A RangeIndex is written as its int64
  values (and comes back as an ``Index[int64]``, as with the reference).
- ``vineyard::Series``: ``name`` (JSON), members ``index_`` and ``value_``.
- ``vineyard::DataFrame``: ``columns_`` (JSON list), member ``index_``, ``__values_-size``,
  per column ``__values_-key-<i>`` (JSON name) and member ``__values_-value-<i>``;
  ``partition_index_row_``/``partition_index_column_`` -1, ``row_batch_index_`` 0.

Columns: numeric/bool/datetime64/timedelta64 -> ``Tensor<T>`` (zero-copy, read-only on get);
str/None object columns -> ``Tensor<std::string>`` over ``BaseBinaryArray<arrow::LargeStringArray>``
when pyarrow is available; ``pandas.arrays.SparseArray`` -> ``vineyard::SparseArray<...>``;
``NDArrayArray`` (one fixed-shape ndarray per row) -> an n-d ``Tensor<T>`` whose first axis
is the rows, as vineyard writes it (a get of an n-d tensor column gives an NDArrayArray);
anything else (other extension dtypes, mixed objects) -> PickleBuffer.

- ``vineyard::SparseArray<dtype name>``: ``value_type_`` (e.g. ``Sparse[float64, nan]``),
  ``sp_index_name`` (``IntIndex``), ``sp_index_size`` (the dense length), members
  ``sp_index`` (int32 positions) and ``sp_values`` (Tensors). Arrays of kind ``block``
  are written with ``sp_index_name`` ``BlockIndex``, ``sp_index`` the block starts and a
  member ``sp_index_lengths`` (the block lengths); vineyard itself writes only ``IntIndex``.
"""
from __future__ import annotations

import json
import re
from typing import Any, Optional, Sequence, Tuple

import numpy as np
import pandas as pd
from pandas.api.extensions import ExtensionArray, ExtensionDtype, register_extension_dtype
from pandas.api.indexers import check_array_indexer

from .. import _C
from ..core.object import PendingObject
from .pickle import pickle_builder
from .tensor import numpy_ndarray_builder
from .utils import from_json

try:
    from .arrow import string_tensor_builder
except ImportError:  # no pyarrow: string columns are pickled
    string_tensor_builder = None


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def name_to_json(value: Any) -> str:
    """A column/index name as JSON text (``"a"`` -> ``'"a"'``, ``None`` -> ``'null'``)."""
    return json.dumps(value, default=_json_default)


def _json_name_ok(value: Any) -> bool:
    """Whether a name survives the JSON text the layout stores (else the value is pickled)."""
    if value is None or isinstance(value, str):
        return True
    if not isinstance(value, (bool, int, float, np.integer, np.floating)):
        return False
    loaded = json.loads(name_to_json(value))
    return loaded == value and type(loaded) is type(value.item() if isinstance(value, np.generic) else value)


def build_array(client: Any, value: Any, builder: Any = None, **kw: Any) -> Any:
    """One column / index / series payload: a Tensor when numpy can hold it natively."""
    if isinstance(value, pd.arrays.SparseArray):
        return pandas_sparse_array_builder(client, value)
    if isinstance(value, NDArrayArray):
        return numpy_ndarray_builder(client, value._ndarray)
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "biufcmM" and value.dtype.fields is None:
            return numpy_ndarray_builder(client, value, **kw)
        if value.dtype.kind in "OU" and string_tensor_builder is not None:
            built = string_tensor_builder(client, value, **kw)
            if built is not None:
                return built
    return pickle_builder(client, value)


def _column_values(series: pd.Series) -> Any:
    """numpy values of a column when its dtype is a numpy dtype, else the ExtensionArray."""
    if isinstance(series.dtype, np.dtype):
        return series.to_numpy(copy=False)
    return series.array


def pandas_index_builder(client: Any, value: pd.Index, **kw: Any) -> PendingObject:
    if isinstance(value, pd.MultiIndex) or not isinstance(value.dtype, np.dtype) \
            or not _json_name_ok(value.name):
        return pickle_builder(client, value)
    meta = _C.ObjectMeta()
    meta.typename = "vineyard::Index"
    meta["name"] = name_to_json(value.name)
    meta["value_type_"] = value.dtype.name
    meta.add_member("value_", client.nest_all([build_array(client, value.to_numpy())])[0])
    meta.nbytes = 0
    return PendingObject(meta)


def pandas_series_builder(client: Any, value: pd.Series, **kw: Any) -> Any:
    if not _json_name_ok(value.name):
        return pickle_builder(client, value)
    meta = _C.ObjectMeta()
    meta.typename = "vineyard::Series"
    meta["name"] = name_to_json(value.name)
    ids = client.nest_all([pandas_index_builder(client, value.index),
                           build_array(client, _column_values(value), **kw)])
    meta.add_member("index_", ids[0])
    meta.add_member("value_", ids[1])
    meta.nbytes = 0
    return PendingObject(meta)


def pandas_dataframe_builder(client: Any, value: pd.DataFrame, **kw: Any) -> Any:
    names = value.columns.tolist()
    if isinstance(value.columns, pd.MultiIndex) or not all(_json_name_ok(n) for n in names):
        return pickle_builder(client, value)
    meta = _C.ObjectMeta()
    meta.typename = "vineyard::DataFrame"
    meta["columns_"] = name_to_json(names)
    built = [pandas_index_builder(client, value.index)]
    built += [build_array(client, _column_values(value.iloc[:, i]))
              for i in range(value.shape[1])]
    ids = client.nest_all(built)
    meta.add_member("index_", ids[0])
    for i, name in enumerate(names):
        meta["__values_-key-%d" % i] = name_to_json(name)
        meta.add_member("__values_-value-%d" % i, ids[i + 1])
    meta.nbytes = 0
    meta["__values_-size"] = len(names)
    partition_index = kw.get("partition_index", [-1, -1])
    meta["partition_index_row_"] = int(partition_index[0])
    meta["partition_index_column_"] = int(partition_index[1])
    meta["row_batch_index_"] = int(kw.get("row_batch_index", 0))
    return PendingObject(meta)


# --------------------------------------------------------------------------- resolvers


def _as_column(value: Any) -> Any:
    if isinstance(value, (pd.Series, pd.Index)):
        return value.array
    if isinstance(value, np.ndarray) and value.ndim > 1:  # one ndarray per row
        return NDArrayArray(value)
    return value


def pandas_index_resolver(obj: Any, resolver: Any = None, **kw: Any) -> pd.Index:
    meta = obj.meta
    name = from_json(meta["name"])
    value = resolver.run(obj.member("value_"))
    value_type = meta.get("value_type_")
    try:
        dtype = np.dtype(value_type) if value_type else None
    except TypeError:
        dtype = None
    return pd.Index(_as_column(value), dtype=dtype, name=name, copy=False)


def pandas_series_resolver(obj: Any, resolver: Any = None, **kw: Any) -> pd.Series:
    meta = obj.meta
    name = from_json(meta["name"])
    index = resolver.run(obj.member("index_"))
    value = resolver.run(obj.member("value_"))
    return pd.Series(_as_column(value), index=index, name=name, copy=False)


def pandas_dataframe_resolver(obj: Any, resolver: Any = None, **kw: Any) -> pd.DataFrame:
    meta = obj.meta
    columns = from_json(meta["columns_"])
    names = [from_json(meta["__values_-key-%d" % i]) for i in range(len(columns))]
    values = [_as_column(resolver.run(obj.member("__values_-value-%d" % i)))
              for i in range(len(columns))]
    if "index_" in meta.member_names():
        index = resolver.run(obj.member("index_"))
    else:
        index = pd.RangeIndex(len(values[0]) if values else 0)
    # positional keys keep duplicate names apart; copy=False keeps numeric columns zero-copy
    frame = pd.DataFrame(dict(enumerate(values)), index=index, copy=False)
    if names:
        frame.columns = pd.Index(names, tupleize_cols=False)
    return frame


# --------------------------------------------------------------------------- SparseArray


def pandas_sparse_array_builder(client: Any, value: pd.arrays.SparseArray,
                                **kw: Any) -> PendingObject:
    from pandas._libs.sparse import IntIndex
    meta = _C.ObjectMeta()
    meta.typename = "vineyard::SparseArray<%s>" % value.dtype.name
    meta["value_type_"] = value.dtype.name
    index = value.sp_index
    meta["sp_index_size"] = int(index.length)
    if isinstance(index, IntIndex):
        meta["sp_index_name"] = "IntIndex"
        arrays = [("sp_index", index.indices)]
    else:
        meta["sp_index_name"] = "BlockIndex"
        arrays = [("sp_index", index.blocs), ("sp_index_lengths", index.blengths)]
    arrays.append(("sp_values", value.sp_values))
    members = client.nest_all([numpy_ndarray_builder(client, np.ascontiguousarray(a))
                               for _, a in arrays])
    for (name, _), member in zip(arrays, members):
        meta.add_member(name, member)
    meta.nbytes = int(value.nbytes)
    return PendingObject(meta)


def pandas_sparse_array_resolver(obj: Any, resolver: Any = None,
                                 **kw: Any) -> pd.arrays.SparseArray:
    from pandas._libs.sparse import BlockIndex, IntIndex
    meta = obj.meta
    kind, size = meta["sp_index_name"], int(meta["sp_index_size"])
    positions = resolver.run(obj.member("sp_index"))
    if kind == "IntIndex":
        index = IntIndex(size, positions)
    elif kind == "BlockIndex":
        index = BlockIndex(size, positions, resolver.run(obj.member("sp_index_lengths")))
    else:
        raise ValueError(f"unknown sparse index {kind!r} in {obj.typename}")
    dtype = pd.api.types.pandas_dtype(meta["value_type_"])
    return pd.arrays.SparseArray(resolver.run(obj.member("sp_values")), sparse_index=index,
                                 dtype=dtype, copy=False)


# --------------------------------------------------------------------------- NDArrayArray

_NDARRAY_NAME = re.compile(r"NDArray\(shape=(\([0-9, ]*\)), dtype=dtype\('([^']+)'\)\)")


@register_extension_dtype
class NDArrayDtype(ExtensionDtype):
    """The dtype of an ``NDArrayArray`` column: every row is an ndarray of ``shape`` and
    ``dtype`` (spelled ``NDArray(shape=(2, 3), dtype=dtype('float64'))``, as vineyard)."""

    type = np.ndarray
    kind = "O"
    _metadata = ("shape", "_dtype")

    def __init__(self, shape: Tuple[int, ...] = (), dtype: Any = None) -> None:
        if not isinstance(shape, tuple):
            raise TypeError(f"NDArrayDtype's shape must be a tuple, got {type(shape).__name__}")
        try:
            self._dtype = np.dtype(dtype)
        except TypeError as err:
            raise ValueError(f"{dtype!r} is not a numpy dtype") from err
        self.shape = tuple(int(d) for d in shape)

    @property
    def name(self) -> str:
        return f"NDArray(shape={self.shape!r}, dtype={self._dtype!r})"

    def __str__(self) -> str:
        return self.name

    @property
    def na_value(self) -> Any:
        return np.nan

    @classmethod
    def construct_from_string(cls, string: str) -> "NDArrayDtype":
        if not isinstance(string, str):
            raise TypeError(f"'construct_from_string' expects a str, got {type(string).__name__}")
        if string == "NDArray":
            return cls()
        matched = _NDARRAY_NAME.fullmatch(string)
        if matched is None:
            raise TypeError(f"Cannot construct a 'NDArrayDtype' from '{string}'")
        shape = tuple(int(d) for d in matched.group(1).strip("()").split(",") if d.strip())
        return cls(shape, matched.group(2))

    @classmethod
    def construct_array_type(cls) -> type:
        return NDArrayArray


class NDArrayArray(ExtensionArray):
    """A pandas column whose rows are ndarrays of one shape and dtype, backed by a single
    ndarray of shape ``(rows, *shape)`` (no copy of it is made)."""

    def __init__(self, data: Any) -> None:
        if isinstance(data, NDArrayArray):
            data = data._ndarray
        elif isinstance(data, (np.ndarray, np.generic)) and data.dtype != object:
            data = np.asarray(data)
        else:
            data = np.stack([np.asarray(row) for row in data])
        if data.ndim < 1:
            raise ValueError("an NDArrayArray needs an array of at least one dimension")
        self._ndarray = data

    @property
    def dtype(self) -> NDArrayDtype:
        return NDArrayDtype(self._ndarray.shape[1:], self._ndarray.dtype)

    @property
    def ndarray_shape(self) -> Tuple[int, ...]:
        return self._ndarray.shape[1:]

    @property
    def ndarray_ndim(self) -> int:
        return self._ndarray.ndim - 1

    @property
    def ndarray_dtype(self) -> np.dtype:
        return self._ndarray.dtype

    @property
    def nbytes(self) -> int:
        return int(self._ndarray.nbytes)

    def __len__(self) -> int:
        return self._ndarray.shape[0]

    def __getitem__(self, item: Any) -> Any:
        if isinstance(item, (int, np.integer)):
            return self._ndarray[item]
        return type(self)(self._ndarray[check_array_indexer(self, item)])

    def __setitem__(self, key: Any, value: Any) -> None:
        if isinstance(value, NDArrayArray):
            value = value._ndarray
        self._ndarray[check_array_indexer(self, key)] = value

    def __eq__(self, other: Any) -> Any:  # type: ignore[override]
        if isinstance(other, (pd.Series, pd.Index, pd.DataFrame)):
            return NotImplemented
        if isinstance(other, NDArrayArray):
            other = other._ndarray
        equal = np.asarray(self._ndarray == other)
        return equal.reshape(len(self), -1).all(axis=1)

    def __array__(self, dtype: Any = None, copy: Optional[bool] = None) -> np.ndarray:
        if dtype is not None and np.dtype(dtype) == object:
            rows = np.empty(len(self), dtype=object)
            for i in range(len(self)):
                rows[i] = self._ndarray[i]
            return rows
        if dtype is None:
            return self._ndarray.copy() if copy else self._ndarray
        return self._ndarray.astype(dtype)

    @classmethod
    def _from_sequence(cls, scalars: Sequence[Any], *, dtype: Any = None,
                       copy: bool = False) -> "NDArrayArray":
        if isinstance(dtype, str):
            dtype = NDArrayDtype.construct_from_string(dtype)
        if isinstance(scalars, NDArrayArray):
            scalars = scalars._ndarray
        if len(scalars) == 0 and isinstance(dtype, NDArrayDtype):
            return cls(np.empty((0,) + dtype.shape, dtype=dtype._dtype))
        data = np.stack([np.asarray(row) for row in scalars])
        if isinstance(dtype, NDArrayDtype):
            data = data.astype(dtype._dtype, copy=False)
        return cls(data.copy() if copy else data)

    @classmethod
    def _concat_same_type(cls, to_concat: Sequence["NDArrayArray"]) -> "NDArrayArray":
        return cls(np.concatenate([a._ndarray for a in to_concat]))

    def isna(self) -> np.ndarray:
        """A row is missing when every one of its values is (NaN / NaT)."""
        rows = self._ndarray.reshape(len(self), -1)
        if rows.dtype.kind in "fc":
            return np.isnan(rows).all(axis=1) if rows.shape[1] else np.zeros(len(self), bool)
        if rows.dtype.kind in "mM":
            return np.isnat(rows).all(axis=1) if rows.shape[1] else np.zeros(len(self), bool)
        return np.zeros(len(self), dtype=bool)

    def take(self, indices: Sequence[int], allow_fill: bool = False,
             fill_value: Any = None) -> "NDArrayArray":
        from pandas.api.extensions import take
        if allow_fill and fill_value is None:
            fill_value = self.dtype.na_value
        return type(self)(take(self._ndarray, np.asarray(indices, dtype=np.intp),
                               allow_fill=allow_fill, fill_value=fill_value, axis=0))

    def copy(self) -> "NDArrayArray":
        return type(self)(self._ndarray.copy())

    def astype(self, dtype: Any, copy: bool = True) -> Any:
        dtype = pd.api.types.pandas_dtype(dtype)
        if isinstance(dtype, NDArrayDtype) and dtype == self.dtype:
            return self.copy() if copy else self
        if dtype == object:
            return self.__array__(object)
        return super().astype(dtype, copy=copy)


@pd.api.extensions.register_series_accessor("ndarray")
class NDArrayAccessor:
    """``series.ndarray`` of an NDArray series: ``.values`` is the backing ndarray of shape
    ``(rows, *shape)``; ``.shape``/``.ndim``/``.dtype`` describe one row."""

    def __init__(self, series: pd.Series) -> None:
        if not isinstance(series.dtype, NDArrayDtype):
            raise AttributeError("Can only use the .ndarray accessor with NDArray values")
        self._series = series

    @property
    def ndarray(self) -> NDArrayArray:
        return self._series.array

    @property
    def values(self) -> np.ndarray:
        return self.ndarray._ndarray

    @property
    def dtype(self) -> np.dtype:
        return self.ndarray.ndarray_dtype

    @property
    def ndim(self) -> int:
        return self.ndarray.ndarray_ndim

    @property
    def shape(self) -> Tuple[int, ...]:
        return self.ndarray.ndarray_shape


def ndarray_array_builder(client: Any, value: NDArrayArray, **kw: Any) -> Any:
    """An NDArrayArray on its own: its backing ndarray as an n-d Tensor (a get gives the
    ndarray back)."""
    return numpy_ndarray_builder(client, value._ndarray, **kw)


def register(builder_ctx: Any = None, resolver_ctx: Any = None) -> None:
    if builder_ctx is not None:
        builder_ctx.register(pd.arrays.SparseArray, pandas_sparse_array_builder)
        builder_ctx.register(NDArrayArray, ndarray_array_builder)
        builder_ctx.register(pd.DataFrame, pandas_dataframe_builder)
        builder_ctx.register(pd.Series, pandas_series_builder)
        builder_ctx.register(pd.Index, pandas_index_builder)
    if resolver_ctx is not None:
        resolver_ctx.register("vineyard::SparseArray", pandas_sparse_array_resolver)
        resolver_ctx.register("vineyard::DataFrame", pandas_dataframe_resolver)
        resolver_ctx.register("vineyard::Series", pandas_series_resolver)
        resolver_ctx.register("vineyard::Index", pandas_index_resolver)


from .global_object import make_global_dataframe  # noqa: E402,F401  (vineyard's place for it)
