"""vineyard.io.read/write/open against real files, worker processes and a real vineyardd:
results equal what pyarrow reads directly; bad input gets errors that say what to do."""
import os
import shutil
import tempfile

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.orc as orc
import pyarrow.parquet as pq
import pytest

import vineyard
import vineyard.io
from vineyard.io import ByteStream, ParallelStream, RecordBatchStream

from conftest import Server

ROWS = 50_000


@pytest.fixture(scope="module")
def server():
    s = Server(size="512Mi")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("io")
    rng = np.random.default_rng(7)
    df = pd.DataFrame({"id": np.arange(ROWS), "x": rng.random(ROWS),
                       "name": [f"n{i % 97}" for i in range(ROWS)]})
    table = pa.Table.from_pandas(df, preserve_index=False)
    paths = {"csv": str(d / "t.csv"), "parquet": str(d / "t.parquet"), "orc": str(d / "t.orc"),
             "bin": str(d / "blob.bin")}
    pacsv.write_csv(table, paths["csv"])
    pq.write_table(table, paths["parquet"], row_group_size=5000)
    orc.write_table(table, paths["orc"], stripe_size=64 << 10)
    with open(paths["bin"], "wb") as f:
        f.write(rng.bytes(5 << 20))
    paths["dir"] = str(d)
    return paths


def direct(path):
    if path.endswith(".csv"):
        return pacsv.read_csv(path).to_pandas()
    if path.endswith(".parquet"):
        return pq.read_table(path).to_pandas()
    return orc.read_table(path).to_pandas()


@pytest.mark.parametrize("kind", ["csv", "parquet", "orc"])
def test_read_equals_pyarrow_with_one_and_four_workers(server, files, kind):
    expected = direct(files[kind])
    for workers in (1, 4):
        got = vineyard.io.read(files[kind], vineyard_ipc_socket=server.socket, accumulate=True,
                               num_workers=workers)
        got = got.sort_values("id").reset_index(drop=True)
        pd.testing.assert_frame_equal(got, expected, check_dtype=True)


def test_open_gives_a_stream_and_a_parallel_stream(server, files):
    c = vineyard.connect(server.socket)
    s = vineyard.io.open(files["parquet"], vineyard_ipc_socket=server.socket)
    assert isinstance(s, RecordBatchStream) and s.params["format"] == "parquet"
    assert c.get_meta(s.id).typename == "vineyard::RecordBatchStream"
    assert s.open_reader(c).read_table().num_rows == ROWS
    p = vineyard.io.open("file://" + files["parquet"], vineyard_ipc_socket=server.socket,
                         num_workers=3)
    assert isinstance(p, ParallelStream) and p.get_stream_num() == 3
    assert c.get_meta(p.id).isglobal
    assert sum(part.open_reader(c).read_table().num_rows for part in p.streams) == ROWS


def test_chunk_hook_applies_to_each_batch(server, files):
    def double(batch):
        return pa.RecordBatch.from_arrays([pa.compute.multiply(batch.column(0), 2)],
                                          names=["id2"])

    got = vineyard.io.read(files["parquet"], vineyard_ipc_socket=server.socket, accumulate=True,
                           chunk_hook=double, num_workers=2)
    assert sorted(got["id2"]) == [2 * i for i in range(ROWS)]


def test_raw_bytes_and_write_round_trips(server, files, tmp_path):
    c = vineyard.connect(server.socket)
    data = open(files["bin"], "rb").read()
    s = vineyard.io.read(files["bin"], vineyard_ipc_socket=server.socket, chunk_size=1 << 20)
    assert isinstance(s, ByteStream)
    out = str(tmp_path / "copy.bin")
    vineyard.io.write(out, s, vineyard_ipc_socket=server.socket)
    assert open(out, "rb").read() == data
    for kind in ("csv", "parquet", "orc"):
        s = vineyard.io.open(files["parquet"], vineyard_ipc_socket=server.socket)
        target = str(tmp_path / f"copy.{kind}")
        vineyard.io.open(target, s, mode="w", vineyard_ipc_socket=server.socket)
        pd.testing.assert_frame_equal(direct(target), direct(files["parquet"]))
    # A parallel stream becomes one file per stream.
    p = vineyard.io.open(files["parquet"], vineyard_ipc_socket=server.socket, num_workers=2)
    vineyard.io.write(str(tmp_path / "part.parquet"), p, vineyard_ipc_socket=server.socket)
    parts = [pq.read_table(tmp_path / f"part_{i}.parquet") for i in range(2)]
    assert sum(t.num_rows for t in parts) == ROWS
    assert c.status.memory_usage >= 0


