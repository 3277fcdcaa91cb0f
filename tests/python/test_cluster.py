"""The cluster: vineyardd instances sharing metadata through a real etcd.

One etcd and three instances on this host (loopback), started once for the module;
tests that kill an instance or etcd start their own. Needs etcd (Debian etcd-server);
skipped without it. The multi-host cases (network namespaces) are in
test_cluster_hosts.py.

Run: PYTHONPATH=python python3 -m pytest -q tests/python/test_cluster.py
"""

import hashlib
import os
import sys
import threading
import time
import uuid

import numpy as np
import pytest

import vineyard
from vineyard import _C

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, TESTS)

import cluster_harness as ch  # noqa: E402
from cluster_harness import wait_for  # noqa: E402
from conftest import sharing_python_objects_example, vineyardd_binary  # noqa: E402

pytestmark = pytest.mark.skipif(not os.path.exists(ch.ETCD),
                                reason=f"no etcd at {ch.ETCD} (apt-get install etcd-server)")

TTL = 3           # --instance_ttl: a dead instance leaves within about this
META_TIMEOUT = 3  # --meta_timeout: what a request that needs etcd may wait


def cluster_args(etcd, prefix, *extra):
    return ["--meta=etcd", f"--etcd_endpoint={etcd.endpoints}", f"--etcd_prefix={prefix}",
            "--skip_launch_etcd", f"--instance_ttl={TTL}", f"--meta_timeout={META_TIMEOUT}",
            "--rpc_socket_port=0", "--rpc_host=127.0.0.1", *extra]




class Cluster:
    def __init__(self, etcd, size=3, size_each="768Mi"):
        self.etcd = etcd
        self.prefix = "vytest-" + uuid.uuid4().hex[:8]
        self.servers = []
        self.clients = []
        for _ in range(size):
            self.add(size_each)

    def add(self, size="768Mi", *extra):
        server = ch.Vineyardd(vineyardd_binary(), cluster_args(self.etcd, self.prefix, *extra),
                              size=size)
        self.servers.append(server)
        self.clients.append(vineyard.connect(server.socket))
        return self.clients[-1], server

    def close(self):
        for c in self.clients:
            try:
                c.close()
            except Exception:  # noqa: BLE001 (a killed instance)
                pass
        for s in self.servers:
            s.close()


@pytest.fixture(scope="module")
def etcd():
    with ch.EtcdCluster(1) as e:
        yield e


@pytest.fixture(scope="module")
def cluster(etcd):
    c = Cluster(etcd)
    yield c
    c.close()


# --------------------------------------------------------------------- membership

def test_instances_have_unique_ids_and_every_one_is_in_client_meta(cluster):
    ids = [c.instance_id for c in cluster.clients]
    assert len(set(ids)) == len(ids)
    for c in cluster.clients:
        meta = c.meta
        assert sorted(meta) == sorted(ids)
        for other, server in zip(cluster.clients, cluster.servers):
            entry = meta[other.instance_id]
            assert entry["ipc_socket"] == server.socket
            assert entry["rpc_endpoint"] == other.rpc_endpoint
            assert entry["rpc_endpoint"].startswith("127.0.0.1:")
            assert entry["hostname"]
    assert cluster.clients[0].status.instance_id == ids[0]


def test_the_layout_in_etcd_is_vineyards(cluster):
    a = cluster.clients[0]
    oid = a.put(np.arange(4, dtype=np.int64))
    a.persist(oid)
    a.put_name(oid, "layout-" + cluster.prefix)
    root = f"{cluster.prefix}/S0000000000000000"
    keys = cluster.etcd.dump(root + "/")
    data = keys[f"{root}/data/{oid!r}"]
    assert '"typename":"vvineyard::Tensor<int64>"' in data
    assert f'"instance_id":{a.instance_id}' in data
    assert '"buffer_":"lo8' in data and f'.vineyard::Blob@{a.instance_id}"' in data
    assert keys[f"{root}/names/layout-{cluster.prefix}"] == str(int(oid))
    assert int(keys[f"{root}/next_instance_id"]) >= len(cluster.clients)
    assert keys[f"{root}/instances/i{a.instance_id}/ipc_socket"] == f'"{a.ipc_socket}"'
    a.drop_name("layout-" + cluster.prefix)
    a.delete(oid)


# --------------------------------------------------------------------- objects

