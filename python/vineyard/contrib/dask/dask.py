"""Dask collections over a vineyard cluster.

Run one Dask worker (or more) next to each vineyardd, each started with the socket of
its instance in ``VINEYARD_IPC_SOCKET``: that is how a worker finds its instance. Then,
inside ``dask_context()``:

- ``client.put(collection, dask_scheduler=address)`` of a ``dask.array.Array`` or a
  ``dask.dataframe.DataFrame`` puts each chunk (block, partition) on the instance of the
  worker that holds it, where it was computed (no chunk crosses the network), and returns
  the id of a ``vineyard::GlobalTensor`` or ``vineyard::GlobalDataFrame`` of them;
- ``client.get(global_id, dask_scheduler=address)`` returns a Dask collection whose chunks
  are read, each by a worker next to its instance (a task restricted to those workers),
  from shared memory: no copy, no transfer. A chunk on an instance without a worker is
  read by any worker, which copies it to its own instance first (``fetch=True``).

``dask_workers={instance_id: worker name or address (or a list of them)}`` gives the
placement instead of asking each worker for its instance; ``dask_client=`` passes a
``distributed.Client`` instead of the scheduler's address. A client made for an address is
kept (and is Dask's default client) while the collections built on it are in use.
"""
from __future__ import annotations

import contextlib
import os
import threading
import uuid
from typing import Any, Dict, Generator, List, Optional, Tuple

import dask
import dask.array as da
import dask.dataframe as dd
import numpy as np
from distributed import Client, get_client, wait

import vineyard
from ...core.builder import builder_context
from ...core.resolver import resolver_context
from ...data.global_object import (GLOBAL_DATAFRAME, GLOBAL_TENSOR, make_global_dataframe,
                                   make_global_tensor, partitions)
from ...data.tensor import _dtype
from ...data.utils import from_json

__all__ = ["dask_context", "register_dask_types", "dask_array_builder",
           "dask_dataframe_builder", "dask_array_resolver", "dask_dataframe_resolver",
           "close_dask_clients", "local_client"]

# --------------------------------------------------------------------------- on the workers

_local_lock = threading.Lock()
_local: Dict[str, Any] = {}  # this process's client of its instance, by socket


def local_client() -> Any:
    """This process's IPC client of the vineyardd that ``VINEYARD_IPC_SOCKET`` names (one
    per process, kept: chunks read through it stay mapped while in use)."""
    socket = os.environ.get("VINEYARD_IPC_SOCKET")
    if not socket:
        raise RuntimeError("this Dask worker has no VINEYARD_IPC_SOCKET: start each worker "
                           "with the socket of the vineyardd on its host in it")
    with _local_lock:
        client = _local.get(socket)
        if client is None or not client.connected:
            client = _local[socket] = vineyard.connect(socket)
        return client


def _instance_of_worker() -> Optional[int]:
    """The instance id of this worker's vineyardd (None without VINEYARD_IPC_SOCKET)."""
    if not os.environ.get("VINEYARD_IPC_SOCKET"):
        return None
    return local_client().instance_id


def _put_chunk(value: Any, partition_index: List[int]) -> Tuple[int, int]:
    """Puts a chunk on this worker's instance, persisted; (its id, the instance id)."""
    client = local_client()
    object_id = client.put(value, partition_index=partition_index, persist=True)
    return int(object_id), client.instance_id


def _get_chunk(object_id: int, fetch: bool) -> Any:
    return local_client().get(vineyard.ObjectID(object_id), fetch=fetch)


def _empty_like(frame: Any) -> Any:
    return frame.iloc[:0]


def _concat_columns(*frames: Any) -> Any:
    import pandas as pd
    return pd.concat(frames, axis=1)


# --------------------------------------------------------------------------- the scheduler

_clients_lock = threading.Lock()
_clients: Dict[str, Client] = {}  # by scheduler address


