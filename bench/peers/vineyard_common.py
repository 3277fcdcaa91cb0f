"""A vineyard server and its Python client: ours and the published 0.24.2 differ only in
the vineyardd binary and the package on the path (see ours.py and published.py)."""
from __future__ import annotations

import os
from typing import Any, Dict, List

from .base import Peer, start_daemon, stop_daemon


class VineyardPeer(Peer):
    """vineyardd (--meta local --norpc) on a private socket, one IPCClient per process."""

    def vineyardd(self) -> str:
        raise NotImplementedError

    def version(self) -> str:
        import vineyard
        return vineyard.__version__

    def start(self, workdir: str, size: int) -> Dict[str, Any]:
        socket = os.path.join(workdir, "vineyard.sock")
        self.proc = start_daemon(
            [self.vineyardd(), "--socket", socket, "--size", str(size), "--meta", "local",
             "--norpc"], socket, os.path.join(workdir, "vineyardd.log"))
        self.info = {"socket": socket}
        self.attach(self.info)
        return self.info

    def attach(self, info: Dict[str, Any]) -> None:
        import vineyard
        self.vineyard = vineyard
        self.client = vineyard.connect(info["socket"])

    def stop(self) -> None:
        client = getattr(self, "client", None)
        if client is not None:
            client.close()
        stop_daemon(getattr(self, "proc", None))

    def server_pids(self) -> List[int]:
        return [self.proc.pid]

    def store_bytes(self) -> int:
        return int(self.client.status.memory_usage)

    def put(self, value: Any) -> Any:
        return self.client.put(value)

    def get(self, ref: Any) -> Any:
        return self.client.get(ref)

    def delete(self, ref: Any) -> None:
        self.client.delete(ref)

    def token(self, ref: Any) -> Any:
        return int(ref)

    def from_token(self, token: Any) -> Any:
        return self.vineyard.ObjectID(token)

    def create_and_get_meta(self, members: List[Any]) -> Any:
        meta = self.vineyard.ObjectMeta()
        meta["typename"] = "vineyard::BenchRecord"
        meta["count"] = len(members)
        for i, member in enumerate(members):
            meta.add_member(f"member_{i}", member)
        created = self.client.create_metadata(meta)
        self.client.get_meta(created.id)
        return created.id
