"""vineyard.shared_memory: SharedMemory / ShareableList against a real vineyardd."""
import os
import subprocess
import sys
import textwrap
import uuid

import pytest

import vineyard
from vineyard import _C
from vineyard.shared_memory import ShareableList, SharedMemory

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VALUES = [b"a", "bb", 1234, 56.78, True, None, -(1 << 63), "", b"tail\x00", "ünï"]


def unique(prefix="shm"):
    return f"{prefix}-{uuid.uuid4().hex}"


@pytest.fixture
def client2(vineyardd_socket):
    c = vineyard.connect(vineyardd_socket)  # the Python facade works as well
    yield c
    c.close()


def run_python(socket, code, timeout=60):
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"), VINEYARD_IPC_SOCKET=socket)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


# ---------------------------------------------------------------------- SharedMemory
def test_shared_memory_create_write_freeze_attach(client, client2):
    shm = SharedMemory(client, create=True, size=64)
    assert shm.size == 64 and not shm.frozen and shm.object_id is None
    assert shm.name == repr(_C.ObjectID(shm.name))  # default name: the blob id
    shm.buf[:5] = b"hello"
    shm.buf[5] = 33
    with pytest.raises(FileNotFoundError, match="not been frozen yet"):
        SharedMemory(client2, shm.name)
    assert shm.freeze() is shm and shm.frozen and shm.object_id is not None
    assert shm.freeze() is shm  # idempotent
    assert shm.buf.readonly and bytes(shm.buf[:6]) == b"hello!"
    with pytest.raises(TypeError):
        shm.buf[0] = 0

    other = SharedMemory(client2, shm.name)
    assert other.frozen and other.size == 64 and other.name == shm.name
    assert bytes(other.buf[:6]) == b"hello!" and other.buf.readonly
    with pytest.raises(TypeError):
        other.buf[:1] = b"x"
    assert repr(other) == f"SharedMemory({shm.name!r}, size=64)"
    meta = client.get_meta(shm.object_id)
    assert meta.typename == "vineyard::SharedMemory" and meta.ispersist
    other.close()
    assert other.buf is None
    shm.unlink()
    with pytest.raises(FileNotFoundError):
        SharedMemory(client2, shm.name)
    shm.close()


def test_shared_memory_user_name(client, client2):
    name = unique()
    shm = SharedMemory(client, name, create=True, size=3)
    assert shm.name == name
    with pytest.raises(FileExistsError):
        SharedMemory(client, name, create=True, size=3)  # taken by an unfrozen block
    shm.buf[:] = b"xyz"
    shm.freeze()
    assert client2.get_name(name) == shm.object_id
    with pytest.raises(FileExistsError):
        SharedMemory(client2, name, create=True, size=3)  # taken by a frozen block
    assert bytes(SharedMemory(client2, name).buf) == b"xyz"
    shm.unlink()


def test_writes_through_old_views_fail_after_freeze(client):
    shm = SharedMemory(client, create=True, size=8)
    view = shm.buf  # the property's own view is released by freeze()
    view[0] = 1
    shm.freeze()
    with pytest.raises(ValueError):
        view[0] = 2
    assert shm.buf[0] == 1
    shm.unlink()


def test_freeze_refuses_while_writable_slices_are_alive(client):
    shm = SharedMemory(client, create=True, size=8)
    part = shm.buf[2:4]
    with pytest.raises(BufferError, match="release the views"):
        shm.freeze()
    assert not shm.frozen
    part[:] = b"ok"  # still writable: nothing was sealed
    with pytest.raises(BufferError):
        shm.close()  # an unfrozen block's memory is discarded: refused as well
    direct = memoryview(shm.buf)
    with pytest.raises(BufferError):
        shm.freeze()
    direct.release()
    part.release()
    try:
        import numpy as np
    except ImportError:
        pass
    else:
        array = np.frombuffer(shm.buf, dtype=np.uint8)
        with pytest.raises(BufferError):
            shm.freeze()
        del array
    shm.freeze()
    assert bytes(shm.buf[2:4]) == b"ok"
    shm.unlink()