def _dask_client(kw: Dict[str, Any]) -> Client:
    given = kw.get("dask_client")
    if given is not None:
        return given
    address = kw.get("dask_scheduler")
    if address is None:
        try:
            return get_client()
        except ValueError:
            raise ValueError("Dask collections in vineyard need a Dask cluster: pass "
                             "dask_scheduler='tcp://host:port' (or dask_client=)") from None
    with _clients_lock:
        client = _clients.get(address)
        if client is None or client.status not in ("running", "connecting"):
            client = _clients[address] = Client(address, timeout=30)
        return client


def close_dask_clients() -> None:
    """Closes the Dask clients made for ``dask_scheduler`` addresses (the collections
    built on them stop working)."""
    with _clients_lock:
        clients = list(_clients.values())
        _clients.clear()
    for client in clients:
        client.close()


def _put_all(client: Any, dask_client: Client, tasks: List[Any]) -> List[Tuple[int, int]]:
    """Runs the put tasks; on a failure deletes the chunks already put, then raises."""
    futures = dask_client.compute(tasks)
    wait(futures)
    failed = [f for f in futures if f.status != "finished"]
    if not failed:
        return dask_client.gather(futures)
    done = [f.result()[0] for f in futures if f.status == "finished"]
    for object_id in done:
        with contextlib.suppress(vineyard.VineyardException):
            client.delete(vineyard.ObjectID(object_id))
    failed[0].result()  # raises the worker's error
    raise RuntimeError(f"a put of a chunk ended as {failed[0].status}")


# --------------------------------------------------------------------------- builders


def dask_array_builder(client: Any, value: da.Array, **kw: Any) -> Any:
    """Each block on the instance of the worker holding it; a ``vineyard::GlobalTensor``."""
    dask_client = _dask_client(kw)
    blocks = value.to_delayed()
    put = dask.delayed(_put_chunk, pure=False)
    tasks = [put(block, list(index)) for index, block in np.ndenumerate(blocks)]
    chunks = _put_all(client, dask_client, tasks)
    shape = None if any(np.isnan(d) for d in value.shape) else value.shape
    return make_global_tensor(client, [vineyard.ObjectID(i) for i, _ in chunks], shape=shape,
                              partition_shape=list(blocks.shape))


def dask_dataframe_builder(client: Any, value: dd.DataFrame, **kw: Any) -> Any:
    """Each partition on the instance of the worker holding it; a
    ``vineyard::GlobalDataFrame``."""
    dask_client = _dask_client(kw)
    put = dask.delayed(_put_chunk, pure=False)
    tasks = [put(part, [i, 0]) for i, part in enumerate(value.to_delayed())]
    chunks = _put_all(client, dask_client, tasks)
    return make_global_dataframe(client, [vineyard.ObjectID(i) for i, _ in chunks])


# --------------------------------------------------------------------------- resolvers


def _workers_by_instance(dask_client: Client, kw: Dict[str, Any]) -> Dict[int, List[str]]:
    given = kw.get("dask_workers")
    if given is not None:
        return {int(k): [v] if isinstance(v, str) else list(v) for k, v in given.items()}
    placement: Dict[int, List[str]] = {}
    for address, instance in dask_client.run(_instance_of_worker).items():
        if instance is not None:
            placement.setdefault(int(instance), []).append(address)
    if not placement:
        raise RuntimeError("no Dask worker is next to a vineyard instance: start each worker "
                           "with VINEYARD_IPC_SOCKET set to its vineyardd's socket")
    return placement


def _read_chunks(obj: Any, kw: Dict[str, Any]) -> Tuple[Client, List[Any], List[Any]]:
    """(the Dask client, the chunks' metadata, a future per chunk reading it on a worker
    next to its instance)."""
    dask_client = _dask_client(kw)
    chunks = partitions(obj)
    placement = _workers_by_instance(dask_client, kw)
    everywhere = sorted({w for ws in placement.values() for w in ws})
    tag = uuid.uuid4().hex[:8]
    futures = []
    for meta in chunks:
        workers = placement.get(meta.instance_id)
        futures.append(dask_client.submit(
            _get_chunk, int(meta.id), workers is None, key=f"vineyard-{meta.id!r}-{tag}",
            workers=workers or everywhere, allow_other_workers=False, pure=False))
    return dask_client, chunks, futures


