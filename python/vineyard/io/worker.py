"""An I/O worker process: ``python -m vineyard.io.worker <job as JSON>`` runs one job;
``python -m vineyard.io.worker --serve`` runs one job per line of its stdin, answering each
with its messages and then ``{"type": "done", "code": 0|1}``, until stdin closes (the pool
of ``vineyard.io.drivers`` keeps such workers warm, so a read pays no interpreter start).

A reader worker makes a stream, prints ``{"type": "return", "content": "o…"}`` (as
vineyard's I/O workers do) and fills it with its share of the source: record batches for
CSV, Parquet and ORC (a RecordBatchStream), byte ranges for anything else (a ByteStream). A
writer worker drains a stream into a file. Both print ``{"type": "progress", "bytes": n,
"rows": n}`` as they go, and ``{"type": "error", "content": "..."}`` before exiting with 1 on
failure (the stream they write is then stopped as failed, so its reader never hangs).
"""
from __future__ import annotations

import base64
import contextlib
import json
import os
import sys
import time
import traceback
from typing import Any, Callable, Dict, Iterator, Optional, Tuple

TABULAR = ("csv", "parquet", "orc")
_BYTE_CHUNK = 16 << 20
_CSV_PIECE = 256 << 20  # CSV text parsed at once by a worker (piece_size=)


_channel = sys.stdout  # where messages go; a serving worker moves user output off it


def report(kind: str, **fields: Any) -> None:
    _channel.write(json.dumps({"type": kind, **fields}) + "\n")
    _channel.flush()