def test_fsspec_filesystems_and_vineyard_serialization(server, files, tmp_path):
    c = vineyard.connect(server.socket)
    # fsspec's local filesystem through its own scheme name ("local://").
    got = vineyard.io.read("local://" + files["csv"], vineyard_ipc_socket=server.socket,
                           accumulate=True)
    assert len(got) == ROWS
    oid = c.put(pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]}))
    folder = vineyard.io.serialize(str(tmp_path / "ser"), oid, vineyard_ipc_socket=server.socket)
    assert os.path.isdir(folder)
    back = vineyard.io.read("vineyard://" + folder, vineyard_ipc_socket=server.socket,
                            accumulate=True)
    pd.testing.assert_frame_equal(back, c.get(oid))


def test_progress_is_reported(server, files):
    handlers = []
    s = vineyard.io.read(files["bin"], vineyard_ipc_socket=server.socket, handlers=handlers)
    c = vineyard.connect(server.socket)
    assert len(s.open_reader(c).read_all()) == 5 << 20
    handlers[0].join(30)
    p = handlers[0].progress
    assert p["bytes"] == 5 << 20 and p["done"] and p["bytes_per_second"] > 0


def test_bad_input_gets_clear_errors(server, files, tmp_path):
    sock = server.socket
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n3,4\n5,6,7\n8,9\n")
    with pytest.raises(RuntimeError, match=r"bad\.csv:4: malformed CSV row: expected 2 columns, got 3"):
        vineyard.io.read(str(bad), vineyard_ipc_socket=sock, accumulate=True)
    # In the range of the third of three workers: the line is still the file's.
    big = tmp_path / "big.csv"
    lines = ["a,b"] + [f"{i},{i}" for i in range(10000)]
    lines[7000] = "1,2,3"
    big.write_text("\n".join(lines) + "\n")
    with pytest.raises(RuntimeError, match=r"big\.csv:7001: malformed CSV row"):
        vineyard.io.read(str(big), vineyard_ipc_socket=sock, accumulate=True, num_workers=3)
    # In a later piece of one worker's range: still the file's line.
    with pytest.raises(RuntimeError, match=r"big\.csv:7001: malformed CSV row"):
        vineyard.io.read(str(big), vineyard_ipc_socket=sock, accumulate=True,
                         read_options={"piece_size": 4096})
    with pytest.raises(FileNotFoundError, match="no such file"):
        vineyard.io.read(str(tmp_path / "missing.csv"), vineyard_ipc_socket=sock)
    with pytest.raises(ValueError, match="known schemes are file, vineyard"):
        vineyard.io.read("nosuchscheme://x/y.csv", vineyard_ipc_socket=sock)
    with pytest.raises(ValueError, match="unknown format"):
        vineyard.io.read(files["csv"], vineyard_ipc_socket=sock, format="xls")
    with pytest.raises(ValueError, match="mode"):
        vineyard.io.open(files["csv"], mode="a", vineyard_ipc_socket=sock)
    with pytest.raises(ValueError, match="num_workers"):
        vineyard.io.read(files["csv"], vineyard_ipc_socket=sock, num_workers=0)
    # The server served all of it and still serves.
    assert vineyard.connect(sock).put(1) is not None


def _read_with_handlers(path, sock, **kwargs):
    handlers = []
    got = vineyard.io.read(path, vineyard_ipc_socket=sock, handlers=handlers, **kwargs)
    return got, handlers[0]