def _chunk_dtype(meta: Any) -> np.dtype:
    try:
        return _dtype(meta)
    except TypeError:  # strings
        return np.dtype(object)


def dask_array_resolver(obj: Any, **kw: Any) -> da.Array:
    """A ``dask.array.Array`` of the chunks, each read on a worker next to its instance."""
    _, chunks, futures = _read_chunks(obj, kw)
    arrays = [da.from_delayed(f, tuple(from_json(m["shape_"])), dtype=_chunk_dtype(m))
              for m, f in zip(chunks, futures)]
    indices = [[int(x) for x in (from_json(m.get("partition_index_")) or [])] for m in chunks]
    ndim = arrays[0].ndim
    if ndim and all(len(ix) == ndim for ix in indices):
        grid: Dict[Tuple[int, ...], Any] = {tuple(ix): a for ix, a in zip(indices, arrays)}
        return da.block(_nested(grid, ndim, ()))
    return da.concatenate(arrays, axis=0)


def _nested(grid: Dict[Tuple[int, ...], Any], depth: int, prefix: Tuple[int, ...]) -> Any:
    """Nested lists of ``grid``'s arrays for ``da.block``."""
    keys = sorted({k[len(prefix)] for k in grid if k[:len(prefix)] == prefix})
    if depth == 1:
        return [grid[prefix + (k,)] for k in keys]
    return [_nested(grid, depth - 1, prefix + (k,)) for k in keys]


def dask_dataframe_resolver(obj: Any, **kw: Any) -> dd.DataFrame:
    """A ``dask.dataframe.DataFrame`` of the partitions, each read on a worker next to its
    instance."""
    dask_client, chunks, futures = _read_chunks(obj, kw)
    places = [(int(m.get("partition_index_row_", -1)), int(m.get("partition_index_column_", -1)))
              for m in chunks]
    if all(r >= 0 and c >= 0 for r, c in places) and any(c > 0 for _, c in places):
        rows: Dict[int, List[Tuple[int, Any]]] = {}
        for (r, c), f in zip(places, futures):
            rows.setdefault(r, []).append((c, f))
        futures = [dask_client.submit(_concat_columns, *[f for _, f in sorted(rows[r])],
                                      pure=False) for r in sorted(rows)]
    elif all(r >= 0 for r, _ in places):
        futures = [f for _, f in sorted(zip(places, futures), key=lambda pf: pf[0])]
    meta = dask_client.submit(_empty_like, futures[0], pure=False).result()
    return dd.from_delayed(futures, meta=meta, verify_meta=False)


# --------------------------------------------------------------------------- contexts


def register_dask_types(builder_ctx: Any = None, resolver_ctx: Any = None) -> None:
    """Registers the Dask builders and resolvers (the resolvers take over
    ``vineyard::GlobalTensor`` and ``vineyard::GlobalDataFrame`` in ``resolver_ctx``)."""
    if builder_ctx is not None:
        builder_ctx.register(da.Array, dask_array_builder)
        builder_ctx.register(dd.DataFrame, dask_dataframe_builder)
    if resolver_ctx is not None:
        resolver_ctx.register(GLOBAL_TENSOR, dask_array_resolver)
        resolver_ctx.register(GLOBAL_DATAFRAME, dask_dataframe_resolver)


@contextlib.contextmanager
def dask_context() -> Generator[Tuple[Any, Any], None, None]:
    """Within the block, this thread's ``put`` takes Dask collections and ``get`` of a
    global tensor or data frame returns one; yields the (builder, resolver) contexts."""
    with builder_context() as builders, resolver_context() as resolvers:
        register_dask_types(builders, resolvers)
        yield builders, resolvers
