"""Global objects and Dask over a vineyard cluster: two vineyardd instances on one etcd,
a real dask.distributed cluster (a `dask scheduler` and one `dask worker` per instance,
each worker told its instance by VINEYARD_IPC_SOCKET), started once for the module.

- GlobalTensor / GlobalDataFrame: round trips over IPC (the local chunks) and RPC (the
  whole value, gathered from the owners), the published 0.24.2 client reading ours and
  ours reading its, a missing chunk, wrong types;
- Dask: a dask.array sum and a dask.dataframe groupby-aggregate through vineyard equal
  numpy's and pandas', each chunk put on the instance of the worker holding it and read
  by a worker next to its instance; the global object read from the other instance;
- the same across hosts (network namespaces; root only), each worker in the namespace of
  its instance.

Needs etcd (Debian etcd-server) and dask[dataframe,distributed]; skipped otherwise.
Run: PYTHONPATH=python python3 -m pytest -q tests/python/test_dask.py
"""

import json
import os
import sys

import numpy as np
import pandas as pd
import pytest

import vineyard
from vineyard import _C
from vineyard.data.dataframe import make_global_dataframe
from vineyard.data.tensor import make_global_tensor

da = pytest.importorskip("dask.array")
dd = pytest.importorskip("dask.dataframe")
pytest.importorskip("distributed")
from vineyard.contrib.dask.dask import dask_context  # noqa: E402

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, TESTS)

import cluster_harness as ch  # noqa: E402
from conftest import vineyardd_binary  # noqa: E402
from dask_harness import DaskOnVineyard  # noqa: E402

pytestmark = pytest.mark.skipif(not os.path.exists(ch.ETCD),
                                reason=f"no etcd at {ch.ETCD} (apt-get install etcd-server)")


@pytest.fixture(scope="module")
def cluster():
    with DaskOnVineyard(vineyardd_binary()) as c:
        yield c


def chunk_instances(client, global_id):
    meta = client.get_meta(global_id)
    return [meta.member(f"partitions_-{i}").instance_id
            for i in range(int(meta["partitions_-size"]))]


# --------------------------------------------------------------------- global objects

def test_a_global_tensor_of_chunks_on_two_instances(cluster):
    a, b = cluster.clients
    whole = np.arange(48, dtype=np.float64).reshape(6, 8)
    owners = [a, b, b, a]  # a 2x2 grid of 3x4 chunks
    ids = []
    for k, owner in enumerate(owners):
        i, j = divmod(k, 2)
        oid = owner.put(whole[3 * i:3 * i + 3, 4 * j:4 * j + 4], partition_index=[i, j])
        owner.persist(oid)
        ids.append(oid)
    meta = make_global_tensor(a, ids)
    assert meta.typename == "vineyard::GlobalTensor" and meta.isglobal and meta.ispersist
    assert json.loads(meta["shape_"]) == [6, 8]
    assert json.loads(meta["partition_shape_"]) == [2, 2]
    assert meta["partitions_-size"] == 4
    b.sync_meta()
    local_a = a.get(meta.id)  # a's chunks only, in partition order
    assert isinstance(local_a, list) and len(local_a) == 2
    assert np.array_equal(local_a[0], whole[:3, :4]) and np.array_equal(local_a[1], whole[3:, 4:])
    local_b = b.get(meta.id)
    assert [c.shape for c in local_b] == [(3, 4), (3, 4)]
    assert np.array_equal(local_b[0], whole[:3, 4:])
    for rpc in cluster.rpc:  # an RPC client fetches every chunk from its owner
        assert np.array_equal(rpc.get(meta.id), whole)
    assert np.array_equal(b.get(meta.id, fetch=True), whole), "copied whole to b"


def test_a_global_dataframe_of_chunks_on_two_instances(cluster):
    a, b = cluster.clients
    parts = [pd.DataFrame({"x": np.arange(3) + 10 * k, "s": [f"r{k}{i}" for i in range(3)]},
                          index=np.arange(3) + 3 * k) for k in range(3)]
    ids = []
    for part, owner in zip(parts, (a, b, a)):
        ids.append(owner.put(part))
    b.persist(ids[1])  # a's own chunks are persisted by make_global_dataframe
    meta = make_global_dataframe(a, ids)
    assert meta.typename == "vineyard::GlobalDataFrame"
    assert meta["partition_shape_row_"] == 3 and meta["partition_shape_column_"] == 1
    assert chunk_instances(a, meta.id) == [a.instance_id, b.instance_id, a.instance_id]
    local = a.get(meta.id)
    assert len(local) == 2
    pd.testing.assert_frame_equal(local[1], parts[2])
    pd.testing.assert_frame_equal(cluster.rpc[1].get(meta.id), pd.concat(parts))


