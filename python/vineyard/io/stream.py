"""Streams: a writer's chunks consumed by a reader while they are still being produced.

A stream is an object with metadata (``vineyard::ByteStream``, ``vineyard::DataframeStream``,
``vineyard::RecordBatchStream``) that vineyardd also holds as a queue of chunks: one writer
appends (``open_writer``), one reader takes them in order (``open_reader``, or iterate), and
a chunk is freed once the reader has moved past it. The layouts and the requests are
vineyard's, so its clients read and write the same streams.
"""
from __future__ import annotations

import json
from typing import Any, Callable, Dict, Iterator, List, Optional

from .. import _C
from ..core.resolver import resolver_context

__all__ = ["BaseStream", "StreamCollection", "stream_params"]


def stream_params(meta: Any) -> Dict[str, Any]:
    """The ``params_`` of a stream's metadata (a dict; vineyard stores it as JSON text)."""
    if "params_" not in meta:
        return {}
    value = meta["params_"]
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return dict(value) if isinstance(value, dict) else {}



class BaseStream:
    """A stream object: ``open_reader(client)`` and ``open_writer(client)`` give its two
    sides; ``drop(client)`` fails it and frees what is queued."""

    typename = "vineyard::Stream"

    class Reader:
        def __init__(self, client: Any, stream: _C.ObjectID, resolver: Optional[Callable] = None):
            self._client = client
            self._stream = stream
            self._resolver = resolver
            self._client.open_stream(stream, "r")

        def next(self) -> Any:
            """The next chunk, resolved (StopIteration after the last one)."""
            try:
                chunk = self._client.next_chunk(self._stream)
            except _C.StreamDrainedException as e:
                raise StopIteration("no more chunks") from e
            if self._resolver is not None:
                return self._resolver(chunk)
            with resolver_context() as ctx:
                return ctx.run(chunk)

        def next_metadata(self) -> _C.ObjectMeta:
            try:
                return self._client.next_chunk_meta(self._stream)
            except _C.StreamDrainedException as e:
                raise StopIteration("no more chunks") from e

        def __iter__(self) -> Iterator[Any]:
            return self

        def __next__(self) -> Any:
            return self.next()

        def __repr__(self) -> str:
            return f"{type(self).__name__} of stream <{self._stream!r}>"

    class Writer:
        def __init__(self, client: Any, stream: _C.ObjectID):
            self._client = client
            self._stream = stream
            self._client.open_stream(stream, "w")

        def next(self, size: int) -> memoryview:
            """A new chunk of ``size`` bytes to fill (queued at the next call or finish)."""
            return self._client.new_buffer_chunk(self._stream, size)

        def append(self, chunk: Any) -> None:
            """Queue an existing object as the next chunk."""
            self._client.push_chunk(self._stream, chunk)

        def fail(self) -> None:
            self._client.stop_stream(self._stream, True)

        def finish(self) -> None:
            self._client.stop_stream(self._stream, False)

        def __enter__(self) -> "BaseStream.Writer":
            return self

        def __exit__(self, exc_type: Any, *_: Any) -> None:
            # A writer that raises fails its stream: the reader learns it, never waits.
            (self.fail if exc_type is not None else self.finish)()

        def __repr__(self) -> str:
            return f"{type(self).__name__} of stream <{self._stream!r}>"

    def __init__(self, meta: _C.ObjectMeta, params: Optional[Dict[str, Any]] = None,
                 resolver: Optional[Callable] = None):
        self._meta = meta
        self._stream = meta.id
        self._params = dict(params) if params is not None else stream_params(meta)
        self._resolver = resolver
        self._reader: Optional[BaseStream.Reader] = None
        self._writer: Optional[BaseStream.Writer] = None

    @classmethod
    def new(cls, client: Any, params: Optional[Dict[str, Any]] = None,
            meta: Optional[_C.ObjectMeta] = None) -> Any:
        """A new stream of this type (its metadata, with ``params_``), ready to open."""
        if meta is None:
            meta = _C.ObjectMeta()
        meta.typename = cls.typename
        meta["params_"] = dict(params or {})
        meta.nbytes = 0
        meta = client.create_metadata(meta)
        client.create_stream(meta.id)
        return cls(meta, params)

    @property
    def id(self) -> _C.ObjectID:
        return self._stream

    @property
    def meta(self) -> _C.ObjectMeta:
        return self._meta

    @property
    def params(self) -> Dict[str, Any]:
        return self._params

    @property
    def reader(self) -> "BaseStream.Reader":
        return self.open_reader()

    @property
    def writer(self) -> "BaseStream.Writer":
        return self.open_writer()

    def _client_of(self, client: Any) -> Any:
        if client is None:
            raise ValueError(f"{type(self).__name__}: pass the client to open it with")
        return client

    def _open_new_reader(self, client: Any) -> "BaseStream.Reader":
        return BaseStream.Reader(client, self.id, self._resolver)

    def _open_new_writer(self, client: Any) -> "BaseStream.Writer":
        return BaseStream.Writer(client, self.id)

    def open_reader(self, client: Any = None) -> "BaseStream.Reader":
        if self._reader is None:
            self._reader = self._open_new_reader(self._client_of(client))
        return self._reader

    def open_writer(self, client: Any = None) -> "BaseStream.Writer":
        if self._writer is None:
            self._writer = self._open_new_writer(self._client_of(client))
        return self._writer

    def drop(self, client: Any = None) -> None:
        self._client_of(client).drop_stream(self.id)

    def __repr__(self) -> str:
        return f"{type(self).__name__} <{self._stream!r}>"


class StreamCollection:
    """Streams grouped under one object (``vineyard::StreamCollection``), as vineyard's."""

    KEY_OF_STREAMS = "__streams"

    def __init__(self, meta: _C.ObjectMeta, streams: List[_C.ObjectID]):
        self._meta = meta
        self._streams = streams

    @staticmethod
    def new(client: Any, metadata: Dict[str, Any], streams: List[Any],
            meta: Optional[_C.ObjectMeta] = None) -> "StreamCollection":
        if meta is None:
            meta = _C.ObjectMeta()
        meta.typename = "vineyard::StreamCollection"
        for k, v in metadata.items():
            if k not in ("id", "signature", "instance_id", "transient", "global", "typename"):
                meta[k] = v
        meta[StreamCollection.KEY_OF_STREAMS] = [int(s) for s in streams]
        meta.nbytes = 0
        meta = client.create_metadata(meta)
        return StreamCollection(meta, [_C.ObjectID(int(s)) for s in streams])

    @property
    def id(self) -> _C.ObjectID:
        return self._meta.id

    @property
    def meta(self) -> _C.ObjectMeta:
        return self._meta

    @property
    def streams(self) -> List[_C.ObjectID]:
        return self._streams

    def __repr__(self) -> str:
        return f"StreamCollection: {self.id!r} {[repr(s) for s in self._streams]}"


def stream_collection_resolver(obj: Any, **kw: Any) -> StreamCollection:
    streams = obj.meta[StreamCollection.KEY_OF_STREAMS]
    if isinstance(streams, str):
        streams = json.loads(streams)
    return StreamCollection(obj.meta, [_C.ObjectID(int(s)) for s in streams])
