"""The Python IPC client: ``put``/``get`` of Python values over ``vineyard._C.IPCClient``."""
from __future__ import annotations

import os
import re
import threading
import traceback
from typing import Any, Dict, List, Optional, Tuple, Union

from .. import _C
from .builder import BuilderContext, get_current_builders
from .object import Object, PendingObject, payload_elsewhere
from .resolver import ResolverContext, get_current_resolvers

__all__ = ["ClientBase", "IPCClient", "RPCClient", "connect"]

ObjectID = _C.ObjectID
ObjectMeta = _C.ObjectMeta
_EMPTY_BLOB = ObjectID.empty_blob()

try:
    from numpy import ndarray as _ndarray
except ImportError:  # pragma: no cover (numpy is a dependency)
    _ndarray = None
_tensor = None  # vineyard.data.tensor, imported on first use (it imports this package)


def _tensor_module() -> Any:
    global _tensor
    if _tensor is None:
        from ..data import tensor as _tensor_mod
        _tensor = _tensor_mod
    return _tensor


def _as_id(target: Any) -> "_C.ObjectID":
    if isinstance(target, (Object, ObjectMeta)):
        return target.id
    if isinstance(target, _C.Blob):
        return target.id
    return ObjectID(target) if not isinstance(target, ObjectID) else target


