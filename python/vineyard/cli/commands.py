"""The commands of ``vineyard-cli`` (click), their output through rich."""
from __future__ import annotations

import json
import os
import re
import socket as _pysocket
import sys
import time
from typing import Any, Dict, List, Optional

import click
from rich.console import Console
from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn,
                           TimeRemainingColumn, TransferSpeedColumn)
from rich.table import Table

from . import dump as dumping

_ID = re.compile(r"^o[0-9a-fA-F]{1,16}$")
_LIST_LIMIT = 1 << 30  # "every one" for list requests


class CliError(click.ClickException):
    """A failure the user can act on: printed as one line, exit code 1."""

    def show(self, file=None) -> None:
        click.echo(f"vineyard-cli: error: {self.format_message()}", err=True)


def _console() -> Console:
    # Wide enough for ids and sizes when the output is a pipe (tests, scripts).
    return Console(width=None if sys.stdout.isatty() else 160)


def _human(n: Optional[int]) -> str:
    if n is None:
        return "-"
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{int(n)} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def oid_str(oid: Any) -> str:
    """``o`` and 16 hex digits, as vineyard prints ids."""
    return f"o{int(oid):016x}"


def tree_bytes(meta: Any) -> int:
    """Bytes of the distinct blobs of an object's tree (its ``nbytes`` field is 0 for
    containers such as DataFrames)."""
    seen: Dict[str, int] = {}

    def walk(tree: Dict[str, Any]) -> None:
        if tree.get("typename") == "vineyard::Blob":
            seen[tree["id"]] = int(tree.get("length", tree.get("nbytes", 0)) or 0)
            return
        for value in tree.values():
            if isinstance(value, dict) and "typename" in value:
                walk(value)

    walk(meta.to_dict())
    return sum(seen.values())


def _emit_json(doc: Any) -> None:
    click.echo(json.dumps(doc, indent=2, default=str))


# ---------------------------------------------------------------- the connection

class Session:
    """What the group's options resolve to; connects on first use."""

    def __init__(self, socket: Optional[str], endpoint: Optional[str], as_json: bool) -> None:
        self.socket, self.endpoint, self.as_json = socket, endpoint, as_json
        self._client = None

    @property
    def client(self):
        if self._client is None:
            self._client = self._connect()
        return self._client

    def _connect(self):
        import vineyard
        from vineyard.core.client import _connect_configured, _connect_rpc

        if self.socket:
            try:
                return vineyard.IPCClient(self.socket)
            except vineyard.VineyardException as e:
                raise CliError(f"no vineyard server at --socket {self.socket}: "
                               f"{_one_line(e)}") from None
        if self.endpoint:
            try:
                return _connect_rpc(self.endpoint, "", "")
            except vineyard.VineyardException as e:
                raise CliError(f"no vineyard server at --endpoint {self.endpoint}: "
                               f"{_one_line(e)}") from None
        tried = ["--socket: not given", "--endpoint: not given"]
        try:
            client = _connect_configured("", "", tried)
        except vineyard.VineyardException:
            client = None
        if client is None:
            raise CliError("no vineyard server: tried " + "; ".join(_one_line(t) for t in tried))
        return client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def _one_line(text: Any) -> str:
    return " ".join(str(text).split())


def _resolve(client, target: str):
    """An ObjectID from ``oXXXX`` or a name."""
    import vineyard

    if _ID.match(target):
        return vineyard.ObjectID(target)
    try:
        return client.get_name(target)
    except vineyard.ObjectNotExistsException:
        raise CliError(f"{target!r} is neither an object id (o...) nor a name on this "
                       f"server") from None


def _names_by_id(client) -> Dict[str, List[str]]:
    out: Dict[str, List[str]] = {}
    for name, oid in client.list_names("*", False, _LIST_LIMIT).items():
        out.setdefault(oid_str(oid), []).append(str(name))
    return out


