"""bytes/memoryview <-> a plain blob; tuple/list <-> ``vineyard::Sequence`` (resolves to a tuple)."""
from __future__ import annotations

from typing import Any

from .. import _C
from ..core.object import Object, PendingObject, member_blob
from .utils import build_buffer


def bytes_builder(client: Any, value: Any, **kw: Any) -> Any:
    """A sealed blob; ``put`` returns the blob's id (no metadata object)."""
    buffer = build_buffer(client, value, defer=False)  # a bare blob: no tree to carry it
    if isinstance(buffer, _C.BlobBuilder):
        return buffer.seal(client.native if hasattr(client, "native") else client)
    return buffer


def bytes_resolver(obj: Any, **kw: Any) -> memoryview:
    if isinstance(obj, Object):
        return memoryview(member_blob(obj.meta))
    return memoryview(obj)


def sequence_builder(client: Any, value: Any, builder: Any = None, **kw: Any) -> PendingObject:
    meta = _C.ObjectMeta()
    meta.typename = "vineyard::Sequence"
    meta["size_"] = len(value)
    built = []
    for item in value:
        if isinstance(item, (_C.ObjectID, Object, _C.ObjectMeta)):
            built.append(item)
        else:
            built.append(builder.run(client, item, **kw))
    # An element that lives on another instance of the cluster makes the sequence a
    # global object, visible to every instance (as vineyard's distributed pair).
    here = getattr(client, "instance_id", None)
    remote = any(isinstance(item, (Object, _C.ObjectMeta)) and here is not None and
                 not (item.meta if isinstance(item, Object) else item).isglobal and
                 (item.meta if isinstance(item, Object) else item).instance_id != here
                 for item in value)
    if remote:
        meta.set_global(True)
    ids = client.materialize_all(built)
    for i, oid in enumerate(ids):
        meta.add_member(f"__elements_-{i}", oid if isinstance(oid, _C.ObjectID) else _C.ObjectID(oid))
    meta["__elements_-size"] = len(value)
    meta.nbytes = 0
    return PendingObject(meta, persist=remote)


def sequence_resolver(obj: Any, resolver: Any = None, **kw: Any) -> tuple:
    meta = obj.meta
    # Object even for blob members (Blob has no typename): the blob resolver maps it.
    return tuple(resolver.run(Object(meta.member(f"__elements_-{i}")), **kw)
                 for i in range(int(meta["__elements_-size"])))


def register(builder_ctx: Any = None, resolver_ctx: Any = None) -> None:
    if builder_ctx is not None:
        builder_ctx.register(bytes, bytes_builder)
        builder_ctx.register(memoryview, bytes_builder)
        builder_ctx.register(tuple, sequence_builder)
        builder_ctx.register(list, sequence_builder)
    if resolver_ctx is not None:
        resolver_ctx.register("vineyard::Blob", bytes_resolver)
        resolver_ctx.register("vineyard::Sequence", sequence_resolver)