class ClientBase:
    """What IPC and RPC clients share: metadata, names, deletion, persistence, the
    instance's status, and ``put``/``get`` of Python values through the builder and
    resolver contexts.

    Wraps a native ``vineyard._C`` client; every method of it not redefined here is
    passed through unchanged.
    """

    _fast = False  # the native put_ndarray / get_fast path (IPC clients)

    def __init__(self, native: Any) -> None:
        object.__setattr__(self, "_c", native)
        # blob id -> (address, size) of every blob this client created or mapped; backs
        # is_shared_memory / find_shared_memory.
        object.__setattr__(self, "_mapped", {})
        object.__setattr__(self, "_mapped_lock", threading.Lock())
        # Per thread: what the put() in progress has created so far, undone if it fails.
        object.__setattr__(self, "_txn", threading.local())

    # ------------------------------------------------------------------ plumbing
    @property
    def native(self) -> "_C.ClientBase":
        """The underlying ``vineyard._C`` client."""
        return self._c

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self._c, name)

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(dir(self._c)))

    def __repr__(self) -> str:
        return repr(self._c)

    def __enter__(self) -> "ClientBase":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Close the session (a default vineyardd that ``connect()`` started keeps running:
        ``vineyard.shutdown()`` stops it)."""
        if self._c.connected:
            self._c.close()

    # ------------------------------------------------------------------ session properties
    @property
    def connected(self) -> bool:
        return self._c.connected

    @property
    def instance_id(self) -> int:
        return self._c.instance_id

    @property
    def ipc_socket(self) -> str:
        return self._c.ipc_socket

    @property
    def rpc_endpoint(self) -> str:
        return self._c.rpc_endpoint

    @property
    def version(self) -> str:
        return self._c.version

    @property
    def is_ipc(self) -> bool:
        return self._c.is_ipc

    @property
    def is_rpc(self) -> bool:
        return self._c.is_rpc

    @property
    def status(self) -> "_C.InstanceStatus":
        """The connected instance's status."""
        return self._c.status

    @property
    def meta(self) -> Dict[str, Any]:
        return self._c.meta

    def reset(self) -> None:
        """Alias of ``clear()``: drops every object of the instance."""
        self._c.clear()
        with self._mapped_lock:
            self._mapped.clear()

    def clear(self) -> None:
        self.reset()

    # ------------------------------------------------------------------ blobs seen
    def _record(self, blobs: Any) -> None:
        entries = []
        for b in blobs:
            try:
                size = b.size
                if size:
                    entries.append((int(b.id), b.address, size))
            except Exception:  # noqa: BLE001 (an aborted builder, ...): not mapped
                pass
        if entries:
            with self._mapped_lock:
                for oid, addr, size in entries:
                    self._mapped.pop(oid, None)  # re-insert: newest last
                    self._mapped[oid] = (addr, size)

    def _record_meta(self, meta: "_C.ObjectMeta") -> None:
        entries = meta.mapped_blobs()  # (id, address, size), in one call
        if entries:
            with self._mapped_lock:
                for oid, addr, size in entries:
                    self._mapped.pop(oid, None)  # re-insert: newest last
                    self._mapped[oid] = (addr, size)

    def memory_trim(self) -> bool:
        """Return unused shared memory to the kernel; True if any was released."""
        return self._c.memory_trim()

    # ------------------------------------------------------------------ put rollback
    def _track(self, created: Any) -> None:
        """Note an ObjectID, sealed blob or BlobBuilder made by the put() in progress (if
        any), so that a failing put() leaves nothing behind."""
        log = getattr(self._txn, "log", None)
        if log is not None:
            log.append(created)

    def _rollback(self, log: List[Any]) -> None:
        """Undo a failed put(): abort unsealed blobs, delete what was created (newest first,
        not deep: members that existed before the put are kept)."""
        ids = []
        for item in reversed(log):
            if isinstance(item, _C.BlobBuilder):
                if item.sealed:
                    ids.append(item.id)
                elif item.writable:
                    try:
                        item.abort()
                    except _C.VineyardException:
                        pass
            else:
                ids.append(_as_id(item))
        for oid in dict.fromkeys(ids):
            try:
                self._c.delete(oid, force=False, deep=False)
            except _C.VineyardException:
                pass  # already gone, or the session died: the server cleans up
        with self._mapped_lock:
            for oid in ids:
                self._mapped.pop(int(oid), None)
        # Drop this client's references to the undone blobs now, not when the exception
        # (whose frames hold the builders) is garbage collected.
        log.clear()
        flush = getattr(self._c, "flush_releases", None)  # IPC: references to give back
        try:
            if flush is not None:
                flush()
        except _C.VineyardException:
            pass

    # ------------------------------------------------------------------ put
    def deferred_buffers(self) -> Optional[List[Any]]:
        """The byte runs the ``put`` in progress (in this thread) sends with the request
        that creates its tree, or None when blobs must be made at once (no put in
        progress, or an RPC client)."""
        return getattr(self._txn, "buffers", None)

    def put_object(self, meta: "_C.ObjectMeta", builders: Optional[List["_C.BlobBuilder"]] = None,
                   persist: bool = False, name: Optional[str] = None) -> "_C.ObjectID":
        """Seal ``builders``, create ``meta`` with its new members, optionally persist and
        name it: one request (two when deferred byte runs are large)."""
        name = None if name is None else str(name)
        runs = getattr(self._txn, "buffers", None)
        unsealed = getattr(self._txn, "unsealed", None)
        if unsealed:  # blobs of members nested pending (nest_all): sealed by this request
            builders = list(builders or []) + unsealed
            self._txn.unsealed = []
        if runs:
            oid, made = self._c.put_tree(meta, list(builders or []), persist=persist, name=name,
                                         buffers=runs)
            for member in made:  # blobs and members made with it: undone with it
                self._track(member)
        else:
            oid = self._c.put_object(meta, list(builders or []), persist=persist, name=name)
        self._track(oid)
        return oid

    def nest_all(self, built: List[Any]) -> List[Any]:
        """Members for a container being built: inside an IPC ``put`` a built-in builder's
        pending object stays pending (its metadata is created with the container's, in the
        same request); anything else is created now (``materialize_all``). The results go
        to ``meta.add_member``."""
        if getattr(self._txn, "buffers", None) is None:
            return self.materialize_all(built)
        out = []
        for b in built:
            if isinstance(b, PendingObject) and not b.persist:
                self._txn.unsealed.extend(b.blobs)  # sealed by the request that creates it
                out.append(b.meta)
            else:
                out.append(self._materialize(b))
        return out

    def _materialize(self, built: Any, persist: bool = False, name: Optional[str] = None):
        """Turn a builder's result into an ObjectID, creating pending metadata."""
        bare_blob = False
        if isinstance(built, PendingObject):
            return self.put_object(built.meta, built.blobs, persist=persist or built.persist,
                                   name=name)
        if isinstance(built, ObjectMeta):
            if built.id == ObjectID.invalid() or int(built.id) == 0:
                return self.put_object(built, [], persist=persist, name=name)
            oid = built.id
        elif isinstance(built, (Object, _C.Blob)):
            oid = built.id
            bare_blob = isinstance(built, _C.Blob)
        elif isinstance(built, _C.BlobBuilder):
            oid = built.seal(self._c).id
            self._track(oid)
            bare_blob = True
        elif isinstance(built, _C.RemoteBlobBuilder):
            oid = self._c.create_remote_blob(built).id
            self._track(oid)
            bare_blob = True
        elif isinstance(built, (ObjectID, int)):
            oid = ObjectID(built)
        else:
            raise TypeError(f"a builder must return an ObjectID, ObjectMeta or Object, got "
                            f"{type(built).__name__}")
        # A bare blob that no object holds dies with the connection that made it,
        # unless adopted: persisting it does, so that a put value outlives its
        # client like every other (docs/architecture.md, "Trust model: blobs and
        # shared memory").
        if persist or name is not None or bare_blob:
            self._c.persist(oid)
        if name is not None:
            self._c.put_name(oid, str(name))
        return oid

    def materialize_all(self, built: List[Any]) -> List["_C.ObjectID"]:
        """Create several builder results; pending ones without blobs go in one request."""
        out: List[Any] = [None] * len(built)
        batch = []
        deferring = getattr(self._txn, "buffers", None) is not None  # metas may name byte runs
        for i, b in enumerate(built):
            if isinstance(b, PendingObject) and not b.blobs and not deferring:
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
                self._track(m.id)
        return out

    def put(self, value: Any, builder: Optional[BuilderContext] = None, persist: bool = False,
            name: Optional[str] = None, **kwargs: Any) -> "_C.ObjectID":
        """Put a Python value into vineyard; returns its ObjectID.

        The value is built by ``builder`` (default: the current builder context); a
        built-in builder's object is sealed, created, persisted and named in one request.
        """
        if type(value) is _ndarray and self._fast and builder is None and not kwargs \
                and get_current_builders().find(_ndarray) is _tensor_module().numpy_ndarray_builder:
            # The built-in numpy builder's layout, made natively in one call.
            oid = self._c.put_ndarray(value, persist, None if name is None else str(name))
            if oid is not None:
                self._track(oid)
                return oid
        ctx = builder if builder is not None else get_current_builders()
        if getattr(self._txn, "log", None) is not None:  # nested in a builder: outer put undoes
            return self._materialize(ctx.run(self, value, **kwargs), persist=persist, name=name)
        log: List[Any] = []
        self._txn.log = log
        if self._fast:
            self._txn.buffers = []  # byte runs sent with the request that creates the tree
            self._txn.unsealed = []  # blobs it seals
        try:
            built = ctx.run(self, value, **kwargs)
            return self._materialize(built, persist=persist, name=name)
        except BaseException as e:
            self._txn.log = None
            self._txn.buffers = None
            self._txn.unsealed = None
            if e.__traceback__ is not None and e.__traceback__.tb_next is not None:
                traceback.clear_frames(e.__traceback__.tb_next)  # the builders' locals
            self._rollback(log)
            raise
        finally:
            self._txn.log = None
            self._txn.buffers = None
            self._txn.unsealed = None

    # ------------------------------------------------------------------ get
    def get_object(self, object_id: Any) -> Object:
        """The object with its local blobs mapped (one request)."""
        meta = self._c.get_object_meta(_as_id(object_id))
        self._record_meta(meta)
        return Object.from_(meta)

    # ------------------------------------------------------------------ streams
    def next_chunk_meta(self, stream_id: Any) -> "_C.ObjectMeta":
        """The metadata of a stream's next chunk (waits for one; StreamDrainedException at
        the end, StreamFailedException if the stream failed)."""
        return self.get_meta(self._c.next_chunk_id(_as_id(stream_id)))

    def next_chunk(self, stream_id: Any) -> Object:
        """A stream's next chunk as an Object (waits for one)."""
        return self.get_object(self._c.next_chunk_id(_as_id(stream_id)))

    def get_objects(self, object_ids: List[Any]) -> List[Object]:
        metas = self._c.get_object_metas([_as_id(i) for i in object_ids])
        for m in metas:
            self._record_meta(m)
        return [Object.from_(m) for m in metas]

    def get(self, object_id: Any = None, name: Optional[str] = None,
            resolver: Optional[ResolverContext] = None, fetch: bool = False, **kwargs: Any) -> Any:
        """Get the Python value of an object, by id or by name.

        numpy arrays are zero-copy, read-only views of the shared memory. An object of
        another instance of the cluster needs ``fetch=True``: its blobs are then copied to
        the connected instance first (``migrate``), and the local copy is returned.
        """
        if object_id is None and name is None:
            raise ValueError("get() needs an object_id or a name")
        if object_id is None:
            object_id = self._c.get_name(str(name))
        oid = _as_id(object_id)
        if oid == _EMPTY_BLOB:
            return memoryview(b"")
        if fetch and self.is_ipc and not self._c.get_meta(oid).islocal:
            oid = self._c.migrate(oid)  # its blobs copied here; the local copy's id
        ctx = resolver if resolver is not None else get_current_resolvers()
        if self._fast:
            # One native call; a numeric tensor comes back as its array when the
            # built-in resolver is the one that would run (and it was not put from torch).
            meta, value, blob = self._c.get_fast(oid)
            if value is not None and not kwargs \
                    and ctx.find(meta.typename) is _tensor_module().numpy_ndarray_resolver \
                    and "value_type_torch_" not in meta:
                self._record((blob,))
                return value
            self._record_meta(meta)
            obj = Object.from_(meta)
        else:
            obj = self.get_object(oid)
        if payload_elsewhere(obj.meta):
            raise _C.ObjectNotExistsException(
                f"the blobs of {oid!r} live on instance {obj.meta.instance_id}, not on this "
                f"one ({self._c.instance_id}): get(..., fetch=True) copies them here")
        return ctx.run(obj, **kwargs)

    # ------------------------------------------------------------------ pass-through with Object
    def get_meta(self, object_id: Any, sync_remote: bool = False) -> "_C.ObjectMeta":
        return self._c.get_meta(_as_id(object_id), sync_remote=sync_remote)

    def get_metas(self, object_ids: List[Any], sync_remote: bool = False) -> List["_C.ObjectMeta"]:
        return self._c.get_metas([_as_id(i) for i in object_ids], sync_remote=sync_remote)

    def list_objects(self, pattern: str, regex: bool = False, limit: int = 5) -> List[Object]:
        """Objects whose typename matches the glob (or regex) ``pattern``, at most ``limit``."""
        return [Object(m) for m in self._c.list_metadatas(pattern, regex=regex, limit=limit)]

    def list_metadatas(self, pattern: str, regex: bool = False, limit: int = 5,
                       nobuffer: bool = False) -> List["_C.ObjectMeta"]:
        """Metadata of matching objects (``nobuffer`` is accepted: buffers are never filled)."""
        return self._c.list_metadatas(pattern, regex=regex, limit=limit)

    def delete(self, object_id: Any, force: bool = False, deep: bool = True,
               memory_trim: bool = False) -> None:
        if isinstance(object_id, (list, tuple)):
            target: Any = [_as_id(i) for i in object_id]
        else:
            target = _as_id(object_id)
        self._c.delete(target, force=force, deep=deep, memory_trim=memory_trim)
        ids = target if isinstance(target, list) else [target]
        with self._mapped_lock:
            for i in ids:
                self._mapped.pop(int(i), None)

    def create_metadata(self, metadata: Union["_C.ObjectMeta", List["_C.ObjectMeta"]],
                        instance_id: Optional[int] = None,
                        ) -> Union["_C.ObjectMeta", List["_C.ObjectMeta"]]:
        """Create ``metadata`` (one ObjectMeta or a list, in one request); fills in and
        returns it. ``instance_id`` places it on an instance: metadata is created on the
        connected one (connect to another instance's socket to create it there)."""
        if instance_id is not None and int(instance_id) != self._c.instance_id:
            raise _C.InvalidException(
                f"cannot create metadata on instance {int(instance_id)} through instance "
                f"{self._c.instance_id}: connect to that instance (client.meta lists each "
                f"one's ipc_socket and rpc_endpoint), or omit instance_id")
        out = self._c.create_metadata(metadata)
        for m in (out if isinstance(out, list) else [out]):
            self._track(m.id)
        return out

    def exists(self, object_id: Any) -> bool:
        return self._c.exists(_as_id(object_id))

    def persist(self, target: Any) -> None:
        self._c.persist(_as_id(target))

    def if_persist(self, object_id: Any) -> bool:
        return self._c.if_persist(_as_id(object_id))

    def shallow_copy(self, object_id: Any,
                     extra_metadata: Optional[Dict[str, Any]] = None) -> "_C.ObjectID":
        return self._c.shallow_copy(_as_id(object_id), extra_metadata)

    def put_name(self, object: Any, name: Any) -> None:  # noqa: A002 (reference name)
        self._c.put_name(_as_id(object), name if isinstance(name, _C.ObjectName) else str(name))

    def get_name(self, name: Any, wait: bool = False) -> "_C.ObjectID":
        return self._c.get_name(name if isinstance(name, _C.ObjectName) else str(name), wait=wait)

    def drop_name(self, name: Any) -> None:
        self._c.drop_name(name if isinstance(name, _C.ObjectName) else str(name))

    def list_names(self, pattern: str = "*", regex: bool = False,
                   limit: int = 5) -> Dict[str, "_C.ObjectID"]:
        return self._c.list_names(pattern, regex=regex, limit=limit)

    def label(self, object_id: Any, key: Any, value: Optional[str] = None) -> None:
        if value is None:
            self._c.label(_as_id(object_id), dict(key))
        else:
            self._c.label(_as_id(object_id), str(key), str(value))

    def sync_meta(self) -> None:
        """Waits until everything persisted anywhere in the cluster before this call is
        visible through the connected instance (a read barrier; at once without a cluster).
        Raises EtcdError when the cluster's etcd is out of reach."""
        self._c.sync_meta()

    def migrate(self, object_id: Any) -> "_C.ObjectID":
        """Copies an object of another instance (its blobs, over the instances' RPC ports)
        to the connected one; returns the local copy's id (the same id if already local)."""
        return self._c.migrate(_as_id(object_id))

    # ------------------------------------------------------------------ spilling
    @staticmethod
    def _as_ids(targets: Any) -> List["_C.ObjectID"]:
        if isinstance(targets, (list, tuple, set)):
            return [_as_id(t) for t in targets]
        return [_as_id(targets)]

    def evict(self, objects: Any) -> None:
        """Spill these objects' blobs to disk now (vineyardd ``--spill_path``). Raises
        if one is in use by a client or pinned, or if spilling is off; nothing is
        spilled then. A later ``get`` loads them back transparently."""
        self._c.evict(self._as_ids(objects))

    def load(self, objects: Any, pin: bool = False) -> None:
        """Load these objects' spilled blobs back into memory; with ``pin=True`` they
        stay in memory until ``unpin``."""
        self._c.load(self._as_ids(objects), pin=pin)

    def unpin(self, objects: Any) -> None:
        """Let pinned objects be spilled again."""
        self._c.unpin(self._as_ids(objects))

    def is_spilled(self, object_id: Any) -> bool:
        """Whether any of the object's blobs is on disk."""
        return self._c.is_spilled(_as_id(object_id))

    def is_in_use(self, object_id: Any) -> bool:
        """Whether a client maps or references any of the object's blobs."""
        return self._c.is_in_use(_as_id(object_id))

    def release_object(self, object_id: Any) -> None:
        """Declare an object no longer used by this client. References are given
        back when the objects (and blobs) holding them are gone; this sends those
        pending now, so the server may spill what nobody uses any more. A blob
        still mapped through a live object stays referenced: it is never
        spilled under its reader."""
        self.release_objects([object_id])

    def release_objects(self, object_ids: List[Any]) -> None:
        """``release_object`` for several objects."""
        flush = getattr(self._c, "flush_releases", None)
        if flush is not None:
            flush()


