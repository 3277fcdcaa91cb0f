"""Clusters with the published vineyard 0.24.2: its client against a cluster of our
instances, and its vineyardd and ours as one cluster in one etcd (a real etcd on
this host; skipped without one)."""

import os
import sys
import time
import uuid

import numpy as np
import pytest
import vineyard

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, TESTS)

import cluster_harness as ch  # noqa: E402
from cluster_harness import wait_for  # noqa: E402
from conftest import _vineyardd_binary  # noqa: E402

pytestmark = pytest.mark.skipif(not os.path.exists(ch.ETCD),
                                reason=f"no etcd at {ch.ETCD} (apt-get install etcd-server)")

PUBLISHED = os.path.join(os.path.dirname(vineyard.__file__), "bdist", "vineyardd")


def ours(etcd, prefix, size="512Mi"):
    return ch.Vineyardd(_vineyardd_binary(),
                        ["--meta=etcd", f"--etcd_endpoint={etcd.endpoints}",
                         f"--etcd_prefix={prefix}", "--skip_launch_etcd",
                         "--rpc_socket_port=0", "--rpc_host=127.0.0.1"], size=size)




@pytest.fixture(scope="module")
def etcd():
    with ch.EtcdCluster(1) as e:
        yield e


def test_the_published_client_on_a_cluster_of_ours(etcd):
    prefix = "compat-" + uuid.uuid4().hex[:8]
    with ours(etcd, prefix) as sa, ours(etcd, prefix) as sb:
        a, b = vineyard.connect(sa.socket), vineyard.connect(sb.socket)
        assert a.instance_id != b.instance_id
        assert set(a.meta) == {a.instance_id, b.instance_id}
        arr = np.arange(1 << 16, dtype=np.float64)
        oid = a.put(arr)
        a.persist(oid)
        name = "compat-" + prefix
        a.put_name(oid, name)
        b.sync_meta()
        meta = b.get_meta(oid)
        assert meta.instance_id == a.instance_id and not meta.islocal
        assert meta.typename == "vineyard::Tensor<double>"
        assert b.get_name(name) == oid
        fetched = b.get(oid, fetch=True)
        assert np.array_equal(fetched, arr), "fetch=True copies it over"
        b.drop_name(name)
        a.delete(oid)
        b.sync_meta()
        assert not b.exists(oid)
        a.close()
        b.close()


def test_published_vineyardd_and_ours_form_one_cluster(etcd):
    if not os.access(PUBLISHED, os.X_OK):
        pytest.skip("the published wheel ships no vineyardd")
    prefix = "mixed-" + uuid.uuid4().hex[:8]
    theirs = ch.Vineyardd(PUBLISHED, ["--meta=etcd", f"--etcd_endpoint={etcd.endpoints}",
                                      f"--etcd_prefix={prefix}",
                                      f"--rpc_socket_port={ch.free_listen_port()}"], size="512Mi")
    try:
        with ours(etcd, prefix) as mine:
            p, o = vineyard.connect(theirs.socket), vineyard.connect(mine.socket)
            assert p.instance_id != o.instance_id, "one id counter for both"
            wait_for(lambda: set(p.meta) == {p.instance_id, o.instance_id}, 10,
                     "the published instance sees ours")
            assert set(o.meta) == {p.instance_id, o.instance_id}

            # Theirs -> ours: an object, its tree, its name, its payload.
            x = np.arange(1000, dtype=np.int64)
            xid = p.put(x)
            p.persist(xid)
            p.put_name(xid, "from-published")
            o.sync_meta()
            meta = o.get_meta(xid)
            assert meta.instance_id == p.instance_id
            assert meta["shape_"] == "[1000]"
            assert o.get_name("from-published") == xid
            assert np.array_equal(o.get(xid, fetch=True), x)

            # Ours -> theirs.
            y = np.full(64, 7.0)
            yid = o.put(y)
            o.persist(yid)
            o.put_name(yid, "from-ours")
            wait_for(lambda: p.exists(yid), 10, "the published instance sees our object")
            ymeta = p.get_meta(yid)
            assert ymeta.instance_id == o.instance_id
            assert ymeta.typename == "vineyard::Tensor<double>"
            assert p.get_name("from-ours") == yid

            # A global object over both.
            g = vineyard.ObjectMeta()
            g["typename"] = "vineyard::Pair"
            g.set_global(True)
            g.add_member("first_", xid)
            g.add_member("second_", yid)
            gid = o.create_metadata(g).id
            o.persist(gid)
            wait_for(lambda: p.exists(gid), 10, "the published instance sees the global one")
            pg = p.get_meta(gid)
            assert pg.isglobal
            assert pg["first_"].instance_id == p.instance_id
            assert pg["second_"].instance_id == o.instance_id

            # A deep delete on ours takes the members along, theirs included.
            o.delete(gid)  # deep by default
            assert not o.exists(xid) and not o.exists(yid)
            wait_for(lambda: not p.exists(gid) and not p.exists(xid), 10,
                     "deleted on their side too")
            assert p.status.memory_usage == 0, "their blob is freed"
            p.close()
            o.close()
    finally:
        theirs.close()
