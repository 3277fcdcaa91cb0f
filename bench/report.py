"""docs/benchmarks.md and its figures, from py_bench.py's results."""
from __future__ import annotations

import json
import os
import statistics
import subprocess
from typing import Any, Callable, Dict, List, Optional, Tuple

GIB = 1 << 30
MIB = 1 << 20

LABELS = {"ours": "ours", "baseline": "ours, thread per connection (d76b34a)",
          "published": "vineyard 0.24.2", "ray": "Ray",
          "plasma": "Plasma (pyarrow 11)", "shm": "multiprocessing.shared_memory",
          "pickle": "pickle + pipe", "memcpy": "memcpy reference"}


# -- numbers ------------------------------------------------------------------------------

def pct(values: List[float], q: float) -> float:
    values = sorted(values)
    if not values:
        return float("nan")
    k = min(len(values) - 1, max(0, round(q / 100 * (len(values) - 1))))
    return values[k]


class Stat:
    """Median and min..max over repetitions of one number."""

    def __init__(self, values: List[float]) -> None:
        self.values = sorted(v for v in values if v == v)
        self.median = statistics.median(self.values) if self.values else float("nan")

    def fmt(self, digits: int = 1) -> str:
        if not self.values:
            return "n/a"
        if len(self.values) == 1:
            return f"{self.median:.{digits}f}"
        return (f"{self.median:.{digits}f} ({self.values[0]:.{digits}f}.."
                f"{self.values[-1]:.{digits}f})")


# metric: (label, function of one repetition's result, digits, higher is better)
Metric = Tuple[str, Callable[[Dict[str, Any]], float], int, bool]

METRICS: Dict[str, List[Metric]] = {
    "s1": [("put+get p50 µs", lambda r: 1e6 * pct(_sums(r), 50), 0, False),
           ("put+get p99 µs", lambda r: 1e6 * pct(_sums(r), 99), 0, False),
           ("put p50 µs", lambda r: 1e6 * pct(r["put"], 50), 0, False),
           ("get p50 µs", lambda r: 1e6 * pct(r["get"], 50), 0, False)],
    "s2": [("put GB/s", lambda r: r["_bytes"] / r["put"][0] / 1e9, 2, True),
           ("put ms", lambda r: 1e3 * r["put"][0], 0, False),
           ("get ms", lambda r: 1e3 * r["get"][0], 2, False)],
    "s3": [("put s", lambda r: r["put"][0], 3, False),
           ("get s", lambda r: r["get"][0], 3, False)],
    "s4": [("put s", lambda r: r["put"][0], 3, False),
           ("get s", lambda r: r["get"][0], 3, False)],
    "s5": [("create+get_meta per s", lambda r: r["ops"] / r["seconds"], 0, True)],
    "s6": [("end-to-end s", lambda r: r["seconds"], 2, False),
           ("GB/s", lambda r: r["bytes"] / r["seconds"] / 1e9, 2, True)],
    "s7": [("total ops/s", lambda r: r["ops"] / r["seconds"], 0, True)],
    "s8": [("server heap bytes / object", lambda r: _per(r, r["anon_kib"], 1024), 0, False),
           ("shared memory bytes / object", lambda r: _per(r, r["store_bytes"], 1), 0, False),
           ("put µs / object", lambda r: 1e6 * r["put_seconds"] / r["objects"], 0, False)],
}


def _per(r: Dict[str, Any], value: Optional[float], unit: int) -> float:
    return float("nan") if value is None else value * unit / r["objects"]


def _sums(r: Dict[str, Any]) -> List[float]:
    return [a + b for a, b in zip(r["put"], r["get"])]


def stats(data: Dict[str, Any], key: str, system: str, metric: Metric) -> Optional[Stat]:
    runs = data["results"].get(key, {}).get(system)
    if not isinstance(runs, list) or not runs:
        return None
    extra = {"_bytes": data["plan"].get(key, {}).get("bytes", 0)}
    return Stat([metric[1]({**r, **extra}) for r in runs])


def why_missing(data: Dict[str, Any], key: str, system: str) -> str:
    r = data["results"].get(key, {}).get(system)
    if isinstance(r, dict) and "unsupported" in r:
        return f"cannot: {r['unsupported']}"
    if isinstance(r, dict) and "error" in r:
        lines = r["error"].strip().splitlines()
        return f"failed: {lines[-1] if lines else 'error'}".replace("|", "/")
    if system in data["unavailable"]:
        return data["unavailable"][system]
    return "not run"


