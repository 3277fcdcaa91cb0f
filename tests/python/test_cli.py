"""vineyard-cli, run as a subprocess (``python -m vineyard.cli``) against a real vineyardd;
its tables and its --json output are checked.

Run: PYTHONPATH=python python3 -m pytest -q tests/python/test_cli.py
"""
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import vineyard

from conftest import ROOT, Server


def run_cli(*args, server=None, env=None, check=True):
    e = {k: v for k, v in os.environ.items()
         if k not in ("VINEYARD_IPC_SOCKET", "VINEYARD_RPC_ENDPOINT", "VINEYARD_CONFIG")}
    e["PYTHONPATH"] = os.path.join(ROOT, "python")
    e.update(env or {})
    argv = [sys.executable, "-m", "vineyard.cli"]
    if server is not None:
        argv += ["--socket", server.socket]
    done = subprocess.run(argv + list(args), capture_output=True, text=True, env=e, timeout=60)
    if check:
        assert done.returncode == 0, f"{args}: {done.stderr}"
    return done


def as_json(*args, server=None):
    return json.loads(run_cli("--json", *args, server=server).stdout)


@pytest.fixture(scope="module")
def server():
    s = Server(rpc=True)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    np.save(d / "a.npy", np.arange(12, dtype=np.int64).reshape(3, 4))
    pd.DataFrame({"x": [1, 2, 3], "y": ["a", "b", "c"]}).to_csv(d / "t.csv", index=False)
    pd.DataFrame({"v": [1.5, 2.5]}).to_parquet(d / "t.parquet")
    (d / "raw.bin").write_bytes(b"hello" * 10)
    (d / "bad.npy").write_bytes(b"not an array")
    (d / "bad.parquet").write_bytes(b"PAR1 garbage")
    return d


def test_put_each_format_then_ls_names_head_get(server, files):
    arr = as_json("put", str(files / "a.npy"), "--name", "cli-arr", server=server)
    assert arr["typename"] == "vineyard::Tensor<int64>" and arr["nbytes"] == 96
    tab = as_json("put", str(files / "t.csv"), "--name", "cli-tab", server=server)
    assert tab["typename"] == "vineyard::DataFrame"
    pq = as_json("put", str(files / "t.parquet"), server=server)
    raw = run_cli("put", str(files / "raw.bin"), server=server).stdout.split()
    assert raw[0].startswith("o") and len(raw[0]) == 17

    with vineyard.connect(server.socket) as c:
        assert (c.get(c.get_name("cli-arr")) == np.arange(12).reshape(3, 4)).all()
        assert list(c.get(vineyard.ObjectID(pq["id"]))["v"]) == [1.5, 2.5]
        assert c.get(vineyard.ObjectID(raw[0])) == b"hello" * 10

    listed = as_json("ls", "vineyard::Tensor*", server=server)
    mine = [r for r in listed if r["id"] == arr["id"]]
    assert mine and mine[0]["names"] == ["cli-arr"] and mine[0]["nbytes"] == 96
    assert mine[0]["persistent"] and isinstance(mine[0]["instance_id"], int)
    assert all(r["typename"].startswith("vineyard::Tensor") for r in listed)

    table = run_cli("ls", server=server).stdout  # the table a user sees
    assert "typename" in table and "owner" in table and arr["id"] in table
    assert "cli-arr" in table and "96 B" in table

    names = {r["name"]: r["id"] for r in as_json("names", server=server)}
    assert names["cli-arr"] == arr["id"] and names["cli-tab"] == tab["id"]

    head = as_json("head", "cli-tab", "-n", "2", server=server)
    assert head["columns"] == ["x", "y"] and head["rows"] == [[1, "a"], [2, "b"]]
    assert head["shape"] == [3, 2]
    text = run_cli("head", "cli-tab", server=server).stdout
    assert "x" in text and "int64" in text and "c" in text

    got = as_json("get", arr["id"], server=server)
    assert got["fields"]["shape_"] == "[3, 4]" and got["preview"]["shape"] == [3, 4]
    assert list(got["members"]) == ["buffer_"]
    assert got["preview"]["rows"][2] == [8, 9, 10, 11]


def test_del_persist_migrate_status_top(server, files):
    with vineyard.connect(server.socket) as c:
        oid = c.put(np.ones(3))
        hex_id = f"o{int(oid):016x}"
    assert as_json("persist", hex_id, server=server) == {"persisted": hex_id}
    with vineyard.connect(server.socket) as c:
        assert c.is_persisted(oid)
    # Every blob is here already: migrating returns the object itself.
    assert as_json("migrate", hex_id, server=server)["local"] == hex_id
    assert as_json("del", hex_id, server=server) == {"deleted": [hex_id]}
    with vineyard.connect(server.socket) as c:
        assert not c.exists(oid)

    status = as_json("status", server=server)
    me = status["instances"][0]
    assert me["connected"] and me["memory_limit"] == 512 << 20
    assert me["ipc_connections"] >= 1 and me["memory_usage"] > 0
    text = run_cli("status", server=server).stdout
    assert "instance" in text and "512.0 MiB" in text

    frames = run_cli("--json", "top", "--iterations", "2", "--interval", "0.1",
                     server=server).stdout.strip().splitlines()
    assert len(frames) == 2 and json.loads(frames[1])["objects"] >= 1
    live = run_cli("top", "--iterations", "2", "--interval", "0.1", server=server).stdout
    assert "vineyard top" in live and "object(s)" in live


