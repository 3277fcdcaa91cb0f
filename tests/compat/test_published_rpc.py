"""The published vineyard 0.24.2 RPC client (vineyard.connect(host, port))
against our vineyardd's TCP endpoint: remote blobs, metadata, and put/get of
numpy, pandas and pyarrow values, with and without zstd on the wire; objects
cross between the RPC and the IPC client both ways."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import vineyard
from vineyard import RemoteBlobBuilder


@pytest.fixture
def rpc(rpc_server):
    _, port = rpc_server
    c = vineyard.connect("127.0.0.1", port)
    yield c
    c.close()


@pytest.fixture
def ipc(rpc_server):
    sock, _ = rpc_server
    c = vineyard.connect(sock)
    yield c
    c.close()


def test_connect_gives_an_rpc_client(rpc, ipc):
    assert rpc.is_rpc and not rpc.is_ipc
    assert rpc.remote_instance_id == ipc.instance_id
    assert rpc.status.instance_id == ipc.instance_id
    assert rpc.status.rpc_connections >= 1


@pytest.mark.parametrize("size", [0, 1, 4099, 8 << 20])
def test_remote_blob_round_trip(rpc, ipc, size):
    payload = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes()
    builder = RemoteBlobBuilder(size)
    if size:
        builder.copy(0, payload)
    meta = rpc.create_remote_blob(builder)
    assert meta.typename == "vineyard::Blob" and meta.nbytes == size
    blob = rpc.get_remote_blob(meta.id)
    assert blob.size == size and bytes(memoryview(blob)) == payload
    if size:  # the same bytes, mapped over IPC
        assert bytes(memoryview(ipc.get_blob(meta.id))) == payload


def test_remote_blobs_many_at_once(rpc):
    payloads = [bytes([i]) * (1000 * (i + 1)) for i in range(5)]
    builders = []
    for p in payloads:
        b = RemoteBlobBuilder(len(p))
        b.copy(0, p)
        builders.append(b)
    metas = rpc.create_remote_blob(builders)
    blobs = rpc.get_remote_blobs([m.id for m in metas])
    assert [bytes(memoryview(b)) for b in blobs] == payloads


def test_unknown_remote_blob_is_an_error(rpc):
    with pytest.raises(Exception):
        rpc.get_remote_blob(vineyard.ObjectID("o8000000000001234"))
    assert rpc.status is not None  # the session goes on


def test_ndarray_put_over_rpc_read_over_ipc_and_back(rpc, ipc):
    arr = np.random.default_rng(1).random((1000, 37))
    oid = rpc.put(arr)
    np.testing.assert_array_equal(rpc.get(oid), arr)
    np.testing.assert_array_equal(ipc.get(oid), arr)
    back = ipc.put(arr * 2)
    np.testing.assert_array_equal(rpc.get(back), arr * 2)


def test_dataframe_and_table_over_rpc(rpc, ipc):
    df = pd.DataFrame({"i": np.arange(1000), "f": np.linspace(0, 1, 1000),
                       "s": [f"row {i}" for i in range(1000)]})
    pd.testing.assert_frame_equal(rpc.get(rpc.put(df)), df)
    pd.testing.assert_frame_equal(ipc.get(rpc.put(df)), df)
    # (the published layout stores strings as large_string)
    table = pa.table({"x": pa.array(np.arange(500)),
                      "y": pa.array([str(i) for i in range(500)], pa.large_string())})
    assert rpc.get(rpc.put(table)).equals(table)
    assert rpc.get(ipc.put(table)).equals(table)


def test_metadata_names_and_delete_over_rpc(rpc, ipc):
    meta = vineyard.ObjectMeta()
    meta["typename"] = "compat::Plain"
    meta["answer"] = 42
    meta = rpc.create_metadata(meta)
    assert rpc.exists(meta.id)
    assert rpc.get_meta(meta.id)["answer"] == 42
    rpc.persist(meta.id)
    rpc.put_name(meta.id, "compat-plain")
    assert rpc.get_name("compat-plain") == meta.id
    assert ipc.get_name("compat-plain") == meta.id
    assert "compat-plain" in rpc.list_names("compat-*")
    assert any(m.id == meta.id for m in rpc.list_metadatas("compat::*"))
    rpc.drop_name("compat-plain")
    rpc.delete(meta.id)
    assert not ipc.exists(meta.id)
