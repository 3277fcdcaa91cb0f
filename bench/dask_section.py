"""The "Dask over vineyard" section of docs/benchmarks.md: a groupby-aggregate on a
DataFrame spread over the instances of a cluster (4 instances, ~2 GiB; quick: 2, ~50 MiB),
one Dask worker next to each instance (tests/dask_harness.py: real etcd, vineyardd, `dask
scheduler` and `dask worker` processes on this host). The same partitions, made on the
workers, are aggregated three ways, each timed from the request to the result:

- vineyard: ``client.get(global_id, dask_scheduler=...)`` (each partition read in place by
  the worker next to its instance) and the groupby-aggregate;
- Dask, persisted: the partitions already in the workers' memory (``persist``), Dask moving
  what it needs between workers itself;
- Dask, scattered: the partitions sent from this process (``client.scatter``), as a
  producer without vineyard hands its data to Dask, and the groupby-aggregate.

Run by `make bench` through bench/py_bench.py --cpp; alone: python3 bench/dask_section.py
[--quick].
"""
from __future__ import annotations

import os
import sys
import time
from typing import Any, Dict

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
AGG = {"value": ["sum", "mean", "count"], "x": ["max"]}
ROW_BYTES = 24  # key int64, value float64, x float64


def measure(build_dir: str, quick: bool) -> Dict[str, Any]:
    sys.path.insert(0, os.path.join(ROOT, "python"))
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    import dask.dataframe as dd
    import pandas as pd
    from distributed import wait
    from dask_harness import DaskOnVineyard
    from vineyard.contrib.dask.dask import dask_context

    instances = 2 if quick else 4
    total = (50 if quick else 2048) << 20
    per_worker = 4
    rows = total // (ROW_BYTES * instances * per_worker)
    rounds = 3
    size = f"{max(256, 3 * (total >> 20) // instances)}Mi"

    def make_part(seed: int, rows: int) -> Any:  # on a worker (pickled by value)
        import numpy as np
        import pandas as pd
        rng = np.random.default_rng(seed)
        return pd.DataFrame({"key": rng.integers(0, 1000, rows), "value": rng.random(rows),
                             "x": rng.random(rows)}, index=np.arange(rows) + seed * rows)

    out: Dict[str, Any] = {"instances": instances, "rows": rows * instances * per_worker,
                           "bytes": rows * instances * per_worker * ROW_BYTES,
                           "partitions": instances * per_worker, "rounds": rounds}
    with DaskOnVineyard(os.path.join(build_dir, "vineyardd"), n=instances, size=size) as c:
        workers = [c.worker_of[cl.instance_id] for cl in c.clients]
        parts = [c.dask.submit(make_part, k, rows, workers=[workers[k % instances]], pure=False)
                 for k in range(instances * per_worker)]
        wait(parts)
        meta = c.dask.submit(lambda df: df.iloc[:0], parts[0]).result()
        ddf = dd.from_delayed(parts, meta=meta, verify_meta=False)

        def best(run: Any) -> float:
            times = []
            for _ in range(rounds):
                t0 = time.perf_counter()
                run()
                times.append(time.perf_counter() - t0)
            return min(times)

        expected = ddf.groupby("key").agg(AGG).compute().sort_index()
        out["dask_persisted_s"] = best(lambda: ddf.groupby("key").agg(AGG).compute())
        client = c.clients[0]
        with dask_context():
            t0 = time.perf_counter()
            gid = client.put(ddf, dask_scheduler=c.scheduler)
            out["put_s"] = time.perf_counter() - t0

            def through_vineyard() -> None:
                back = client.get(gid, dask_scheduler=c.scheduler)
                got = back.groupby("key").agg(AGG).compute().sort_index()
                pd.testing.assert_frame_equal(got, expected, check_exact=False)
            out["vineyard_s"] = best(through_vineyard)
        frames = c.dask.gather(parts)
        del parts, ddf

        def scattered() -> None:
            futures = c.dask.scatter(frames)
            dd.from_delayed(futures, meta=meta, verify_meta=False) \
                .groupby("key").agg(AGG).compute()
            c.dask.cancel(futures)
        out["dask_scattered_s"] = best(scattered)
    return out


def render(d: Dict[str, Any]) -> str:
    base = d["vineyard_s"]
    lines = ["## Dask over vineyard\n",
             f"A groupby-aggregate (sum, mean, count, max over 1,000 keys) on a DataFrame of "
             f"{d['rows']:,} rows ({d['bytes'] / 2**20:.0f} MiB) in {d['partitions']} "
             f"partitions, spread over {d['instances']} vineyardd instances on one etcd, with "
             f"one Dask worker (1 thread) next to each; best of {d['rounds']}. "
             "`bench/dask_section.py`; the partitions are made on the workers.\n",
             "| how the workers get the partitions | time | vs vineyard |", "|---|---:|---:|",
             f"| vineyard: `get(global_id, dask_scheduler=...)`, each read in place next to "
             f"its instance | {base:.3f} s | 1.00x |",
             f"| Dask, persisted in the workers' memory | {d['dask_persisted_s']:.3f} s | "
             f"{d['dask_persisted_s'] / base:.2f}x |",
             f"| Dask, scattered from this process | {d['dask_scattered_s']:.3f} s | "
             f"{d['dask_scattered_s'] / base:.2f}x |",
             "",
             f"Putting the Dask DataFrame into vineyard (each partition on the instance of "
             f"the worker holding it, then the global object): {d['put_s']:.3f} s, once.\n"]
    return "\n".join(lines)


def run_and_render(build_dir: str, quick: bool = False) -> str:
    return render(measure(os.path.abspath(build_dir), quick))


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build"))
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    print(run_and_render(a.build_dir, a.quick))