def test_workers_stay_warm_and_a_killed_one_is_replaced(server, files):
    sock = server.socket
    expected = direct(files["parquet"])
    first, job = _read_with_handlers(files["parquet"], sock, accumulate=True, num_workers=2)
    job.join(30)
    second, again = _read_with_handlers(files["parquet"], sock, accumulate=True, num_workers=2)
    again.join(30)
    pd.testing.assert_frame_equal(second, expected)
    assert sorted(again.pids) == sorted(job.pids)  # the same processes did the second read
    # A job stopped halfway: its worker is gone, the next read starts a new one.
    def stuck(batch):
        import time

        time.sleep(120)

    stream, stopped = _read_with_handlers(files["parquet"], sock, chunk_hook=stuck)
    stopped.dispose()
    assert stopped.progress["done"]
    with pytest.raises(RuntimeError, match="I/O workers failed"):
        stopped.join(30)
    third, fresh = _read_with_handlers(files["parquet"], sock, accumulate=True, num_workers=2)
    fresh.join(30)
    pd.testing.assert_frame_equal(third, expected)
    assert not set(stopped.pids) & set(fresh.pids)


def test_what_a_hook_prints_does_not_confuse_its_worker(server, files):
    def noisy(batch):
        print('{"type": "done", "code": 1}')
        print('{"type": "return", "content": "o0"}', flush=True)
        return batch

    got = vineyard.io.read(files["parquet"], vineyard_ipc_socket=server.socket,
                           accumulate=True, chunk_hook=noisy)
    pd.testing.assert_frame_equal(got, direct(files["parquet"]))


def test_kept_connections_follow_a_restarted_server_and_hold_no_memory(files):
    """Workers and the reading process keep their connections between reads; a server
    restarted on the same socket is reconnected to by the same workers, and after a read
    the server holds no chunk memory for those kept sessions."""
    where = tempfile.mkdtemp(prefix="vy-io-")
    sock, second = os.path.join(where, "vineyard.sock"), None
    first = Server(size="256Mi", socket=sock)
    expected = direct(files["parquet"])
    try:
        got, job = _read_with_handlers(files["parquet"], sock, accumulate=True, num_workers=2)
        job.join(30)
        pd.testing.assert_frame_equal(got, expected)
        assert vineyard.connect(sock).status.memory_usage == 0
        first.stop()
        second = Server(size="256Mi", socket=sock)
        again, rejob = _read_with_handlers(files["parquet"], sock, accumulate=True,
                                           num_workers=2)
        rejob.join(30)
        pd.testing.assert_frame_equal(again, expected)
        assert sorted(rejob.pids) == sorted(job.pids)  # reconnected, not replaced
        assert vineyard.connect(sock).status.memory_usage == 0
    finally:
        first.stop()
        if second is not None:
            second.stop()
        shutil.rmtree(where, ignore_errors=True)


def test_a_csv_file_larger_than_the_server_flows_through_in_pieces(tmp_path):
    """A CSV file whose table is larger than vineyardd's memory: the worker parses it a piece
    at a time and decodes what fits into the server's memory, the stream's bound holds the
    rest back while a reader takes batch after batch, and the batches are the file's rows."""
    server = Server("--stream_threshold=50", size="32Mi")
    try:
        path = str(tmp_path / "large.csv")
        rows = 1_500_000  # 48 MB as a table
        rng = np.random.default_rng(11)
        pacsv.write_csv(pa.table({"id": np.arange(rows), "x": rng.random(rows),
                                  "k": rng.integers(0, 1000, rows),
                                  "y": rng.random(rows)}), path)
        expected = pacsv.read_csv(path)
        client = vineyard.connect(server.socket)
        for options in ({}, {"piece_size": 8 << 20}):
            handlers = []
            stream = vineyard.io.read(path, vineyard_ipc_socket=server.socket,
                                      read_options=options, handlers=handlers)
            at, peak = 0, 0
            reader = stream.open_reader(client)
            while True:
                try:
                    batch = reader.next()
                except StopIteration:
                    break
                except Exception:
                    handlers[0].join(30)  # the worker's error, if it failed
                    raise
                assert pa.Table.from_batches([batch]).equals(expected.slice(at, batch.num_rows))
                at += batch.num_rows
                peak = max(peak, client.status.memory_usage)
                del batch
            handlers[0].join(30)
            assert at == rows
            if options:  # pieces of 8 MiB: the stream's bound (half the store) and a piece
                assert peak <= (16 + 8) << 20, peak
        assert client.status.memory_usage == 0
        client.close()
    finally:
        server.stop()