class IPCClient(ClientBase):
    """IPC client that connects to a vineyard instance's UNIX domain socket: blobs are
    shared memory mapped into this process, so ``get`` copies nothing.

    Wraps a native ``vineyard._C.IPCClient``; every method of it not redefined here is
    passed through unchanged (``create_blob``, ``get_blob(s)``, ``list_names``, ...).
    """

    _fast = True  # unless the server cannot take whole trees (see __init__)

    def __init__(self, socket: Union[str, "_C.IPCClient", None] = None,
                 username: str = "", password: str = "") -> None:
        if isinstance(socket, _C.IPCClient):
            native = socket
        else:
            native = _C.connect_ipc(os.fspath(socket) if socket else "", username or "",
                                    password or "")
        super().__init__(native)
        if not getattr(native, "whole_tree_put", False):
            # An older server: blobs created first and members one by one, as before.
            object.__setattr__(self, "_fast", False)
        object.__setattr__(self, "_login", (username or "", password or ""))  # for fork()

    @property
    def status(self) -> "_C.InstanceStatus":
        """The connected instance's status; blob references this client has dropped are
        given back first, so ``memory_usage`` does not count them."""
        self._c.flush_releases()
        return self._c.status

    # ------------------------------------------------------------------ shared memory
    @staticmethod
    def _address_of(target: Any) -> Tuple[int, int]:
        """(address, length) of an int address or of an object exporting a buffer."""
        if isinstance(target, int):
            return int(target), 1
        if isinstance(target, (_C.Blob, _C.BlobBuilder)):
            return target.address, max(target.size, 1)
        iface = getattr(target, "__array_interface__", None)
        if iface is not None:
            return int(iface["data"][0]), max(int(getattr(target, "nbytes", 1)), 1)
        try:
            view = memoryview(target)
        except TypeError:
            raise TypeError(f"expected an address (int) or a buffer, got "
                            f"{type(target).__name__}") from None
        if not view.c_contiguous:
            raise TypeError("a non-contiguous buffer is not supported")
        if view.nbytes == 0:
            return 0, 1
        import numpy as np
        arr = np.frombuffer(view.cast("B"), dtype=np.uint8)
        return int(arr.__array_interface__["data"][0]), view.nbytes

    def find_shared_memory(self, target: Any) -> Optional["_C.ObjectID"]:
        """The id of the blob, created or mapped by this client, that holds ``target`` (an
        address, or a buffer such as a numpy array / memoryview); None if none does."""
        addr, length = self._address_of(target)
        if addr == 0:
            return None
        with self._mapped_lock:
            items = list(self._mapped.items())
        for oid, (start, size) in reversed(items):  # newest first: memory may be reused
            if start <= addr and addr + length <= start + size:
                return ObjectID(oid)
        return None

    def is_shared_memory(self, target: Any) -> bool:
        """Whether ``target`` (an address or a buffer) lies inside a blob this client has
        created or mapped (``create_blob``, ``get_blob(s)``, ``get``/``get_object``)."""
        return self.find_shared_memory(target) is not None

    def create_blob(self, size: Union[int, List[int]]) -> Union["_C.BlobBuilder", List["_C.BlobBuilder"]]:
        """An unsealed BlobBuilder of ``size`` bytes, or a list of them for a list of sizes."""
        out = self._c.create_blob(size)
        self.adopt_builders(out if isinstance(out, list) else [out])
        return out

    def adopt_created(self, object_id: "_C.ObjectID") -> None:
        """An object a native call made for this client (``put_arrow``): inside a ``put``,
        deleted again if the put fails."""
        self._track(object_id)

    def adopt_builders(self, writers: List["_C.BlobBuilder"]) -> None:
        """BlobBuilders made for this client by a native call (``create_blob``,
        ``_C.encode_str_array_into``): noted as mapped and, inside a ``put``, undone with
        it if it fails."""
        self._record(writers)
        for w in writers:
            self._track(w)

    def create_empty_blob(self) -> "_C.Blob":
        """The empty blob (size 0; its id is ``ObjectID.empty_blob()``)."""
        return self._c.create_empty_blob()

    def flush_releases(self) -> None:
        """Give back blob references this client dropped but has not reported yet."""
        self._c.flush_releases()

    def get_blob(self, object_id: Any, unsafe: bool = False) -> "_C.Blob":
        blob = self._c.get_blob(_as_id(object_id), unsafe=unsafe)
        self._record([blob])
        return blob

    def get_blobs(self, object_ids: List[Any], unsafe: bool = False) -> List["_C.Blob"]:
        blobs = self._c.get_blobs([_as_id(i) for i in object_ids], unsafe=unsafe)
        self._record(blobs)
        return blobs

    def allocated_size(self, target: Any) -> int:
        """Bytes of shared memory held by the blobs of ``target``."""
        oid = _as_id(target)
        if oid.is_blob:
            return self._c.get_blob(oid).size
        meta = self._c.get_object_meta(oid)
        return sum(meta.get_buffer(b).size for b in meta.blob_ids() if b != ObjectID.empty_blob())

    def fork(self) -> "IPCClient":
        """A new session on the same socket, with the same login."""
        return IPCClient(self._c.endpoint, *self._login)


