"""vineyard.llm, the KV cache: real vineyardd, real processes, real files.

One process updates and another queries and gets identical bytes; eviction;
the shared-memory and file tiers, alone and together; two instances of a
cluster (etcd); bad input and faults (a writer SIGKILLed mid-update, a full
server, corrupted and truncated chunk files).

The tensors of token t at layer j are filled with a pattern of (t, j, K|V), so
any process can check what it reads without being told what was written.
"""

import glob
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from conftest import ROOT, Server  # noqa: E402

import vineyard  # noqa: E402
from vineyard.llm import FileCacheConfig  # noqa: E402
from vineyard.llm import FilesystemType  # noqa: E402
from vineyard.llm import KVCache  # noqa: E402
from vineyard.llm import KVTensor  # noqa: E402
from vineyard.llm import VineyardCacheConfig  # noqa: E402

LAYER = 2
ELEMS = 8  # float32 per tensor
NBYTES = ELEMS * 4
THIS = os.path.abspath(__file__)


def pattern(token, layer, side):
    base = float(token * 100 + layer * 2 + side)
    return np.arange(ELEMS, dtype=np.float32) + base


def tensors_for(tokens, layer=LAYER):
    """(arrays kept alive, kv_cache_list) for `tokens`."""
    arrays, kv = [], []
    for t in tokens:
        row = []
        for j in range(layer):
            k, v = pattern(t, j, 0), pattern(t, j, 1)
            arrays += [k, v]
            row.append((KVTensor(k.ctypes.data, k.nbytes), KVTensor(v.ctypes.data, v.nbytes)))
        kv.append(row)
    return arrays, kv


def empty_list(n, layer=LAYER):
    return [[(KVTensor(0, 0), KVTensor(0, 0)) for _ in range(layer)] for _ in range(n)]


def buffers(n, layer=LAYER):
    arrays = [[(np.zeros(ELEMS, np.float32), np.zeros(ELEMS, np.float32)) for _ in range(layer)]
              for _ in range(n)]
    kv = [[(KVTensor(k.ctypes.data, k.nbytes), KVTensor(v.ctypes.data, v.nbytes)) for k, v in row]
          for row in arrays]
    return arrays, kv


def check_zero_copy(tokens, kv, matched):
    for i in range(matched):
        for j in range(LAYER):
            k, v = kv[i][j]
            assert k.cached and v.cached
            assert np.array_equal(np.frombuffer(k, dtype=np.float32), pattern(tokens[i], j, 0))
            assert np.array_equal(np.frombuffer(v, dtype=np.float32), pattern(tokens[i], j, 1))


def check_copied(tokens, arrays, matched):
    for i in range(matched):
        for j in range(LAYER):
            assert np.array_equal(arrays[i][j][0], pattern(tokens[i], j, 0))
            assert np.array_equal(arrays[i][j][1], pattern(tokens[i], j, 1))