def format_of(path: str, explicit: Optional[str] = None) -> str:
    """csv, parquet, orc, or bytes: ``explicit`` or the path's extension."""
    if explicit:
        fmt = explicit.lower()
        if fmt not in TABULAR + ("bytes",):
            raise ValueError(f"unknown format {explicit!r}: use csv, parquet, orc or bytes")
        return fmt
    name = path.lower()
    for suffix in (".gz", ".bz2", ".zst"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    ext = os.path.splitext(name)[1].lstrip(".")
    return {"csv": "csv", "tsv": "csv", "parquet": "parquet", "pq": "parquet",
            "orc": "orc"}.get(ext, "bytes")


def filesystem(path: str, storage_options: Dict[str, Any]) -> Tuple[Any, str]:
    """(an fsspec filesystem, or None for local paths; the path within it)."""
    from urllib.parse import urlparse

    parsed = urlparse(path)
    if parsed.scheme in ("", "file"):
        local = parsed.path if parsed.scheme == "file" else path
        return None, os.path.expanduser(local)
    import fsspec

    return fsspec.core.url_to_fs(path, **storage_options)


def open_input(fs: Any, path: str) -> Any:
    if fs is None:
        return open(path, "rb")
    return fs.open(path, "rb")


def size_of(fs: Any, path: str) -> int:
    if fs is None:
        return os.path.getsize(path)
    return fs.size(path)


class Progress:
    """Reports bytes and rows at most 5 times a second."""

    def __init__(self) -> None:
        self.bytes = 0
        self.rows = 0
        self._last = 0.0

    def add(self, nbytes: int, rows: int = 0) -> None:
        self.bytes += nbytes
        self.rows += rows
        now = time.monotonic()
        if now - self._last >= 0.2:
            self._last = now
            report("progress", bytes=self.bytes, rows=self.rows)

    def done(self) -> None:
        report("progress", bytes=self.bytes, rows=self.rows, done=True)


# --------------------------------------------------------------------------- readers
def _csv_batches(fs: Any, path: str, index: int, workers: int, options: Dict[str, Any],
                 progress: Progress) -> Iterator[Any]:
    """This worker's rows of a CSV file: the byte range [size*i/n, size*(i+1)/n), moved to
    line starts, parsed in pieces of ``piece_size`` bytes; column types are those pyarrow
    infers from the file's first block, so every worker and every piece agree."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    delimiter = options.get("delimiter", "\t" if path.lower().endswith(".tsv") else ",")
    bad: Dict[str, Any] = {}

    def invalid(row: Any) -> str:
        bad.setdefault("row", row)
        return "error"

    def located(e: Exception, first_line: int) -> ValueError:
        # pyarrow's message names neither the file nor a line of it.
        row = bad.get("row")
        if row is not None and row.number is not None:
            line = first_line + row.number - 1
            return ValueError(f"{path}:{line}: malformed CSV row: expected "
                              f"{row.expected_columns} columns, got {row.actual_columns}: "
                              f"{row.text!r}")
        return ValueError(f"{path}: malformed CSV near line {first_line}: {e}")

    parse_options = pacsv.ParseOptions(delimiter=delimiter, invalid_row_handler=invalid)
    with open_input(fs, path) as f:
        try:
            head = pacsv.open_csv(f, parse_options=parse_options,
                                  read_options=pacsv.ReadOptions(use_threads=False))
        except Exception as e:  # noqa: BLE001
            raise located(e, 1) from None
        schema = head.schema
        del head
    size = size_of(fs, path)
    piece = max(1, int(options.get("piece_size", _CSV_PIECE)))
    with open_input(fs, path) as f:
        header = f.readline()
        body_start = len(header)

        def line_start(pos: int) -> int:
            if pos <= body_start:
                return body_start
            if pos >= size:
                return size
            f.seek(pos - 1)
            rest = f.readline()  # the line that holds pos-1 ends here
            return min(size, pos - 1 + len(rest))

        start = line_start(body_start + (size - body_start) * index // workers)
        end = line_start(body_start + (size - body_start) * (index + 1) // workers)
        bounds = [start]  # pieces of about `piece` bytes, at line starts
        while bounds[-1] < end:
            bounds.append(max(bounds[-1] + 1, min(end, line_start(bounds[-1] + piece))))
    mapped = pa.memory_map(path) if fs is None else None

    def read(at: int, n: int) -> Any:
        if mapped is not None:  # mapped, not copied: pyarrow parses the page cache in place
            mapped.seek(at)
            return mapped.read_buffer(n)
        with open_input(fs, path) as f:
            f.seek(at)
            return f.read(n)

    def first_line(at: int) -> int:  # of the piece at `at` (only on errors: reads before it)
        line = 1 + (1 if header else 0)
        if at > body_start:
            with open_input(fs, path) as f:
                f.seek(body_start)
                line += f.read(at - body_start).count(b"\n")
        return line

    convert = pacsv.ConvertOptions(column_types=schema)

    def parse(data: Any, threads: bool) -> Any:
        read_options = pacsv.ReadOptions(column_names=schema.names, use_threads=threads,
                                         block_size=options.get("block_size", 16 << 20))
        return pacsv.read_csv(pa.BufferReader(data), read_options=read_options,
                              parse_options=parse_options, convert_options=convert)

    # A piece at a time: its batches go out before the next is parsed, so a worker holds
    # one piece, whatever the size of its range.
    for at, stop in zip(bounds, bounds[1:]):
        data = read(at, stop - at)
        try:
            table = parse(data, True)
        except Exception as e:  # noqa: BLE001
            # Threads do not number rows: parse again on one to find the line.
            bad.clear()
            try:
                parse(data, False)
            except Exception:  # noqa: BLE001
                pass
            raise located(e, first_line(at)) from None
        per_row = len(data) / max(1, table.num_rows)
        for batch in table.to_batches(max_chunksize=options.get("batch_size", 1 << 20)):
            progress.add(int(batch.num_rows * per_row), batch.num_rows)
            yield batch
        table = data = batch = None  # this piece's memory goes before the next is parsed


def _share(parts: int, index: int, workers: int) -> range:
    """The ``index``-th of ``workers`` contiguous runs of ``parts``: the streams of all
    workers, read in order, give the file's order."""
    return range(parts * index // workers, parts * (index + 1) // workers)


def _parquet_batches(fs: Any, path: str, index: int, workers: int, options: Dict[str, Any],
                     progress: Progress) -> Iterator[Any]:
    import pyarrow.parquet as pq

    with open_input(fs, path) as f:
        pf = pq.ParquetFile(f)
        mine = list(_share(pf.num_row_groups, index, workers))
        if not mine:
            return
        if "batch_size" in options:
            batches = pf.iter_batches(row_groups=mine, batch_size=options["batch_size"],
                                      use_threads=True)
        else:  # a row group at a time: no re-slicing into batches of another size
            batches = (b for i in mine for b in pf.read_row_group(i, use_threads=True).to_batches())
        for batch in batches:
            progress.add(batch.nbytes, batch.num_rows)
            yield batch


def _orc_batches(fs: Any, path: str, index: int, workers: int, options: Dict[str, Any],
                 progress: Progress) -> Iterator[Any]:
    import pyarrow.orc as orc

    with open_input(fs, path) as f:
        of = orc.ORCFile(f)
        for stripe in _share(of.nstripes, index, workers):
            batch = of.read_stripe(stripe)
            progress.add(batch.nbytes, batch.num_rows)
            yield batch


_pools: Dict[int, Tuple[Any, Any, Any]] = {}  # id(client) -> (client, its arena, the pool)


@contextlib.contextmanager
def _decoding_into_blobs(client: Any) -> Iterator[None]:
    """Makes Arrow's default memory pool, while a reader decodes, one whose large
    allocations are blobs of ``client``'s session (vineyard._arrow_pool): the put of each
    batch then seals them into the chunk instead of copying them. Without that module (no
    pyarrow at build time, or another pyarrow now), batches are copied."""
    try:
        from .. import _arrow_pool
    except ImportError:
        yield
        return
    import pyarrow as pa

    entry = _pools.get(id(client))
    if entry is None or entry[0] is not client:
        # Decoded but not yet queued, at most an eighth of the server's memory: the
        # stream's own bound (--stream_threshold, 80% by default) keeps the rest.
        arena = client._c.blob_arena(client.status.memory_limit // 8)
        entry = _pools[id(client)] = (client, arena, _arrow_pool.MemoryPool(arena.capsule()))
    previous = pa.default_memory_pool()
    pa.set_memory_pool(entry[2].pool)
    try:
        yield
    finally:
        pa.set_memory_pool(previous)


def run_read(job: Dict[str, Any], client: Any, hook: Optional[Callable]) -> None:
    from .byte import ByteStream
    from .recordbatch import RecordBatchStream

    path, index, workers = job["path"], job["index"], job["num_workers"]
    options = job.get("read_options") or {}
    fmt = format_of(path, options.get("format"))
    fs, inner = filesystem(path, job.get("storage_options") or {})
    params = {"path": path, "format": fmt, "worker": index, "num_workers": workers}
    progress = Progress()
    if fmt in TABULAR:
        stream = RecordBatchStream.new(client, params)
        report("return", content=repr(stream.id))
        batches = {"csv": _csv_batches, "parquet": _parquet_batches,
                   "orc": _orc_batches}[fmt](fs, inner, index, workers, options, progress)
        with stream.open_writer(client) as writer, _decoding_into_blobs(client):
            for batch in batches:
                if hook is not None:
                    batch = hook(batch)
                writer.write(batch)
                del batch  # its blobs' references go with the next request
    else:
        stream = ByteStream.new(client, params)
        report("return", content=repr(stream.id))
        size = size_of(fs, inner)
        start, end = size * index // workers, size * (index + 1) // workers
        chunk_size = int(options.get("chunk_size", _BYTE_CHUNK))
        with stream.open_writer(client) as writer, open_input(fs, inner) as f:
            f.seek(start)
            pos = start
            while pos < end:
                n = min(chunk_size, end - pos)
                view = writer.next(n)
                got = f.readinto(view) if hasattr(f, "readinto") else None
                if got is None:
                    data = f.read(n)
                    view[: len(data)] = data
                    got = len(data)
                if got != n:
                    raise IOError(f"{path}: ended at byte {pos + got}, expected {end}")
                pos += n
                progress.add(n)
    progress.done()


# --------------------------------------------------------------------------- writers
def run_write(job: Dict[str, Any], client: Any, hook: Optional[Callable]) -> None:
    import pyarrow as pa

    path = job["path"]
    options = job.get("write_options") or {}
    stream = client.get(job["stream"])
    fs, inner = filesystem(path, job.get("storage_options") or {})
    progress = Progress()
    reader = stream.open_reader(client)
    from .byte import ByteStream

    if isinstance(stream, ByteStream):
        sink = open(inner, "wb") if fs is None else fs.open(inner, "wb")
        with sink:
            for chunk in reader:
                sink.write(chunk)
                progress.add(len(chunk))
        progress.done()
        return
    fmt = format_of(path, options.get("format"))
    writer = None
    sink = open(inner, "wb") if fs is None else fs.open(inner, "wb")
    try:
        for batch in reader:
            if hook is not None:
                batch = hook(batch)
            if isinstance(batch, pa.Table):
                batches = batch.to_batches()
            else:
                batches = [batch]
            for b in batches:
                if writer is None:
                    writer = _table_writer(fmt, sink, b.schema, path)
                if fmt == "orc":
                    writer.write(pa.Table.from_batches([b]))
                else:
                    writer.write(b)
                progress.add(b.nbytes, b.num_rows)
    finally:
        if writer is not None:
            writer.close()
        sink.close()
    progress.done()


def _table_writer(fmt: str, sink: Any, schema: Any, path: str) -> Any:
    import pyarrow.csv as pacsv
    import pyarrow.orc as orc
    import pyarrow.parquet as pq

    if fmt == "parquet":
        return pq.ParquetWriter(sink, schema)
    if fmt == "orc":
        return orc.ORCWriter(sink)
    if fmt == "csv":
        return pacsv.CSVWriter(sink, schema)
    raise ValueError(f"{path}: cannot write record batches as {fmt}: name it .csv, .parquet "
                     "or .orc (or pass write_options={'format': ...})")


_kept: Dict[str, Any] = {}  # a serving worker's connection, by socket, kept between jobs


def run_job(job: Dict[str, Any], keep: bool = False) -> int:
    """Runs one job; 0 when it succeeded, 1 after reporting its error. With ``keep`` (a
    serving worker), the connection outlives a job that succeeds, and with it the mapping
    of the server's memory: the next job's chunks land in pages this process has mapped.
    A job that fails closes it, so that the server lets go of every stream it held."""
    import vineyard

    client = _kept.pop(job.get("socket"), None) if keep else None
    if client is not None:
        try:
            client.status  # one round trip: drops a connection to a server that went away
        except Exception:  # noqa: BLE001
            _pools.pop(id(client), None)
            client.close()
            client = None
    ok = False
    try:
        hook = None
        if job.get("chunk_hook"):
            import cloudpickle

            hook = cloudpickle.loads(base64.b64decode(job["chunk_hook"]))
        if client is None:
            client = vineyard.connect(job["socket"])
        (run_read if job["mode"] == "r" else run_write)(job, client, hook)
        ok = True
    except BaseException as e:  # noqa: BLE001 - reported to the caller
        report("error", content=f"{type(e).__name__}: {e}", traceback=traceback.format_exc())
        return 1
    finally:
        if client is not None:
            if ok:
                try:  # the last chunk's blobs: not held by this worker between jobs
                    client._c.flush_releases()
                except Exception:  # noqa: BLE001 - the job is done; the next one reconnects
                    ok = False
            if ok and keep:
                _kept[job["socket"]] = client
            else:
                _pools.pop(id(client), None)
                client.close()
    return 0


def serve(idle_timeout: float) -> int:
    """Jobs from stdin, one JSON object per line, until stdin closes or stays quiet for
    ``idle_timeout`` seconds. What a job's code prints goes to stderr, so that stdout
    carries nothing but messages."""
    import select

    global _channel
    _channel = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    import vineyard  # noqa: F401 - paid once, before the first job
    import pyarrow.csv, pyarrow.parquet  # noqa: F401,E401

    while True:
        ready, _, _ = select.select([sys.stdin], [], [], idle_timeout)
        if not ready:
            return 0
        line = sys.stdin.readline()
        if not line:
            return 0
        try:
            job = json.loads(line)
        except ValueError as e:
            report("error", content=f"not a job: {e}")
            report("done", code=1)
            continue
        report("done", code=run_job(job, keep=True))


def main(argv: list) -> int:
    if len(argv) == 2 and argv[1] == "--serve":
        return serve(float(os.environ.get("VINEYARD_IO_WORKER_IDLE", "300")))
    if len(argv) != 2:
        sys.stderr.write("usage: python -m vineyard.io.worker <job as JSON> | --serve\n")
        return 2
    return run_job(json.loads(argv[1]))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
