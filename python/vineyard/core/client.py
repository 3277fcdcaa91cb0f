"""The Python IPC client: ``put``/``get`` of Python values over ``vineyard._C.IPCClient``."""
from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Union

from .. import _C
from .builder import BuilderContext, get_current_builders
from .object import Object, PendingObject
from .resolver import ResolverContext, get_current_resolvers

__all__ = ["IPCClient", "connect"]

ObjectID = _C.ObjectID
ObjectMeta = _C.ObjectMeta


def _as_id(target: Any) -> "_C.ObjectID":
    if isinstance(target, (Object, ObjectMeta)):
        return target.id
    if isinstance(target, _C.Blob):
        return target.id
    return ObjectID(target) if not isinstance(target, ObjectID) else target


class IPCClient:
    """IPC client that connects to a vineyard instance's UNIX domain socket.

    Wraps a native ``vineyard._C.IPCClient``; every method of it not redefined here is
    passed through unchanged (``create_blob``, ``get_blob(s)``, ``list_names``, ...).
    """

    def __init__(self, socket: Union[str, "_C.IPCClient", None] = None) -> None:
        if isinstance(socket, _C.IPCClient):
            native = socket
        else:
            native = _C.connect_ipc(socket or "")
        object.__setattr__(self, "_c", native)

    # ------------------------------------------------------------------ plumbing
    @property
    def native(self) -> "_C.IPCClient":
        """The underlying ``vineyard._C.IPCClient``."""
        return self._c

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self._c, name)

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(dir(self._c)))

    def __repr__(self) -> str:
        return repr(self._c)

    def __enter__(self) -> "IPCClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self._c.close()

    # ------------------------------------------------------------------ put
    def put_object(self, meta, builders=None, persist: bool = False, name: Optional[str] = None):
        """Seal ``builders``, create ``meta``, optionally persist and name it: one request."""
        return self._c.put_object(meta, list(builders or []), persist=persist,
                                  name=None if name is None else str(name))

    def _materialize(self, built: Any, persist: bool = False, name: Optional[str] = None):
        """Turn a builder's result into an ObjectID, creating pending metadata."""
        if isinstance(built, PendingObject):
            return self.put_object(built.meta, built.blobs, persist=persist, name=name)
        if isinstance(built, ObjectMeta):
            if built.id == ObjectID.invalid() or int(built.id) == 0:
                return self.put_object(built, [], persist=persist, name=name)
            oid = built.id
        elif isinstance(built, (Object, _C.Blob)):
            oid = built.id
        elif isinstance(built, _C.BlobBuilder):
            oid = built.seal(self._c).id
        elif isinstance(built, (ObjectID, int)):
            oid = ObjectID(built)
        else:
            raise TypeError(f"a builder must return an ObjectID, ObjectMeta or Object, got "
                            f"{type(built).__name__}")
        if persist or name is not None:
            self._c.persist(oid)
        if name is not None:
            self._c.put_name(oid, str(name))
        return oid

    def materialize_all(self, built: List[Any]) -> List["_C.ObjectID"]:
        """Create several builder results; pending ones without blobs go in one request."""
        out: List[Any] = [None] * len(built)
        batch = []
        for i, b in enumerate(built):
            if isinstance(b, PendingObject) and not b.blobs:
                batch.append((i, b.meta))
            else:
                out[i] = self._materialize(b)
        if len(batch) == 1:
            i, meta = batch[0]
            out[i] = self.put_object(meta, [])
        elif batch:
            metas = self._c.create_metadata([m for _, m in batch])
            for (i, _), m in zip(batch, metas):
                out[i] = m.id
        return out

    def put(self, value: Any, builder: Optional[BuilderContext] = None, persist: bool = False,
            name: Optional[str] = None, **kwargs: Any) -> "_C.ObjectID":
        """Put a Python value into vineyard; returns its ObjectID.

        The value is built by ``builder`` (default: the current builder context); a
        built-in builder's object is sealed, created, persisted and named in one request.
        """
        ctx = builder if builder is not None else get_current_builders()
        built = ctx.run(self, value, **kwargs)
        return self._materialize(built, persist=persist, name=name)

    # ------------------------------------------------------------------ get
    def get_object(self, object_id: Any) -> Object:
        """The object with its local blobs mapped (one request)."""
        return Object(self._c.get_object_meta(_as_id(object_id)))

    def get_objects(self, object_ids: List[Any]) -> List[Object]:
        return [Object(m) for m in self._c.get_object_metas([_as_id(i) for i in object_ids])]

    def get(self, object_id: Any = None, name: Optional[str] = None,
            resolver: Optional[ResolverContext] = None, fetch: bool = False, **kwargs: Any) -> Any:
        """Get the Python value of an object, by id or by name.

        numpy arrays are zero-copy, read-only views of the shared memory.
        """
        if object_id is None and name is None:
            raise ValueError("get() needs an object_id or a name")
        if object_id is None:
            object_id = self._c.get_name(str(name))
        oid = _as_id(object_id)
        if oid == ObjectID.empty_blob():
            return memoryview(b"")
        obj = self.get_object(oid)
        ctx = resolver if resolver is not None else get_current_resolvers()
        return ctx.run(obj, **kwargs)

    # ------------------------------------------------------------------ pass-through with Object
    def get_meta(self, object_id: Any, sync_remote: bool = False) -> "_C.ObjectMeta":
        return self._c.get_meta(_as_id(object_id), sync_remote=sync_remote)

    def get_metas(self, object_ids: List[Any], sync_remote: bool = False) -> List["_C.ObjectMeta"]:
        return self._c.get_metas([_as_id(i) for i in object_ids], sync_remote=sync_remote)

    def list_objects(self, pattern: str, regex: bool = False, limit: int = 5) -> List[Object]:
        return [Object(m) for m in self._c.list_metadatas(pattern, regex=regex, limit=limit)]

    def list_metadatas(self, pattern: str, regex: bool = False, limit: int = 5,
                       nobuffer: bool = False) -> List["_C.ObjectMeta"]:
        return self._c.list_metadatas(pattern, regex=regex, limit=limit)

    def delete(self, object_id: Any, force: bool = False, deep: bool = True,
               memory_trim: bool = False) -> None:
        if isinstance(object_id, (list, tuple)):
            target: Any = [_as_id(i) for i in object_id]
        else:
            target = _as_id(object_id)
        self._c.delete(target, force=force, deep=deep, memory_trim=memory_trim)

    def exists(self, object_id: Any) -> bool:
        return self._c.exists(_as_id(object_id))

    def persist(self, target: Any) -> None:
        self._c.persist(_as_id(target))

    def if_persist(self, object_id: Any) -> bool:
        return self._c.if_persist(_as_id(object_id))

    def shallow_copy(self, object_id: Any, extra_metadata: Optional[Dict[str, Any]] = None):
        return self._c.shallow_copy(_as_id(object_id), extra_metadata)

    def put_name(self, object: Any, name: Any) -> None:  # noqa: A002 (reference name)
        self._c.put_name(_as_id(object), name if isinstance(name, _C.ObjectName) else str(name))

    def get_name(self, name: Any, wait: bool = False) -> "_C.ObjectID":
        return self._c.get_name(name if isinstance(name, _C.ObjectName) else str(name), wait=wait)

    def drop_name(self, name: Any) -> None:
        self._c.drop_name(name if isinstance(name, _C.ObjectName) else str(name))

    def list_names(self, pattern: str = "*", regex: bool = False, limit: int = 5):
        return self._c.list_names(pattern, regex=regex, limit=limit)

    def allocated_size(self, target: Any) -> int:
        """Bytes of shared memory held by the blobs of ``target``."""
        oid = _as_id(target)
        if oid.is_blob:
            return self._c.get_blob(oid).size
        meta = self._c.get_object_meta(oid)
        return sum(meta.get_buffer(b).size for b in meta.blob_ids() if b != ObjectID.empty_blob())

    def label(self, object_id: Any, key: Any, value: Optional[str] = None) -> None:
        if value is None:
            self._c.label(_as_id(object_id), dict(key))
        else:
            self._c.label(_as_id(object_id), str(key), str(value))

    def sync_meta(self) -> None:
        """Metadata is always in sync on a single instance: nothing to do."""

    def fork(self) -> "IPCClient":
        return IPCClient(self._c.ipc_socket)


