"""``vineyard.io.open/read/write``: drivers registered per URL scheme, run in worker
processes (``vineyard.io.worker``), one per ``num_workers``.

Built in: local files (bare paths and ``file://``), any filesystem fsspec knows (``local://``,
``s3://`` with s3fs, ...; not ``memory://``, which the workers cannot see), and ``vineyard://`` (objects to files and back: ``serialize`` /
``deserialize``). A reader returns the stream it made (a ParallelStream over one stream per
worker when ``num_workers > 1``), or with ``accumulate=True`` a pandas DataFrame of all of it.
"""
from __future__ import annotations

import base64
import collections
import json
import os
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Deque, Dict, List, Optional
from urllib.parse import urlparse

from .. import _C
from ..core.driver import registerize

__all__ = ["open", "read", "write", "serialize", "deserialize", "IOJob"]

_builtin_open = open


class _Worker:
    """One serving worker process (``python -m vineyard.io.worker --serve``)."""

    def __init__(self) -> None:
        env = dict(os.environ)
        here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env["PYTHONPATH"] = os.pathsep.join(p for p in (here, env.get("PYTHONPATH", "")) if p)
        self.proc = subprocess.Popen([sys.executable, "-m", "vineyard.io.worker", "--serve"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=env,
                                     start_new_session=True)
        self.stderr: Deque[str] = collections.deque(maxlen=20)
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        for line in self.proc.stderr:
            self.stderr.append(line.rstrip("\n"))

    def alive(self) -> bool:
        return self.proc.poll() is None

    def failure(self) -> str:
        """Why a worker that went away went away."""
        code = self.proc.wait()
        tail = [line for line in self.stderr if line.strip()]
        return tail[-1] if tail else f"exited with {code}"

    def kill(self) -> None:
        if self.alive():
            self.proc.kill()
        self.proc.wait()


class _Pool:
    """Workers kept between jobs: a read or write takes idle ones and starts only what is
    missing, so only the first job of a process pays an interpreter start and the imports.
    Idle workers exit after ``VINEYARD_IO_WORKER_IDLE`` seconds (300) or with this process;
    a forked child starts a pool of its own."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: List[_Worker] = []
        self._pid = os.getpid()

    def take(self, n: int) -> List[_Worker]:
        with self._lock:
            if self._pid != os.getpid():  # inherited across fork: not ours to use
                self._idle, self._pid = [], os.getpid()
            self._idle = [w for w in self._idle if w.alive()]
            keep = max(0, len(self._idle) - n)  # the most recently used ones
            taken, self._idle = self._idle[keep:], self._idle[:keep]
        return taken + [_Worker() for _ in range(n - len(taken))]

    def give_back(self, worker: _Worker) -> None:
        with self._lock:
            if self._pid == os.getpid() and worker.alive():
                self._idle.append(worker)
                return
        worker.kill()


_pool = _Pool()


class IOJob:
    """The workers of one read or write: ``wait()`` for the streams they made, ``join()``
    for their end (RuntimeError with each failed worker's error), ``progress`` for bytes,
    rows and rate so far, ``dispose()`` to stop them."""

    def __init__(self, jobs: List[Dict[str, Any]]):
        self._returns: List[Optional[str]] = [None] * len(jobs)
        self._errors: List[Optional[str]] = [None] * len(jobs)
        self._done = [False] * len(jobs)
        self._bytes = [0] * len(jobs)
        self._rows = [0] * len(jobs)
        self._started = time.monotonic()
        self._cv = threading.Condition()
        self._workers = _pool.take(len(jobs))
        self._threads = []
        for i, (job, worker) in enumerate(zip(jobs, self._workers)):
            t = threading.Thread(target=self._follow, args=(i, worker, job), daemon=True)
            t.start()
            self._threads.append(t)

    def _follow(self, i: int, worker: _Worker, job: Dict[str, Any]) -> None:
        code: Optional[int] = None
        try:
            worker.proc.stdin.write(json.dumps(job) + "\n")
            worker.proc.stdin.flush()
            for line in worker.proc.stdout:
                try:
                    msg = json.loads(line)
                except ValueError:
                    continue
                with self._cv:
                    kind = msg.get("type")
                    if kind == "return":
                        self._returns[i] = msg.get("content")
                    elif kind == "progress":
                        self._bytes[i] = int(msg.get("bytes", 0))
                        self._rows[i] = int(msg.get("rows", 0))
                    elif kind == "error":
                        self._errors[i] = msg.get("content")
                    elif kind == "done":
                        code = int(msg.get("code", 1))
                    self._cv.notify_all()
                if code is not None:
                    break
        except (OSError, ValueError):  # its pipes closed: it went away
            pass
        error = worker.failure() if code is None else None if code == 0 else "failed"
        with self._cv:
            if error is not None and self._errors[i] is None:
                self._errors[i] = error
            self._done[i] = True  # from here on, dispose() leaves this worker alone
            self._cv.notify_all()
        if code is not None:
            _pool.give_back(worker)

    def _failure(self) -> Optional[RuntimeError]:
        failed = [f"worker {i}: {e}" for i, e in enumerate(self._errors) if e]
        if failed:
            return RuntimeError("I/O workers failed:\n  " + "\n  ".join(failed))
        return None

    def wait(self, timeout: Optional[float] = None) -> List[str]:
        """The id of the stream each worker made (as soon as it made it)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cv:
            while any(r is None for r in self._returns):
                err = self._failure()
                if err is not None:
                    raise err
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError("I/O workers did not start their streams in time")
                self._cv.wait(remaining if remaining is not None else 1.0)
            return list(self._returns)  # type: ignore[arg-type]

    def join(self, timeout: Optional[float] = None) -> None:
        """Waits for every worker to end its job; raises the errors of those that failed."""
        for t in self._threads:
            t.join(timeout)
        with self._cv:
            err = self._failure()
        if err is not None:
            raise err

    @property
    def pids(self) -> List[int]:
        """The process id of each worker."""
        return [w.proc.pid for w in self._workers]

    @property
    def progress(self) -> Dict[str, float]:
        """{'bytes', 'rows', 'seconds', 'bytes_per_second', 'done'} over all workers."""
        with self._cv:
            nbytes, rows, done = sum(self._bytes), sum(self._rows), all(self._done)
        seconds = time.monotonic() - self._started
        return {"bytes": nbytes, "rows": rows, "seconds": seconds,
                "bytes_per_second": nbytes / seconds if seconds > 0 else 0.0, "done": done}

    def dispose(self) -> None:
        """Stops the workers still at their job (they are not reused)."""
        with self._cv:
            running = [w for w, done in zip(self._workers, self._done) if not done]
        for w in running:
            w.kill()
        for t in self._threads:
            t.join(5)


def _socket(kwargs: Dict[str, Any]) -> str:
    sock = kwargs.pop("vineyard_ipc_socket", None) or os.environ.get("VINEYARD_IPC_SOCKET")
    kwargs.pop("vineyard_endpoint", None)
    if not sock:
        from ..deploy.local import get_current_socket

        try:
            sock = get_current_socket()
        except Exception:  # noqa: BLE001
            sock = None
    if not sock:
        raise ValueError("vineyard.io needs vineyard_ipc_socket= (or VINEYARD_IPC_SOCKET) for "
                         "its workers to connect to")
    return sock


_clients: Dict[str, Any] = {}
_clients_lock = threading.Lock()
_clients_pid = os.getpid()


def _client(socket: str) -> Any:
    """This process's connection to ``socket`` for reading what workers made, kept between
    reads: its mapping of the server's memory stays, so a read does not fault the pages of
    every chunk in again. A connection inherited across fork, or to a server that went away,
    is replaced."""
    import vineyard

    global _clients_pid
    with _clients_lock:
        if _clients_pid != os.getpid():
            _clients.clear()  # the parent's sessions: not ours to use
            _clients_pid = os.getpid()
        client = _clients.get(socket)
        if client is not None:
            try:
                client.status  # one round trip
                return client
            except Exception:  # noqa: BLE001
                client.close()
        client = _clients[socket] = vineyard.connect(socket)
        return client


def _hook_blob(chunk_hook: Optional[Callable]) -> Optional[str]:
    if chunk_hook is None:
        return None
    import cloudpickle

    return base64.b64encode(cloudpickle.dumps(chunk_hook)).decode()


def _accumulate(client: Any, stream: Any) -> Any:
    """All of a stream's record batches as one pandas DataFrame (bytes: bytes)."""
    import pyarrow as pa

    from .byte import ByteStream
    from .parallel import ParallelStream

    parts = stream.streams if isinstance(stream, ParallelStream) else [stream]
    if all(isinstance(p, ByteStream) for p in parts):
        return b"".join(bytes(c) for p in parts for c in p.open_reader(client))
    tables = [p.open_reader(client).read_table() for p in parts]
    tables = [t for t in tables if t.num_columns]
    if not tables:
        import pandas as pd

        return pd.DataFrame()
    return pa.concat_tables(tables).to_pandas()


def _read_files(path: str, vineyard_ipc_socket: str, *args: Any, handlers: Optional[list] = None,
                accumulate: bool = False, chunk_hook: Optional[Callable] = None,
                num_workers: int = 1, read_options: Optional[Dict[str, Any]] = None,
                storage_options: Optional[Dict[str, Any]] = None, **kwargs: Any) -> Any:
    """The reader of local files and of fsspec filesystems."""
    import vineyard

    from .parallel import make_parallel_stream

    from .worker import filesystem, format_of

    read_options = dict(read_options or {})
    read_options.update({k: kwargs.pop(k) for k in ("format", "delimiter", "chunk_size",
                                                     "batch_size") if k in kwargs})
    if kwargs:
        raise TypeError(f"vineyard.io.read: unexpected arguments {sorted(kwargs)}")
    num_workers = int(num_workers)
    if num_workers < 1:
        raise ValueError("num_workers must be at least 1")
    format_of(path, read_options.get("format"))  # an unknown format fails here, not in workers
    fs, inner = filesystem(path, storage_options or {})
    exists = os.path.isfile(inner) if fs is None else fs.isfile(inner)
    if not exists:
        raise FileNotFoundError(f"{path}: no such file")
    jobs = [{"mode": "r", "path": path, "socket": vineyard_ipc_socket, "index": i,
             "num_workers": num_workers, "read_options": read_options,
             "storage_options": storage_options or {}, "chunk_hook": _hook_blob(chunk_hook)}
            for i in range(num_workers)]
    job = IOJob(jobs)
    if handlers is not None:
        handlers.append(job)
    try:
        ids = job.wait()
    except BaseException:
        job.dispose()
        raise
    client = _client(vineyard_ipc_socket)
    stream_id = ids[0] if num_workers == 1 else make_parallel_stream(
        client, [_C.ObjectID(i) for i in ids])
    stream = client.get(_C.ObjectID(stream_id) if isinstance(stream_id, str) else stream_id)
    if not accumulate:
        return stream
    try:
        value = _accumulate(client, stream)
    finally:
        del stream
        client._c.flush_releases()  # the chunks' blobs: the session stays, their memory goes
        if handlers is None:
            job.join()
    return value


def _write_files(path: str, stream: Any, vineyard_ipc_socket: str, *args: Any,
                 handlers: Optional[list] = None, chunk_hook: Optional[Callable] = None,
                 write_options: Optional[Dict[str, Any]] = None,
                 storage_options: Optional[Dict[str, Any]] = None, **kwargs: Any) -> None:
    """The writer to local files and fsspec filesystems: one file per stream (``path``, or
    ``<root>_<i><ext>`` for the i-th stream of a ParallelStream)."""
    import vineyard

    from .parallel import ParallelStream

    write_options = dict(write_options or {})
    if "format" in kwargs:
        write_options["format"] = kwargs.pop("format")
    if kwargs:
        raise TypeError(f"vineyard.io.write: unexpected arguments {sorted(kwargs)}")
    client = vineyard.connect(vineyard_ipc_socket)
    value = stream
    if isinstance(stream, (_C.ObjectID, int, str)):
        value = client.get(_C.ObjectID(stream) if not isinstance(stream, _C.ObjectID) else stream)
    parts = value.streams if isinstance(value, ParallelStream) else [value]
    root, ext = os.path.splitext(path)
    targets = [path] if len(parts) == 1 else [f"{root}_{i}{ext}" for i in range(len(parts))]
    jobs = [{"mode": "w", "path": t, "socket": vineyard_ipc_socket, "stream": int(p.id),
             "write_options": write_options, "storage_options": storage_options or {},
             "chunk_hook": _hook_blob(chunk_hook)} for t, p in zip(targets, parts)]
    job = IOJob(jobs)
    if handlers is not None:
        handlers.append(job)
        return
    job.join()


def serialize(path: str, object_id: Any, *args: Any, vineyard_ipc_socket: Optional[str] = None,
              **kwargs: Any) -> str:
    """Writes the object (its metadata and every blob) under the directory ``path``
    (``vineyard://`` or ``file://`` prefix allowed); returns the object's folder."""
    import vineyard

    from ..cli import dump

    kwargs["vineyard_ipc_socket"] = vineyard_ipc_socket
    client = vineyard.connect(_socket(kwargs))
    folder = _local_path(path)
    os.makedirs(folder, exist_ok=True)
    oid = object_id if isinstance(object_id, _C.ObjectID) else _C.ObjectID(object_id)
    return dump.write(dump.plan(client, oid), folder, [], lambda n: None)


def deserialize(path: str, *args: Any, vineyard_ipc_socket: Optional[str] = None,
                **kwargs: Any) -> _C.ObjectID:
    """Creates the object serialized under ``path`` again; returns its new id."""
    import vineyard

    from ..cli import dump

    kwargs["vineyard_ipc_socket"] = vineyard_ipc_socket
    client = vineyard.connect(_socket(kwargs))
    found = dump.find(_local_path(path))
    if len(found) != 1:
        raise ValueError(f"{path}: holds {len(found)} serialized objects; name one of them")
    return dump.load(client, found[0], True, lambda n: None)


def _local_path(path: str) -> str:
    parsed = urlparse(path)
    if parsed.scheme in ("vineyard", "file"):
        return os.path.expanduser((parsed.netloc or "") + parsed.path)
    if parsed.scheme:
        raise ValueError(f"{path}: serialize to a local directory (file:// or vineyard://)")
    return os.path.expanduser(path)


def _read_vineyard(path: str, vineyard_ipc_socket: str, *args: Any, accumulate: bool = False,
                   **kwargs: Any) -> Any:
    """``vineyard://<dir>``: an object serialized there, created again (its value with
    ``accumulate=True``)."""
    import vineyard

    oid = deserialize(path, vineyard_ipc_socket=vineyard_ipc_socket)
    if not accumulate:
        return oid
    return vineyard.connect(vineyard_ipc_socket).get(oid)


def _write_vineyard(path: str, stream: Any, vineyard_ipc_socket: str, *args: Any,
                    **kwargs: Any) -> None:
    """``vineyard://<dir>``: the object ``stream`` (any object id) serialized there."""
    serialize(path, stream if not hasattr(stream, "id") else stream.id,
              vineyard_ipc_socket=vineyard_ipc_socket)


def _driver_for(entry: Any, path: str, mode: str) -> Callable:
    """The last driver registered on ``entry`` (read or write) for the path's scheme, else
    the fsspec one when fsspec knows the scheme."""
    scheme = urlparse(path).scheme or "file"
    drivers = (entry._factory or {}).get(scheme) or _fsspec_driver(scheme, mode)
    if not drivers:
        known = sorted(set((entry._factory or {}).keys()) | {"file"})
        raise ValueError(f"no I/O driver for {path!r}: known schemes are {', '.join(known)}, "
                         "and those of fsspec")
    return drivers[-1]


@registerize
def read(path: str, *args: Any, handlers: Optional[list] = None, accumulate: bool = False,
         chunk_hook: Optional[Callable] = None, **kwargs: Any) -> Any:
    """Reads ``path`` into a stream (see the module's doc); the last driver registered for
    its scheme wins, as in vineyard."""
    driver = _driver_for(read, path, "r")
    sock = _socket(kwargs)
    return driver(path, sock, *args, handlers=handlers, accumulate=accumulate,
                       chunk_hook=chunk_hook, **kwargs)


@registerize
def write(path: str, stream: Any, *args: Any, handlers: Optional[list] = None,
          chunk_hook: Optional[Callable] = None, **kwargs: Any) -> None:
    """Writes the stream ``stream`` to ``path``; waits for the writers unless ``handlers``
    is given (they are appended to it)."""
    driver = _driver_for(write, path, "w")
    sock = _socket(kwargs)
    return driver(path, stream, sock, *args, handlers=handlers, chunk_hook=chunk_hook,
                       **kwargs)


def _fsspec_driver(scheme: str, mode: str) -> List[Callable]:
    try:
        import fsspec
    except ImportError:
        return []
    if scheme not in fsspec.available_protocols():
        return []
    return [_read_files if mode == "r" else _write_files]


def open(path: str, *args: Any, mode: str = "r", handlers: Optional[list] = None,
         chunk_hook: Optional[Callable] = None, **kwargs: Any) -> Any:
    """``read`` (mode 'r') or ``write`` (mode 'w', the stream as the second argument)."""
    if not urlparse(path).scheme:
        path = "file://" + os.path.abspath(os.path.expanduser(path))
    if mode == "r":
        return read(path, *args, handlers=handlers, chunk_hook=chunk_hook, **kwargs)
    if mode == "w":
        return write(path, *args, handlers=handlers, chunk_hook=chunk_hook, **kwargs)
    raise ValueError(f"opening {path} with mode {mode!r} is not supported: use 'r' or 'w'")


read.register("file", _read_files)
write.register("file", _write_files)
read.register("vineyard", _read_vineyard)
write.register("vineyard", _write_vineyard)