def test_a_persisted_object_is_visible_everywhere_with_its_owner(cluster):
    a, b, c = cluster.clients[:3]
    arr = np.arange(12, dtype=np.float64).reshape(3, 4)
    oid = a.put(arr)
    transient = a.put(np.zeros(3))
    a.persist(oid)
    for other in (b, c):
        other.sync_meta()
        meta = other.get_meta(oid)
        assert meta.instance_id == a.instance_id
        assert not meta.islocal and meta.ispersist
        assert meta["shape_"] == "[3, 4]"
        assert meta.typename == "vineyard::Tensor<double>"
        assert not other.exists(transient), "a transient object must stay local"
    assert a.get_meta(oid).islocal
    with pytest.raises(_C.ObjectNotExistsException, match="fetch=True"):
        b.get(oid)  # its payload is on a
    assert np.array_equal(b.get(oid, fetch=True), arr)
    a.delete([oid, transient])


def test_names_are_cluster_wide(cluster):
    a, b, c = cluster.clients[:3]
    name = "shared-" + cluster.prefix
    got = {}

    def waiter():
        got["id"] = c.get_name(name, wait=True)

    t = threading.Thread(target=waiter)
    t.start()
    oid = a.put(np.ones(3))
    a.persist(oid)
    a.put_name(oid, name)
    t.join(timeout=10)
    assert got.get("id") == oid, "get_name(wait=True) elsewhere must see the name"
    b.sync_meta()
    assert b.get_name(name) == oid
    assert name in b.list_names("shared-*")
    b.drop_name(name)
    a.sync_meta()
    with pytest.raises(_C.ObjectNotExistsException):
        a.get_name(name)
    with pytest.raises(Exception, match="persist"):
        a.put_name(a.put(np.ones(1)), "transient-" + cluster.prefix)
    a.delete(oid)


def test_deleting_a_persisted_object_elsewhere_frees_its_blobs_on_the_owner(cluster):
    a, b = cluster.clients[:2]
    before = a.status.memory_usage
    oid = a.put(np.random.rand(1 << 20))  # 8 MiB
    a.persist(oid)
    assert a.status.memory_usage >= before + (8 << 20)
    b.sync_meta()
    b.delete(oid)
    assert not b.exists(oid)
    wait_for(lambda: not a.exists(oid), 5, "the owner drops an object deleted elsewhere")
    wait_for(lambda: a.status.memory_usage <= before, 5, "the owner frees its blobs")


def test_the_sharing_python_objects_example(cluster):
    # ../shared/seeds: "Sharing Python Objects with Vineyard", on two instances.
    sharing_python_objects_example(*cluster.clients[:2])


def test_a_global_object_of_10000_members_is_persisted_past_the_txn_limit(cluster):
    a, b = cluster.clients[:2]
    members = []
    for i in range(10000):
        m = _C.ObjectMeta()
        m.typename = "vineyard::Scalar<int>"
        m["value_"] = i
        m["type_"] = "int"
        m.nbytes = 0
        members.append(m)
    created = a.create_metadata(members)
    g = _C.ObjectMeta()
    g.typename = "vineyard::Collection"
    g.set_global(True)
    for i, m in enumerate(created):
        g.add_member(f"partitions_-{i}", m.id)
    g["partitions_-size"] = len(created)
    g = a.create_metadata(g)
    a.persist(g.id)
    b.sync_meta()
    meta = b.get_meta(g.id)
    assert meta.isglobal and meta["partitions_-size"] == 10000
    assert meta.member("partitions_-9999")["value_"] == 9999
    assert b.get_meta(created[5000].id)["value_"] == 5000
    a.delete(g.id, deep=True)
    b.sync_meta()
    assert not b.exists(g.id) and not b.exists(created[0].id)


def test_sync_meta_is_a_read_barrier(cluster):
    a, b = cluster.clients[:2]
    ids = []
    for i in range(50):
        oid = a.put(i)
        a.persist(oid)
        ids.append(oid)
    b.sync_meta()
    assert all(b.exists(oid) for oid in ids), "everything persisted before is visible after"
    a.delete(ids)