class RPCClient(ClientBase):
    """RPC client that connects to a vineyard instance's TCP endpoint (``host:port``),
    for processes that cannot map its shared memory (other hosts). Metadata works as over
    IPC; blob bytes travel over the connection: ``put`` sends them, ``get`` fetches them
    into this process (``RemoteBlob``), and the same object compares equal read either way.

    Wraps a native ``vineyard._C.RPCClient``.
    """

    def __init__(self, host: Union[str, "_C.RPCClient"], port: Union[int, str, None] = None,
                 username: str = "", password: str = "", tls_ca: str = "") -> None:
        if isinstance(host, _C.RPCClient):
            native = host
        else:
            port = int(port if port is not None else 9600)
            native = _C.connect_rpc(str(host), port, username or "", password or "",
                                    os.fspath(tls_ca) if tls_ca else "")
        super().__init__(native)
        object.__setattr__(self, "_login", (username or "", password or ""))  # for fork()
        object.__setattr__(self, "_tls_ca", os.fspath(tls_ca) if tls_ca else "")

    @property
    def remote_instance_id(self) -> int:
        """The instance id of the connected vineyardd."""
        return self._c.remote_instance_id

    @property
    def compression(self) -> bool:
        """zstd on the wire for blob bytes (off by default; needs the server's offer)."""
        return self._c.compression

    @compression.setter
    def compression(self, on: bool) -> None:
        self._c.compression = bool(on)

    def is_fetchable(self, meta: "_C.ObjectMeta") -> bool:
        """True if the object's blobs live on the connected instance."""
        return self._c.is_fetchable(meta)

    def create_remote_blob(self, blob_builder: Union["_C.RemoteBlobBuilder",
                                                     List["_C.RemoteBlobBuilder"]]
                           ) -> Union["_C.ObjectMeta", List["_C.ObjectMeta"]]:
        """Send a RemoteBlobBuilder's bytes (or several, in one request); returns the new
        blobs' ObjectMeta, to add as members."""
        out = self._c.create_remote_blob(blob_builder)
        for m in (out if isinstance(out, list) else [out]):
            self._track(m.id)
        return out

    def create_remote_blobs_from(self, buffers: List[Any]) -> List["_C.ObjectMeta"]:
        """One blob per bytes-like object, sent straight from its memory (no copy into a
        builder first); returns the blobs' ObjectMeta."""
        out = self._c.create_remote_blobs_from(list(buffers))
        for m in out:
            self._track(m.id)
        return out

    def get_remote_blob(self, object_id: Any, unsafe: bool = False) -> "_C.RemoteBlob":
        """Fetch a blob's bytes into this process."""
        return self._c.get_remote_blob(_as_id(object_id), unsafe=unsafe)

    def get_remote_blobs(self, object_ids: List[Any], unsafe: bool = False
                         ) -> List["_C.RemoteBlob"]:
        """Fetch several blobs in one request."""
        return self._c.get_remote_blobs([_as_id(i) for i in object_ids], unsafe=unsafe)

    def fork(self) -> "RPCClient":
        """A new session to the same endpoint, with the same login."""
        host, port = self._c.endpoint.rsplit(":", 1)
        return RPCClient(host, int(port), *self._login, tls_ca=self._tls_ca)