def _wrap(fn):
    """Turns vineyard and OS errors into one line on stderr and exit code 1; adds
    ``--json`` to the command (as well as the group's)."""
    import functools

    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output (JSON).")
    @functools.wraps(fn)
    def run(*args, as_json: bool = False, **kwargs):
        import vineyard

        if as_json:
            click.get_current_context().find_object(Session).as_json = True
        try:
            return fn(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except vineyard.VineyardException as e:
            raise CliError(f"{type(e).__name__.replace('Exception', '')}: {_one_line(e)}") \
                from None
        except OSError as e:
            raise CliError(_one_line(e)) from None
    return run


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--socket", "socket", envvar=None, help="The IPC socket of vineyardd.")
@click.option("--endpoint", help="The RPC endpoint of vineyardd (host:port).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (JSON).")
@click.pass_context
def cli(ctx: click.Context, socket: Optional[str], endpoint: Optional[str],
        as_json: bool) -> None:
    """Inspect and manage the objects of a vineyard server.

    The server is --socket or --endpoint, else $VINEYARD_IPC_SOCKET,
    $VINEYARD_RPC_ENDPOINT or the file $VINEYARD_CONFIG names, as for
    vineyard.connect(). The CLI never starts a server.
    """
    session = Session(socket, endpoint, as_json)
    ctx.obj = session
    ctx.call_on_close(session.close)


# ---------------------------------------------------------------- ls, names

@cli.command("ls")
@click.argument("pattern", default="*")
@click.option("--regex", is_flag=True, help="PATTERN is a regular expression.")
@click.option("--limit", default=1000, show_default=True, help="At most this many objects.")
@click.pass_obj
@_wrap
def ls_cmd(session: Session, pattern: str, regex: bool, limit: int) -> None:
    """Objects whose typename matches PATTERN (a glob: 'vineyard::Tensor*')."""
    client = session.client
    metas = client.list_metadatas(pattern, regex, limit)
    names = _names_by_id(client)
    rows = []
    for m in sorted(metas, key=lambda m: int(m.id)):
        rows.append({"id": oid_str(m.id), "typename": m.typename, "nbytes": tree_bytes(m),
                     "instance_id": m.instance_id, "persistent": m.ispersist,
                     "names": names.get(oid_str(m.id), [])})
    if session.as_json:
        _emit_json(rows)
        return
    table = Table(title=f"{len(rows)} object(s) matching {pattern!r}")
    for col, kw in (("id", {}), ("typename", {}), ("size", {"justify": "right"}),
                    ("owner", {"justify": "right"}), ("persistent", {}), ("names", {})):
        table.add_column(col, **kw)
    for r in rows:
        table.add_row(r["id"], r["typename"], _human(r["nbytes"]), str(r["instance_id"]),
                      "yes" if r["persistent"] else "no", ", ".join(r["names"]))
    _console().print(table)


@cli.command("names")
@click.argument("pattern", default="*")
@click.option("--regex", is_flag=True, help="PATTERN is a regular expression.")
@click.pass_obj
@_wrap
def names_cmd(session: Session, pattern: str, regex: bool) -> None:
    """Names matching PATTERN and the objects they name."""
    named = session.client.list_names(pattern, regex, _LIST_LIMIT)
    rows = sorted(({"name": str(k), "id": oid_str(v)} for k, v in named.items()),
                  key=lambda r: r["name"])
    if session.as_json:
        _emit_json(rows)
        return
    table = Table(title=f"{len(rows)} name(s)")
    table.add_column("name")
    table.add_column("id")
    for r in rows:
        table.add_row(r["name"], r["id"])
    _console().print(table)


# ---------------------------------------------------------------- get, head

def _preview(value: Any, rows: int) -> Dict[str, Any]:
    """A description of ``value`` and its first ``rows`` rows, JSON-ready."""
    import numpy as np

    out: Dict[str, Any] = {"type": f"{type(value).__module__}.{type(value).__qualname__}"}
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover
        pd = None
    try:
        import pyarrow as pa
    except ImportError:  # pragma: no cover
        pa = None
    if pa is not None and isinstance(value, (pa.Table, pa.RecordBatch)):
        value = value.to_pandas()
    if pd is not None and isinstance(value, (pd.DataFrame, pd.Series)):
        frame = value.to_frame() if isinstance(value, pd.Series) else value
        head = frame.head(rows)
        out.update(shape=list(value.shape), columns=[str(c) for c in frame.columns],
                   dtypes=[str(t) for t in frame.dtypes],
                   index=[str(i) for i in head.index],
                   rows=[[_scalar(v) for v in row] for row in head.itertuples(index=False)])
    elif isinstance(value, np.ndarray):
        out.update(shape=list(value.shape), dtype=str(value.dtype),
                   rows=[_scalar(v) if value.ndim == 1 else np.asarray(v).tolist()
                         for v in (value[:rows] if value.ndim else [value[()]])])
    elif pa is not None and isinstance(value, pa.Array):
        out.update(length=len(value), dtype=str(value.type),
                   rows=[_scalar(v) for v in value[:rows].to_pylist()])
    elif isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value[: 16 * rows])
        out.update(length=len(value), rows=[data.hex()])
    else:
        text = repr(value)
        out.update(rows=[text if len(text) <= 2000 else text[:2000] + "..."])
    return out