def test_a_member_persisted_elsewhere_a_moment_ago_can_be_used_at_once(cluster):
    # No sync_meta in between: the instance that creates the global object waits for
    # the cluster itself when a member is not known yet (etcd's watch is on its way).
    a, b = cluster.clients[:2]
    made = []
    try:
        for i in range(30):
            remote = b.put(np.full(4, i))
            b.persist(remote)
            local = a.put(np.zeros(2))
            a.persist(local)
            g = _C.ObjectMeta()
            g.typename = "vineyard::Sequence"
            g.set_global(True)
            g.add_member("__elements_-0", local)
            g.add_member("__elements_-1", remote)
            g["__elements_-size"] = 2
            g.nbytes = 0
            pair = a.create_metadata(g).id
            made += [pair, local, remote]
            assert a.get_meta(pair).member("__elements_-1").instance_id == b.instance_id
        with pytest.raises(vineyard.ObjectNotExistsException, match="does not exist"):
            g = _C.ObjectMeta()
            g.typename = "vineyard::Sequence"
            g.set_global(True)
            g.add_member("__elements_-0", _C.ObjectID(0x0123456789abcd))
            a.create_metadata(g)  # still refused, after one wait for the cluster
    finally:
        for oid in made:  # a pair's deletion may take its members with it
            for c in (a, b):
                try:
                    c.delete(oid)
                except vineyard.ObjectNotExistsException:
                    pass


def test_four_instances_persisting_at_once_see_everything(cluster):
    extra_client, _ = cluster.add()
    clients = cluster.clients[:4]
    assert extra_client in clients
    made = [[] for _ in clients]
    errors = []

    def writer(k, c):
        try:
            for i in range(40):
                oid = c.put(np.full(4, k * 1000 + i))
                c.persist(oid)
                made[k].append(oid)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(k, c)) for k, c in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    everything = [oid for ids in made for oid in ids]
    assert len(set(everything)) == 160
    for c in clients:
        c.sync_meta()
        assert all(c.exists(oid) for oid in everything)
    for k, c in enumerate(clients):
        c.delete(made[k])


def test_garbage_in_etcd_is_skipped_and_the_cluster_keeps_serving(cluster):
    a, b = cluster.clients[:2]
    root = f"{cluster.prefix}/S0000000000000000"
    garbage = {
        f"{root}/data/o0000000000000abc": "not json",
        f"{root}/data/o0000000000000abd": '{"typename": "vX", "m": "lnot-a-link"}',
        f"{root}/data/o0000000000000abe": '{"no": "typename"}',
        f"{root}/data/not-an-id": "{}",
        f"{root}/names/garbage": '"not a number"',
        f"{root}/signatures/i1/sxyz": "[]",
        f"{root}/instances/i777/timestamp": "{",
        f"{root}/next_instance_id_": "x",
    }
    for key, value in garbage.items():
        cluster.etcd.put(key, value)
    oid = a.put(np.arange(3))
    a.persist(oid)
    b.sync_meta()
    assert b.exists(oid) and list(b.get(oid, fetch=True)) == [0, 1, 2]
    assert not b.exists(_C.ObjectID("o0000000000000abc"))
    assert "garbage" not in b.list_names("*", limit=1000)
    assert 777 not in b.meta, "an instance without a hostid is no instance"
    assert all(s.running() for s in cluster.servers)
    a.delete(oid)


# --------------------------------------------------------------------- migration

def test_migration_of_256_mib_is_checked_by_checksum_and_happens_once(cluster):
    a, b = cluster.clients[:2]
    arr = np.frombuffer(np.random.default_rng(7).bytes(256 << 20), dtype=np.uint8)
    digest = hashlib.sha256(arr).hexdigest()
    oid = a.put(arr)
    a.persist(oid)
    b.sync_meta()
    before = b.status.memory_usage
    results, errors = [], []

    def migrate():
        try:
            results.append(b.migrate(oid))
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=migrate) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert len(set(results)) == 1 and results[0] != oid, "one copy, whoever asked"
    local = results[0]
    assert b.get_meta(local).islocal
    assert b.status.memory_usage - before < (256 << 20) + (16 << 20), "copied once"
    got = b.get(local)
    assert hashlib.sha256(np.ascontiguousarray(got)).hexdigest() == digest
    assert b.migrate(local) == local, "a local object migrates to itself"
    assert b.get(oid, fetch=True).shape == arr.shape  # the same copy again
    a.sync_meta()
    assert a.get_meta(local).instance_id == b.instance_id, "the copy is persisted"
    b.delete(local)
    a.delete(oid)


