"""scipy.sparse matrices <-> vineyard's ``vineyard::{BSR,COO,CSC,CSR,DIA}Matrix<T>``.

The layouts are vineyard's: ``value_type_`` (the dtype's name), ``shape_`` (JSON text),
``ndim``, ``nnz``, ``partition_index_`` and one Tensor member per array of the format
(``data`` and ``indices``/``indptr``, ``row``/``col`` or ``offsets``); BSR also records
``blocksize`` and CSR/BSR ``has_sorted_indices``. A get rebuilds the matrix over the
tensors, which are read-only views of shared memory (no copy of the arrays).

scipy is imported when a matrix is first put or got, not with vineyard.
"""
from __future__ import annotations

import sys
from typing import Any, Dict, List, Tuple

import numpy as np

from .. import _C
from ..core.object import PendingObject
from .tensor import numpy_ndarray_builder
from .utils import from_json, to_json

# format -> (typename prefix, member arrays); the classes are scipy.sparse's
# ``<format>_matrix`` and ``<format>_array``
_FORMATS: Dict[str, Tuple[str, List[str]]] = {
    "bsr": ("vineyard::BSRMatrix", ["data", "indices", "indptr"]),
    "coo": ("vineyard::COOMatrix", ["data", "row", "col"]),
    "csc": ("vineyard::CSCMatrix", ["data", "indices", "indptr"]),
    "csr": ("vineyard::CSRMatrix", ["data", "indices", "indptr"]),
    "dia": ("vineyard::DIAMatrix", ["data", "offsets"]),
}


def _builder(fmt: str):
    prefix, arrays = _FORMATS[fmt]

    def build(client: Any, value: Any, **kw: Any) -> PendingObject:
        meta = _C.ObjectMeta()
        meta.typename = f"{prefix}<{value.dtype.name}>"
        meta["value_type_"] = value.dtype.name
        meta["shape_"] = to_json(list(value.shape))
        meta["ndim"] = value.ndim
        meta["nnz"] = int(value.nnz)
        if fmt == "bsr":
            meta["blocksize"] = list(value.blocksize)
        if fmt in ("bsr", "csr"):
            meta["has_sorted_indices"] = bool(value.has_sorted_indices)
        meta["partition_index_"] = to_json(list(kw.get("partition_index", [])))
        members = [numpy_ndarray_builder(client, np.ascontiguousarray(getattr(value, a)))
                   for a in arrays]
        for name, oid in zip(arrays, client.nest_all(members)):
            meta.add_member(name, oid)
        meta.nbytes = int(value.nnz) * value.dtype.itemsize
        return PendingObject(meta)

    build.__name__ = f"{fmt}_matrix_builder"
    return build


def _resolver(fmt: str):
    _, arrays = _FORMATS[fmt]

    def resolve(obj: Any, resolver: Any = None, **kw: Any) -> Any:
        import scipy.sparse as sp

        cls = getattr(sp, f"{fmt}_matrix")
        meta = obj.meta
        shape = tuple(from_json(meta["shape_"]))
        dtype = np.dtype(meta["value_type_"])
        parts = [resolver.run(obj.member(a)) for a in arrays]
        if fmt == "coo":
            return cls((parts[0], (parts[1], parts[2])), shape=shape, dtype=dtype)
        if fmt == "dia":
            return cls((parts[0], parts[1]), shape=shape, dtype=dtype)
        return cls(tuple(parts), shape=shape, dtype=dtype)

    resolve.__name__ = f"{fmt}_matrix_resolver"
    return resolve


def register(builder_ctx: Any = None, resolver_ctx: Any = None) -> None:
    """The resolvers, and the builders when scipy is imported already (else
    ``vineyard.data`` registers them when the first matrix is put)."""
    for fmt, (prefix, _) in _FORMATS.items():
        if resolver_ctx is not None:
            resolver_ctx.register(prefix, _resolver(fmt))
    if builder_ctx is None or "scipy.sparse" not in sys.modules:
        return
    import scipy.sparse as sp

    for fmt in _FORMATS:
        builder_ctx.register(getattr(sp, f"{fmt}_matrix"), _builder(fmt))
        array_cls = getattr(sp, f"{fmt}_array", None)  # scipy's sparse arrays too
        if array_cls is not None:
            builder_ctx.register(array_cls, _builder(fmt))