# ====================================================================== connect()

_DEFAULT_CONFIGS = ("/var/run/vineyard-config.yaml", "/var/run/vineyard/vineyard-config.yaml")


def _socket_from_config(path: str) -> str:
    """The ``Vineyard: {IPCSocket: ...}`` of a vineyard YAML config file."""
    try:
        import yaml
    except ImportError:
        raise RuntimeError(f"reading the vineyard config {path!r} needs PyYAML "
                           f"(pip install pyyaml)") from None
    with open(path) as f:
        conf = yaml.safe_load(f)
    section = conf.get("Vineyard") if isinstance(conf, dict) else None
    sock = section.get("IPCSocket") if isinstance(section, dict) else None
    if not sock:
        raise ValueError(f"{path!r} has no Vineyard.IPCSocket entry")
    sock = os.path.expanduser(str(sock))
    if not os.path.isabs(sock):
        sock = os.path.join(os.path.dirname(os.path.abspath(path)), sock)
    return sock


def _find_vineyardd() -> Tuple[Optional[str], List[str]]:
    """The vineyardd binary: $VINEYARDD, the bundled one (vineyard.vineyardd_path()), or
    build/vineyardd of a development tree; also the list of places tried."""
    tried = []
    candidates = []
    env = os.environ.get("VINEYARDD")
    if env:
        candidates.append(("$VINEYARDD", env))
    from .. import vineyardd_path
    try:
        candidates.append(("bundled", vineyardd_path()))
    except FileNotFoundError:
        tried.append("bundled vineyardd: not installed")
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # python/vineyard
    candidates.append(("dev tree", os.path.join(here, "..", "..", "build", "vineyardd")))
    for label, path in candidates:
        path = os.path.abspath(path)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path, tried
        tried.append(f"{label} vineyardd {path}: not an executable file")
    return None, tried