def test_close_discards_an_unfrozen_block(client, client2):
    name = unique()
    shm = SharedMemory(client, name, create=True, size=8)
    shm.close()
    assert shm.buf is None
    with pytest.raises(ValueError, match="closed"):
        shm.freeze()
    with pytest.raises(FileNotFoundError):
        SharedMemory(client2, name)
    # The name is free again.
    SharedMemory(client, name, create=True, size=8).close()


def test_shared_memory_bad_input(client):
    with pytest.raises(FileNotFoundError, match="no frozen vineyard shared memory"):
        SharedMemory(client, unique("unknown"))
    with pytest.raises(ValueError):
        SharedMemory(client)  # attach without a name
    with pytest.raises(ValueError):
        SharedMemory(client, create=True, size=0)
    with pytest.raises(ValueError):
        SharedMemory(client, create=True, size=-1)
    with pytest.raises(TypeError):
        SharedMemory(client, create=True, size="8")
    with pytest.raises(TypeError):
        SharedMemory(client, 42)
    with pytest.raises(TypeError, match="IPCClient"):
        SharedMemory("not a client", create=True, size=8)
    name = unique("other")
    client.put_object(_meta("vineyard::Other"), [], persist=True, name=name)
    with pytest.raises(ValueError, match="not a shared memory"):
        SharedMemory(client, name)


def _meta(typename):
    m = _C.ObjectMeta()
    m.typename = typename
    m["x"] = 1
    return m


# ---------------------------------------------------------------------- ShareableList
def test_shareable_list_roundtrip(client, client2):
    sl = ShareableList(client, [b"a", "bb", 1234, 56.78, True])
    assert repr(sl) == f"ShareableList([b'a', 'bb', 1234, 56.78, True], name={sl.shm.name!r})"
    sl[4] = False
    sl[2] = -7
    sl[1] = "cc"
    sl[0] = None
    assert list(sl) == [None, "cc", -7, 56.78, False]
    assert sl.freeze() is sl
    other = ShareableList(client2, name=sl.shm.name)
    assert list(other) == [None, "cc", -7, 56.78, False]
    assert repr(other) == repr(sl)
    sl.shm.unlink()


def test_shareable_list_types_and_sequence_api(client):
    sl = ShareableList(client, VALUES)
    assert len(sl) == len(VALUES) and list(sl) == VALUES
    assert [type(v) for v in sl] == [type(v) for v in VALUES]
    assert sl[-1] == "ünï" and sl[1:3] == ["bb", 1234] and sl[::-3] == VALUES[::-3]
    assert sl.count(True) == 1 and sl.count("zz") == 0
    assert sl.index(1234) == 2 and sl.index(None) == 5
    with pytest.raises(ValueError):
        sl.index("missing")
    assert "bb" in sl and b"tail\x00" in sl  # trailing NULs survive
    with pytest.raises(IndexError):
        sl[len(VALUES)]
    with pytest.raises(IndexError):
        sl[-len(VALUES) - 1] = 1
    with pytest.raises(TypeError):
        sl["0"]
    assert sl.format.startswith("8s8sqd?xq")
    empty = ShareableList(client, [])
    assert len(empty) == 0 and list(empty) == []
    assert list(ShareableList(client)) == []
    empty.freeze()
    assert list(ShareableList(client, name=empty.shm.name)) == []
    for x in (sl, empty):
        x.shm.unlink()


def test_shareable_list_assignment_rules(client):
    sl = ShareableList(client, ["abcdefgh", 1, None])
    sl[0] = "short"
    assert sl[0] == "short"
    sl[0] = b"12345678"
    with pytest.raises(ValueError, match="exceeds available storage"):
        sl[0] = "123456789"
    sl[1] = 2.5
    sl[2] = True
    sl[1] = ""  # an empty str needs just its 8-byte length
    with pytest.raises(ValueError, match="exceeds available storage"):
        sl[2] = "x"
    assert list(sl) == [b"12345678", "", True]
    with pytest.raises(TypeError):
        sl[1] = [1, 2]
    with pytest.raises(OverflowError):
        sl[1] = 1 << 63
    assert list(sl) == [b"12345678", "", True]
    sl.shm.close()


