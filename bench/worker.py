#!/usr/bin/env python3
"""Runs one peer inside its own Python environment, driven by py_bench.py.

    <venv>/bin/python bench/worker.py PEER

Reads one JSON command per line on stdin and answers one JSON line each on the stdout it
was started with (the peer's own output goes to stderr):
  {"op": "start", "workdir": DIR, "size": BYTES}  -> {"version": ..., "info": ...}
  {"op": "run", "scenario": "s1", "params": {...}} -> the scenario's numbers
  {"op": "restart"}                                 -> as start, with a fresh daemon
  {"op": "memcpy", "params": {...}}                 -> scenario 2's memcpy reference
  {"op": "attach", "socket": PATH}                  -> a second client, on PATH
  {"op": "put" | "get", "kind": K, "size": N}       -> one put (get) by the second client
  {"op": "drop", "kind": K}                         -> the second client deletes it
  {"op": "forget"}                                  -> drop the cached data
  {"op": "stop"}
Errors come back as {"error": text}; a scenario the peer cannot do as {"unsupported": why}.
"""
import gc
import json
import os
import sys
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import scenarios  # noqa: E402
from peers import base, load  # noqa: E402


class Worker:
    def __init__(self, name: str) -> None:
        self.peer = load(name)
        self.name = name
        self.second = None  # the client used to count round trips
        self.refs = {}

    def start(self, workdir: str, size: int):
        os.makedirs(workdir, exist_ok=True)
        self.started = (workdir, size)
        info = self.peer.start(workdir, size)
        self.peer.info = info
        return {"version": self.peer.version(), "info": info}

    def restart(self):
        """A fresh daemon (and client), for measurements that need a clean baseline."""
        self.peer.stop()
        self.peer = load(self.name)
        return self.start(*self.started)

    def run(self, scenario: str, params):
        return scenarios.SCENARIOS[scenario](self.peer, params)

    def memcpy(self, params):
        return scenarios.memcpy_reference(params)

    def attach(self, socket: str):
        self.second = load(self.name)
        self.second.attach({"socket": socket})
        return {}

    def put(self, kind: str, size: int):
        self.refs[kind] = self.second.put(scenarios.value_of(kind, size))
        return {}

    def get(self, kind: str, size: int):
        got = self.second.get(self.refs[kind])
        scenarios.check(kind, scenarios.value_of(kind, size), got)
        return {}

    def drop(self, kind: str):
        self.second.delete(self.refs.pop(kind))
        return {}

    def forget(self):
        scenarios.forget_data()
        gc.collect()
        return {}

    def stop(self):
        if self.second is not None:
            self.second.stop()
        self.peer.stop()
        return {}


def main() -> None:
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # anything the peer prints goes to stderr
    worker = Worker(sys.argv[1])
    for line in sys.stdin:
        cmd = json.loads(line)
        op = cmd.pop("op")
        try:
            reply = getattr(worker, op)(**cmd)
        except base.Unsupported as e:
            reply = {"unsupported": str(e)}
        except Exception:  # noqa: BLE001 (reported in the page)
            reply = {"error": traceback.format_exc(limit=5)}
        out.write(json.dumps(reply) + "\n")
        out.flush()
        if op == "stop":
            break


if __name__ == "__main__":
    main()
