"""numpy.ndarray <-> ``vineyard::Tensor<T>`` (numeric and bool dtypes).

As in the reference client the payload is always in C order; ``order_`` records whether the
array was Fortran-ordered. ``get`` of a C-ordered tensor is a zero-copy, read-only view of
the blob; a Fortran-ordered one is converted back (one copy, also read-only).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .. import _C
from ..core.object import PendingObject
from .utils import blob_list, build_buffer, from_json, to_json

_CPP = {"int32": "int", "uint32": "uint32", "int64": "int64", "uint64": "uint64",
        "float32": "float", "float64": "double"}


def normalize_cpptype(dtype: np.dtype) -> str:
    return _CPP.get(dtype.name, dtype.name)


def numpy_ndarray_builder(client: Any, value: np.ndarray, **kw: Any) -> Any:
    if value.dtype.hasobject or value.dtype.kind in "USVO" or value.dtype.fields is not None:
        from .pickle import pickle_builder  # string/object/structured arrays: not yet native
        return pickle_builder(client, value)
    order = "C" if value.flags.c_contiguous else ("F" if value.flags.f_contiguous else "C")
    data = np.ascontiguousarray(value)
    meta = _C.ObjectMeta()
    meta.typename = "vineyard::Tensor<%s>" % normalize_cpptype(value.dtype)
    meta["shape_"] = to_json([int(d) for d in value.shape])
    meta["partition_index_"] = to_json(list(kw.get("partition_index", [])))
    meta["order_"] = to_json(order)
    meta["value_type_"] = value.dtype.name
    meta["value_type_meta_"] = value.dtype.str
    meta.nbytes = int(value.nbytes)
    buffer = build_buffer(client, data.reshape(-1).view(np.uint8) if data.size else b"")
    meta.add_member("buffer_", buffer)
    return PendingObject(meta, blob_list(buffer))


def _dtype(meta: Any) -> np.dtype:
    spec = meta.get("value_type_meta_")
    try:
        if spec:
            return np.dtype(spec)
    except TypeError:
        pass
    return np.dtype(meta["value_type_"])


def numpy_ndarray_resolver(obj: Any, **kw: Any) -> np.ndarray:
    meta = obj.meta
    name = meta["value_type_"]
    if name in ("str", "string", "std::string", "object"):
        raise NotImplementedError(f"string tensors ({obj.typename}) are not supported yet")
    dtype = _dtype(meta)
    shape = tuple(from_json(meta["shape_"]))
    order = from_json(meta["order_"]) if "order_" in meta else "C"
    count = int(np.prod(shape, dtype=np.int64))
    if count == 0:
        array = np.zeros(shape, dtype=dtype, order="F" if order == "F" else "C")
        array.flags.writeable = False
        return array
    blob = obj.member("buffer_")
    flat = np.frombuffer(blob, dtype=dtype, count=count)
    array = flat.reshape(shape)
    if order == "F" and not array.flags.f_contiguous:
        array = np.asfortranarray(array)
        array.flags.writeable = False
    return array


def register(builder_ctx: Any = None, resolver_ctx: Any = None) -> None:
    if builder_ctx is not None:
        builder_ctx.register(np.ndarray, numpy_ndarray_builder)
    if resolver_ctx is not None:
        resolver_ctx.register("vineyard::Tensor", numpy_ndarray_resolver)