def test_a_migration_interrupted_by_killing_the_source_leaves_nothing(cluster):
    c, server = cluster.add("1536Mi")
    b = cluster.clients[1]
    oid = c.put(np.frombuffer(np.random.default_rng(3).bytes(1 << 30), dtype=np.uint8))
    c.persist(oid)
    b.sync_meta()
    before = b.status.memory_usage
    outcome = {}

    def migrate():
        try:
            outcome["id"] = b.migrate(oid)
        except Exception as e:  # noqa: BLE001
            outcome["error"] = e

    t = threading.Thread(target=migrate)
    t.start()
    time.sleep(0.15)
    server.kill()
    t.join(timeout=30)
    assert not t.is_alive(), "a migration from a dead source must end"
    if "id" in outcome:  # it finished first: then it is a whole copy
        assert b.get(outcome["id"]).nbytes == 1 << 30
        b.delete(outcome["id"])
    else:
        assert "error" in outcome
    wait_for(lambda: b.status.memory_usage <= before, 10, "nothing of the migration is left")
    assert (b.get(b.put(np.arange(3))) == [0, 1, 2]).all(), "the instance keeps serving"


# --------------------------------------------------------------------- liveness

def test_a_killed_instance_leaves_the_cluster_with_its_objects(cluster):
    d, server = cluster.add()
    a = cluster.clients[0]
    oid = d.put(np.ones(16))
    d.persist(oid)
    # A global object of the dead instance holding an object of a: that one stays.
    mine = a.put(np.arange(6))
    a.persist(mine)
    d.sync_meta()
    g = _C.ObjectMeta()
    g.typename = "vineyard::Pair"
    g.set_global(True)
    g.add_member("first_", mine)
    g.add_member("second_", oid)
    gid = d.create_metadata(g).id
    d.persist(gid)
    a.sync_meta()
    assert a.exists(oid) and a.exists(gid) and d.instance_id in a.meta
    killed_at = time.monotonic()
    server.kill()
    wait_for(lambda: d.instance_id not in a.meta, TTL + 5, "the dead instance leaves meta")
    wait_for(lambda: not a.exists(oid) and not a.exists(gid), 5,
             "its objects leave every view")
    assert time.monotonic() - killed_at < TTL + 5
    assert list(a.get(mine)) == list(range(6)), "a's own member is untouched"
    assert (a.get(a.put(np.arange(2))) == [0, 1]).all(), "the others keep serving"
    a.delete(mine)


# --------------------------------------------------------------------- etcd failing

def try_sync(client):
    try:
        client.sync_meta()
        return True
    except _C.EtcdErrorException:
        return False


def test_etcd_down_fails_fast_and_etcd_back_even_empty_brings_everything_back():
    with ch.EtcdCluster(1) as etcd:
        c = Cluster(etcd, size=2, size_each="256Mi")
        try:
            a, b = c.clients
            kept = a.put(np.arange(5))
            a.persist(kept)
            a.put_name(kept, "kept")
            b.sync_meta()
            assert b.exists(kept)

            etcd.stop(0)
            # Local requests keep working...
            local = a.put(np.arange(3))
            assert list(a.get(local)) == [0, 1, 2]
            assert b.get_name("kept") == kept and b.exists(kept)
            # ...and those that need etcd fail within --meta_timeout, naming it.
            for request in (lambda: a.persist(local), b.sync_meta):
                started = time.monotonic()
                with pytest.raises(_C.EtcdErrorException, match=etcd.endpoints):
                    request()
                assert time.monotonic() - started < META_TIMEOUT + 2
            assert not a.if_persist(local), "a failed persist leaves the object transient"

            etcd.start(0)
            wait_for(lambda: try_sync(a) and try_sync(b), 20, "the instances reconnect")
            a.persist(local)
            b.sync_meta()
            assert b.exists(local) and b.exists(kept)

            # etcd restarted with an empty data directory: every instance registers
            # again under its id and publishes what it owns, without a restart.
            ids = {a.instance_id, b.instance_id}
            etcd.wipe_and_restart(0)
            wait_for(lambda: try_sync(b) and b.exists(kept) and b.exists(local)
                     and set(b.meta) == ids and set(a.meta) == ids, 30,
                     "the cluster's state is back in the empty etcd")
            assert b.get_name("kept") == kept
            keys = etcd.dump(f"{c.prefix}/S0000000000000000/")
            assert f"{c.prefix}/S0000000000000000/data/{kept!r}" in keys
            assert int(keys[f"{c.prefix}/S0000000000000000/next_instance_id"]) > max(ids)
            # and it keeps working: a new instance gets a new id
            d, _ = c.add("128Mi")
            assert d.instance_id not in ids
        finally:
            c.close()