def test_the_published_client_reads_ours_and_ours_reads_theirs(cluster, run_published):
    a, b = cluster.clients
    t0 = a.put(np.arange(4.0))
    t1 = b.put(np.arange(4.0, 10.0))
    b.persist(t1)
    f0 = a.put(pd.DataFrame({"v": [1.0, 2.0]}))
    f1 = b.put(pd.DataFrame({"v": [3.0]}))
    b.persist(f1)
    gt = make_global_tensor(a, [t0, t1]).id
    gf = make_global_dataframe(a, [f0, f1]).id
    out = run_published(f"""
    import json, sys, numpy as np, pandas as pd, vineyard
    from vineyard.data.dataframe import make_global_dataframe
    from vineyard.data.tensor import make_global_tensor
    a, b = vineyard.connect(sys.argv[1]), vineyard.connect({b.ipc_socket!r})
    gt, gf = vineyard.ObjectID({repr(gt)!r}), vineyard.ObjectID({repr(gf)!r})
    m = a.get_meta(gt)
    mine = [m.typename, m['shape_'], m['partition_shape_'], m['partitions_-size'],
            [m.get_member('partitions_-%d' % i).meta.instance_id for i in range(2)],
            a.get(m.get_member('partitions_-0').id).tolist()]
    frames = b.get(gf)  # its resolver: a list of chunks, b's among them
    mine += [[f['v'].tolist() for f in frames], a.get_meta(gf)['partition_shape_row_']]
    x0 = a.put(np.ones((2, 3)), partition_index=[0, 0]); a.persist(x0)
    x1 = b.put(np.zeros((2, 3)), partition_index=[1, 0]); b.persist(x1)
    tt = make_global_tensor(a, [x0, x1], shape=(4, 3), partition_shape=(2, 1))
    y0 = a.put(pd.DataFrame({{'k': ['p', 'q'], 'n': [1, 2]}})); a.persist(y0)
    y1 = b.put(pd.DataFrame({{'k': ['r'], 'n': [3]}})); b.persist(y1)
    tf = make_global_dataframe(a, [y0, y1])
    print(json.dumps([mine, repr(tt.id), repr(tf.id)]))
    """, a.ipc_socket, needs=("pandas",))
    mine, tt, tf = out
    assert mine[:5] == ["vineyard::GlobalTensor", "[10]", "[2]", 2,
                        [a.instance_id, b.instance_id]]
    assert mine[5] == [0.0, 1.0, 2.0, 3.0]
    assert [3.0] in mine[6] and mine[7] == 2
    rpc = cluster.rpc[0]
    rpc.sync_meta()
    theirs = rpc.get(_C.ObjectID(tt))
    assert np.array_equal(theirs, np.vstack([np.ones((2, 3)), np.zeros((2, 3))]))
    assert [x.shape for x in b.get(_C.ObjectID(tt))] == [(2, 3)]
    frame = rpc.get(_C.ObjectID(tf))
    assert frame["k"].tolist() == ["p", "q", "r"] and frame["n"].tolist() == [1, 2, 3]


def test_a_global_object_missing_a_chunk_is_a_clear_error(cluster):
    a, _ = cluster.clients
    chunk = a.put(np.ones(3))
    a.persist(chunk)
    g = _C.ObjectMeta()
    g.typename = "vineyard::GlobalTensor"
    g.set_global(True)
    g["partitions_-size"] = 2  # says 2, holds 1
    g.add_member("partitions_-0", chunk)
    g = a.create_metadata(g)
    with pytest.raises(ValueError, match="chunk 1 of 2 is missing"):
        a.get(g.id)
    with pytest.raises(ValueError, match="chunk 1 of 2 is missing"):
        cluster.rpc[0].get(g.id)
    assert np.array_equal(a.get(chunk), np.ones(3)), "the chunk itself is intact"


def test_make_global_refuses_what_is_not_chunks(cluster):
    a, _ = cluster.clients
    frame = a.put(pd.DataFrame({"x": [1]}))
    tensor = a.put(np.ones(2))
    with pytest.raises(TypeError, match="chunk 0 is a ndarray"):
        make_global_tensor(a, [np.ones(2)])
    with pytest.raises(TypeError, match="chunk 1 .* is a vineyard::DataFrame, not a vineyard::Tensor"):
        make_global_tensor(a, [tensor, frame])
    with pytest.raises(TypeError, match="is a vineyard::Tensor<double>, not a vineyard::DataFrame"):
        make_global_dataframe(a, [tensor])
    with pytest.raises(TypeError, match="a list of the chunks"):
        make_global_dataframe(a, "o0123")
    with pytest.raises(ValueError, match="no chunks"):
        make_global_tensor(a, [])
    with pytest.raises(vineyard.ObjectNotExistsException, match="chunk 0 .* is not known"):
        make_global_tensor(a, [_C.ObjectID(0x0123456789abc)])
    with pytest.raises(ValueError, match="do not fill"):
        t = a.put(np.ones(2), partition_index=[1])
        make_global_tensor(a, [t])


# --------------------------------------------------------------------- Dask

