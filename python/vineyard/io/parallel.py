"""ParallelStream: one stream per worker under a global object (vineyard's layout:
members ``__streams_-<i>`` and ``__streams_-size``)."""
from __future__ import annotations

from typing import Any, List

from .. import _C
from ..core.object import Object

__all__ = ["ParallelStream", "make_parallel_stream"]


class ParallelStream:
    typename = "vineyard::ParallelStream"

    def __init__(self, meta: _C.ObjectMeta, streams: List[Any]):
        self._meta = meta
        self._streams = streams

    @property
    def id(self) -> _C.ObjectID:
        return self._meta.id

    @property
    def meta(self) -> _C.ObjectMeta:
        return self._meta

    @property
    def streams(self) -> List[Any]:
        """The partial streams (resolved where they are local)."""
        return self._streams

    def get_stream_num(self) -> int:
        return len(self._streams)

    def __len__(self) -> int:
        return len(self._streams)

    def __getitem__(self, i: int) -> Any:
        return self._streams[i]

    def __repr__(self) -> str:
        return f"ParallelStream <{self.id!r}> of {len(self._streams)} streams"


def make_parallel_stream(client: Any, stream_ids: List[Any]) -> _C.ObjectID:
    """A global, persisted ParallelStream over the streams ``stream_ids``."""
    meta = _C.ObjectMeta()
    meta.typename = ParallelStream.typename
    meta.set_global(True)
    meta["__streams_-size"] = len(stream_ids)
    for i, sid in enumerate(stream_ids):
        meta.add_member(f"__streams_-{i}", _C.ObjectID(int(sid)))
    meta.nbytes = 0
    meta = client.create_metadata(meta)
    client.persist(meta.id)
    return meta.id


def parallel_stream_resolver(obj: Any, resolver: Any = None, **kw: Any) -> ParallelStream:
    meta = obj.meta
    n = int(meta["__streams_-size"])
    parts = []
    for i in range(n):
        member = meta.member(f"__streams_-{i}")
        parts.append(resolver.run(Object.from_(member)) if resolver is not None else member)
    return ParallelStream(meta, parts)
