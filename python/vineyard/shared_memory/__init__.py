"""``vineyard.shared_memory``: ``SharedMemory`` and ``ShareableList`` over vineyard blobs.

The interface follows :mod:`multiprocessing.shared_memory`, with one difference in
semantics: a block is *mutable only until it is frozen*, and *visible to other clients
only after it is frozen*::

    >>> from vineyard import shared_memory
    >>> value = shared_memory.ShareableList(client, [b"a", "bb", 1234, 56.78, True])
    >>> value[4] = False                       # private and writable
    >>> value.freeze()                         # sealed, persisted, named: now read-only
    >>> other = shared_memory.ShareableList(client2, name=value.shm.name)
    >>> other
    ShareableList([b'a', 'bb', 1234, 56.78, False], name='o8000000119aa10c0')

* ``SharedMemory(client, create=True, size=n)`` allocates an unsealed, zero-filled blob of
  ``n`` bytes in the creating client; ``buf`` is a writable memoryview of it.
* ``freeze()`` seals the blob, creates a ``vineyard::SharedMemory`` object holding it
  (fields ``size`` and ``shm_name``, member ``buffer_``), persists it, and registers it
  under ``name`` (``IPCClient.put_name``) -- all in one request.  Afterwards ``buf`` is a
  read-only view: writes raise ``TypeError`` (and the old writable ``buf`` object is
  released: writes through it raise ``ValueError``).  Views derived from ``buf`` (slices,
  ``memoryview(buf)``, numpy arrays) must be released first -- ``freeze()`` raises
  ``BufferError`` otherwise -- so no writable alias survives the seal.
* ``SharedMemory(client, name)`` attaches, read-only, to a frozen block by name (from
  any client / process of the same vineyardd).  An unknown name, or the name of a block
  whose creator has not frozen it yet, raises ``FileNotFoundError``.
* ``name`` defaults to the id of the underlying blob (``'o<16 hex>'``); a name given at
  creation must not be taken yet (``FileExistsError``).
* ``close()`` releases this handle's view (an unfrozen block, which nobody else can
  reach, is discarded); ``unlink()`` deletes the block and its name from vineyardd
  (views already mapped elsewhere stay readable).

See :mod:`vineyard.shared_memory.shareable_list` for the ``ShareableList`` byte layout.
"""
from __future__ import annotations

import ctypes
import pickle
import weakref
from typing import Any, Optional

from .. import _C

__all__ = ["SharedMemory", "ShareableList", "TYPENAME"]

TYPENAME = "vineyard::SharedMemory"

# name -> unfrozen SharedMemory of this process, for precise errors and name checks.
_unfrozen: "weakref.WeakValueDictionary[str, SharedMemory]" = weakref.WeakValueDictionary()


def _native(client: Any) -> Any:
    """Accept a ``vineyard.IPCClient`` facade or a native ``vineyard._C.IPCClient``."""
    native = getattr(client, "native", client)
    if not isinstance(native, _C.IPCClient):
        raise TypeError("vineyard_client must be a vineyard IPCClient (vineyard.connect(...)), "
                        f"got {type(client).__name__}")
    return native


def _lookup(client: Any, name: str) -> Optional["_C.ObjectID"]:
    try:
        return client.get_name(name)
    except _C.ObjectNotExistsException:
        return None


