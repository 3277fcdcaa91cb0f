"""vineyardd --metrics: the Prometheus endpoint scraped over HTTP and parsed with
prometheus_client's parser; --prometheus as its alias; a taken metrics port; the log
level and JSON log flags; migration counters on a two-instance cluster.

Run: PYTHONPATH=python python3 -m pytest -q tests/python/test_metrics.py
"""
import json
import os
import re
import shutil
import socket as pysocket
import subprocess
import tempfile
import time
import urllib.request

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

import vineyard
from vineyard.deploy import local
from vineyard.deploy.utils import free_port, start_local_etcd, stop_process

from conftest import Server, vineyardd_binary

HAS_ETCD = shutil.which("etcd") is not None


def metrics_port(server, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = re.search(r"metrics at http://[^:]+:(\d+)/metrics", server.log())
        if m:
            return int(m.group(1))
        time.sleep(0.05)
    raise AssertionError(f"no metrics line in the log:\n{server.log()}")


def scrape(port):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    samples = {}
    families = {}
    for family in text_string_to_metric_families(text):
        families[family.name] = family
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return families, samples


@pytest.fixture(scope="module")
def server():
    s = Server("--metrics", "--metrics_port=0", "--rpc_host=127.0.0.1", rpc=True, size="64Mi")
    yield s
    s.stop()


def test_metrics_after_some_work(server):
    port = metrics_port(server)
    with vineyard.connect(server.socket) as c:
        ids = [c.put(np.arange(1000) + i) for i in range(3)]
        c.get(ids[0])
        with pytest.raises(vineyard.ObjectNotExistsException):
            c.get_meta(vineyard.ObjectID("o0000000000000fff"))
        families, samples = scrape(port)
        assert samples[("vineyard_memory_limit_bytes", ())] == 64 << 20
        assert samples[("vineyard_memory_used_bytes", ())] >= 3 * 8000
        assert samples[("vineyard_objects", ())] >= 3
        assert samples[("vineyard_blobs", ())] >= 3
        assert samples[("vineyard_connections", (("transport", "ipc"),))] >= 1
        assert samples[("vineyard_connections", (("transport", "rpc"),))] == 0
        assert families["vineyard_requests"].type == "counter"
        assert samples[("vineyard_requests_total", (("type", "register_request"),))] >= 1
        puts = [v for (n, l), v in samples.items()
                if n == "vineyard_requests_total" and "put" in dict(l).get("type", "")]
        assert sum(puts) >= 3
        errors = [v for (n, l), v in samples.items() if n == "vineyard_request_errors_total"]
        assert sum(errors) >= 1
        hist = families["vineyard_request_duration_seconds"]
        assert hist.type == "histogram"
        reg = {s.labels.get("le"): s.value for s in hist.samples
               if s.name.endswith("_bucket") and s.labels["type"] == "register_request"}
        assert reg["+Inf"] >= 1 and len(reg) > 10
        for name in ("vineyard_migrations_total", "vineyard_migration_failures_total",
                     "vineyard_migrated_bytes_total"):
            assert samples[(name, ())] == 0
        # Over RPC: one more connection, counted while it is open.
        with vineyard.connect("127.0.0.1", server.port) as r:
            r.get_meta(ids[1])
            _, now = scrape(port)
            assert now[("vineyard_connections", (("transport", "rpc"),))] == 1
        c.delete(ids)
        _, after = scrape(port)
        assert after[("vineyard_objects", ())] == samples[("vineyard_objects", ())] - 3


def test_a_large_get_handed_to_a_worker_counts_once(server):
    # A get of more than 4,096 nodes is handed from the event loop to a worker: one request.
    import pyarrow as pa
    port = metrics_port(server)
    key = ("vineyard_requests_total", (("type", "vy_get_request"),))
    with vineyard.connect(server.socket) as c:
        table = pa.table({"a": pa.chunked_array([pa.array(np.arange(4))] * 1000)})
        oid = c.put(table)
        before = scrape(port)[1].get(key, 0)
        assert c.get(oid).equals(table)
        assert scrape(port)[1][key] == before + 1
        c.delete(oid)


def run_vineyardd(*args, timeout=10):
    """Starts vineyardd with ``args`` on a fresh socket; its log after ``timeout`` or exit."""
    workdir = tempfile.mkdtemp(prefix="vy-metrics-")
    try:
        proc = subprocess.Popen([vineyardd_binary(), f"--socket={workdir}/s", "--meta=local",
                                 "--norpc", *args], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.terminate()
            out, _ = proc.communicate(timeout=20)
        return proc.returncode, out
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def test_taken_metrics_port_is_a_clear_error():
    with pysocket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, out = run_vineyardd("--prometheus", f"--metrics_port={port}",
                                  "--rpc_host=127.0.0.1")
    assert code == 1, out
    assert f"cannot serve metrics on 127.0.0.1:{port}" in out and "--metrics_port" in out


def test_prometheus_alias_json_logs_and_level():
    code, out = run_vineyardd("--prometheus", "--metrics_port=0", "--log_format=json",
                              timeout=1.5)
    lines = [json.loads(line) for line in out.strip().splitlines()]
    assert {"time", "level", "message"} <= set(lines[0])
    assert any("metrics at http://" in line["message"] for line in lines)
    code, out = run_vineyardd("--log_level=warn", timeout=1.5)
    assert "serving on" not in out  # an info line
    code, out = run_vineyardd("--log_level=loud")
    assert code == 2 and "--log_level=loud is not a level" in out


@pytest.mark.skipif(not HAS_ETCD, reason="no etcd on PATH")
def test_migration_counters():
    workdir = tempfile.mkdtemp(prefix="vy-metrics-etcd-")
    etcd, endpoint = start_local_etcd(workdir)
    try:
        ports = [free_port(), free_port()]
        opts = dict(etcd_endpoints=endpoint, vineyardd_path=vineyardd_binary(), size="64Mi",
                    rpc_socket_port=0)
        with local.start_vineyardd(extra_args=["--rpc_host=127.0.0.1"], **opts) as (_, s1, _r), \
                local.start_vineyardd(extra_args=["--rpc_host=127.0.0.1", "--metrics",
                                                  f"--metrics_port={ports[1]}"],
                                      **opts) as (_, s2, _r2):
            c1, c2 = vineyard.connect(s1), vineyard.connect(s2)
            oid = c1.put(np.arange(50_000), persist=True)
            c2.sync_meta()
            local_id = c2.migrate(oid)
            assert local_id != oid
            _, samples = scrape(ports[1])
            assert samples[("vineyard_migrations_total", ())] == 1
            assert samples[("vineyard_migrated_bytes_total", ())] >= 400_000
            assert samples[("vineyard_objects", ())] >= 2  # its copy and the other's
            c1.close()
            c2.close()
    finally:
        stop_process(etcd)
        shutil.rmtree(workdir, ignore_errors=True)
