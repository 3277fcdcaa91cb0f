"""The cluster across hosts: each host a network namespace on one bridge, with its
own etcd member (a 3-member etcd cluster) and its own vineyardd; the Python clients
stay in the root namespace and reach each instance through its socket file, while the
instances talk to etcd and to each other over the bridge.

Needs root, `ip` and etcd; skipped otherwise. Every namespace, bridge and process is
removed at the end, also on failure.

Run: PYTHONPATH=python python3 -m pytest -q tests/python/test_cluster_hosts.py
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import vineyard

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(TESTS)
sys.path.insert(0, TESTS)

import cluster_harness as ch  # noqa: E402
from cluster_harness import wait_for  # noqa: E402
from conftest import sharing_python_objects_example, vineyardd_binary  # noqa: E402

_reason = ch.require_root()
if _reason is None and not os.path.exists(ch.ETCD):
    _reason = f"no etcd at {ch.ETCD} (apt-get install etcd-server)"
pytestmark = pytest.mark.skipif(_reason is not None, reason=_reason or "")

TTL = 3




@pytest.fixture(scope="module")
def net():
    n = ch.Netns(4)
    with n:
        yield n
    left = n.leftovers()
    assert not left, f"left behind: {left}"


@pytest.fixture(scope="module")
def hosts(net):
    """Hosts 0..2: an etcd member and a vineyardd each; clients to each instance."""
    etcd = ch.EtcdCluster(3, netns=net)
    etcd.start_all()
    servers, clients = [], []
    try:
        for i in range(3):
            h = net.host(i)
            servers.append(ch.Vineyardd(
                vineyardd_binary(),
                ["--meta=etcd", f"--etcd_endpoint={etcd.endpoints}", "--etcd_prefix=hosts",
                 "--skip_launch_etcd", f"--instance_ttl={TTL}", "--meta_timeout=6",
                 f"--rpc_host={h.ip}"],
                host=h, size="512Mi"))
            clients.append(vineyard.connect(servers[-1].socket))
        yield etcd, servers, clients
    finally:
        for c in clients:
            try:
                c.close()
            except Exception:  # noqa: BLE001
                pass
        for s in servers:
            s.close()
        etcd.close()


def test_objects_persisted_on_one_host_are_seen_and_fetched_on_another(net, hosts):
    _, _, (a, b, c) = hosts
    assert {e["rpc_endpoint"] for e in c.meta.values()} == {
        f"{net.host(i).ip}:9600" for i in range(3)}, "each host's own address and port"
    arr = np.random.default_rng(1).random(4 << 20)  # 32 MiB
    oid = a.put(arr)
    a.persist(oid)
    c.sync_meta()
    assert c.get_meta(oid).instance_id == a.instance_id
    assert np.array_equal(c.get(oid, fetch=True), arr), "copied over the bridge"


def test_losing_one_of_three_etcd_members_goes_unnoticed(hosts):
    etcd, _, clients = hosts
    etcd.kill(0)  # the first endpoint of every instance's list
    try:
        for k, c in enumerate(clients):
            oid = c.put(np.full(8, k))
            c.persist(oid)
            for other in clients:
                other.sync_meta()
                assert other.exists(oid)
    finally:
        etcd.start(0)


def test_a_host_cut_off_leaves_the_cluster_and_comes_back_when_healed(net, hosts):
    _, servers, (a, b, c) = hosts
    oid = c.put(np.arange(10))
    c.persist(oid)
    a.sync_meta()
    assert a.exists(oid)
    net.cut(2)
    try:
        wait_for(lambda: c.instance_id not in a.meta, TTL + 10,
                 "a cut-off host leaves the others' view")
        assert not a.exists(oid), "with its objects"
        assert list(c.get(oid)) == list(range(10)), "it keeps serving its own clients"
        fresh = a.put(np.ones(2))
        a.persist(fresh)  # the others keep working meanwhile
        b.sync_meta()
        assert b.exists(fresh)
    finally:
        net.heal(2)
    try:
        wait_for(lambda: c.instance_id in a.meta and (a.sync_meta() or True) and a.exists(oid),
                 30, "the healed host rejoins (same id) and publishes its objects again")
    except AssertionError as e:
        raise AssertionError(f"{e}\n--- the healed host's log\n{servers[2].log()}") from None
    assert a.get_meta(oid).instance_id == c.instance_id
    assert list(c.get(oid)) == list(range(10)), "the healed host kept its own object"


def test_sharing_python_objects_example_with_only_socket_flags(net):
    # Two `python3 -m vineyard --socket ...` on one host with no other flag: the first
    # starts etcd (nothing answers at 127.0.0.1:2379 in the namespace), the second
    # joins it, and finds port 9600 taken.
    h = net.host(3)
    env = ch.child_env({"PYTHONPATH": os.path.join(ROOT, "python"),
                        "VINEYARDD": vineyardd_binary()})
    workdir = ch._mkdtemp("seed")
    socks = [os.path.join(workdir, f"vineyard.sock{i}") for i in (1, 2)]
    procs = []
    launched = []
    try:
        for sock in socks:
            log = open(sock + ".log", "wb")
            procs.append(h.run([sys.executable, "-m", "vineyard", "--socket", sock],
                               env=env, stdout=log, stderr=log))
            wait_for(lambda: os.path.exists(sock), 30, f"{sock} listens")
            wait_for(lambda: vineyard.connect(sock).close() or True, 30, f"{sock} accepts")
        launched = _launched_etcd_dirs(socks)
        assert len(launched) == 1 and os.path.isdir(launched[0]), _logs(socks)
        client1 = vineyard.connect(socks[0])
        client2 = vineyard.connect(socks[1])
        assert client1.instance_id != client2.instance_id
        assert client1.rpc_endpoint.endswith(":9600")
        assert not client2.rpc_endpoint.endswith(":9600"), "a taken default port moves"
        assert client1.meta[client2.instance_id]["rpc_endpoint"] == client2.rpc_endpoint

        id1, _, id_pair = sharing_python_objects_example(client1, client2)

        # The etcd they share dies: an instance starts another (empty) one, and both
        # register again and publish what they own.
        etcds = [pid for pid in h.pids() if _comm(pid) == "etcd"]
        assert len(etcds) == 1
        os.kill(etcds[0], signal.SIGKILL)
        ids = {client1.instance_id, client2.instance_id}
        wait_for(lambda: [p for p in h.pids() if _comm(p) == "etcd"] not in ([], etcds), 30,
                 "a new etcd is started")

        def back():
            client2.sync_meta()
            return set(client2.meta) == ids and client2.exists(id1) and client2.exists(id_pair)
        wait_for(back, 30, "the cluster is whole again in the new etcd")
        # Both may have tried; one etcd won the port. Every directory goes at exit.
        launched = _launched_etcd_dirs(socks)
        client1.close()
        client2.close()
    finally:
        for p in procs:  # Ctrl-C: each stops, the first with the etcd it started
            ch._killpg(p.pid, signal.SIGINT)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                ch._killpg(p.pid)
                p.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)
    assert all(p.returncode == 0 for p in procs), "a clean exit on Ctrl-C"
    assert launched and not [d for d in launched if os.path.exists(d)], \
        "every launched etcd's data directory is removed"


def _launched_etcd_dirs(socks):
    """The data directories of the etcds the instances started (from their logs)."""
    dirs = []
    for sock in socks:
        with open(sock + ".log", errors="replace") as f:
            dirs += re.findall(r"launched etcd .* data in (\S+);", f.read())
    return dirs


def _logs(socks):
    out = []
    for sock in socks:
        with open(sock + ".log", errors="replace") as f:
            out.append(f"--- {sock}.log\n{f.read()[-3000:]}")
    return "\n".join(out)


def _comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def test_without_any_etcd_binary_a_single_instance_runs_standalone(net):
    h = net.host(3)
    server = ch.Vineyardd(vineyardd_binary(), ["--norpc"], host=h, size="64Mi",
                          env={"PATH": "/nonexistent"})
    try:
        with vineyard.connect(server.socket) as client:
            assert list(client.get(client.put(np.arange(3)))) == [0, 1, 2]
            assert client.status.instance_id == 0
        assert "running standalone" in server.log()
    finally:
        server.close()


# --- the LLM KV cache across hosts (vineyard.llm) ---------------------------------------


def test_a_kv_cache_prefix_cached_on_one_host_is_found_on_another(hosts):
    """A process on host 0 caches a sequence in vineyard.llm; one on host 1 finds it,
    its server fetching the blocks from host 0 over the bridge (RPC)."""
    import test_llm as llm

    _, servers, _ = hosts
    tokens = list(range(500, 530))
    segments = []
    try:
        done = llm.run_child("update", servers[0].socket, "hosts-kv", ",".join(map(str, tokens)))
        assert done.returncode == 0, done.stderr
        count, segment = done.stdout.split()
        segments.append("/dev/shm" + segment)
        assert count == str(len(tokens))
        cache = llm.KVCache(llm.VineyardCacheConfig(socket=servers[1].socket, block_size=4,
                                                    llm_cache_object_name="hosts-kv"),
                            tensor_nbytes=llm.NBYTES, cache_capacity=4096, layer=llm.LAYER)
        segments.append("/dev/shm" + cache.index_name)
        arrays, out = llm.buffers(len(tokens))
        wait_for(lambda: cache.query(None, tokens, out) == len(tokens), 20,
                 "host 1 finds what host 0 cached")
        llm.check_copied(tokens, arrays, len(tokens))
        cache.close()
    finally:
        for seg in segments:
            if os.path.exists(seg):
                os.unlink(seg)
