"""RecordBatchStream: record batches put as vineyard objects and pushed as chunks."""
from __future__ import annotations

from typing import Any

import pyarrow as pa

from .stream import BaseStream

__all__ = ["RecordBatchStream"]


class RecordBatchStream(BaseStream):
    typename = "vineyard::RecordBatchStream"

    class Writer(BaseStream.Writer):
        def write(self, batch: pa.RecordBatch) -> None:
            """Puts ``batch`` and queues it (the stream deletes it once read)."""
            self.append(self._client.put(batch))

        def write_table(self, table: pa.Table) -> None:
            for batch in table.to_batches():
                self.write(batch)

    class Reader(BaseStream.Reader):
        def read_table(self) -> pa.Table:
            batches = list(self)
            if not batches:
                return pa.table({})
            return pa.Table.from_batches(batches)

    def _open_new_reader(self, client: Any) -> "RecordBatchStream.Reader":
        return RecordBatchStream.Reader(client, self.id, self._resolver)

    def _open_new_writer(self, client: Any) -> "RecordBatchStream.Writer":
        return RecordBatchStream.Writer(client, self.id)


def recordbatch_stream_resolver(obj: Any, **kw: Any) -> RecordBatchStream:
    return RecordBatchStream(obj.meta)