def test_shareable_list_writes_after_freeze_fail(client, client2):
    sl = ShareableList(client, [1, "two", 3.0])
    sl.freeze()
    with pytest.raises(TypeError, match="frozen"):
        sl[0] = 5
    with pytest.raises(TypeError):
        sl.shm.buf[0] = 0
    other = ShareableList(client2, name=sl.shm.name)
    with pytest.raises(TypeError, match="frozen"):
        other[1] = "x"
    assert list(other) == [1, "two", 3.0]
    sl.shm.unlink()


def test_shareable_list_bad_input(client):
    with pytest.raises(TypeError, match="int, float, bool, str, bytes or None"):
        ShareableList(client, [1, {"a": 1}])
    with pytest.raises(TypeError):
        ShareableList(client, [bytearray(b"x")])
    with pytest.raises(OverflowError):
        ShareableList(client, [1 << 64])
    with pytest.raises(TypeError):
        ShareableList(client, 5)  # not iterable
    with pytest.raises(FileNotFoundError):
        ShareableList(client, name=unique("nolist"))
    raw = SharedMemory(client, create=True, size=64)
    assert bytes(raw.buf) == bytes(64)  # zero-filled, even over reused memory
    raw.freeze()
    with pytest.raises(ValueError, match="does not hold a ShareableList"):
        ShareableList(client, name=raw.name)
    raw.unlink()
    with pytest.raises(TypeError):
        import pickle
        pickle.dumps(ShareableList(client, [1]))


def test_unfrozen_list_is_invisible_to_another_process(client, vineyardd_socket):
    sl = ShareableList(client, [1, 2, 3], name=unique("pending"))
    proc = run_python(vineyardd_socket, f"""
        import vineyard
        from vineyard import shared_memory
        try:
            shared_memory.ShareableList(vineyard.connect(), name={sl.shm.name!r})
        except FileNotFoundError as e:
            print("missing:", e)
    """)
    assert proc.returncode == 0, proc.stderr
    assert "missing: no frozen vineyard shared memory" in proc.stdout
    sl.shm.close()


def test_producer_consumer_processes(vineyardd_socket):
    name = unique("pc")
    producer = run_python(vineyardd_socket, f"""
        import vineyard
        from vineyard import shared_memory
        client = vineyard.connect()
        value = shared_memory.ShareableList(client, [b"a", "bb", 1234, 56.78, True],
                                            name={name!r})
        value[4] = False
        value.freeze()
        try:
            value[0] = b"z"
        except TypeError:
            print("frozen")
        raw = shared_memory.SharedMemory(client, {name + "-raw"!r}, create=True, size=4)
        raw.buf[:] = b"\\x01\\x02\\x03\\x04"
        raw.freeze()
        print(value)
    """)
    assert producer.returncode == 0, producer.stderr
    assert producer.stdout.splitlines() == [
        "frozen", f"ShareableList([b'a', 'bb', 1234, 56.78, False], name={name!r})"]
    consumer = run_python(vineyardd_socket, f"""
        import vineyard
        from vineyard import shared_memory
        client = vineyard.connect()
        value = shared_memory.ShareableList(client, name={name!r})
        print(list(value), value.count(1234), value.index(56.78))
        print(bytes(shared_memory.SharedMemory(client, {name + "-raw"!r}).buf).hex())
        value.shm.unlink()
        shared_memory.SharedMemory(client, {name + "-raw"!r}).unlink()
    """)
    assert consumer.returncode == 0, consumer.stderr
    assert consumer.stdout.splitlines() == ["[b'a', 'bb', 1234, 56.78, False] 1 3", "01020304"]
    with vineyard.connect(vineyardd_socket) as c, pytest.raises(FileNotFoundError):
        ShareableList(c, name=name)