class SharedMemory:
    """A block of vineyard shared memory, writable by its creator until ``freeze()``."""

    def __init__(self, vineyard_client: Any, name: Optional[str] = None, create: bool = False,
                 size: int = 0) -> None:
        self._client = _native(vineyard_client)
        self._builder = None  # the unsealed BlobBuilder, while unfrozen
        self._blob = None     # the sealed Blob, once frozen / attached
        self._buf: Optional[memoryview] = None
        self._root: Optional[memoryview] = None  # writable view of the builder (unfrozen)
        self._pickle_buffer = None
        self._object_id: Optional["_C.ObjectID"] = None
        if name is not None and not isinstance(name, str):
            raise TypeError(f"'name' must be a str or None, got {type(name).__name__}")
        if isinstance(size, bool) or not isinstance(size, int):
            raise TypeError(f"'size' must be an int, got {type(size).__name__}")
        if size < 0:
            raise ValueError("'size' must be a positive integer")
        if name == "":
            raise ValueError("'name' must not be empty")

        if create:
            if size == 0:
                raise ValueError("'size' must be a positive number different from zero")
            if name is not None and (name in _unfrozen or _lookup(self._client, name) is not None):
                raise FileExistsError(f"shared memory {name!r} already exists")
            self._builder = self._client.create_blob(size)
            self._name = name if name is not None else repr(self._builder.id)
            self._size = size
            ctypes.memset(self._builder.address, 0, size)  # zero-filled, like the stdlib
            self._root = memoryview(self._builder)
            self._expose_writable_view()
            _unfrozen[self._name] = self
        else:
            if name is None:
                raise ValueError("'name' can only be None if create=True")
            self._name = name
            self._attach(name)

    def _attach(self, name: str) -> None:
        oid = _lookup(self._client, name)
        if oid is None:
            state = ("exists but has not been frozen yet (call freeze() in its creator)"
                     if name in _unfrozen else
                     "is unknown (it does not exist, was unlinked, or its creator has not "
                     "called freeze() yet)")
            raise FileNotFoundError(f"no frozen vineyard shared memory named {name!r}: the name "
                                    f"{state}")
        meta = self._client.get_object_meta(oid)
        if meta.typename != TYPENAME:
            raise ValueError(f"{name!r} names a {meta.typename} object, not a shared memory block")
        buffer = meta.member("buffer_")
        self._blob = (_C.Blob.empty() if buffer.id == _C.ObjectID.empty_blob()
                      else meta.get_buffer(buffer.id))
        self._object_id = oid
        self._size = self._blob.size
        self._buf = memoryview(self._blob)

    # ------------------------------------------------------------------ properties
    @property
    def buf(self) -> Optional[memoryview]:
        """A memoryview of the block: writable until frozen, read-only afterwards."""
        return self._buf

    @property
    def name(self) -> str:
        """Unique name that identifies the shared memory block."""
        return self._name

    @property
    def size(self) -> int:
        """Size in bytes."""
        return self._size

    @property
    def frozen(self) -> bool:
        """True once sealed and visible to other clients (always, for an attached block)."""
        return self._builder is None and self._blob is not None

    @property
    def object_id(self) -> Optional["_C.ObjectID"]:
        """Id of the ``vineyard::SharedMemory`` object (None until frozen)."""
        return self._object_id

    # ------------------------------------------------------------------ lifecycle
    def freeze(self) -> "SharedMemory":
        """Seal the shared memory to make it visible for other processes (idempotent)."""
        if self.frozen:
            return self
        if self._builder is None:
            raise ValueError(f"shared memory {self._name!r} is closed or unlinked")
        taken = _lookup(self._client, self._name)
        if taken is not None:
            raise FileExistsError(f"the name {self._name!r} was taken by object {taken!r} "
                                  "before this shared memory was frozen")
        # No writable view may outlive the seal: BufferError if slices of buf are alive.
        builder = self._builder
        self._release_writable_view("freeze")
        meta = _C.ObjectMeta()
        meta.typename = TYPENAME
        meta.nbytes = self._size
        meta["size"] = self._size
        meta["shm_name"] = self._name
        meta.add_member("buffer_", builder)
        try:
            oid = self._client.put_object(meta, [builder], persist=True, name=self._name)
        except BaseException:
            if builder.writable:
                self._root = memoryview(builder)
                self._expose_writable_view()
            raise
        self._builder = None
        self._object_id = oid
        self._blob = self._client.get_blob(builder.id)
        self._buf = memoryview(self._blob)
        _unfrozen.pop(self._name, None)
        return self

    def _expose_writable_view(self) -> None:
        """Make ``buf`` a writable view of the builder whose derived views can be counted.

        Slices of a memoryview (and memoryview(view)) share its buffer and survive its
        release(), so ``buf`` is not a direct view of the builder: it is a view of a
        PickleBuffer over a private root view.  Every memoryview family made from ``buf``
        then holds one export of the root, and ``root.release()`` refuses while any is
        alive.
        """
        self._pickle_buffer = pickle.PickleBuffer(self._root)
        self._buf = memoryview(self._pickle_buffer)

    def _release_writable_view(self, action: str) -> None:
        """Release ``buf``; BufferError (buf left usable) if any view derived from it lives."""
        message = (f"cannot {action} shared memory {self._name!r}: release the views derived "
                   "from its buf first (slices, memoryviews, numpy arrays)")
        try:
            self._buf.release()
        except BufferError as e:
            raise BufferError(f"{message}: {e}") from None
        self._pickle_buffer.release()
        try:
            self._root.release()
        except BufferError as e:
            self._expose_writable_view()
            raise BufferError(f"{message}: {e}") from None
        self._root = self._pickle_buffer = self._buf = None

    def close(self) -> None:
        """Release this handle's view of the block (BufferError if views of buf are alive).

        An unfrozen block is discarded: nobody else can reach it.
        """
        if self._buf is not None:
            if self._builder is not None:  # the memory goes away: no view may outlive it
                self._release_writable_view("close")
            else:
                self._buf.release()
            self._buf = None
        if self._builder is not None:
            builder, self._builder = self._builder, None
            if _unfrozen.get(self._name) is self:
                del _unfrozen[self._name]
            if builder.writable:
                builder.abort()
        self._blob = None

    def unlink(self) -> None:
        """Requests that the underlying shared memory block be destroyed.

        Deletes the frozen object and its name from vineyardd (views already mapped by
        other clients stay readable); an unfrozen block is discarded.
        """
        if self._builder is not None:
            self.close()
            return
        oid = self._object_id
        if oid is None:
            oid = _lookup(self._client, self._name)
        if oid is not None and self._client.exists(oid):
            self._client.delete(oid, force=False, deep=True)
        self._object_id = None

    def __enter__(self) -> "SharedMemory":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __reduce__(self):
        raise TypeError("a vineyard SharedMemory cannot be pickled: pass its name and attach "
                        "with SharedMemory(client, name)")

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.name!r}, size={self.size})"


from .shareable_list import ShareableList  # noqa: E402
