"""Global objects: ``vineyard::GlobalTensor`` and ``vineyard::GlobalDataFrame``, whose chunks
live on several instances of a cluster.

The layouts are vineyard's. A global object (``global: true``, persisted) holds
``partitions_-size`` and one member ``partitions_-<i>`` per chunk: a ``vineyard::Tensor<T>``
for a GlobalTensor, a ``vineyard::DataFrame`` for a GlobalDataFrame. A GlobalTensor also
records ``shape_`` (the whole array's shape) and ``partition_shape_`` (chunks per
dimension), both as JSON text; a GlobalDataFrame ``partition_shape_row_`` and
``partition_shape_column_`` (ints). A chunk's place in the grid is its own
``partition_index_`` (tensors) or ``partition_index_row_``/``partition_index_column_``
(data frames); chunks without one are stacked along the rows, in member order.

``make_global_tensor`` and ``make_global_dataframe`` make one from chunks already put on
their instances (each persisted, so that every instance sees it). A ``get`` returns:

- the whole value (``np.block`` / ``pd.concat`` of the chunks) when every chunk can be
  read: all local to an IPC client, or fetched by an RPC client from their owners;
- otherwise the list of the chunks that are local, in partition order (each instance's
  share, as a worker next to that instance processes it); ``get(..., fetch=True)`` copies
  the whole object to the connected instance first.
"""
from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from .. import _C
from ..core.object import Object, payload_elsewhere
from ..core.resolver import typename_base
from .utils import from_json, to_json

GLOBAL_TENSOR = "vineyard::GlobalTensor"
GLOBAL_DATAFRAME = "vineyard::GlobalDataFrame"
_TENSOR = "vineyard::Tensor"
_DATAFRAME = "vineyard::DataFrame"


# --------------------------------------------------------------------------- builders


def _chunk_ids(blocks: Any, what: str, kind: str) -> List["_C.ObjectID"]:
    """The ids of ``blocks`` (ObjectIDs, ints, ObjectMeta or Objects); TypeError naming the
    first one that is none of these."""
    if isinstance(blocks, (str, bytes)) or not isinstance(blocks, Iterable):
        raise TypeError(f"{what}: blocks must be a list of the chunks' ObjectIDs, got "
                        f"{type(blocks).__name__}")
    ids = []
    for i, block in enumerate(blocks):
        if isinstance(block, (Object, _C.ObjectMeta)):
            ids.append(block.id)
        elif isinstance(block, _C.ObjectID):
            ids.append(block)
        elif isinstance(block, int) and not isinstance(block, bool):
            ids.append(_C.ObjectID(block))
        else:
            raise TypeError(f"{what}: chunk {i} is a {type(block).__name__}; a chunk is the "
                            f"ObjectID (or ObjectMeta, Object) of a {kind} put on an instance "
                            f"of the cluster")
    if not ids:
        raise ValueError(f"{what}: no chunks")
    return ids


def _chunk_metas(client: Any, blocks: Any, what: str, kind: str) -> List["_C.ObjectMeta"]:
    """The chunks' metadata, each checked to be a ``kind`` known to the connected instance;
    local chunks not persisted yet are persisted (the global object names them for every
    instance)."""
    ids = _chunk_ids(blocks, what, kind)
    try:
        metas = client.get_metas(ids)
    except _C.ObjectNotExistsException:
        client.sync_meta()  # a chunk persisted elsewhere a moment ago is known after it
        for i, oid in enumerate(ids):
            if not client.exists(oid):
                raise _C.ObjectNotExistsException(
                    f"{what}: chunk {i} ({oid!r}) is not known to instance "
                    f"{client.instance_id}: a chunk of another instance must be persisted "
                    f"there first") from None
        metas = client.get_metas(ids)
    for i, meta in enumerate(metas):
        if typename_base(meta.typename) != kind:
            raise TypeError(f"{what}: chunk {i} ({meta.id!r}) is a {meta.typename}, not a "
                            f"{kind}")
        if not meta.ispersist:
            client.persist(meta.id)
    return metas


