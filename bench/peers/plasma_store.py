"""Plasma (pyarrow < 12): plasma_store daemon, PlasmaClient.put/get for arrays; DataFrames
and Tables go as Arrow IPC streams written into a plasma buffer, the way its docs show."""
from __future__ import annotations

import os
from typing import Any, Dict, List

from .base import Peer, start_daemon, stop_daemon


class PlasmaPeer(Peer):
    name = "plasma"
    label = "Plasma (pyarrow 11)"
    cannot = {"s5": "no metadata objects: values only"}

    def version(self) -> str:
        import pyarrow
        return f"pyarrow {pyarrow.__version__}"

    def start(self, workdir: str, size: int) -> Dict[str, Any]:
        import pyarrow
        socket = os.path.join(workdir, "plasma.sock")
        binary = os.path.join(os.path.dirname(pyarrow.__file__), "plasma-store-server")
        self.proc = start_daemon([binary, "-m", str(size), "-s", socket], socket,
                                 os.path.join(workdir, "plasma.log"))
        self.info = {"socket": socket}
        self.attach(self.info)
        return self.info

    def attach(self, info: Dict[str, Any]) -> None:
        import pyarrow.plasma as plasma
        self.plasma = plasma
        self.client = plasma.connect(info["socket"])

    def stop(self) -> None:
        if getattr(self, "client", None) is not None:
            self.client.disconnect()
        stop_daemon(getattr(self, "proc", None))

    def server_pids(self) -> List[int]:
        return [self.proc.pid]

    def put(self, value: Any) -> Any:
        import pandas as pd
        import pyarrow as pa
        if isinstance(value, pd.DataFrame):
            return self._put_stream(pa.Table.from_pandas(value, preserve_index=False), "df")
        if isinstance(value, pa.Table):
            return self._put_stream(value, "table")
        return (self.client.put(value), "value")

    def _put_stream(self, table: Any, kind: str) -> Any:
        import pyarrow as pa
        sink = pa.MockOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        oid = self.plasma.ObjectID.from_random()
        buf = self.client.create(oid, sink.size())
        with pa.ipc.new_stream(pa.FixedSizeBufferWriter(buf), table.schema) as writer:
            writer.write_table(table)
        self.client.seal(oid)
        return (oid, kind)

    def get(self, ref: Any) -> Any:
        import pyarrow as pa
        oid, kind = ref
        if kind == "value":
            return self.client.get(oid)
        [buf] = self.client.get_buffers([oid])
        table = pa.ipc.open_stream(buf).read_all()
        return table.to_pandas() if kind == "df" else table

    def delete(self, ref: Any) -> None:
        self.client.delete([ref[0]])

    def token(self, ref: Any) -> Any:
        return (ref[0].binary(), ref[1])

    def from_token(self, token: Any) -> Any:
        return (self.plasma.ObjectID(token[0]), token[1])
