"""Spilling to disk (vineyardd --spill_path): more data than memory, all of it back
intact; readers and pinned objects never spilled under them; deleted objects leave
no bytes on disk; a full, unwritable or corrupted spill directory gives clear errors,
loses nothing and leaves the server serving; a killed server's files are removed
on restart."""

import glob
import hashlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import pytest

import vineyard
from conftest import Server, vineyardd_binary

MiB = 1 << 20


def digest(a):
    return hashlib.sha256(memoryview(np.ascontiguousarray(a)).cast("B")).hexdigest()


def put_random(c, nbytes, seed):
    a = np.frombuffer(np.random.default_rng(seed).bytes(nbytes), dtype=np.uint8)
    return c.put(a), digest(a)


def spill_files(path):
    return sorted(glob.glob(os.path.join(path, "spill-*.blobs")),
                  key=lambda p: int(p.rsplit("-", 1)[1].split(".")[0]))


class SpillServer(Server):
    def __init__(self, spill_path, size="64Mi", *args, rpc=False):
        self.spill_path = spill_path
        super().__init__(f"--spill_path={spill_path}", *args, size=size, rpc=rpc)


@pytest.fixture(scope="module")
def server():
    d = tempfile.mkdtemp(prefix="vy-spill-")
    s = SpillServer(os.path.join(d, "spill"), "64Mi", "--metrics", "--metrics_port=0",
                    "--rpc_host=127.0.0.1", rpc=True)
    yield s
    s.stop()
    subprocess.run(["rm", "-rf", d], check=False)


@pytest.fixture
def c(server):
    client = vineyard.connect(server.socket)
    yield client
    client.close()


def test_three_times_memory_all_back_intact(server, c):
    # 64 MiB of memory, 192 MiB of objects: each put that does not fit spills first.
    objs = [put_random(c, 8 * MiB, seed) for seed in range(24)]
    st = c.status.spill
    assert st.enabled and st.path == server.spill_path
    assert st.spilled_blobs > 0 and st.spilled_bytes >= 120 * MiB
    assert st.disk_bytes >= st.spilled_bytes
    assert c.status.memory_usage <= 64 * MiB
    assert any(c.is_spilled(oid) for oid, _ in objs)
    for oid, want in objs:
        v = c.get(oid)
        assert digest(v) == want
        del v
        c.release_object(oid)
    assert c.status.spill.loads > 0
    c.delete([oid for oid, _ in objs])
    st = c.status.spill
    assert st.spilled_blobs == 0 and st.spilled_bytes == 0
    assert spill_files(server.spill_path) == []


def test_a_mapped_blob_is_never_spilled(c):
    oid, want = put_random(c, 8 * MiB, 100)
    view = c.get(oid)  # mapped: this client references its blob
    others = [put_random(c, 8 * MiB, 101 + i) for i in range(20)]  # 160 MiB of pressure
    assert c.status.spill.spilled_blobs > 0
    assert not c.is_spilled(oid)
    assert c.is_in_use(oid)
    assert digest(view) == want
    with pytest.raises(vineyard.VineyardException, match="a client is using it"):
        c.evict([oid])
    del view
    c.release_object(oid)
    assert not c.is_in_use(oid)
    c.evict([oid])
    assert c.is_spilled(oid)
    assert digest(c.get(oid)) == want
    c.delete([oid] + [o for o, _ in others])