def ratio(ours: Optional[Stat], other: Optional[Stat], higher_better: bool) -> str:
    """How many times better ours is (>1: ours is faster)."""
    if not ours or not other or not ours.values or not other.values:
        return "—"
    a, b = ours.median, other.median
    if a == 0 or b == 0:
        return "—"
    return f"{(a / b) if higher_better else (b / a):.2f}x"


# systems that run only some scenarios (py_bench.PEER_SCENARIOS)
ONLY = {"baseline": ("s1", "s7")}


def systems(data: Dict[str, Any], key: str = "") -> List[str]:
    """The systems of the run, in LABELS order (those that take part in ``key``, if given)."""
    names = list(data["versions"]) + [n for n in data["unavailable"] if n not in data["versions"]]
    names = [n for n in names if not key or key in ONLY.get(n, (key,))]
    order = list(LABELS)
    return sorted(names, key=lambda n: order.index(n) if n in order else 99)


def table(header: List[str], rows: List[List[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def scenario_table(data: Dict[str, Any], key: str) -> str:
    metrics = METRICS[key]
    header = ["system"] + [m[0] for m in metrics] + [f"ours vs it: {metrics[0][0]}"]
    rows = []
    ours0 = stats(data, key, "ours", metrics[0])
    for system in systems(data, key):
        first = stats(data, key, system, metrics[0])
        if first is None:
            rows.append([LABELS.get(system, system), why_missing(data, key, system)]
                        + [""] * (len(metrics) - 1) + ["—"])
            continue
        cells = [stats(data, key, system, m).fmt(m[2]) for m in metrics]
        reps = len(data["results"][key][system])
        rows.append([LABELS.get(system, system) + ("" if reps > 1 else " (1 run)")] + cells
                    + ["—" if system == "ours" else ratio(ours0, first, metrics[0][3])])
    return table(header, rows)


def median_of(data: Dict[str, Any], key: str, system: str, index: int = 0) -> float:
    s = stats(data, key, system, METRICS[key][index])
    return s.median if s else float("nan")


# -- figures ----------------------------------------------------------------------------------

def plot(data: Dict[str, Any], images: str, python: str, docs: str) -> Dict[str, str]:
    """Writes the PNGs for scenarios 1, 2 and 7 with the bench venv's matplotlib; returns
    scenario -> path relative to the page."""
    os.makedirs(images, exist_ok=True)
    series = {}
    for key in ("s1", "s2", "s7"):
        rows = []
        for system in systems(data, key):
            vals = [stats(data, key, system, m) for m in METRICS[key]]
            if vals[0] is None:
                continue
            rows.append([LABELS.get(system, system)] + [[v.median, v.values[0], v.values[-1]]
                                                         for v in vals])
        series[key] = rows
    memcpy = data["results"].get("s2", {}).get("memcpy")
    refs = {}
    if isinstance(memcpy, list) and memcpy:
        nbytes = data["plan"]["s2"]["bytes"]
        refs = {k: statistics.median(nbytes / r[k] / 1e9 for r in memcpy)
                for k in ("fresh", "resident")}
    files = {"s1": "bench_s1_small.png", "s2": "bench_s2_large.png", "s7": "bench_s7_clients.png"}
    spec = {"series": series, "refs": refs, "files": files, "dir": images,
            "s2_size": fmt_bytes(data["plan"].get("s2", {}).get("bytes", 0)),
            "s7_clients": data["plan"].get("s7", {}).get("clients", 0)}
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "plots.py")
    subprocess.run([python, script], input=json.dumps(spec), text=True, check=True)
    return {k: os.path.relpath(os.path.join(images, f), docs) for k, f in files.items()}


# -- the page ---------------------------------------------------------------------------------

SCENARIO_TEXT = {
    "s1": ("1. Small array: put + get latency",
           "`put` then `get` of `np.arange(8)` (8 int64) by one client, {iterations} times "
           "after {warmup} warm-up rounds; the delete after each get is not timed. Per "
           "repetition the p50 and p99 of the put+get time; the table gives their median over "
           "repetitions (min..max). pickle + pipe: put sends the pickled value to a keeper "
           "process, get fetches it back. shared_memory: put creates a segment and copies, get "
           "attaches by name as another process would."),
    "s2": ("2. 1 GiB float64 array: put throughput, get latency",
           "`put` of a {size} float64 array, then `get` (one of each per repetition, then "
           "delete). The memcpy reference copies the same bytes with numpy in one thread per "
           "core, in the same run, into fresh (never touched) memory and into resident memory."),
    "s3": ("3. pandas DataFrame, 100 columns x {rows:,} rows",
           "45 int64, 45 float64 and 10 string columns (object dtype, 1,000 distinct values). "
           "Plasma stores it as an Arrow IPC stream (the way its docs show) and converts back "
           "with `to_pandas()`."),
    "s4": ("4. pyarrow Table of {chunks:,} chunks",
           "Two columns (int64, float64), {chunks:,} chunks of 100 rows each."),
    "s5": ("5. Metadata: create_metadata + get_meta",
           "{iterations} times: an `ObjectMeta` with a typename, one field and 5 members "
           "(existing small arrays), `create_metadata`, then `get_meta` of the new id. "
           "Operations per second = pairs per second."),
    "s6": ("6. Producer / consumer processes",
           "One process puts {count} arrays of {size}; another process gets each one, sums it "
           "and drops it (at most {window} objects in flight; the producer deletes acknowledged "
           "ones). Time from the first put to the last sum. Ray: the consumer is an actor "
           "receiving the refs as task arguments; pickle + pipe: arrays pickled straight from "
           "producer to consumer; shared_memory: one segment per array, its name sent through "
           "a pipe."),
    "s7": ("7. {clients} concurrent clients, small puts and gets",
           "{clients} processes, each with its own client, loop put + get + delete of "
           "`np.arange(8)` for {seconds} s; total puts and gets per second (the delete is "
           "inside the loop). Ray: each process is a driver attached to the same Ray instance; "
           "pickle + pipe: each process has its own keeper."),
    "s8": ("8. Server memory per object",
           "{objects:,} small arrays (8 int64) put and held, on a freshly started server. "
           "Server heap: the growth of the server's private resident memory (`RssAnon` of "
           "vineyardd, plasma_store, or Ray's raylet + gcs_server) divided by the count. "
           "Shared memory: the growth of the store's shared memory by its own account "
           "(vineyard: `status.memory_usage`; shared_memory: the tmpfs blocks of its "
           "segments, one 4 KiB page at least each; Ray and Plasma do not report it)."),
}


def fmt_bytes(n: int) -> str:
    return f"{n / GIB:g} GiB" if n >= GIB else f"{n / MIB:g} MiB"


def render(data: Dict[str, Any], cpp_page: Optional[str], rpc_page: Optional[str] = None,
           cluster_page: Optional[str] = None, server_page: Optional[str] = None,
           stream_page: Optional[str] = None, spill_page: Optional[str] = None) -> str:
    L: List[str] = []
    w = L.append
    m = data["machine"]
    w("# Benchmarks\n")
    w("Generated by `make bench` (`bench/py_bench.py`, with `bench/run_bench.py` for the C++ "
      "part and `bench/<name>_section.py` for the RPC, cluster, server, stream, spill, LLM, "
      "torch and Dask parts); "
      "do not edit by hand. Our vineyard against the systems a user would pick "
      "instead, in one run on one machine; each system runs in its own virtual environment "
      "and process.\n")
    w("## Machine, versions and command\n")
    w(f"- CPU: {m['cpu']}, {m['cores']} cores; memory {m['mem_gib']:.1f} GiB; "
      f"kernel {m['kernel']}; Python {m['python']}")
    w(f"- Load average when the Python part started: {' / '.join(m['load'])}")
    w(f"- Command: `{data['command']}`; wall time {data['wall_s'] / 60:.1f} min"
      + (" (**quick mode**: reduced sizes)" if data["mode"] == "quick" else ""))
    w(f"- Repetitions are interleaved (repetition r runs every system in turn, the order "
      f"rotated by r); cells are the median over repetitions with (min..max). A system "
      f"slower than the time limit on its first repetition is run once (marked `1 run`). "
      f"Each store is given {fmt_bytes(data['store_size'])}.")
    w("- Ratios: how many times better ours is than the other system on the first metric "
      "(its time ÷ ours, or ours ÷ its throughput): above 1 we win, below 1 we lose.\n")
    rows = []
    for s in systems(data):
        version = data["versions"].get(s) or data["unavailable"].get(s, "")
        if s == "ours":
            version = f"{version}, commit {data['commit']} (build/vineyardd, python/vineyard)"
        if s == "baseline":
            version = ("the server of commit d76b34a, one thread per connection "
                       "(build/baseline/vineyardd), with our python/vineyard of "
                       f"commit {data['commit']}")
        rows.append([LABELS.get(s, s), version])
    w(table(["system", "version"], rows) + "\n")
    if "plasma" in data["unavailable"]:
        w(f"Plasma: {data['unavailable']['plasma']}\n")
    before_after = concurrency_table(data)
    if before_after:
        w(before_after)

    for key, params in data["plan"].items():
        title, text = SCENARIO_TEXT[key]
        fields = dict(params, size=fmt_bytes(params.get("bytes", 0)))
        w(f"## {title.format(**fields)}\n")
        w(text.format(**fields) + "\n")
        w(scenario_table(data, key) + "\n")
        if key == "s2":
            w(memcpy_ratios(data) + "\n")
        if key in data.get("images", {}):
            w(f"![scenario {key[1]}]({data['images'][key]})\n")

    if data.get("many_clients"):
        import many_clients
        w(many_clients.render(data["many_clients"], LABELS))

    w("## Socket round trips per put and per get\n")
    w("Counted by a UNIX-socket proxy (`bench/rt_proxy.py`) between a client and its "
      "vineyardd: every request frame the client sends is one round trip. Counted once per "
      "value, outside the timed runs; connecting is not counted.\n")
    w(round_trip_table(data) + "\n")

    w("## Slow spots\n")
    for note in slow_spots(data):
        w(f"- {note}")
    w("")
    if rpc_page:
        w(rpc_page)
    if cluster_page:
        w(cluster_page)
    if server_page:
        w(server_page)
    if stream_page:
        w(stream_page)
    if spill_page:
        w(spill_page)
    if cpp_page:
        w("## C++ client: blob create, put and get\n")
        for line in cpp_page.splitlines():
            if line.startswith("# ") or line.startswith("Generated by"):
                continue
            w(("#" + line) if line.startswith("## ") else line)
    return "\n".join(L) + "\n"


def concurrency_table(data: Dict[str, Any]) -> str:
    """"Concurrency model: before and after": ours against the thread-per-connection
    baseline on scenarios 1 and 7 and the 1,000 clients; empty without a baseline."""
    rows = []
    for key, index, what in (("s1", 0, "1 client, small put + get"),
                             ("s1", 1, "1 client, small put + get"),
                             ("s7", 0, f"{data['plan'].get('s7', {}).get('clients')} "
                                       "client processes, small put + get + delete")):
        if key not in data["plan"]:
            continue
        metric = METRICS[key][index]
        ours, base = stats(data, key, "ours", metric), stats(data, key, "baseline", metric)
        if base is None:
            if "baseline" in data["versions"] or "baseline" in data["unavailable"]:
                rows.append([f"{what}: {metric[0]}", ours.fmt(metric[2]) if ours else "n/a",
                             why_missing(data, key, "baseline"), "—"])
            continue
        rows.append([f"{what}: {metric[0]}", ours.fmt(metric[2]) if ours else "n/a",
                     base.fmt(metric[2]), ratio(ours, base, metric[3])])
    many = data.get("many_clients")
    if many and "baseline" in many["runs"]:
        import many_clients
        many = many_clients._with_mib(many)
        n = many["plan"]["clients"]
        for label, key, digits, higher in many_clients.METRICS:
            if key in ("connected", "connect_seconds"):
                continue
            a = many_clients.median(many, "ours", key)
            b = many_clients.median(many, "baseline", key)
            cell = (lambda v: "n/a" if v is None else f"{v:,.{digits}f}")
            r = "—"
            if a and b and key not in ("completed", "errors"):  # counts, not speeds
                r = f"{(a / b) if higher else (b / a):.2f}x"
            rows.append([f"{n:,} clients: {label}", cell(a), cell(b), r])
    if not rows:
        return ""
    behind = [f"{row[0]} ({row[3]})" for row in rows
              if row[3].endswith("x") and float(row[3][:-1]) < 0.95]
    note = ("\nOurs is behind the thread-per-connection server on: " + "; ".join(behind)
            + ".\n" if behind else "")
    return ("## Concurrency model: before and after\n\n"
            "Ours (event loops + worker pool) against the same server before that change "
            "(commit d76b34a, one thread per connection), both driven by our client; only the "
            "server binary differs. Scenario rows: median (min..max) over the interleaved "
            "repetitions of the sections below; the 1,000-client rows: see that section. "
            "Ratio: how many times better ours is (above 1: the event loops win).\n\n"
            + table(["measure", "ours: event loops", "thread per connection (d76b34a)",
                     "ours vs before"], rows) + "\n" + note)


def memcpy_ratios(data: Dict[str, Any]) -> str:
    memcpy = data["results"].get("s2", {}).get("memcpy")
    if not isinstance(memcpy, list) or not memcpy:
        return ""
    nbytes = data["plan"]["s2"]["bytes"]
    fresh = statistics.median(nbytes / r["fresh"] / 1e9 for r in memcpy)
    resident = statistics.median(nbytes / r["resident"] / 1e9 for r in memcpy)
    threads = memcpy[0]["threads"]
    rows = []
    for s in systems(data):
        put = median_of(data, "s2", s)
        if put == put:
            rows.append([LABELS.get(s, s), f"{put:.2f}", f"{put / fresh:.2f}",
                         f"{put / resident:.2f}"])
    return (f"memcpy reference ({threads} threads): {fresh:.2f} GB/s into fresh memory, "
            f"{resident:.2f} GB/s into resident memory. Put throughput as a fraction of "
            "it:\n\n" + table(["system", "put GB/s", "÷ memcpy, fresh", "÷ memcpy, resident"],
                               rows))


def round_trip_table(data: Dict[str, Any]) -> str:
    rt = data["round_trips"]
    kinds = {"small": "small array (8 int64)", "array": "float64 array of {}",
             "dataframe": "DataFrame 100 columns x {:,} rows", "table": "Table of {:,} chunks"}
    rows = []
    for kind, label in kinds.items():
        row, size = [], None
        for system in ("ours", "published"):
            r = rt.get(system, {}).get(kind)
            if r is None:
                row += ["—", "—"]
                continue
            size = size or r.get("gave_up_at") or r["size"]
            at = ""
            if r.get("gave_up_at"):
                at = (f" (at {r['size']:,}: {r['gave_up_at']:,} took over a minute)"
                      if kind != "array" else f" (at {fmt_bytes(r['size'])})")
            if r.get("put") is None:
                row += [r.get("error", "failed").replace("|", "/") + at, ""]
                continue
            row += [f"{r['put']}{at}", "—" if r.get("get") is None else str(r["get"])]
        if size is not None:
            rows.append([label.format(fmt_bytes(size) if kind == "array" else size)] + row)
    text = table(["value", "ours: put", "ours: get", "vineyard 0.24.2: put",
                  "vineyard 0.24.2: get"], rows)
    detail = []
    for system in ("ours", "published"):
        for kind, r in rt.get(system, {}).items():
            for phase in ("put", "get"):
                types = r.get(phase + "_types")
                if types:
                    parts = ", ".join(f"{k} {v}" for k, v in sorted(types.items(),
                                                                     key=lambda kv: -kv[1]))
                    detail.append(f"{LABELS[system]} {kind} {phase}: {parts}")
    return text + "\n\nRequests by type:\n\n" + "\n".join(f"- {d}" for d in detail)


def slow_spots(data: Dict[str, Any]) -> List[str]:
    """Where ours is not the best, with the measured numbers; explanations in SLOW_NOTES."""
    out = []
    for key, metrics in METRICS.items():
        if key not in data["plan"]:
            continue
        for i, metric in enumerate(metrics):
            if i > 0 and (key, metric[0]) not in SLOW_NOTES:
                continue
            ours = stats(data, key, "ours", metric)
            if ours is None:
                continue
            better = []
            for s in systems(data, key):
                if s in ("ours", "baseline"):  # the baseline: see "before and after"
                    continue
                other = stats(data, key, s, metric)
                if other is None:
                    continue
                r = ratio(ours, other, metric[3])
                if r != "—" and float(r[:-1]) < 0.95:
                    better.append(f"{LABELS[s]} ({r})")
            if better:
                fields = dict(data["plan"][key])
                fields["size"] = fmt_bytes(fields.get("bytes", 0))
                title = SCENARIO_TEXT[key][0].format(**fields).split(":")[0]
                out.append(f"**{title}, {metric[0]}**: ours is behind "
                           + ", ".join(better) + ". " + SLOW_NOTES.get((key, metric[0]), ""))
    if not out:
        out.append("Ours is ahead of every peer on every metric of this run.")
    return out


# Why we lose where we do (from the round-trip counts, profiles of our client and the C++
# section); shown only next to a measured loss.
_PY_SMALL = (
    "Not our Python layer any more: a put is one native call and one request (its bytes "
    "inside it), a get one native call and one request (round-trip table). What is left is "
    "the round trips themselves. shared_memory has no server: its put is shm_open + mmap + "
    "copy and its get an attach, in one process. pickle + pipe writes and reads ~200 bytes "
    "once each. Each of our requests wakes the server's loop and then the client when they "
    "slept: a bare socketpair ping-pong between two threads takes tens of µs on this "
    "virtual machine (C++ section). The loop polls for 50 µs before it "
    "sleeps (`--spin_us`), and the client polls for 30 µs while a core is free "
    "(`VINEYARD_SPIN_US`). Most of the rest is JSON: nlohmann encodes and parses each "
    "request and reply on both sides, with a tree of about 15 keys per object. A binary "
    "encoding on our own connections, and replies spliced from text stored at create, are "
    "the next steps.")
SLOW_NOTES: Dict[Tuple[str, str], str] = {
    ("s1", "put+get p50 µs"): _PY_SMALL,
    ("s1", "get p50 µs"): "See put+get above: a get is one round trip and a JSON parse.",
    ("s7", "total ops/s"): (
        "Eight processes share two cores, so CPU per operation decides. Each of our "
        "operations (put, get and the delete in the loop) is a round trip to the server. It "
        "costs CPU in two processes: JSON on both sides, the kernel's socket path and two "
        "context switches. shared_memory and pickle + pipe have no server hop at all."),
    ("s2", "put GB/s"): (
        "Compare each put with the memcpy references: a put into never-touched shared memory "
        "runs at the speed of a copy into fresh memory (a page fault per 4 KiB), into "
        "reused pages at the speed of a copy into resident memory. Every system pays the "
        "fresh-page price on its first put. Our arena gives dirty pages back to the kernel "
        "one second after they are freed. Here the other systems run for seconds between our "
        "repetitions, so most of our puts land on fresh pages again. Back-to-back puts reuse "
        "resident pages (the spread of our row)."),
    ("s2", "get ms"): (
        "A get maps the blob and builds the array; a sub-millisecond difference that does not "
        "grow with the size (see the C++ section's get vs size)."),
    ("s6", "end-to-end s"): (
        "The same first-touch cost as scenario 2: each 64 MiB put writes pages our server "
        "purged after the previous delete."),
    ("s3", "put s"): (
        "The 10 str columns are encoded by one native pass each, straight into their blobs "
        "(two threads each), the 90 numeric columns copied into blobs made by one request, "
        "and one request creates the tree (round-trip table). The copy of 720 MB of numbers "
        "is most of what is left, as for Ray's pickle-5 stream."),
    ("s3", "get s"): (
        "One request. The 10 str columns are the time: Arrow makes one Python str per "
        "distinct value (deduplicated), where Ray unpickles references to a few objects."),
    ("s4", "put s"): (
        "One native call reads the table through Arrow's C data interface and makes the "
        "tree, and one request creates it (round-trip table): no Python per chunk. The time "
        "is in the metadata: 10,000 batches are a tree of 80,000 nodes (30,000 objects and "
        "their blobs), sent as JSON text (about 10 MB) that the server parses into a "
        "document and creates object by object. In a profile about half of the time is the "
        "server's; most of the rest is the client's JSON document (building, writing out and "
        "freeing it). The peers serialize the table into one buffer. A binary encoding "
        "between our client and server, and records kept compact on the server (no JSON "
        "document per request), are the next steps."),
    ("s4", "get s"): (
        "One request, and pyarrow imports the batches through Arrow's C stream interface "
        "(zero-copy, no Python per chunk). The time is in the metadata again: the server "
        "writes the 30,000 objects' trees as JSON text straight from its records (about a "
        "third of the time in a profile), and the client parses the text into a document "
        "and puts the shared schema back into each batch (most of the rest). A binary "
        "encoding, and a client that reads the reply without building a document, are the "
        "next steps."),
    ("s8", "server heap bytes / object"): (
        "Each object is a tensor plus its blob: the tensor's record (its fields are one "
        "interned JSON text, shared by all tensors of one shape and type), its member list "
        "(interned names), its blob's entry in the holders index and the blob's record, each "
        "a hash-table node. Plasma keeps one fixed-size entry per object."),
}