def run_child(*args, timeout=60):
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"))
    return subprocess.run([sys.executable, THIS, *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def server():
    s = Server(size="256Mi")
    yield s
    s.stop()
    for seg in glob.glob("/dev/shm/vineyard-llm-*"):
        # Our segments only: those of caches on this server's socket were made
        # by this module; an index outlives its server otherwise.
        if _owned_segments.get(seg):
            os.unlink(seg)


_owned_segments = {}


def memory_cache(server, name, capacity=4096, block_size=4, layer=LAYER, **kw):
    cache = KVCache(VineyardCacheConfig(socket=server.socket, block_size=block_size,
                                        llm_cache_object_name=name),
                    tensor_nbytes=NBYTES, cache_capacity=capacity, layer=layer, **kw)
    _owned_segments["/dev/shm" + cache.index_name] = True
    return cache


def file_cache(root, chunk_size=4, **kw):
    config = FileCacheConfig(chunk_size=chunk_size, hash_chunk_size=2, root=str(root),
                             **{k: kw.pop(k) for k in ("gc_interval", "ttl") if k in kw})
    return KVCache(config, tensor_nbytes=NBYTES, cache_capacity=4096, layer=LAYER, **kw)


def assert_serving(server):
    client = vineyard.connect(server.socket)
    oid = client.put(np.arange(4))
    assert np.array_equal(client.get(oid), np.arange(4))
    client.close()


# --- the shared-memory tier ------------------------------------------------------------


def test_one_process_updates_another_queries_identical_bytes(server):
    tokens = list(range(1, 23))  # 5 full blocks of 4 and a tail of 2
    reader = memory_cache(server, "xproc")  # opened before anything is written
    assert reader.query(None, tokens, empty_list(len(tokens))) == 0

    done = run_child("update", server.socket, "xproc", ",".join(map(str, tokens)))
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(len(tokens)), reader.index_name]

    kv = empty_list(len(tokens))
    assert reader.query(None, tokens, kv) == len(tokens)  # no sync step: seen at once
    check_zero_copy(tokens, kv, len(tokens))
    # The same list again: tensors that point into the cache are read-only, so
    # they are pointed again, never written into.
    assert reader.query(None, tokens, kv) == len(tokens)
    check_zero_copy(tokens, kv, len(tokens))

    arrays, kv = buffers(len(tokens))
    assert reader.batched_query(tokens, kv) == len(tokens)
    check_copied(tokens, arrays, len(tokens))
    assert not kv[0][0][0].cached  # copied into the caller's buffer

    # And a third process reads it too, from its own mapping.
    seen = run_child("query", server.socket, "xproc", ",".join(map(str, tokens)))
    assert seen.returncode == 0, seen.stderr
    assert seen.stdout.strip() == str(len(tokens))


def test_a_zero_copy_query_fills_the_callers_tensors_or_new_ones_where_shared(server):
    cache = memory_cache(server, "inplace")
    tokens = list(range(500, 508))
    arrays, kv = tensors_for(tokens)
    assert cache.update(None, tokens, kv) == 8

    # Distinct objects take the addresses themselves: no object made per tensor.
    kv = empty_list(len(tokens))
    first = kv[3][1][0]
    pairs = [list(row) for row in kv]
    assert cache.query(None, tokens, kv) == 8
    check_zero_copy(tokens, kv, 8)
    assert kv[3][1][0] is first and first.cached
    assert all(kv[i][j] is pairs[i][j] for i in range(8) for j in range(LAYER))
    with pytest.raises(TypeError):
        memoryview(first).cast("B")[0] = 1  # the cache's memory is read-only
    # A tuple of tuples (not lists) is filled the same way.
    frozen = tuple(tuple((KVTensor(0, 0), KVTensor(0, 0)) for _ in range(LAYER))
                   for _ in tokens)
    assert cache.query(None, tokens, frozen) == 8
    check_zero_copy(tokens, frozen, 8)

    # One (K, V) standing in many places ([(k, v)] * layers, in every token's
    # list): each place gets its own new (K, V), so no place reads another's.
    row = [(KVTensor(0, 0), KVTensor(0, 0))] * LAYER
    shared = [list(row) for _ in tokens]
    assert cache.query(None, tokens, shared) == 8
    check_zero_copy(tokens, shared, 8)
    assert not row[0][0].cached  # the shared objects themselves are left alone
    cache.close()


def test_threads_of_one_process_share_a_cache(server):
    import threading

    cache = memory_cache(server, "threads", capacity=256)
    base = [8000 + i for i in range(16)]
    arrays, kv = tensors_for(base)
    assert cache.update(None, base, kv) == 16
    errors = []

    def reader():
        try:
            for _ in range(200):
                out = empty_list(16)
                matched = cache.query(None, base, out)
                check_zero_copy(base, out, matched)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    def writer():
        try:
            for s in range(100):  # evicts, base included at times
                seq = [9000 + 100 * s + i for i in range(12)]
                arrays, kv = tensors_for(seq)
                cache.update(None, seq, kv)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=reader) for _ in range(3)] + [threading.Thread(target=writer)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    assert_serving(server)


def test_prefixes_tails_and_divergence(server):
    cache = memory_cache(server, "prefix")
    seq = list(range(100, 111))  # 11 tokens: blocks of 4, 4, 3
    arrays, kv = tensors_for(seq)
    assert cache.update(None, seq, kv) == len(seq)

    # A longer sequence matches the cached part only.
    longer = seq + [999, 998]
    kv = empty_list(len(longer))
    assert cache.query(None, longer, kv) == len(seq)
    check_zero_copy(longer, kv, len(seq))
    # Diverging inside the second block: the first block matches.
    diverged = seq[:6] + [5, 5, 5]
    assert cache.query(None, diverged, empty_list(len(diverged))) == 4
    # A query after a cached prefix counts the tokens after it.
    kv = empty_list(5)
    assert cache.query(seq[:3], seq[3:8], kv) == 5
    check_zero_copy(seq[3:8], kv, 5)
    # A prefix that is not cached matches nothing.
    assert cache.query([7, 7, 7, 7], seq[:4], empty_list(4)) == 0

    # update(prefix, tokens) extends a cached sequence, inside a block too.
    more = [201, 202, 203, 204, 205]
    arrays2, kv2 = tensors_for(more)
    assert cache.update(seq, more, kv2) == len(more)
    whole = seq + more
    kv = empty_list(len(whole))
    assert cache.query(None, whole, kv) == len(whole)
    check_zero_copy(whole, kv, len(whole))
    # Extending a prefix the cache does not hold stores nothing.
    _, kv3 = tensors_for([1, 2])
    assert cache.update([42, 43, 44], [1, 2], kv3) == 0


def test_eviction_is_lru_and_spares_blocks_being_read(server):
    before = _count_blocks(server)
    cache = memory_cache(server, "evict", capacity=16)  # 4 blocks of 4 tokens
    first = [1000 + i for i in range(8)]
    arrays, kv = tensors_for(first)
    assert cache.update(None, first, kv) == 8
    held = empty_list(8)
    assert cache.query(None, first, held) == 8  # zero-copy views we keep

    # Fill far beyond the capacity: the first sequence is evicted...
    for s in range(10):
        seq = [2000 + 100 * s + i for i in range(8)]
        arrays, kv = tensors_for(seq)
        assert cache.update(None, seq, kv) == 8
    assert cache.query(None, first, empty_list(8)) == 0
    last = [2000 + 900 + i for i in range(8)]
    assert cache.query(None, last, empty_list(8)) == 8
    # ...but the bytes we hold were not handed to the blocks written since.
    check_zero_copy(first, held, 8)

    # Touching a sequence keeps it: the least recently used one goes instead.
    a = [3000 + i for i in range(8)]
    b = [4000 + i for i in range(8)]
    for seq in (a, b):
        arrays, kv = tensors_for(seq)
        cache.update(None, seq, kv)
    assert cache.query(None, a, empty_list(8)) == 8  # a is now the most recent
    c = [5000 + i for i in range(8)]
    arrays, kv = tensors_for(c)
    cache.update(None, c, kv)
    assert cache.query(None, a, empty_list(8)) == 8
    assert cache.query(None, b, empty_list(8)) == 0
    del held
    # Evicted blocks are deleted from the server, not just forgotten.
    assert _count_blocks(server) == before + 4

    # An update larger than the whole capacity keeps the start of its sequence.
    long = [7000 + i for i in range(24)]
    arrays, kv = tensors_for(long)
    assert cache.update(None, long, kv) == 16
    kv = empty_list(24)
    assert cache.query(None, long, kv) == 16
    check_zero_copy(long, kv, 16)
    assert_serving(server)


def _count_blocks(server):
    client = vineyard.connect(server.socket)
    try:
        return len(client.list_metadatas("vineyard::llm::Block", limit=100000))
    finally:
        client.close()


def test_a_full_server_evicts_instead_of_failing():
    small = Server(size="64Mi")
    try:
        big = 64 * 1024  # 256 KiB per token over 2 layers: 64 MiB hold ~250 tokens
        cache = KVCache(VineyardCacheConfig(socket=small.socket, block_size=4,
                                            llm_cache_object_name="full"),
                        tensor_nbytes=big, cache_capacity=1 << 20, layer=LAYER)
        segment = "/dev/shm" + cache.index_name
        k = np.ones(big, np.uint8)
        row = [(KVTensor(k.ctypes.data, big), KVTensor(k.ctypes.data, big))] * LAYER
        for s in range(50):  # 400 tokens, 100 MiB
            seq = [s * 100 + i for i in range(8)]
            assert cache.update(None, seq, [row] * 8) == 8
        last = [49 * 100 + i for i in range(8)]
        assert cache.query(None, last, [[(KVTensor(0, 0), KVTensor(0, 0))] * LAYER] * 8) == 8
        assert cache.query(None, list(range(8)), empty_list(8)) == 0  # evicted
        cache.close()
        assert_serving(small)
    finally:
        small.stop()
        if os.path.exists(segment):
            os.unlink(segment)


def test_bad_input_is_refused_and_the_server_keeps_serving(server, tmp_path):
    cache = memory_cache(server, "bad")
    tokens = [1, 2, 3]
    arrays, kv = tensors_for(tokens)
    with pytest.raises(ValueError, match="entries for 3 tokens"):
        cache.update(None, tokens, kv[:2])
    with pytest.raises(ValueError, match="entries for 3 tokens"):
        cache.query(None, tokens, empty_list(2))
    short = np.zeros(ELEMS // 2, np.float32)
    wrong = [[(KVTensor(short.ctypes.data, short.nbytes), KVTensor(short.ctypes.data, short.nbytes))
              for _ in range(LAYER)] for _ in tokens]
    with pytest.raises(ValueError, match="bytes"):
        cache.update(None, tokens, wrong)
    with pytest.raises(ValueError, match="bytes"):
        cache.query(None, tokens, wrong)
    with pytest.raises(ValueError, match="layers"):
        cache.update(None, tokens, [row[:1] for row in kv])
    with pytest.raises(ValueError, match="null address"):
        cache.update(None, tokens, empty_list(3))
    with pytest.raises(TypeError):
        cache.update(None, tokens, [[(1, 2)] * LAYER] * 3)
    with pytest.raises(ValueError, match="cache_capacity"):
        memory_cache(server, "zero", capacity=0)
    with pytest.raises(ValueError, match="cache_config"):
        KVCache(None, tensor_nbytes=NBYTES, cache_capacity=10, layer=LAYER)
    # Another shape under the same cache name is refused, not mixed up.
    with pytest.raises(ValueError, match="created with layer=2"):
        memory_cache(server, "bad", layer=3)
    with pytest.raises(ConnectionError):
        KVCache(VineyardCacheConfig(socket=str(tmp_path / "none.sock")),
                tensor_nbytes=NBYTES, cache_capacity=10, layer=LAYER)
    # The file tier needs whole chunks before the tokens.
    files = file_cache(tmp_path / "f")
    with pytest.raises(ValueError, match="multiple of chunk_size"):
        files.update([1, 2, 3], [4], tensors_for([4])[1])
    # Nothing above stored anything, and the server serves.
    assert cache.query(None, tokens, empty_list(3)) == 0
    assert cache.update(None, tokens, kv) == 3
    # A forked child must make its own cache (the connection is the parent's).
    pid = os.fork()
    if pid == 0:
        try:
            cache.query(None, tokens, empty_list(3))
            os._exit(1)
        except ValueError as e:
            cache.close()  # leaves the parent's connection alone
            os._exit(0 if "after fork" in str(e) else 2)
        except BaseException:  # noqa: BLE001
            os._exit(3)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert cache.query(None, tokens, empty_list(3)) == 3  # the parent's still works
    cache.close()
    with pytest.raises(ValueError, match="closed"):
        cache.query(None, tokens, empty_list(3))
    assert_serving(server)


def test_a_writer_killed_mid_update_leaves_no_half_written_block(server):
    name = "killed"
    writer = subprocess.Popen(
        [sys.executable, THIS, "flood", server.socket, name],
        env=dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python")),
        stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "writing"
    time.sleep(0.5)
    writer.send_signal(signal.SIGKILL)
    writer.wait(timeout=10)

    cache = memory_cache(server, name, capacity=1 << 16)
    cache.collect_garbage(min_orphan_age=0)  # what the writer left outside the index
    found = 0
    for s in range(400):
        seq = [s * 1000 + i for i in range(64)]
        kv = empty_list(len(seq))
        matched = cache.query(None, seq, kv)
        check_zero_copy(seq, kv, matched)  # whatever is visible is whole and right
        found += matched > 0
    assert found > 0
    assert_serving(server)


def test_blocks_left_outside_the_index_are_collected(server):
    """What a writer killed between its put and the index leaves (a Block object no
    index entry names) goes with collect_garbage once old enough; indexed blocks stay."""
    cache = memory_cache(server, "orphans")
    tokens = list(range(40, 48))
    arrays, kv = tensors_for(tokens)
    assert cache.update(None, tokens, kv) == 8

    client = vineyard.connect(server.socket)
    made = []
    for created in (0, int(time.time())):  # long ago, and just now
        blob = client.create_blob(64).seal(client)
        meta = vineyard.ObjectMeta()
        meta.typename = "vineyard::llm::Block"
        meta["key"] = "%032x" % (12345 + created)
        meta["ntokens"] = 1
        meta["index"] = cache.index_name
        meta["created"] = created
        meta.add_member("buffer_", blob)
        made.append(client.create_metadata(meta).id)
    old, young = made
    assert cache.collect_garbage(min_orphan_age=60) == 1
    assert not client.exists(old) and client.exists(young)
    assert cache.query(None, tokens, empty_list(8)) == 8  # indexed blocks stay
    assert cache.collect_garbage(min_orphan_age=0) == 1
    assert not client.exists(young)
    assert cache.query(None, tokens, empty_list(8)) == 8
    client.close()


# --- the file tier ------------------------------------------------------------------------


def test_files_one_process_writes_another_reads(server, tmp_path):
    root = tmp_path / "chunks"
    tokens = list(range(50, 62))  # 3 chunks of 4
    done = run_child("file-update", str(root), ",".join(map(str, tokens)))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "12"

    chunks = glob.glob(str(root / "*" / "*" / "*.kv"))
    assert len(chunks) == 3
    for path in chunks:  # root/ab/cd/abcd....kv
        name = os.path.basename(path)
        assert len(name) == 35
        assert path.endswith(os.path.join(name[:2], name[2:4], name))
    assert os.listdir(root / ".tmp") == []

    cache = file_cache(root)
    arrays, kv = buffers(len(tokens))
    assert cache.query(None, tokens, kv) == len(tokens)
    check_copied(tokens, arrays, len(tokens))
    kv = empty_list(8)
    assert cache.query(tokens[:4], tokens[4:], kv) == 8
    check_zero_copy(tokens[4:], kv, 8)


def vineyard_fs_cache(sock, root, chunk_size=4):
    cache = KVCache(FileCacheConfig(chunk_size=chunk_size, root=str(root), socket=sock,
                                    filesystem_type=FilesystemType.VINEYARD),
                    tensor_nbytes=NBYTES, cache_capacity=4096, layer=LAYER)
    _owned_segments["/dev/shm" + cache.index_name] = True
    return cache


def test_a_vineyard_filesystem_keeps_the_chunks_in_vineyardd(server, tmp_path, monkeypatch):
    root = tmp_path / "in-vineyard"
    tokens = list(range(300, 312))  # 3 chunks of 4
    writer = vineyard_fs_cache(server.socket, root)
    arrays, kv = tensors_for(tokens)
    assert writer.update(None, tokens, kv) == len(tokens)
    assert not root.exists()  # no file: the chunks are blobs of the server
    done = run_child("vineyard-fs-query", server.socket, str(root), ",".join(map(str, tokens)))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(len(tokens))
    other = vineyard_fs_cache(server.socket, tmp_path / "elsewhere")  # another root
    assert other.query(None, tokens, empty_list(len(tokens))) == 0
    with pytest.raises(ValueError, match=r"multiple of chunk_size \(4\)"):
        writer.update(tokens[:3], tokens[3:6], tensors_for(tokens[3:6])[1])
    monkeypatch.delenv("VINEYARD_IPC_SOCKET", raising=False)
    with pytest.raises(ValueError, match="socket"):
        vineyard_fs_cache("", root)
    with pytest.raises(ValueError, match="not both"):
        KVCache([VineyardCacheConfig(socket=server.socket),
                 FileCacheConfig(root=str(root), socket=server.socket,
                                 filesystem_type=FilesystemType.VINEYARD)],
                tensor_nbytes=NBYTES, cache_capacity=4096, layer=LAYER)
    assert_serving(server)


def test_corrupted_or_truncated_chunks_are_removed_never_returned(tmp_path):
    root = tmp_path / "bad"
    cache = file_cache(root)
    tokens = list(range(70, 82))
    arrays, kv = tensors_for(tokens)
    for i in range(0, 12, 4):  # one chunk per update, as a serving engine writes
        assert cache.update(tokens[:i], tokens[i:i + 4], kv[i:i + 4]) == 4
    paths = {os.path.getmtime(p): p for p in glob.glob(str(root / "*/*/*.kv"))}
    assert len(paths) == 3

    # Flip a payload byte of the third chunk: the first two still match.
    third = _chunk_path(cache, tokens, 3)
    data = bytearray(open(third, "rb").read())
    data[-1] ^= 0xFF
    open(third, "wb").write(bytes(data))
    assert cache.query(None, tokens, empty_list(12)) == 8
    assert not os.path.exists(third)

    # Truncate the second.
    second = _chunk_path(cache, tokens, 2)
    with open(second, "r+b") as f:
        f.truncate(os.path.getsize(second) // 2)
    arrays, out = buffers(12)
    assert cache.query(None, tokens, out) == 4
    check_copied(tokens, arrays, 4)
    assert not os.path.exists(second)


def _chunk_path(cache, tokens, nchunks):
    """The file of chunk `nchunks` of `tokens`: the one file a query of the first
    nchunks chunks touches that one of nchunks-1 does not."""
    root = cache.cache_config.root
    before = set(glob.glob(os.path.join(root, "*/*/*.kv")))
    probe = file_cache(os.path.join(root, "..", "probe-%d" % nchunks))
    arrays, kv = tensors_for(tokens[:4 * nchunks])
    probe.update(None, tokens[:4 * nchunks], kv)
    probe_root = probe.cache_config.root
    mine = {os.path.basename(p) for p in glob.glob(os.path.join(probe_root, "*/*/*.kv"))}
    probe_prev = file_cache(os.path.join(root, "..", "probe-%d-prev" % nchunks))
    if nchunks > 1:
        arrays, kv = tensors_for(tokens[:4 * (nchunks - 1)])
        probe_prev.update(None, tokens[:4 * (nchunks - 1)], kv)
    prev = {os.path.basename(p)
            for p in glob.glob(os.path.join(probe_prev.cache_config.root, "*/*/*.kv"))}
    (name,) = mine - prev
    (path,) = [p for p in before if os.path.basename(p) == name]
    return path


def test_files_unused_for_ttl_are_collected(tmp_path):
    root = tmp_path / "gc"
    cache = file_cache(root, gc_interval=1, ttl=1)
    tokens = list(range(8))
    arrays, kv = tensors_for(tokens)
    assert cache.update(None, tokens, kv) == 8
    assert len(glob.glob(str(root / "*/*/*.kv"))) == 2
    deadline = time.monotonic() + 10
    while glob.glob(str(root / "*/*/*.kv")) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert glob.glob(str(root / "*/*/*.kv")) == []
    assert cache.query(None, tokens, empty_list(8)) == 0

    manual = file_cache(tmp_path / "gc2", gc_interval=0, ttl=1)
    manual.update(None, tokens, kv)
    assert manual.collect_garbage() == 0  # fresh
    time.sleep(1.2)
    assert manual.collect_garbage() == 2


def test_rank_and_world_size_split_the_root(tmp_path):
    cache = file_cache(tmp_path / "r", rank=1, world_size=4)
    assert cache.cache_config.root == str(tmp_path / "r")
    tokens = list(range(4))
    cache.update(None, tokens, tensors_for(tokens)[1])
    assert glob.glob(str(tmp_path / "r" / "4-1" / "*/*/*.kv"))


# --- tiers ---------------------------------------------------------------------------------


def test_tiers_evicted_blocks_go_to_files_and_come_back(server, tmp_path):
    root = tmp_path / "tier"
    with pytest.raises(ValueError, match="must be equal"):
        KVCache([VineyardCacheConfig(socket=server.socket, block_size=4),
                 FileCacheConfig(chunk_size=8, root=str(root))],
                tensor_nbytes=NBYTES, cache_capacity=16, layer=LAYER)
    cache = KVCache([VineyardCacheConfig(socket=server.socket, block_size=4,
                                         llm_cache_object_name="tiers"),
                     FileCacheConfig(chunk_size=4, root=str(root))],
                    tensor_nbytes=NBYTES, cache_capacity=16, layer=LAYER)
    _owned_segments["/dev/shm" + cache.index_name] = True
    seqs = [[6000 + 100 * s + i for i in range(8)] for s in range(6)]
    for seq in seqs:
        arrays, kv = tensors_for(seq)
        assert cache.update(None, seq, kv) == 8
    # Memory holds 16 tokens: the first sequences were written down on eviction.
    assert glob.glob(str(root / "*/*/*.kv"))
    kv = empty_list(8)
    assert cache.query(None, seqs[0], kv) == 8
    check_zero_copy(seqs[0], kv, 8)
    # It was read back into memory: with the files gone it still hits.
    for path in glob.glob(str(root / "*/*/*.kv")):
        os.unlink(path)
    arrays, out = buffers(8)
    assert cache.query(None, seqs[0], out) == 8
    check_copied(seqs[0], arrays, 8)


def test_configuration_from_the_environment(server, tmp_path, monkeypatch):
    monkeypatch.setenv("VINEYARD_LLM_CACHE_SHARED_MEMORY_SOCKET", server.socket)
    monkeypatch.setenv("VINEYARD_LLM_CACHE_SHARED_MEMORY_BLOCK_SIZE", "4")
    cache = KVCache(None, tensor_nbytes=NBYTES, cache_capacity=64, layer=LAYER)
    _owned_segments["/dev/shm" + cache.index_name] = True
    assert isinstance(cache.cache_config, VineyardCacheConfig)
    assert cache.chunk_size == 4
    monkeypatch.setenv("VINEYARD_LLM_CACHE_FILESYSTEM_ROOT", str(tmp_path / "env"))
    monkeypatch.setenv("VINEYARD_LLM_CACHE_FILESYSTEM_CHUNK_SIZE", "4")
    both = KVCache(None, tensor_nbytes=NBYTES, cache_capacity=64, layer=LAYER)
    assert isinstance(both.cache_config, list) and len(both.cache_config) == 2


# --- code written for vineyard 0.24 ----------------------------------------------------------


def test_code_written_for_vineyard_runs_unchanged(server, tmp_path):
    """The calls vineyard 0.24's own examples make, with its defaults."""
    config = VineyardCacheConfig(socket=server.socket, block_size=5, sync_interval=3,
                                 llm_cache_sync_lock="llmCacheSyncLock",
                                 llm_cache_object_name="llm_cache_object_compat",
                                 llm_ref_cnt_object_name="llm_refcnt_object")
    cache = KVCache(cache_config=config, tensor_nbytes=16, cache_capacity=1024, layer=2)
    _owned_segments["/dev/shm" + cache.index_name] = True
    assert cache.chunk_size == 5 and cache.layer == 2
    tokens = [1, 2, 3, 4]
    arrays, kv = [], []
    for _ in tokens:
        k = np.random.rand(2, 2).astype(np.float32)
        v = np.random.rand(2, 2).astype(np.float32)
        arrays.append((k, v))
        kv.append([(KVTensor(k.ctypes.data, k.nbytes), KVTensor(v.ctypes.data, v.nbytes))
                   for _ in range(cache.layer)])
    assert cache.update(None, tokens, kv) == len(tokens)
    out = [[(KVTensor(0, 0), KVTensor(0, 0)) for _ in range(cache.layer)] for _ in tokens]
    matched = cache.query(None, tokens, out)
    assert matched == len(tokens)
    for (k, v), row in zip(arrays, out[:matched]):
        for qk, qv in row:
            assert np.array_equal(np.frombuffer(qk, dtype=k.dtype).reshape(k.shape), k)
            assert np.array_equal(np.frombuffer(qv, dtype=v.dtype).reshape(v.shape), v)

    files = KVCache(cache_config=FileCacheConfig(chunk_size=2, hash_chunk_size=2,
                                                 root=str(tmp_path / "llm_cache")),
                    tensor_nbytes=16, cache_capacity=1024, layer=2)
    originals = []
    for i in range(0, len(tokens), 2):
        k = np.random.rand(2, 2).astype(np.float32)
        v = np.random.rand(2, 2).astype(np.float32)
        chunk = [[(KVTensor(k.ctypes.data, k.nbytes), KVTensor(v.ctypes.data, v.nbytes))
                  for _ in range(files.layer)] for _ in range(2)]
        originals += [(k, v), (k, v)]
        assert files.update(tokens[:i], tokens[i:i + 2], chunk) == 2
    buffers_out = [[(np.empty((2, 2), np.float32), np.empty((2, 2), np.float32))
                    for _ in range(files.layer)] for _ in tokens]
    out = [[(KVTensor(k.ctypes.data, k.nbytes), KVTensor(v.ctypes.data, v.nbytes))
            for k, v in row] for row in buffers_out]
    assert files.query(None, tokens, out) == len(tokens)
    for (k, v), row in zip(originals, buffers_out):
        for qk, qv in row:
            assert np.array_equal(qk, k) and np.array_equal(qv, v)
    assert files.batched_query(tokens, out) == len(tokens)
    zero = np.zeros((2, 2), np.float32)
    more = [11, 12, 13, 14]
    zkv = [[(KVTensor(zero.ctypes.data, zero.nbytes), KVTensor(zero.ctypes.data, zero.nbytes))
            for _ in range(2)] for _ in more]
    assert files.batched_update(more, zkv) == 4


# --- across hosts -------------------------------------------------------------------------


def test_a_prefix_cached_on_one_instance_is_found_from_another(tmp_path):
    """Two instances of a cluster through etcd (loopback): a process on A caches a
    sequence, one on B finds it; B's server fetches the blocks from A over the RPC
    port, and B keeps them: with A gone, B still hits."""
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import cluster_harness as ch
    from conftest import vineyardd_binary

    if not os.path.exists(ch.ETCD):
        pytest.skip(f"no etcd at {ch.ETCD}")
    with ch.EtcdCluster(1) as etcd:
        args = ["--meta=etcd", f"--etcd_endpoint={etcd.endpoints}",
                f"--etcd_prefix=vyllm-{os.getpid()}", "--skip_launch_etcd", "--instance_ttl=3",
                "--meta_timeout=3", "--rpc_socket_port=0", "--rpc_host=127.0.0.1"]
        a = ch.Vineyardd(vineyardd_binary(), args, size="256Mi")
        b = ch.Vineyardd(vineyardd_binary(), args, size="256Mi")
        segments = []
        try:
            ch.wait_for(lambda: len(vineyard.connect(b.socket).meta) == 2, 10, "two instances")
            tokens = list(range(300, 322))
            done = run_child("update", a.socket, "xhost", ",".join(map(str, tokens)))
            assert done.returncode == 0, done.stderr
            count, segment = done.stdout.split()
            segments.append("/dev/shm" + segment)
            assert count == str(len(tokens))

            cache = KVCache(VineyardCacheConfig(socket=b.socket, block_size=4,
                                                llm_cache_object_name="xhost"),
                            tensor_nbytes=NBYTES, cache_capacity=4096, layer=LAYER)
            segments.append("/dev/shm" + cache.index_name)
            kv = empty_list(len(tokens))
            ch.wait_for(lambda: cache.query(None, tokens, kv) == len(tokens), 10,
                        "the sequence cached on A, seen from B")
            check_zero_copy(tokens, kv, len(tokens))
            arrays, out = buffers(8)
            assert cache.query(tokens[:4], tokens[4:12], out) == 8
            check_copied(tokens[4:12], arrays, 8)

            a.kill()
            arrays, out = buffers(len(tokens))
            assert cache.query(None, tokens, out) == len(tokens)
            check_copied(tokens, arrays, len(tokens))
            cache.close()
        finally:
            a.close()
            b.close()
            for seg in segments:
                if os.path.exists(seg):
                    os.unlink(seg)


# --- child processes -----------------------------------------------------------------------


def _child(argv):
    cmd = argv[0]
    if cmd in ("update", "query"):
        sock, name, tokens = argv[1], argv[2], [int(t) for t in argv[3].split(",")]
        cache = KVCache(VineyardCacheConfig(socket=sock, block_size=4, llm_cache_object_name=name),
                        tensor_nbytes=NBYTES, cache_capacity=4096, layer=LAYER)
        if cmd == "update":
            arrays, kv = tensors_for(tokens)
            print(cache.update(None, tokens, kv))
            print(cache.index_name)
        else:
            kv = empty_list(len(tokens))
            matched = cache.query(None, tokens, kv)
            check_zero_copy(tokens, kv, matched)
            print(matched)
    elif cmd == "vineyard-fs-query":
        cache = vineyard_fs_cache(argv[1], argv[2])
        tokens = [int(t) for t in argv[3].split(",")]
        arrays, kv = buffers(len(tokens))
        matched = cache.query(None, tokens, kv)
        check_copied(tokens, arrays, matched)
        print(matched)
    elif cmd == "file-update":
        cache = file_cache(argv[1])
        tokens = [int(t) for t in argv[2].split(",")]
        arrays, kv = tensors_for(tokens)
        print(cache.update(None, tokens, kv))
    elif cmd == "flood":
        sock, name = argv[1], argv[2]
        cache = KVCache(VineyardCacheConfig(socket=sock, block_size=4, llm_cache_object_name=name),
                        tensor_nbytes=NBYTES, cache_capacity=1 << 16, layer=LAYER)
        print("writing", flush=True)
        s = 0
        while True:  # until killed
            seq = [(s % 400) * 1000 + i for i in range(64)]
            arrays, kv = tensors_for(seq)
            cache.update(None, seq, kv)
            s += 1


if __name__ == "__main__":
    _child(sys.argv[1:])