def _scalar(v: Any) -> Any:
    if hasattr(v, "item"):
        try:
            return v.item()
        except (ValueError, AttributeError):
            pass
    if isinstance(v, (int, float, str, bool)) or v is None:
        return v
    return str(v)


def _print_preview(p: Dict[str, Any], title: str) -> None:
    console = _console()
    if "columns" in p:
        console.print(f"{title}: {p['type']} {p['shape'][0]} rows x {len(p['columns'])} "
                      f"columns", markup=False, highlight=False)
        table = Table()
        table.add_column("", style="dim")
        for col, dtype in zip(p["columns"], p["dtypes"]):
            table.add_column(f"{col}\n{dtype}", justify="right")
        for idx, row in zip(p["index"], p["rows"]):
            table.add_row(idx, *(str(v) for v in row))
        console.print(table)
        return
    if "shape" in p:
        console.print(f"{title}: {p['type']} shape={tuple(p['shape'])} dtype={p['dtype']}")
    elif "length" in p:
        console.print(f"{title}: {p['type']} length={p['length']}")
    else:
        console.print(f"{title}: {p['type']}")
    for row in p["rows"]:
        console.print(f"  {row}", markup=False, highlight=False)


def _meta_summary(meta) -> Dict[str, Any]:
    fields = {}
    members = {}
    for key, value in meta.items():
        if key in ("id", "typename", "nbytes", "instance_id", "signature", "transient",
                   "global", "__timestamp"):
            continue
        if hasattr(value, "typename"):
            members[key] = {"id": oid_str(value.id), "typename": value.typename}
        else:
            fields[key] = value
    return {"id": oid_str(meta.id), "typename": meta.typename, "nbytes": tree_bytes(meta),
            "instance_id": meta.instance_id, "persistent": meta.ispersist,
            "global": meta.isglobal, "fields": fields, "members": members}


@cli.command("get")
@click.argument("target")
@click.option("-n", "--rows", default=10, show_default=True, help="Rows of the preview.")
@click.pass_obj
@_wrap
def get_cmd(session: Session, target: str, rows: int) -> None:
    """An object's metadata (by id or name) and a preview of its value."""
    client = session.client
    oid = _resolve(client, target)
    meta = client.get_meta(oid)
    summary = _meta_summary(meta)
    summary["preview"] = _preview(client.get(oid), rows)
    if session.as_json:
        _emit_json(summary)
        return
    console = _console()
    table = Table(title=f"{summary['id']}  {summary['typename']}", show_header=False)
    table.add_column("key", style="bold")
    table.add_column("value")
    table.add_row("size", _human(summary["nbytes"]))
    table.add_row("owner", f"instance {summary['instance_id']}")
    table.add_row("persistent", "yes" if summary["persistent"] else "no")
    for k, v in summary["fields"].items():
        table.add_row(k, str(v))
    for k, v in summary["members"].items():
        table.add_row(k, f"{v['id']} ({v['typename']})")
    console.print(table)
    _print_preview(summary["preview"], "value")


