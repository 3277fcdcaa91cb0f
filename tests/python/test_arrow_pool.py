"""vineyard._arrow_pool: pyarrow decoding into blobs of a session (a BlobArena), and a put
of what it decoded sealing those blobs instead of copying them. What comes back must equal
what pyarrow read; a put that fails, a full server, and a pool or client that goes first
must each leave the server's memory as it was."""
import gc

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import vineyard
from vineyard import _arrow_pool

from conftest import Server

ROWS = 400_000  # 3.2 MB per int64 column


@pytest.fixture(scope="module")
def parquet(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("pool") / "t.parquet")
    rng = np.random.default_rng(3)
    pq.write_table(pa.table({"id": np.arange(ROWS), "x": rng.random(ROWS),
                             "k": rng.integers(0, 100, ROWS)}), path,
                   row_group_size=ROWS // 4)
    return path


def _read(path, pool):
    """The file as pyarrow reads it with ``pool`` as its default pool."""
    previous = pa.default_memory_pool()
    pa.set_memory_pool(pool.pool)
    try:
        return pq.read_table(path)
    finally:
        pa.set_memory_pool(previous)


def _blob_pool(client, min_size=64 << 10):
    arena = client._c.blob_arena()
    return arena, _arrow_pool.MemoryPool(arena.capsule(), min_size=min_size)


def test_a_table_decoded_into_blobs_is_put_without_a_copy(parquet):
    server = Server(size="256Mi")
    try:
        client = vineyard.connect(server.socket)
        baseline = client.status.memory_usage
        arena, pool = _blob_pool(client)
        table = _read(parquet, pool)
        assert pool.pool.backend_name == "vineyard"
        assert pool.shm_bytes >= 0.9 * table.nbytes  # the columns are blobs
        decoded = client.status.memory_usage
        oid = client.put(table)
        # sealed, not copied: the put adds metadata, not the columns again
        assert client.status.memory_usage - decoded < table.nbytes / 10
        expected = pq.read_table(parquet)
        assert client.get(oid).equals(expected)
        other = vineyard.connect(server.socket)  # another session reads the same bytes
        assert other.get(oid).equals(expected)
        other.close()
        del table
        gc.collect()
        assert arena.live == 0 and pool.shm_bytes == 0
        assert client.get(oid).equals(expected)  # the object holds its blobs
        client.delete(oid)
        assert client.status.memory_usage == baseline
        client.close()
    finally:
        server.stop()


def test_a_put_that_fails_gives_its_claims_back(parquet):
    server = Server("--meta_max_nodes=20", size="256Mi")
    try:
        client = vineyard.connect(server.socket)
        baseline = client.status.memory_usage
        arena, pool = _blob_pool(client)
        table = _read(parquet, pool)
        assert table.column("id").num_chunks == 4
        with pytest.raises(vineyard.InvalidException, match="nodes"):
            client.put(table)  # 4 batches of 3 columns: 42 nodes, over 20
        assert table.equals(pq.read_table(parquet))  # the buffers are still the table's
        one = table.slice(0, ROWS // 4).combine_chunks()  # a copy: not in the arena
        assert client.get(client.put(one)).equals(one)
        client.clear()
        del table, one
        gc.collect()
        assert arena.live == 0
        assert client.status.memory_usage == baseline
        client.close()
    finally:
        server.stop()


def test_a_full_server_leaves_the_decode_to_ordinary_memory(parquet):
    server = Server(size="4Mi")
    try:
        client = vineyard.connect(server.socket)
        baseline = client.status.memory_usage
        arena, pool = _blob_pool(client)
        table = _read(parquet, pool)
        assert pool.shm_bytes < table.nbytes  # what did not fit came from Arrow's own pool
        assert table.equals(pq.read_table(parquet))
        with pytest.raises(vineyard.NotEnoughMemoryException):
            client.put(table)
        del table
        gc.collect()
        assert arena.live == 0 and pool.bytes_allocated == 0
        assert client.status.memory_usage == baseline
        client.close()
    finally:
        server.stop()


def test_the_table_outlives_its_pool_arena_and_session(parquet):
    server = Server(size="256Mi")
    try:
        client = vineyard.connect(server.socket)
        arena, pool = _blob_pool(client)
        table = _read(parquet, pool)
        oid = client.put(table.slice(0, 10).combine_chunks())
        del pool, arena
        gc.collect()
        client.close()  # its unsealed blobs are the server's to drop; the mapping stays
        assert table.equals(pq.read_table(parquet))
        del table
        gc.collect()
        again = vineyard.connect(server.socket)
        assert again.get(oid).num_rows == 10
        again.delete(oid)
        assert again.status.memory_usage == 0
        again.close()
    finally:
        server.stop()