_HOST_PORT = re.compile(r"^[^/\s:]+:\d+$")


def _split_endpoint(endpoint: Any) -> Tuple[str, int]:
    """(host, port) of "host:port", "host" (port 9600) or a (host, port) pair."""
    if isinstance(endpoint, (tuple, list)):
        if len(endpoint) != 2:
            raise TypeError(f"an RPC endpoint is (host, port), got {tuple(endpoint)!r}")
        host, port = endpoint
    else:
        host, _, port = str(endpoint).rpartition(":")
        if not host:
            host, port = str(endpoint), 9600
    try:
        return str(host), int(port)
    except ValueError:
        raise _C.ConnectionFailedException(
            f"vineyard.connect: {endpoint!r} is not an RPC endpoint of the form host:port") \
            from None


def _connect_rpc(endpoint: Any, username: str, password: str, tls_ca: str = "") -> RPCClient:
    host, port = _split_endpoint(endpoint)
    return RPCClient(host, port, username, password, tls_ca)


def _connect_configured(username: str, password: str, tried: List[str]) -> Optional[ClientBase]:
    """A client of the server that the environment or a config file names: None when none
    is named (``tried`` then says so); ConnectionFailedException when one is named but
    none of them answers."""
    resolved_any = False
    sources = (("VINEYARD_IPC_SOCKET", lambda v: IPCClient(v, username, password)),
               ("VINEYARD_RPC_ENDPOINT", lambda v: _connect_rpc(v, username, password)))
    for var, make in sources:
        value = os.environ.get(var)
        if not value:
            tried.append(f"${var}: not set")
            continue
        resolved_any = True
        try:
            return make(value)
        except _C.VineyardException as e:
            tried.append(f"${var}={value!r}: {e}")

    configs = []
    conf_env = os.environ.get("VINEYARD_CONFIG")
    if conf_env:
        configs.append(("$VINEYARD_CONFIG", conf_env))
    else:
        tried.append("$VINEYARD_CONFIG: not set")
    configs += [("default config", p) for p in _DEFAULT_CONFIGS]
    for label, path in configs:
        if label == "default config" and not os.path.exists(path):
            tried.append(f"{label} {path}: does not exist")
            continue
        resolved_any = True
        try:
            conf_sock = _socket_from_config(path)
        except Exception as e:  # noqa: BLE001
            tried.append(f"{label} {path!r}: {e}")
            continue
        try:
            return IPCClient(conf_sock, username, password)
        except _C.VineyardException as e:
            tried.append(f"{label} {path!r} (IPCSocket {conf_sock!r}): {e}")

    if resolved_any:
        # Something was configured but did not answer: don't silently start a new server.
        raise _C.ConnectionFailedException(
            "vineyard.connect(): could not connect; tried:\n  " + "\n  ".join(tried))
    return None