def test_a_dask_array_through_vineyard(cluster):
    a, b = cluster.clients
    x = np.arange(64 * 48, dtype=np.int64).reshape(64, 48)
    darr = da.from_array(x, chunks=(16, 24))
    with dask_context():
        gid = a.put(darr, dask_scheduler=cluster.scheduler)
        meta = a.get_meta(gid)
        assert meta.typename == "vineyard::GlobalTensor" and meta["partitions_-size"] == 8
        assert json.loads(meta["shape_"]) == [64, 48]
        assert json.loads(meta["partition_shape_"]) == [4, 2]
        back = b.get(gid, dask_scheduler=cluster.scheduler)
        assert isinstance(back, da.Array) and back.chunks == darr.chunks
        assert int(back.sum().compute()) == int(x.sum())
        assert np.array_equal(back.compute(), x)
    assert np.array_equal(cluster.rpc[1].get(gid), x), "plain get outside the context"


def test_a_dask_dataframe_groupby_puts_and_reads_next_to_each_worker(cluster):
    a, b = cluster.clients
    rng = np.random.default_rng(7)
    parts = [pd.DataFrame({"key": rng.integers(0, 9, 500), "value": rng.random(500)},
                          index=np.arange(500) + 500 * k) for k in range(4)]
    whole = pd.concat(parts)
    # Partition k is held by the worker of instance k % 2, where it must be put.
    holders = [cluster.worker_of[cluster.clients[k % 2].instance_id] for k in range(4)]
    futures = [cluster.dask.scatter(p, workers=[w]) for p, w in zip(parts, holders)]
    ddf = dd.from_delayed(futures, meta=parts[0].iloc[:0], verify_meta=False)
    with dask_context():
        gid = a.put(ddf, dask_scheduler=cluster.scheduler)
        assert chunk_instances(a, gid) == [cluster.clients[k % 2].instance_id for k in range(4)]
        back = a.get(gid, dask_scheduler=cluster.scheduler)
        assert isinstance(back, dd.DataFrame) and back.npartitions == 4
        got = back.groupby("key").agg({"value": ["sum", "count", "max"]}).compute()
    expected = whole.groupby("key").agg({"value": ["sum", "count", "max"]})
    pd.testing.assert_frame_equal(got.sort_index(), expected, check_exact=False)
    # The read tasks ran, and their results stay, on the workers next to the chunks.
    def read_tasks_by_worker(dask_scheduler):  # on the scheduler (pickled by value)
        return {str(key): [w.address for w in task.who_has]
                for key, task in dask_scheduler.tasks.items()
                if str(key).startswith("vineyard-")}

    placed = cluster.dask.run_on_scheduler(read_tasks_by_worker)
    owners = dict(zip([repr(a.get_meta(gid).member(f"partitions_-{i}").id) for i in range(4)],
                      chunk_instances(a, gid)))
    checked = 0
    for key, workers in placed.items():
        chunk = key.split("-")[1]
        if chunk in owners:
            assert workers == [cluster.worker_of[owners[chunk]]], key
            checked += 1
    assert checked == 4
    pd.testing.assert_frame_equal(cluster.rpc[1].get(gid), whole)  # from the other instance


def test_a_chunk_on_an_instance_without_a_worker_is_fetched_by_another(cluster):
    a, b = cluster.clients
    frames = [pd.DataFrame({"v": [1.0, 2.0]}), pd.DataFrame({"v": [5.0]})]
    ids = [a.put(frames[0]), b.put(frames[1])]
    b.persist(ids[1])
    gid = make_global_dataframe(a, ids).id
    only_a = {a.instance_id: cluster.worker_of[a.instance_id]}
    with dask_context():
        back = a.get(gid, dask_scheduler=cluster.scheduler, dask_workers=only_a)
        assert back["v"].sum().compute() == 8.0


def test_a_put_that_fails_on_a_worker_leaves_no_chunk(cluster):
    a, _ = cluster.clients
    before = {m.id for m in a.list_metadatas("vineyard::Tensor*", limit=10000)}

    def boom(block):
        if block.size and block[0] == 8:
            raise RuntimeError("boom in block 1")
        return block

    darr = da.arange(16, chunks=8).map_blocks(boom, dtype=np.int64)
    with dask_context(), pytest.raises(RuntimeError, match="boom in block 1"):
        a.put(darr, dask_scheduler=cluster.scheduler)
    a.sync_meta()
    after = {m.id for m in a.list_metadatas("vineyard::Tensor*", limit=10000)}
    assert after == before


# --------------------------------------------------------------------- across hosts

@pytest.mark.skipif(ch.require_root() is not None, reason=ch.require_root() or "")
def test_dask_across_hosts_each_worker_in_its_instances_namespace():
    with ch.Netns(2) as net:
        with DaskOnVineyard(vineyardd_binary(), net=net) as cluster:
            a, b = cluster.clients
            df = pd.DataFrame({"key": np.arange(2000) % 13, "value": np.arange(2000.0)})
            with dask_context():
                gid = a.put(dd.from_pandas(df, npartitions=4), dask_scheduler=cluster.scheduler)
                instances = chunk_instances(a, gid)
                assert set(instances) <= {a.instance_id, b.instance_id}
                back = b.get(gid, dask_scheduler=cluster.scheduler)
                got = back.groupby("key")["value"].mean().compute()
            pd.testing.assert_series_equal(got.sort_index(), df.groupby("key")["value"].mean())
            pd.testing.assert_frame_equal(cluster.rpc[0].get(gid), df)