@cli.command("head")
@click.argument("target")
@click.option("-n", "--rows", default=5, show_default=True, help="How many rows.")
@click.pass_obj
@_wrap
def head_cmd(session: Session, target: str, rows: int) -> None:
    """The first rows of a tensor, DataFrame or array (by id or name)."""
    client = session.client
    oid = _resolve(client, target)
    p = _preview(client.get(oid), rows)
    p["id"] = oid_str(oid)
    if session.as_json:
        _emit_json(p)
        return
    _print_preview(p, p["id"])


# ---------------------------------------------------------------- put, del, persist, migrate

_FORMATS = ("auto", "npy", "parquet", "csv", "raw")


def _read_file(path: str, fmt: str) -> Any:
    if not os.path.exists(path):
        raise CliError(f"{path}: no such file")
    if os.path.isdir(path):
        raise CliError(f"{path}: is a directory, not a file")
    if fmt == "auto":
        ext = os.path.splitext(path)[1].lower()
        fmt = {".npy": "npy", ".parquet": "parquet", ".pq": "parquet",
               ".csv": "csv"}.get(ext, "raw")
    try:
        if fmt == "npy":
            import numpy as np
            with open(path, "rb") as f:
                if f.read(6) != b"\x93NUMPY":
                    raise ValueError("no .npy header (a .npy file starts with \\x93NUMPY)")
            return np.load(path, allow_pickle=False)
        if fmt == "parquet":
            import pyarrow.parquet as pq
            return pq.read_table(path).to_pandas()
        if fmt == "csv":
            import pandas as pd
            return pd.read_csv(path)
        with open(path, "rb") as f:
            return f.read()
    except CliError:
        raise
    except Exception as e:  # noqa: BLE001  (each reader has its own errors)
        raise CliError(f"{path}: cannot read it as {fmt}: {_one_line(e)}") from None


@cli.command("put")
@click.argument("path")
@click.option("--format", "fmt", type=click.Choice(_FORMATS), default="auto",
              show_default=True, help="auto: by extension (.npy, .parquet/.pq, .csv; else raw).")
@click.option("--name", help="Name the object (implies --persist).")
@click.option("--persist", is_flag=True, help="Persist the object (visible cluster-wide).")
@click.pass_obj
@_wrap
def put_cmd(session: Session, path: str, fmt: str, name: Optional[str], persist: bool) -> None:
    """Put a file: a .npy array, a Parquet or CSV table (a DataFrame), or raw bytes."""
    value = _read_file(path, fmt)
    client = session.client
    oid = client.put(value, persist=persist or bool(name), name=name)
    meta = client.get_meta(oid)
    doc = {"id": oid_str(oid), "typename": meta.typename, "nbytes": tree_bytes(meta),
           "name": name, "path": path}
    if session.as_json:
        _emit_json(doc)
    else:
        click.echo(f"{doc['id']} {meta.typename} {_human(doc['nbytes'])}"
                   + (f" name={name}" if name else ""))


@cli.command("del")
@click.argument("targets", nargs=-1, required=True)
@click.option("--force", is_flag=True, help="Also when other objects hold it as a member.")
@click.option("--shallow", is_flag=True, help="Keep its members.")
@click.pass_obj
@_wrap
def del_cmd(session: Session, targets: List[str], force: bool, shallow: bool) -> None:
    """Delete objects (by id or name)."""
    client = session.client
    ids = [_resolve(client, t) for t in targets]
    client.delete(ids, force=force, deep=not shallow)
    if session.as_json:
        _emit_json({"deleted": [oid_str(i) for i in ids]})
    else:
        for i in ids:
            click.echo(f"deleted {oid_str(i)}")