def _connect_default(username: str = "", password: str = "") -> ClientBase:
    """connect() without an address: env, config files, then this process's default
    vineyardd (vineyard.deploy.local.try_init: started once, reused by every bare
    connect(), stopped at exit)."""
    tried: List[str] = []
    client = _connect_configured(username, password, tried)
    if client is not None:
        return client
    binary, bin_tried = _find_vineyardd()
    tried += bin_tried
    if binary is None:
        raise _C.ConnectionFailedException(
            "vineyard.connect(): no vineyard server configured and no vineyardd to start one; "
            "tried:\n  " + "\n  ".join(tried))
    from ..deploy import local
    try:
        socket = local.try_init(vineyardd_path=binary)
    except Exception as e:  # noqa: BLE001
        tried.append(f"default vineyardd {binary}: {e}")
        raise _C.ConnectionFailedException(
            "vineyard.connect(): could not connect; tried:\n  " + "\n  ".join(tried)) from None
    return IPCClient(socket)


def connect(*args: Any, **kwargs: Any) -> ClientBase:
    """Connect to vineyard: an ``IPCClient`` for a UNIX socket, an ``RPCClient`` for a TCP
    endpoint.

    * ``connect(socket)`` / ``connect(socket=...)``: IPC over that UNIX domain socket.
    * ``connect(host, port)``, ``connect((host, port))``, ``connect("host:port")`` (when
      no such file exists), ``connect(host=..., port=...)``, ``connect(endpoint=...)``:
      RPC to that endpoint.
    * ``connect()`` (or ``connect(None)``): IPC over ``$VINEYARD_IPC_SOCKET``; else RPC to
      ``$VINEYARD_RPC_ENDPOINT``; else the ``Vineyard.IPCSocket`` of the YAML config
      ``$VINEYARD_CONFIG`` (or /var/run/vineyard-config.yaml,
      /var/run/vineyard/vineyard-config.yaml); if none of them is set, this process's
      default vineyardd (``vineyard.try_init()``: ``$VINEYARDD``, the bundled binary, or
      build/vineyardd of a development tree, on a temporary socket with --norpc), started
      by the first such call and reused by the later ones, stopped by
      ``vineyard.shutdown()`` or at interpreter exit. ConnectionFailedException lists
      every source tried.

    ``username`` and ``password`` log in to a vineyardd started with ``--htpasswd``
    (``session`` is accepted and ignored). ``tls_ca`` (RPC only) speaks TLS to a vineyardd
    started with ``--rpc_tls_cert``, trusting the CA certificates of that PEM file
    (``"system"``: the system's store; default ``$VINEYARD_RPC_TLS_CA``, else plain TCP).
    """
    username = kwargs.pop("username", None) or ""
    password = kwargs.pop("password", None) or ""
    tls_ca = kwargs.pop("tls_ca", None) or ""
    kwargs.pop("session", None)
    socket = kwargs.pop("socket", None)
    endpoint = kwargs.pop("endpoint", None)
    host, port = kwargs.pop("host", None), kwargs.pop("port", None)
    if kwargs:
        raise TypeError(f"connect() got unexpected keyword arguments {sorted(kwargs)}")
    if len(args) > 2:
        raise TypeError(f"connect() takes at most 2 positional arguments ({len(args)} given)")
    if len(args) == 2:
        host, port = args
        args = ()
    if host is not None or port is not None:
        if host is None:
            raise TypeError("connect() got a port but no host")
        return _connect_rpc((host, 9600 if port is None else port), username, password, tls_ca)
    if endpoint is not None:
        return _connect_rpc(endpoint, username, password, tls_ca)
    if args:
        if socket is not None:
            raise TypeError("connect() got the socket both positionally and by keyword")
        socket = args[0]
    if socket is None:
        return _connect_default(username, password)
    if isinstance(socket, (tuple, list)):
        return _connect_rpc(socket, username, password, tls_ca)
    if isinstance(socket, os.PathLike):
        socket = os.fspath(socket)
    if not isinstance(socket, str):
        raise TypeError(f"vineyard.connect({socket!r}): expected a socket path (str), a "
                        f"(host, port) endpoint, or host and port")
    if _HOST_PORT.match(socket) and not os.path.exists(socket):
        return _connect_rpc(socket, username, password, tls_ca)
    try:
        return IPCClient(socket, username, password)
    except _C.ConnectionFailedException as e:
        raise _C.ConnectionFailedException(
            f"vineyard.connect({socket!r}): no vineyard server answers on that socket: {e}") \
            from None