class RawSession:
    """A client speaking the wire protocol as the published vineyard client does: it
    never gives references back (no releases_references in its register_request)."""

    def __init__(self, sock_path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(sock_path)
        self.request({"type": "register_request", "version": "0.24.2",
                      "store_type": "Normal", "session_id": 0})

    def request(self, msg):
        body = json.dumps(msg).encode()
        self.s.sendall(struct.pack("<Q", len(body)) + body)
        head = b""
        fds = []
        while len(head) < 8:
            data, anc, _, _ = self.s.recvmsg(8 - len(head), socket.CMSG_SPACE(64 * 4))
            head += data
            for level, kind, raw in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds += list(struct.unpack(f"{len(raw) // 4}i", raw[:len(raw) // 4 * 4]))
        (n,) = struct.unpack("<Q", head)
        reply = b""
        while len(reply) < n:
            data, anc, _, _ = self.s.recvmsg(n - len(reply), socket.CMSG_SPACE(64 * 4))
            reply += data
            for level, kind, raw in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds += list(struct.unpack(f"{len(raw) // 4}i", raw[:len(raw) // 4 * 4]))
        for fd in fds:  # the store's fd: not mapped here
            os.close(fd)
        return json.loads(reply)

    def close(self):
        self.s.close()


def test_a_blob_a_published_client_got_is_not_spilled_until_it_leaves(c):
    oid, want = put_random(c, 4 * MiB, 150)
    blob = c.get_meta(oid)["buffer_"].id
    raw = RawSession(c.ipc_socket)
    reply = raw.request({"type": "get_buffers_request", "num": 1, "ids": [int(blob)],
                         "unsafe": False})
    assert reply["type"] == "get_buffers_reply", reply
    assert c.is_in_use(oid)
    with pytest.raises(vineyard.VineyardException, match="a client is using it"):
        c.evict([oid])
    raw.close()
    deadline = time.monotonic() + 10
    while c.is_in_use(oid) and time.monotonic() < deadline:
        time.sleep(0.01)
    c.evict([oid])
    assert c.is_spilled(oid)
    assert digest(c.get(oid)) == want
    c.delete(oid)


def test_readers_and_writers_at_once_read_only_right_bytes(server):
    """One client keeps putting (spills run under it, in the background too) while two
    others read earlier objects back and check every byte: a blob being spilled or
    loaded is never handed out half-there."""
    writer = vineyard.connect(server.socket)
    objs = [put_random(writer, 2 * MiB, 1000 + i) for i in range(8)]
    stop = threading.Event()
    errors = []

    def write():
        try:
            i = 0
            while not stop.is_set():
                objs.append(put_random(writer, 2 * MiB, 1100 + i))
                i += 1
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    def read(seed):
        rng = np.random.default_rng(seed)
        r = vineyard.connect(server.socket)
        try:
            while not stop.is_set():
                oid, want = objs[int(rng.integers(len(objs)))]
                v = r.get(oid)
                if digest(v) != want:
                    errors.append(AssertionError(f"wrong bytes for {oid!r}"))
                del v
                r.release_object(oid)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)
        finally:
            r.close()

    threads = [threading.Thread(target=write)] + [
        threading.Thread(target=read, args=(s,)) for s in (1, 2)]
    for t in threads:
        t.start()
    time.sleep(2)
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert not errors, errors[:3]
    assert len(objs) > 40  # more than memory went through
    st = writer.status.spill
    assert st.spills > 0 and st.loads > 0
    writer.delete([o for o, _ in objs])
    writer.close()


def test_pinned_objects_stay_in_memory(c):
    oid, want = put_random(c, 8 * MiB, 200)
    c.evict(oid)
    assert c.is_spilled(oid)
    c.load([oid], pin=True)
    assert not c.is_spilled(oid)
    others = [put_random(c, 8 * MiB, 201 + i) for i in range(16)]
    assert not c.is_spilled(oid)
    with pytest.raises(vineyard.VineyardException, match="pinned"):
        c.evict([oid])
    c.unpin([oid])
    c.evict([oid])
    assert c.is_spilled(oid)
    c.load([oid])  # loaded back without a pin: spilled again under pressure
    assert not c.is_spilled(oid)
    assert digest(c.get(oid)) == want
    c.delete([oid] + [o for o, _ in others])


def test_deleting_spilled_objects_frees_their_disk_bytes(server, c):
    objs = [put_random(c, 8 * MiB, 300 + i) for i in range(3)]
    c.evict([o for o, _ in objs])
    st = c.status.spill
    assert st.spilled_blobs == 3 and st.disk_bytes >= 24 * MiB
    c.delete(objs[0][0])
    after_one = c.status.spill
    assert after_one.spilled_blobs == 2
    assert after_one.disk_bytes <= st.disk_bytes - 8 * MiB  # punched out of the file
    assert not c.exists(objs[0][0])
    c.delete([o for o, _ in objs[1:]])
    assert c.status.spill.spilled_blobs == 0
    assert spill_files(server.spill_path) == []


def test_over_rpc_puts_spill_and_gets_load(server):
    with vineyard.connect(f"127.0.0.1:{server.port}") as rpc:
        objs = []
        for seed in range(400, 412):  # 96 MiB through 64 MiB
            a = np.frombuffer(np.random.default_rng(seed).bytes(8 * MiB), dtype=np.uint8)
            objs.append((rpc.put(a), digest(a)))
        assert any(rpc.is_spilled(o) for o, _ in objs)
        for oid, want in objs:
            assert digest(rpc.get(oid)) == want
        rpc.delete([o for o, _ in objs])


def test_status_and_cli_show_spill_figures(server, c):
    objs = [put_random(c, 4 * MiB, 350 + i) for i in range(2)]
    c.evict([o for o, _ in objs])
    st = c.status.spill
    assert st.spilled_blobs >= 2 and st.spilled_bytes >= 8 * MiB and st.spills >= 2
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, PYTHONPATH=os.path.join(root, "python"))
    env.pop("VINEYARD_IPC_SOCKET", None)
    run = [sys.executable, "-m", "vineyard.cli", "--socket", server.socket]
    done = subprocess.run(run + ["--json", "status", "--local"], capture_output=True,
                          text=True, env=env, timeout=60, check=True)
    me = json.loads(done.stdout)["instances"][0]
    assert me["spill_enabled"] and me["spilled_blobs"] == st.spilled_blobs
    assert me["spilled_bytes"] == st.spilled_bytes
    text = subprocess.run(run + ["status", "--local"], capture_output=True, text=True,
                          env=env, timeout=60, check=True).stdout
    assert "spilled" in text and f"({st.spilled_blobs} blobs)" in text
    c.delete([o for o, _ in objs])


def test_prometheus_metrics_count_spills(server, c):
    from test_metrics import metrics_port, scrape

    oid, want = put_random(c, 4 * MiB, 380)
    c.evict([oid])
    _, samples = scrape(metrics_port(server))
    assert samples[("vineyard_spilled_blobs", ())] >= 1
    assert samples[("vineyard_spilled_bytes", ())] >= 4 * MiB
    assert samples[("vineyard_spill_disk_bytes", ())] >= 4 * MiB
    spills = samples[("vineyard_spills_total", ())]
    loads = samples[("vineyard_spill_loads_total", ())]
    assert spills >= 1
    assert digest(c.get(oid)) == want
    _, after = scrape(metrics_port(server))
    assert after[("vineyard_spill_loads_total", ())] == loads + 1
    c.delete(oid)


def test_evict_without_spill_path_is_refused():
    s = Server(size="32Mi")
    try:
        c = vineyard.connect(s.socket)
        oid, _ = put_random(c, MiB, 1)
        with pytest.raises(vineyard.VineyardException, match="--spill_path"):
            c.evict([oid])
        assert not c.is_spilled(oid)
        assert not c.status.spill.enabled
        c.close()
    finally:
        s.stop()


def test_a_second_server_may_not_share_the_directory(server):
    with tempfile.TemporaryDirectory(prefix="vy-spill2-") as d:
        r = subprocess.run([vineyardd_binary(), f"--socket={os.path.join(d, 's.sock')}",
                            "--size=16Mi", "--meta=local", "--norpc",
                            f"--spill_path={server.spill_path}"],
                           capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert "in use by another vineyardd" in r.stdout + r.stderr


# --- faults -------------------------------------------------------------------------

@pytest.fixture
def tmpfs():
    """A small tmpfs mounted for one test; unmounted whatever happens."""
    d = tempfile.mkdtemp(prefix="vy-spill-tmpfs-")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", d], check=True)
    try:
        yield d
    finally:
        subprocess.run(["umount", "-l", d], check=False)
        os.rmdir(d)


def fill_until_refused(c, first_seed):
    objs = []
    for i in range(40):
        try:
            objs.append(put_random(c, 4 * MiB, first_seed + i))
        except vineyard.VineyardException as e:
            return objs, e
    pytest.fail("puts never failed although memory and the spill directory are full")


def check_nothing_lost(c, objs):
    """Every object reads back intact once memory has room again."""
    in_memory = [(o, w) for o, w in objs if not c.is_spilled(o)]
    assert in_memory, "some objects should have stayed in memory"
    for oid, want in in_memory:
        assert digest(c.get(oid)) == want
    c.release_objects([o for o, _ in in_memory])
    c.delete([o for o, _ in in_memory[:3]])  # room to load the spilled ones back
    for oid, want in objs[:0] + [x for x in objs if x not in in_memory[:3]]:
        v = c.get(oid)
        assert digest(v) == want
        del v
        c.release_object(oid)


def test_spill_directory_full(tmpfs):
    s = SpillServer(os.path.join(tmpfs, "spill"), "32Mi")
    try:
        c = vineyard.connect(s.socket)
        objs, err = fill_until_refused(c, 400)
        assert isinstance(err, MemoryError)
        assert "spilling to disk failed" in str(err) and "No space left" in str(err)
        assert len(objs) >= 10  # 32 MiB in memory and most of 24 MiB on disk
        assert c.status.spill.spill_failures >= 1
        check_nothing_lost(c, objs)
        oid, want = put_random(c, 4 * MiB, 499)  # still serving
        assert digest(c.get(oid)) == want
        c.close()
    finally:
        s.stop()


def test_spill_directory_unwritable(tmpfs):
    spill = os.path.join(tmpfs, "spill")
    s = SpillServer(spill, "32Mi")
    overmounted = False
    try:
        c = vineyard.connect(s.socket)
        # A read-only file system over the directory (the server holds a file open
        # there, so the tmpfs itself cannot be remounted read-only).
        subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", spill], check=True)
        overmounted = True
        objs, err = fill_until_refused(c, 500)
        assert isinstance(err, MemoryError)
        assert "spilling to disk failed" in str(err) and "Read-only file system" in str(err)
        assert c.status.spill.spilled_blobs == 0
        for oid, want in objs:
            assert digest(c.get(oid)) == want
        c.release_objects([o for o, _ in objs])
        subprocess.run(["umount", spill], check=True)
        overmounted = False
        more = [put_random(c, 4 * MiB, 600 + i) for i in range(4)]  # spills again
        assert c.status.spill.spilled_blobs > 0
        for oid, want in objs + more:
            v = c.get(oid)
            assert digest(v) == want
            del v
            c.release_object(oid)
        c.close()
    finally:
        if overmounted:
            subprocess.run(["umount", "-l", spill], check=False)
        s.stop()


def test_corrupted_or_truncated_spill_file(tmp_path):
    s = SpillServer(str(tmp_path / "spill"), "32Mi")
    try:
        c = vineyard.connect(s.socket)
        (a, want_a), (b, want_b) = put_random(c, 4 * MiB, 700), put_random(c, 4 * MiB, 701)
        c.evict([a, b])  # one file holding both
        path = spill_files(s.spill_path)[-1]
        with open(path, "r+b") as f:  # a flipped byte inside a's bytes
            f.seek(MiB)
            byte = f.read(1)
            f.seek(MiB)
            f.write(bytes([byte[0] ^ 0xFF]))
        with pytest.raises(OSError) as e:
            c.get(a)
        assert repr(a) in str(e.value) and "checksum" in str(e.value)
        assert c.is_spilled(a)
        assert digest(c.get(b)) == want_b  # its neighbour is intact

        d, _ = put_random(c, 4 * MiB, 702)
        c.evict([d])
        path = spill_files(s.spill_path)[-1]
        os.truncate(path, 2 * MiB)
        with pytest.raises(OSError) as e:
            c.get(d)
        assert repr(d) in str(e.value) and "truncated" in str(e.value)

        c.delete([a, d])  # the broken ones can still be deleted
        assert not c.exists(a) and not c.exists(d)
        oid, want = put_random(c, 4 * MiB, 703)  # still serving
        assert digest(c.get(oid)) == want
        c.close()
    finally:
        s.stop()


def test_killed_mid_spill_leaves_no_orphans(tmp_path):
    spill = str(tmp_path / "spill")
    s = SpillServer(spill, "256Mi")
    try:
        c = vineyard.connect(s.socket)
        objs = [put_random(c, 32 * MiB, 800 + i) for i in range(6)]
        c.release_objects([o for o, _ in objs])

        def evict():
            try:
                c.evict([o for o, _ in objs])
            except Exception:  # noqa: BLE001 - the server dies under it
                pass

        t = threading.Thread(target=evict)
        t.start()
        time.sleep(0.05)
        s.proc.send_signal(signal.SIGKILL)
        s.proc.wait(timeout=10)
        t.join(timeout=10)
    finally:
        s.stop()
    # Whether or not the kill hit a write, leave a partial file there for sure.
    os.makedirs(spill, exist_ok=True)
    with open(os.path.join(spill, "spill-77.blobs"), "wb") as f:
        f.write(b"\0" * 12345)
    assert spill_files(spill)
    s2 = SpillServer(spill, "32Mi")
    try:
        assert spill_files(spill) == []
        assert "orphaned spill files" in s2.log()
        c = vineyard.connect(s2.socket)
        oid, want = put_random(c, 4 * MiB, 900)
        c.evict([oid])
        assert digest(c.get(oid)) == want
        c.close()
    finally:
        s2.stop()
