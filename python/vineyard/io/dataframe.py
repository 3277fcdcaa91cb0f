"""DataframeStream: record batches as Arrow IPC messages in byte chunks (vineyard's layout)."""
from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.ipc  # noqa: F401

from .. import _C
from .stream import BaseStream

__all__ = ["DataframeStream"]


class DataframeStream(BaseStream):
    typename = "vineyard::DataframeStream"

    class Reader(BaseStream.Reader):
        def next(self) -> pa.RecordBatch:
            try:
                buffer = self._client.next_buffer_chunk(self._stream)
            except _C.StreamDrainedException as e:
                raise StopIteration("no more chunks") from e
            with pa.ipc.open_stream(pa.py_buffer(buffer)) as reader:
                return reader.read_next_batch()

        def read_table(self) -> pa.Table:
            batches = list(self)
            if not batches:
                return pa.table({})
            return pa.Table.from_batches(batches)

    class Writer(BaseStream.Writer):
        def write(self, batch: pa.RecordBatch) -> None:
            # The IPC stream is sized first, then written once into the chunk itself.
            sizer = pa.MockOutputStream()
            with pa.ipc.new_stream(sizer, batch.schema) as w:
                w.write_batch(batch)
            chunk = self.next(sizer.size())
            sink = pa.FixedSizeBufferWriter(pa.py_buffer(chunk))
            with pa.ipc.new_stream(sink, batch.schema) as w:
                w.write_batch(batch)

        def write_table(self, table: pa.Table) -> None:
            for batch in table.to_batches():
                self.write(batch)

    def _open_new_reader(self, client: Any) -> "DataframeStream.Reader":
        return DataframeStream.Reader(client, self.id)

    def _open_new_writer(self, client: Any) -> "DataframeStream.Writer":
        return DataframeStream.Writer(client, self.id)


def dataframe_stream_resolver(obj: Any, **kw: Any) -> DataframeStream:
    return DataframeStream(obj.meta)
