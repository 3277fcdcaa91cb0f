"""``vineyard.Object``: a resolved-to-be vineyard object (its metadata plus mapped blobs)."""
from __future__ import annotations

from typing import Any, Optional

from .. import _C

__all__ = ["Object", "BlobObject", "PendingObject", "member_blob"]

_BLOB = "vineyard::Blob"


def member_blob(meta: "_C.ObjectMeta") -> "_C.Blob":
    """The mapped blob of a blob metadata (the empty blob for the empty id)."""
    if meta.id == _C.ObjectID.empty_blob():
        return _C.Blob.empty()
    return meta.get_buffer(meta.id)


def payload_elsewhere(meta: "_C.ObjectMeta") -> bool:
    """True for an object of another instance of the cluster whose blobs were not brought
    to this process (``get(..., fetch=True)`` copies them to the connected instance)."""
    if meta.isglobal or meta.islocal:
        return False
    for blob_id in meta.blob_ids():
        if blob_id == _C.ObjectID.empty_blob():
            continue
        try:
            meta.get_buffer(blob_id)
        except Exception:  # noqa: BLE001 (not attached: it lives elsewhere)
            return True
    return False


class Object:
    """Base class for vineyard objects: wraps the ObjectMeta returned by the server, with
    the blobs of its tree mapped (``IPCClient.get_object``)."""

    __slots__ = ("_meta",)

    def __init__(self, meta: "_C.ObjectMeta") -> None:
        if not isinstance(meta, _C.ObjectMeta):
            raise TypeError(f"Object wraps an ObjectMeta, got {type(meta).__name__}")
        self._meta = meta

    @staticmethod
    def from_(meta: "_C.ObjectMeta") -> "Object":
        """Construct a new object from the meta (a ``BlobObject`` for a blob)."""
        return BlobObject(meta) if meta.typename == _BLOB else Object(meta)

    @property
    def meta(self) -> "_C.ObjectMeta":
        return self._meta

    @property
    def id(self) -> "_C.ObjectID":
        return self._meta.id

    @property
    def typename(self) -> str:
        return self._meta.typename

    @property
    def nbytes(self) -> int:
        return self._meta.nbytes

    @property
    def signature(self) -> int:
        return self._meta.signature

    @property
    def instance_id(self) -> int:
        return self._meta.instance_id

    @property
    def islocal(self) -> bool:
        return self._meta.islocal

    @property
    def isglobal(self) -> bool:
        return self._meta.isglobal

    @property
    def ispersist(self) -> bool:
        return self._meta.ispersist

    def member(self, name: str) -> Any:
        """The member ``name``: an ``Object``, or a ``Blob`` for blob members."""
        sub = self._meta.member(name)
        if sub is None:
            raise KeyError(f"object {self.id!r} ({self.typename}) has no member {name!r}")
        if sub.typename == _BLOB:
            return member_blob(sub)
        return Object(sub)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Object) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f'Object <"{self.id!r}": {self.typename}>'

    __str__ = __repr__


class BlobObject(Object):
    """The object of a blob id (``IPCClient.get_object(blob_id)``): an ``Object`` that also
    has the blob's ``size``, ``address`` and bytes (``blob.buffer`` is the mapped, read-only
    ``vineyard.Blob``)."""

    __slots__ = ()

    @property
    def buffer(self) -> "_C.Blob":
        """The mapped blob: ``memoryview(obj.buffer)`` reads it without copying."""
        return member_blob(self._meta)

    @property
    def size(self) -> int:
        return self.buffer.size

    @property
    def address(self) -> int:
        return self.buffer.address

    @property
    def is_empty(self) -> bool:
        return self.buffer.is_empty

    def __len__(self) -> int:
        return self.size

    def __bytes__(self) -> bytes:
        return bytes(self.buffer)


class PendingObject:
    """What the built-in builders return: metadata not created yet plus the unsealed blobs
    it refers to. ``IPCClient.put`` creates it (seal + create + persist + name) in one
    request; containers create their pending members first."""

    __slots__ = ("meta", "blobs", "persist")

    def __init__(self, meta: "_C.ObjectMeta", blobs: Optional[list] = None,
                 persist: bool = False) -> None:
        self.meta = meta
        self.blobs = list(blobs or [])
        self.persist = persist  # a global object is visible to the cluster at once

    def __repr__(self) -> str:
        return f"PendingObject <{self.meta.typename}, {len(self.blobs)} blob(s)>"
