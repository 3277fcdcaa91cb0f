"""The scenarios of the Python benchmark, run inside a peer's worker process.

Each function takes the started peer and the parameters chosen by py_bench.py, runs one
repetition and returns plain numbers (JSON). Data come from make_* below, the same for every
system; a scenario raises Unsupported when the peer cannot do it.
"""
from __future__ import annotations

import contextlib
import functools
import os
import threading
import time
from typing import Any, Dict, List

import numpy as np

from peers import base

MIB = 1 << 20
now = time.perf_counter


# -- the data, identical for every system ------------------------------------------------

@functools.lru_cache(maxsize=1)
def make_array(nbytes: int) -> np.ndarray:
    return np.arange(nbytes // 8, dtype=np.float64)


def make_dataframe(rows: int, columns: int = 100) -> Any:
    """columns: 45% int64, 45% float64, 10% strings (1,000 distinct values)."""
    import pandas as pd
    n_str = columns // 10
    n_int = (columns - n_str) // 2
    base_ints = np.arange(rows, dtype=np.int64)
    pool = np.array([f"value-{i:04d}" for i in range(1000)], dtype=object)
    data: Dict[str, Any] = {}
    for c in range(columns):
        if c < n_int:
            data[f"i{c}"] = base_ints + c
        elif c < columns - n_str:
            data[f"f{c}"] = base_ints * 0.5 + c
        else:
            data[f"s{c}"] = pool[(base_ints + c) % len(pool)]
    return pd.DataFrame(data)


def make_table(chunks: int, rows_per_chunk: int = 100) -> Any:
    """An int64 and a float64 column, each of ``chunks`` distinct chunks."""
    import pyarrow as pa
    ints = np.arange(chunks * rows_per_chunk, dtype=np.int64)
    floats = ints * 0.5
    cut = range(0, len(ints), rows_per_chunk)
    return pa.table({
        "a": pa.chunked_array([pa.array(ints[i:i + rows_per_chunk]) for i in cut]),
        "b": pa.chunked_array([pa.array(floats[i:i + rows_per_chunk]) for i in cut]),
    })


SMALL = np.arange(8, dtype=np.int64)


@functools.lru_cache(maxsize=1)
def value_of(kind: str, size: int) -> Any:
    """The value a scenario (or the round-trip count) stores: kind is small, array,
    dataframe (size = rows) or table (size = chunks)."""
    if kind == "small":
        return SMALL
    if kind == "array":
        return make_array(size)
    if kind == "dataframe":
        return make_dataframe(size)
    return make_table(size)


def forget_data() -> None:
    make_array.cache_clear()
    value_of.cache_clear()


def check(kind: str, value: Any, got: Any) -> None:
    """A cheap proof that ``got`` is ``value`` (full comparisons would dominate)."""
    if kind in ("small", "array"):
        ok = got.shape == value.shape and got[-1] == value[-1]
    elif kind == "dataframe":
        ok = got.shape == value.shape and got.iloc[-1, -1] == value.iloc[-1, -1]
    else:
        ok = got.num_rows == value.num_rows
    if not ok:
        raise AssertionError(f"{kind}: the value read back differs from the one put")


def _refuse(peer: base.Peer, scenario: str) -> None:
    if scenario in peer.cannot:
        raise base.Unsupported(peer.cannot[scenario])


# -- scenarios 1-4: put then get in one client --------------------------------------------

def put_get(peer: base.Peer, kind: str, size: int = 0, iterations: int = 1,
            warmup: int = 0) -> Dict[str, List[float]]:
    """``iterations`` puts and gets of the same value; seconds per put and per get (the
    delete after each get is not timed)."""
    value = value_of(kind, size)
    puts: List[float] = []
    gets: List[float] = []
    for i in range(warmup + iterations):
        t0 = now()
        ref = peer.put(value)
        t1 = now()
        got = peer.get(ref)
        t2 = now()
        check(kind, value, got)
        del got
        peer.delete(ref)
        if i >= warmup:
            puts.append(t1 - t0)
            gets.append(t2 - t1)
    return {"put": puts, "get": gets}


def s1(peer: base.Peer, p: Dict[str, Any]) -> Dict[str, Any]:
    return put_get(peer, "small", iterations=p["iterations"], warmup=p["warmup"])


def s2(peer: base.Peer, p: Dict[str, Any]) -> Dict[str, Any]:
    return put_get(peer, "array", p["bytes"])


def s3(peer: base.Peer, p: Dict[str, Any]) -> Dict[str, Any]:
    _refuse(peer, "s3")
    return put_get(peer, "dataframe", p["rows"])


def s4(peer: base.Peer, p: Dict[str, Any]) -> Dict[str, Any]:
    _refuse(peer, "s4")
    return put_get(peer, "table", p["chunks"])


def memcpy_reference(p: Dict[str, Any]) -> Dict[str, Any]:
    """Scenario 2's physical reference: numpy copies of the same bytes in one thread per
    core, into fresh (never touched) memory and into resident memory."""
    src = make_array(p["bytes"])
    threads = os.cpu_count() or 1

    def copy(dst: np.ndarray) -> float:
        cuts = np.linspace(0, len(src), threads + 1).astype(int)
        workers = [threading.Thread(target=np.copyto, args=(dst[a:b], src[a:b]))
                   for a, b in zip(cuts[:-1], cuts[1:])]
        t0 = now()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        return now() - t0

    fresh = copy(np.empty_like(src))
    resident = np.ones_like(src)
    return {"fresh": fresh, "resident": copy(resident), "threads": threads}


# -- scenario 5: metadata -------------------------------------------------------------------

def s5(peer: base.Peer, p: Dict[str, Any]) -> Dict[str, Any]:
    _refuse(peer, "s5")
    members = [peer.put(np.full(8, i, dtype=np.int64)) for i in range(5)]
    created = []
    t0 = now()
    for _ in range(p["iterations"]):
        created.append(peer.create_and_get_meta(members))
    seconds = now() - t0
    for ref in created + members:
        with contextlib.suppress(Exception):  # a deep delete may have taken the members
            peer.delete(ref)
    return {"seconds": seconds, "ops": p["iterations"]}


# -- scenario 6: producer and consumer processes ----------------------------------------------

def s6(peer: base.Peer, p: Dict[str, Any]) -> Dict[str, Any]:
    _refuse(peer, "s6")
    array = make_array(p["bytes"])
    seconds, total = peer.produce_consume(array, p["count"], p["window"])
    expected = float(array.sum()) * p["count"]
    if abs(total - expected) > 1e-6 * abs(expected):
        raise AssertionError(f"the consumer summed {total}, expected {expected}")
    return {"seconds": seconds, "bytes": array.nbytes * p["count"]}


# -- scenario 7: concurrent clients --------------------------------------------------------------

def s7(peer: base.Peer, p: Dict[str, Any]) -> Dict[str, Any]:
    _refuse(peer, "s7")
    with contextlib.ExitStack() as stack:
        conns = [stack.enter_context(base.spawned(_client_loop, peer.name, peer.info))
                 for _ in range(p["clients"])]
        for c in conns:
            c.send(p["seconds"])
        counts = [c.recv() for c in conns]
    return {"ops": 2 * sum(n for n, _ in counts), "seconds": max(s for _, s in counts)}


def _client_loop(peer_name: str, info: Dict[str, Any], conn: Any) -> None:
    """One of scenario 7's clients: put, get and delete a small array until told time is up."""
    from peers import load
    peer = load(peer_name)
    peer.attach(info)
    peer.delete(peer.put(SMALL))  # a first use may map the store: not part of the loop
    conn.send("ready")
    seconds = conn.recv()
    count = 0
    t0 = now()
    deadline = t0 + seconds
    while now() < deadline:
        ref = peer.put(SMALL)
        got = peer.get(ref)
        del got
        peer.delete(ref)
        count += 1
    conn.send((count, now() - t0))
    peer.stop()


# -- scenario 8: server memory per object --------------------------------------------------------

def s8(peer: base.Peer, p: Dict[str, Any]) -> Dict[str, Any]:
    _refuse(peer, "s8")
    pids = peer.server_pids()

    def anon() -> int:
        return sum(base.rss_kib(pid) for pid in pids)

    anon0, store0 = anon(), peer.store_bytes()
    t0 = now()
    refs = [peer.put(SMALL) for _ in range(p["objects"])]
    seconds = now() - t0
    time.sleep(0.5)
    anon1, store1 = anon(), peer.store_bytes()
    for ref in refs:
        peer.delete(ref)
    return {"objects": p["objects"], "anon_kib": anon1 - anon0 if pids else None,
            "store_bytes": None if store0 is None else store1 - store0,
            "server_processes": len(pids), "put_seconds": seconds}


SCENARIOS = {"s1": s1, "s2": s2, "s3": s3, "s4": s4, "s5": s5, "s6": s6, "s7": s7, "s8": s8}