def connect(*args: Any, **kwargs: Any) -> IPCClient:
    """Connect to vineyard.

    ``connect(socket)`` or ``connect(socket=...)``: IPC over that UNIX socket;
    ``connect()``: IPC over ``$VINEYARD_IPC_SOCKET``. RPC forms (host/port, endpoint)
    are not implemented yet. ``username``/``password``/``session`` are accepted and ignored.
    """
    for ignored in ("username", "password", "session"):
        kwargs.pop(ignored, None)
    socket = kwargs.pop("socket", None)
    endpoint = kwargs.pop("endpoint", None)
    host, port = kwargs.pop("host", None), kwargs.pop("port", None)
    if kwargs:
        raise TypeError(f"connect() got unexpected keyword arguments {sorted(kwargs)}")
    if len(args) > 1 or host is not None or port is not None or endpoint is not None:
        raise NotImplementedError(
            "vineyard.connect: RPC connections (host, port / endpoint) are not implemented "
            "yet; connect over IPC with vineyard.connect('/path/to/vineyard.sock')")
    if args:
        if socket is not None:
            raise TypeError("connect() got the socket both positionally and by keyword")
        socket = args[0]
    if socket is not None and not isinstance(socket, (str, os.PathLike)):
        raise NotImplementedError(
            f"vineyard.connect({socket!r}): only an IPC socket path (str) is supported yet")
    if socket is None:
        socket = os.environ.get("VINEYARD_IPC_SOCKET")
        if not socket:
            raise _C.ConnectionFailedException(
                "vineyard.connect(): no socket given and VINEYARD_IPC_SOCKET is not set")
    return IPCClient(os.fspath(socket))
