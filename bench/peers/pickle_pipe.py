"""pickle through a pipe between two processes: what people do without a shared store.

put sends the pickled value to a keeper process, which unpickles and holds it; get asks
for it back. Scenario 6 pickles straight from the producer to the consumer."""
from __future__ import annotations

import contextlib
import itertools
import pickle
import time
from typing import Any, Dict, Tuple

from .base import Peer, spawned

PROTOCOL = pickle.HIGHEST_PROTOCOL


class PicklePipePeer(Peer):
    name = "pickle"
    label = "pickle + pipe"
    cannot = {"s5": "no metadata objects", "s8": "no server: values live in the keeper's heap"}

    def version(self) -> str:
        import platform
        return f"Python {platform.python_version()}, protocol {PROTOCOL}"

    def attach(self, info: Dict[str, Any]) -> None:
        self.stack = contextlib.ExitStack()
        self.conn = self.stack.enter_context(spawned(_keeper))

    def stop(self) -> None:
        self.conn.send(("stop", None))
        self.stack.close()

    def put(self, value: Any) -> Any:
        self.conn.send(("put", None))
        self.conn.send_bytes(pickle.dumps(value, PROTOCOL))
        return self.conn.recv()

    def get(self, ref: Any) -> Any:
        self.conn.send(("get", ref))
        return pickle.loads(self.conn.recv_bytes())

    def delete(self, ref: Any) -> None:
        self.conn.send(("del", ref))

    def produce_consume(self, array: Any, count: int, window: int) -> Tuple[float, float]:
        with spawned(_summer) as conn:
            start = time.perf_counter()
            for _ in range(count):
                conn.send_bytes(pickle.dumps(array, PROTOCOL))
            conn.send_bytes(b"")
            total = conn.recv()
            return time.perf_counter() - start, total


def _keeper(conn: Any) -> None:
    """Holds unpickled values by id; sends them back pickled."""
    values: Dict[int, Any] = {}
    ids = itertools.count()
    conn.send("ready")
    while True:
        op, ref = conn.recv()
        if op == "put":
            ref = next(ids)
            values[ref] = pickle.loads(conn.recv_bytes())
            conn.send(ref)
        elif op == "get":
            conn.send_bytes(pickle.dumps(values[ref], PROTOCOL))
        elif op == "del":
            values.pop(ref, None)
        else:
            return


def _summer(conn: Any) -> None:
    """Scenario 6's consumer: unpickle each array and sum it."""
    conn.send("ready")
    total = 0.0
    while data := conn.recv_bytes():
        total += float(pickle.loads(data).sum())
    conn.send(total)