def test_dump_and_load_round_trip(server, files, tmp_path):
    with vineyard.connect(server.socket) as c:
        df = pd.DataFrame({"a": np.arange(1000), "b": [f"s{i}" for i in range(1000)]})
        df_id = c.put(df, persist=True, name="cli-df")
        big = np.random.default_rng(1).random(300_000)
        big_id = c.put(big)
    out = tmp_path / "dump"
    dumped = as_json("dump", "cli-df", f"o{int(big_id):016x}", "-o", str(out), server=server)
    assert {d["id"] for d in dumped} == {f"o{int(df_id):016x}", f"o{int(big_id):016x}"}
    big_dump = [d for d in dumped if d["id"] == f"o{int(big_id):016x}"][0]
    assert big_dump["nbytes"] == big.nbytes
    done = run_cli("dump", "cli-df", "-o", str(tmp_path / "again"), server=server)
    assert "dump" in done.stderr  # the progress bar

    run_cli("del", "cli-df", f"o{int(big_id):016x}", server=server)
    loaded = as_json("load", str(out), server=server)
    by_source = {d["source"]: d for d in loaded}
    with vineyard.connect(server.socket) as c:
        new_df = c.get(c.get_name("cli-df"))
        pd.testing.assert_frame_equal(new_df, df)
        new_big = c.get(vineyard.ObjectID(by_source[f"o{int(big_id):016x}"]["id"]))
        assert (new_big == big).all()
        assert c.is_persisted(c.get_name("cli-df"))


def test_no_server_is_one_line_naming_what_was_tried(tmp_path):
    done = run_cli("ls", check=False)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    for tried in ("--socket", "--endpoint", "$VINEYARD_IPC_SOCKET", "$VINEYARD_RPC_ENDPOINT",
                  "$VINEYARD_CONFIG"):
        assert tried in lines[0]
    missing = str(tmp_path / "none.sock")
    done = run_cli("--socket", missing, "status", check=False)
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1
    assert missing in done.stderr
    done = run_cli("names", env={"VINEYARD_IPC_SOCKET": missing}, check=False)
    assert done.returncode == 1 and missing in done.stderr
    done = run_cli("--endpoint", "127.0.0.1:1", "ls", check=False)
    assert done.returncode == 1 and "127.0.0.1:1" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_environment_and_endpoint_select_the_server(server):
    by_env = run_cli("--json", "status", env={"VINEYARD_IPC_SOCKET": server.socket})
    assert json.loads(by_env.stdout)["instances"][0]["connected"]
    by_rpc = run_cli("--endpoint", f"127.0.0.1:{server.port}", "--json", "status", "--local")
    assert json.loads(by_rpc.stdout)["instances"]


def test_put_of_missing_and_malformed_files(server, files, tmp_path):
    for path, fmt, expect in ((tmp_path / "nope.npy", None, "no such file"),
                              (files / "bad.npy", None, "cannot read it as npy"),
                              (files / "bad.parquet", None, "cannot read it as parquet"),
                              (files / "raw.bin", "csv", None),
                              (tmp_path, None, "is a directory")):
        args = ["put", str(path)] + (["--format", fmt] if fmt else [])
        done = run_cli(*args, server=server, check=False)
        if expect is None:  # 50 bytes of "hello" are a one-column CSV: that is fine
            assert done.returncode == 0, done.stderr
            continue
        assert done.returncode == 1, (path, done.stdout)
        assert len(done.stderr.strip().splitlines()) == 1 and expect in done.stderr, done.stderr
        assert str(path) in done.stderr
    done = run_cli("head", "no-such-name", server=server, check=False)
    assert done.returncode == 1 and "no-such-name" in done.stderr


def test_console_script_is_declared():
    with open(os.path.join(ROOT, "pyproject.toml")) as f:
        assert 'vineyard-cli = "vineyard.cli:main"' in f.read()


def test_read_streams_a_file_into_one_object_with_progress(server, files, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = 20000
    pq.write_table(pa.table({"i": list(range(n))}), tmp_path / "big.parquet", row_group_size=5000)
    doc = as_json("read", str(tmp_path / "big.parquet"), "--workers", "2", "--name", "cli-read",
                  server=server)
    assert doc["rows"] == n and doc["bytes"] > 0 and doc["bytes_per_second"] > 0
    c = vineyard.connect(server.socket)
    assert c.get_name("cli-read") == vineyard.ObjectID(doc["id"])
    assert sorted(c.get(doc["id"]).column("i").to_pylist()) == list(range(n))
    raw = as_json("read", str(files / "raw.bin"), server=server)
    assert raw["bytes"] == 50 and raw["rows"] == 0
    bad = run_cli("read", str(tmp_path / "missing.csv"), server=server, check=False)
    assert bad.returncode != 0 and "no such file" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