def _create_global(client: Any, typename: str, metas: Sequence["_C.ObjectMeta"],
                   fields: Dict[str, Any]) -> "_C.ObjectMeta":
    meta = _C.ObjectMeta()
    meta.typename = typename
    meta.set_global(True)
    meta["partitions_-size"] = len(metas)
    for key, value in fields.items():
        meta[key] = value
    for i, chunk in enumerate(metas):
        meta.add_member(f"partitions_-{i}", chunk.id)
    meta.nbytes = sum(int(m.nbytes) for m in metas)
    created = client.create_metadata(meta)
    client.persist(created.id)
    return client.get_meta(created.id)  # as persisted


def _tensor_index(meta: "_C.ObjectMeta") -> List[int]:
    return [int(x) for x in (from_json(meta.get("partition_index_")) or [])]


def _tensor_grid(metas: Sequence["_C.ObjectMeta"]) -> Tuple[List[int], List[int]]:
    """(shape, partition_shape) of the whole array: from the chunks' ``partition_index_``
    when every chunk has one (a grid), else the chunks stacked along axis 0."""
    shapes = [[int(d) for d in from_json(m["shape_"])] for m in metas]
    indices = [_tensor_index(m) for m in metas]
    ndim = len(shapes[0])
    if any(len(s) != ndim for s in shapes):
        raise ValueError(f"chunks of different ranks: {shapes}")
    if ndim and all(len(ix) == ndim for ix in indices):
        grid = [max(ix[d] for ix in indices) + 1 for d in range(ndim)]
        if len(set(map(tuple, indices))) != len(indices) or \
                len(indices) != _product(grid):
            raise ValueError(f"the chunks' partition_index_ {indices} do not fill a "
                             f"{'x'.join(map(str, grid))} grid")
        shape = [sum(s[d] for s, ix in zip(shapes, indices)
                     if all(ix[k] == 0 for k in range(ndim) if k != d))
                 for d in range(ndim)]
        return shape, grid
    if ndim == 0:
        return [len(metas)], [len(metas)]
    if any(s[1:] != shapes[0][1:] for s in shapes):
        raise ValueError(f"chunks stacked along axis 0 must agree on the other dimensions, "
                         f"got shapes {shapes}")
    return [sum(s[0] for s in shapes)] + shapes[0][1:], [len(metas)] + [1] * (ndim - 1)


def _product(values: Iterable[int]) -> int:
    out = 1
    for v in values:
        out *= v
    return out


def make_global_tensor(client: Any, blocks: Sequence[Any], extra_meta: Optional[Dict] = None,
                       shape: Optional[Sequence[int]] = None,
                       partition_shape: Optional[Sequence[int]] = None) -> "_C.ObjectMeta":
    """A ``vineyard::GlobalTensor`` of ``blocks`` (the ids of ``vineyard::Tensor`` chunks put
    on any instances), created and persisted through ``client``; returns its metadata.

    ``shape`` and ``partition_shape`` default to what the chunks say: their
    ``partition_index_`` grid (``client.put(chunk, partition_index=[i, j])``), else the
    chunks stacked along axis 0. ``extra_meta`` adds fields."""
    what = "make_global_tensor"
    metas = _chunk_metas(client, blocks, what, _TENSOR)
    fields = dict(extra_meta or {})
    if ("shape_" not in fields and shape is None) or \
            ("partition_shape_" not in fields and partition_shape is None):
        inferred_shape, inferred_grid = _tensor_grid(metas)
        shape = inferred_shape if shape is None else shape
        partition_shape = inferred_grid if partition_shape is None else partition_shape
    fields.setdefault("shape_", to_json([int(d) for d in shape]))
    fields.setdefault("partition_shape_", to_json([int(d) for d in partition_shape]))
    return _create_global(client, GLOBAL_TENSOR, metas, fields)