@cli.command("persist")
@click.argument("target")
@click.pass_obj
@_wrap
def persist_cmd(session: Session, target: str) -> None:
    """Persist an object: visible on every instance of the cluster."""
    client = session.client
    oid = _resolve(client, target)
    client.persist(oid)
    if session.as_json:
        _emit_json({"persisted": oid_str(oid)})
    else:
        click.echo(f"persisted {oid_str(oid)}")


@cli.command("migrate")
@click.argument("target")
@click.pass_obj
@_wrap
def migrate_cmd(session: Session, target: str) -> None:
    """Copy another instance's object to the connected one; prints the local copy's id."""
    client = session.client
    oid = _resolve(client, target)
    local = client.migrate(oid)
    if session.as_json:
        _emit_json({"source": oid_str(oid), "local": oid_str(local)})
    else:
        click.echo(f"{oid_str(oid)} -> {oid_str(local)}")


# ---------------------------------------------------------------- status, top

def _reachable(endpoint: str, timeout: float = 1.0) -> bool:
    host, _, port = endpoint.rpartition(":")
    try:
        with _pysocket.create_connection((host, int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def _status_rows(client, others: bool) -> List[Dict[str, Any]]:
    from vineyard.core.client import RPCClient, _split_endpoint

    rows = []
    for iid, entry in sorted(client.meta.items()):
        row = {"instance_id": iid, "hostname": entry.get("hostname"),
               "ipc_socket": entry.get("ipc_socket"),
               "rpc_endpoint": entry.get("rpc_endpoint"), "connected": iid == client.instance_id,
               "memory_usage": None, "memory_limit": None, "ipc_connections": None,
               "rpc_connections": None, "deferred_requests": None,
               "spill_enabled": None, "spilled_bytes": None, "spilled_blobs": None}
        status = None
        if row["connected"]:
            status = client.status
        elif others and row["rpc_endpoint"] and not row["rpc_endpoint"].startswith("0.0.0.0") \
                and _reachable(row["rpc_endpoint"]):
            try:
                with RPCClient(*_split_endpoint(row["rpc_endpoint"])) as remote:
                    status = remote.status
            except Exception:  # noqa: BLE001  (shown as unknown)
                status = None
        if status is not None:
            for key in ("memory_usage", "memory_limit", "ipc_connections", "rpc_connections",
                        "deferred_requests"):
                row[key] = getattr(status, key)
            spill = getattr(status, "spill", None)  # blobs on disk (--spill_path)
            if spill is not None:
                row["spill_enabled"] = spill.enabled
                row["spilled_bytes"] = spill.spilled_bytes
                row["spilled_blobs"] = spill.spilled_blobs
        rows.append(row)
    return rows


def _spilled_cell(row: Dict[str, Any]) -> str:
    """Bytes and blobs on disk, or "off" without --spill_path ("-": unknown)."""
    if row.get("spill_enabled") is None:
        return "-"
    if not row["spill_enabled"]:
        return "off"
    return f"{_human(row['spilled_bytes'])} ({row['spilled_blobs']} blobs)"


def _status_table(rows: List[Dict[str, Any]], title: str) -> Table:
    table = Table(title=title)
    for col, kw in (("instance", {"justify": "right"}), ("host", {}), ("rpc", {}),
                    ("memory", {"justify": "right"}), ("limit", {"justify": "right"}),
                    ("used", {"justify": "right"}), ("ipc", {"justify": "right"}),
                    ("rpc conns", {"justify": "right"}), ("waiting", {"justify": "right"}),
                    ("spilled", {"justify": "right"})):
        table.add_column(col, **kw)
    for r in rows:
        used = (f"{100 * r['memory_usage'] / r['memory_limit']:.1f}%"
                if r["memory_limit"] else "-")
        table.add_row(f"{r['instance_id']}{' *' if r['connected'] else ''}",
                      str(r["hostname"]), str(r["rpc_endpoint"]), _human(r["memory_usage"]),
                      _human(r["memory_limit"]), used,
                      *("-" if r[k] is None else str(r[k])
                        for k in ("ipc_connections", "rpc_connections", "deferred_requests")),
                      _spilled_cell(r))
    return table


@cli.command("status")
@click.option("--local", "local_only", is_flag=True,
              help="Only the connected instance's numbers (no RPC to the others).")
@click.pass_obj
@_wrap
def status_cmd(session: Session, local_only: bool) -> None:
    """The cluster's instances: memory, connections (* is the connected one)."""
    client = session.client
    rows = _status_rows(client, others=not local_only)
    if session.as_json:
        _emit_json({"connected": client.instance_id, "instances": rows})
        return
    _console().print(_status_table(rows, f"{len(rows)} instance(s)"))


@cli.command("top")
@click.option("--interval", default=1.0, show_default=True, help="Seconds between refreshes.")
@click.option("--iterations", default=0, show_default=True,
              help="Stop after this many refreshes (0: until Ctrl-C).")
@click.pass_obj
@_wrap
def top_cmd(session: Session, interval: float, iterations: int) -> None:
    """A live view of the instances and the connected one's objects."""
    from rich.live import Live

    client = session.client

    def snapshot() -> Dict[str, Any]:
        rows = _status_rows(client, others=True)
        metas = client.list_metadatas("*", False, _LIST_LIMIT)
        return {"time": time.time(), "instances": rows, "objects": len(metas),
                "object_bytes": sum(m.nbytes for m in metas)}

    def render(s: Dict[str, Any]) -> Table:
        return _status_table(s["instances"], f"vineyard top — {s['objects']} object(s), "
                             f"{_human(s['object_bytes'])}  "
                             f"({time.strftime('%H:%M:%S', time.localtime(s['time']))})")

    count = 0
    try:
        if session.as_json:
            while True:
                click.echo(json.dumps(snapshot(), default=str))
                count += 1
                if iterations and count >= iterations:
                    return
                time.sleep(interval)
        console = _console()
        with Live(render(snapshot()), console=console, refresh_per_second=4,
                  auto_refresh=False) as live:
            count = 1
            while not iterations or count < iterations:
                time.sleep(interval)
                live.update(render(snapshot()), refresh=True)
                count += 1
    except KeyboardInterrupt:
        pass


# ---------------------------------------------------------------- dump, load

def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                    TransferSpeedColumn(), TimeRemainingColumn(), console=Console(stderr=True),
                    transient=False)


@cli.command("dump")
@click.argument("targets", nargs=-1, required=True)
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False),
              help="Directory to write to (created).")
