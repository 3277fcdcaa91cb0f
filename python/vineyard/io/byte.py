"""ByteStream: chunks of bytes (blobs the writer fills in place; the reader maps them)."""
from __future__ import annotations

import io
from typing import Any

from .. import _C
from .stream import BaseStream

__all__ = ["ByteStream"]


class ByteStream(BaseStream):
    typename = "vineyard::ByteStream"

    class Reader(BaseStream.Reader):
        def next(self) -> memoryview:
            """The next chunk, a read-only memoryview over shared memory (no copy)."""
            try:
                return self._client.next_buffer_chunk(self._stream)
            except _C.StreamDrainedException as e:
                raise StopIteration("no more chunks") from e

        def read_all(self) -> bytes:
            return b"".join(bytes(chunk) for chunk in self)

    class Writer(BaseStream.Writer):
        """``write(data)`` buffers up to ``buffer_size_limit`` bytes per chunk (256 MiB, as
        vineyard); ``next(size)`` hands a chunk to fill in place; ``finish()`` flushes."""

        def __init__(self, client: Any, stream: _C.ObjectID):
            super().__init__(client, stream)
            self._buffer_size_limit = 256 << 20
            self._buffer = io.BytesIO()

        @property
        def buffer_size_limit(self) -> int:
            return self._buffer_size_limit

        @buffer_size_limit.setter
        def buffer_size_limit(self, value: int) -> None:
            if int(value) <= 0:
                raise ValueError("buffer_size_limit must be positive")
            self._buffer_size_limit = int(value)

        def write(self, data: Any) -> None:
            self._buffer.write(data)
            if self._buffer.tell() >= self._buffer_size_limit:
                self._flush()

        def _flush(self) -> None:
            view = self._buffer.getbuffer()
            if len(view) > 0:
                chunk = self.next(len(view))
                chunk[:] = view
            del view
            self._buffer = io.BytesIO()

        def finish(self) -> None:
            self._flush()
            super().finish()

    def _open_new_reader(self, client: Any) -> "ByteStream.Reader":
        return ByteStream.Reader(client, self.id)

    def _open_new_writer(self, client: Any) -> "ByteStream.Writer":
        return ByteStream.Writer(client, self.id)


def byte_stream_resolver(obj: Any, **kw: Any) -> ByteStream:
    return ByteStream(obj.meta)
