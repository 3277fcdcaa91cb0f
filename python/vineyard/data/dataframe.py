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
when pyarrow is available; anything else (extension dtypes, mixed objects) -> PickleBuffer.
"""
from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

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


def register(builder_ctx: Any = None, resolver_ctx: Any = None) -> None:
    if builder_ctx is not None:
        builder_ctx.register(pd.DataFrame, pandas_dataframe_builder)
        builder_ctx.register(pd.Series, pandas_series_builder)
        builder_ctx.register(pd.Index, pandas_index_builder)
    if resolver_ctx is not None:
        resolver_ctx.register("vineyard::DataFrame", pandas_dataframe_resolver)
        resolver_ctx.register("vineyard::Series", pandas_series_resolver)
        resolver_ctx.register("vineyard::Index", pandas_index_resolver)


from .global_object import make_global_dataframe  # noqa: E402,F401  (vineyard's place for it)