def make_global_dataframe(client: Any, blocks: Sequence[Any],
                          extra_meta: Optional[Dict] = None) -> "_C.ObjectMeta":
    """A ``vineyard::GlobalDataFrame`` of ``blocks`` (the ids of ``vineyard::DataFrame``
    chunks put on any instances, split over the rows unless they carry
    ``partition_index_row_``/``partition_index_column_``), created and persisted through
    ``client``; returns its metadata."""
    metas = _chunk_metas(client, blocks, "make_global_dataframe", _DATAFRAME)
    fields = dict(extra_meta or {})
    places = [_frame_index(m) for m in metas]
    if all(r >= 0 and c >= 0 for r, c in places):
        rows, columns = max(r for r, _ in places) + 1, max(c for _, c in places) + 1
    else:
        rows, columns = len(metas), 1
    fields.setdefault("partition_shape_row_", rows)
    fields.setdefault("partition_shape_column_", columns)
    return _create_global(client, GLOBAL_DATAFRAME, metas, fields)


# --------------------------------------------------------------------------- resolvers


def partitions(obj: Any) -> List["_C.ObjectMeta"]:
    """The chunks' metadata of a global object, in member order; ValueError naming the
    first one missing."""
    meta = obj.meta if isinstance(obj, Object) else obj
    count = int(meta["partitions_-size"])
    out = []
    for i in range(count):
        chunk = meta.member(f"partitions_-{i}")
        if chunk is None:
            raise ValueError(f"{meta.typename} {meta.id!r}: chunk {i} of {count} is missing "
                             f"(no member partitions_-{i})")
        out.append(chunk)
    return out


def _frame_index(meta: "_C.ObjectMeta") -> Tuple[int, int]:
    return (int(meta.get("partition_index_row_", -1)),
            int(meta.get("partition_index_column_", -1)))


def _resolve_chunks(obj: Any, resolver: Any, kw: Dict[str, Any]) -> Tuple[bool, List[Any],
                                                                              List[Any]]:
    """(every chunk readable here, the readable chunks' metadata, their values)."""
    chunks = partitions(obj)
    readable = [m for m in chunks if not payload_elsewhere(m)]
    values = [resolver.run(Object(m), **kw) for m in readable]
    return len(readable) == len(chunks), readable, values


def global_tensor_resolver(obj: Any, resolver: Any = None, **kw: Any) -> Any:
    """The whole array when every chunk is readable here, else the local chunks (a list)."""
    import numpy as np

    whole, metas, values = _resolve_chunks(obj, resolver, kw)
    if not whole:
        return values
    indices = [_tensor_index(m) for m in metas]
    ndim = values[0].ndim if values else 0
    if ndim and all(len(ix) == ndim for ix in indices):
        return np.block(_nest(sorted(zip(indices, range(len(values)))), values, ndim))
    if ndim == 0:
        return np.array(values)
    return np.concatenate(values, axis=0)


def _nest(cells: List[Tuple[List[int], int]], values: List[Any], depth: int) -> List[Any]:
    """Nested lists for ``np.block`` from ((index...), position) pairs sorted by index."""
    if depth == 1:
        return [values[pos] for _, pos in cells]
    groups: Dict[int, List[Tuple[List[int], int]]] = {}
    for index, pos in cells:
        groups.setdefault(index[0], []).append((index[1:], pos))
    return [_nest(groups[k], values, depth - 1) for k in sorted(groups)]


def global_dataframe_resolver(obj: Any, resolver: Any = None, **kw: Any) -> Any:
    """The whole DataFrame when every chunk is readable here, else the local chunks (a
    list)."""
    import pandas as pd

    whole, metas, values = _resolve_chunks(obj, resolver, kw)
    if not whole:
        return values
    places = [_frame_index(m) for m in metas]
    if not all(r >= 0 and c >= 0 for r, c in places):
        return pd.concat(values, axis=0) if values else pd.DataFrame()
    rows: Dict[int, List[Tuple[int, Any]]] = {}
    for (r, c), value in zip(places, values):
        rows.setdefault(r, []).append((c, value))
    parts = []
    for r in sorted(rows):
        cells = [v for _, v in sorted(rows[r], key=lambda cv: cv[0])]
        parts.append(cells[0] if len(cells) == 1 else pd.concat(cells, axis=1))
    return pd.concat(parts, axis=0)


def register(builder_ctx: Any = None, resolver_ctx: Any = None) -> None:
    if resolver_ctx is not None:
        resolver_ctx.register(GLOBAL_TENSOR, global_tensor_resolver)
        resolver_ctx.register(GLOBAL_DATAFRAME, global_dataframe_resolver)