@click.pass_obj
@_wrap
def dump_cmd(session: Session, targets: List[str], output: str) -> None:
    """Write objects (by id or name) to files: metadata and blob bytes (IPC only)."""
    client = session.client
    if not client.is_ipc:
        raise CliError("dump reads blob bytes from shared memory: connect with --socket")
    ids = [_resolve(client, t) for t in targets]
    names = _names_by_id(client)
    os.makedirs(output, exist_ok=True)
    plans = [dumping.plan(client, oid) for oid in ids]
    total = sum(p.nbytes for p in plans)
    done = []
    with _progress() as progress:
        task = progress.add_task("dump", total=total or 1)
        for plan in plans:
            path = dumping.write(plan, output, names.get(oid_str(plan.id), []),
                                 lambda n: progress.advance(task, n))
            done.append({"id": oid_str(plan.id), "typename": plan.typename, "nbytes": plan.nbytes,
                         "blobs": len(plan.blobs), "path": path})
        if not total:
            progress.advance(task, 1)
    if session.as_json:
        _emit_json(done)
    else:
        for d in done:
            click.echo(f"{d['id']} {d['typename']} {_human(d['nbytes'])} -> {d['path']}")


@cli.command("read")
@click.argument("path")
@click.option("-w", "--workers", default=1, show_default=True, type=click.IntRange(1, 256),
              help="Worker processes reading the file.")
@click.option("--name", help="Name the object made.")
@click.option("--persist", is_flag=True, help="Persist it (visible to the cluster).")
@click.pass_obj
@_wrap
def read_cmd(session: Session, path: str, workers: int, name: Optional[str],
             persist: bool) -> None:
    """Read a file (CSV, Parquet, ORC: a table; anything else: bytes) through vineyard.io's
    workers into one object, with progress (bytes, rows, rate). IPC only."""
    import threading

    import pyarrow as pa

    import vineyard.io

    client = session.client
    if not client.is_ipc:
        raise CliError("read streams through shared memory: connect with --socket")
    handlers: List[Any] = []
    stream = vineyard.io.read(path, vineyard_ipc_socket=client.ipc_socket, handlers=handlers,
                              num_workers=workers)
    job = handlers[0]
    result: Dict[str, Any] = {}

    def consume() -> None:
        try:
            parts = getattr(stream, "streams", [stream])
            if all(isinstance(p, vineyard.io.ByteStream) for p in parts):
                result["value"] = b"".join(p.open_reader(client).read_all() for p in parts)
            else:
                tables = [p.open_reader(client).read_table() for p in parts]
                result["value"] = pa.concat_tables([t for t in tables if t.num_columns])
        except BaseException as e:  # noqa: BLE001 - reported below
            result["error"] = e

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    total = os.path.getsize(path) if os.path.exists(path) else None
    with _progress() as progress:
        task = progress.add_task(f"read {os.path.basename(path)}", total=total)
        while reader.is_alive():
            reader.join(0.1)
            p = job.progress
            progress.update(task, completed=p["bytes"],
                            description=f"read {os.path.basename(path)} ({p['rows']:,} rows)")
        p = job.progress
        progress.update(task, completed=p["bytes"], total=total or p["bytes"] or 1)
    job.join()
    if "error" in result:
        raise result["error"]
    oid = client.put(result["value"], persist=persist, name=name)
    meta = client.get_meta(oid)
    doc = {"id": oid_str(oid), "typename": meta.typename, "rows": p["rows"], "bytes": p["bytes"],
           "seconds": round(p["seconds"], 3), "bytes_per_second": int(p["bytes_per_second"]),
           "name": name}
    if session.as_json:
        _emit_json(doc)
    else:
        click.echo(f"{doc['id']} {doc['typename']} {doc['rows']:,} rows, {_human(doc['bytes'])} "
                   f"in {doc['seconds']:.2f} s ({_human(doc['bytes_per_second'])}/s)")


@cli.command("load")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--no-names", is_flag=True, help="Do not restore the objects' names.")
@click.pass_obj
@_wrap
def load_cmd(session: Session, paths: List[str], no_names: bool) -> None:
    """Recreate objects from what dump wrote (a dump directory or its object folders)."""
    client = session.client
    if not client.is_ipc:
        raise CliError("load writes blob bytes into shared memory: connect with --socket")
    dumps = []
    for p in paths:
        dumps += dumping.find(p)
    total = sum(d.nbytes for d in dumps)
    out = []
    with _progress() as progress:
        task = progress.add_task("load", total=total or 1)
        for d in dumps:
            new_id = dumping.load(client, d, restore_names=not no_names,
                                  advance=lambda n: progress.advance(task, n))
            out.append({"source": d.id, "id": oid_str(new_id), "typename": d.typename,
                        "names": [] if no_names else d.names})
        if not total:
            progress.advance(task, 1)
    if session.as_json:
        _emit_json(out)
    else:
        for o in out:
            click.echo(f"{o['source']} -> {o['id']} {o['typename']}"
                       + (f" names={','.join(o['names'])}" if o["names"] else ""))


def main(argv: Optional[List[str]] = None) -> None:
    cli.main(args=argv, prog_name="vineyard-cli")


__all__ = ["cli", "main"]
