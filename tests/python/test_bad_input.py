"""Bad input through the public facade (``vineyard.connect``): each case raises a clear
error and leaves the server as it was."""
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid

import numpy as np
import pytest

import vineyard

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MiB = 1 << 20


@pytest.fixture
def vc(vineyardd_socket):
    c = vineyard.connect(vineyardd_socket)
    yield c
    c.close()


@pytest.fixture
def private(private_server):
    """A facade client of a vineyardd nobody else uses (exact memory accounting)."""
    c = vineyard.connect(private_server.socket)
    yield c, private_server
    c.close()


def all_objects(client):
    return {int(o.id) for o in client.list_objects("*", limit=1 << 20)}


def call_with_timeout(fn, timeout):
    """fn() in a thread: (returned, raised); fails the test if it is still running."""
    box = {}

    def run():
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001
            box["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), f"the call did not return within {timeout}s"
    return box.get("value"), box.get("error")


# ------------------------------------------------------------------ put: unsupported values

@pytest.mark.parametrize("value, typename", [
    (lambda x: x, "function"),
    (threading.Lock(), "lock"),
    ((i for i in range(3)), "generator"),
], ids=["lambda", "lock", "generator"])
def test_put_unpicklable_names_type_and_remedy(private, value, typename):
    client, _ = private
    before = client.status.memory_usage
    with pytest.raises(TypeError) as info:
        client.put(value)
    text = str(info.value)
    assert "cannot put a value of type" in text and typename in text
    assert "register a builder" in text.lower() and "builder_context" in text
    assert isinstance(info.value.__cause__, Exception)  # pickle's own error is chained
    assert client.status.memory_usage == before
    assert all_objects(client) == set()


def test_put_unpicklable_inside_a_container_undoes_the_rest(private):
    client, _ = private
    with pytest.raises(TypeError, match="lock"):
        client.put((np.arange(1000), b"bytes", threading.Lock()))
    assert client.status.memory_usage == 0
    assert all_objects(client) == set()


# ------------------------------------------------------------------ put: too big

def test_put_array_larger_than_the_server(private):
    client, server = private
    baseline = client.status.memory_usage
    limit = client.status.memory_limit
    huge = np.empty(limit + MiB, dtype=np.uint8)  # untouched pages: no real memory used
    with pytest.raises(vineyard.NotEnoughMemoryException) as info:
        client.put(huge)
    assert isinstance(info.value, MemoryError) and isinstance(info.value, vineyard.VineyardException)
    assert "--size" in str(info.value)
    assert client.status.memory_usage == baseline
    assert all_objects(client) == set()
    # the session and the server are fine afterwards
    small = client.put(np.arange(10))
    assert (client.get(small) == np.arange(10)).all()
    assert server.proc.poll() is None


def test_put_container_whose_last_part_does_not_fit(private):
    client, _ = private
    baseline = client.status.memory_usage
    limit = client.status.memory_limit
    first = np.ones(limit // 2 // 8 + 1)         # fits
    second = np.empty(limit // 2 + MiB, np.uint8)  # does not fit next to the first
    with pytest.raises(vineyard.NotEnoughMemoryException):
        client.put((first, second))
    # the first element's blob was aborted, nothing was created, even though the
    # exception (and its traceback) is still alive here
    assert client.status.memory_usage == baseline
    assert all_objects(client) == set()
    assert client.status.memory_limit == limit


# ------------------------------------------------------------------ get: unknown id / name

def test_get_unknown_id(vc):
    missing = vineyard.ObjectID("o7fffffffffff0001")
    with pytest.raises(vineyard.ObjectNotExistsException) as info:
        vc.get(missing)
    assert isinstance(info.value, KeyError) and repr(missing) in str(info.value)
    with pytest.raises(vineyard.ObjectNotExistsException):
        vc.get_object(missing)
    with pytest.raises(vineyard.ObjectNotExistsException):
        vc.get_meta(missing)
    assert vc.exists(missing) is False


def test_get_unknown_name(vc):
    name = f"never-put-{uuid.uuid4().hex}"
    with pytest.raises(vineyard.ObjectNotExistsException) as info:
        vc.get(name=name)
    assert name in str(info.value)
    with pytest.raises(vineyard.ObjectNotExistsException):
        vc.get_name(name)  # wait=False: no blocking


def test_get_without_id_or_name(vc):
    with pytest.raises(ValueError, match="object_id or a name"):
        vc.get()


def test_malformed_object_id():
    with pytest.raises(vineyard.InvalidException, match="malformed object id"):
        vineyard.ObjectID("not-an-id")


def test_get_name_wait_returns_when_another_process_puts_it(vc, vineyardd_socket):
    # get_name(name, wait=True) has no timeout in the reference: it blocks until the name
    # exists. Another process puts it after a delay; the waiter must return its id.
    name = f"late-{uuid.uuid4().hex}"
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"))
    producer = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        import numpy as np
        import vineyard
        time.sleep(0.5)
        client = vineyard.connect({vineyardd_socket!r})
        print(repr(client.put(np.arange(5), persist=True, name={name!r})), flush=True)
    """)], env=env, stdout=subprocess.PIPE, text=True)
    try:
        start = time.monotonic()
        got, err = call_with_timeout(lambda: vc.get_name(name, wait=True), timeout=30)
        assert err is None, err
        assert time.monotonic() - start >= 0.3  # it did wait for the producer
        out, _ = producer.communicate(timeout=30)
    finally:
        if producer.poll() is None:
            producer.kill()
    assert producer.returncode == 0
    assert repr(got) == out.strip()
    assert (vc.get(name=name) == np.arange(5)).all()
    vc.drop_name(name)
    vc.delete(got)


# ------------------------------------------------------------------ read-only results

def test_writing_into_a_got_array_raises_and_leaves_memory_untouched(vc):
    original = np.arange(16, dtype=np.int64)
    oid = vc.put(original)
    arr = vc.get(oid)
    with pytest.raises(ValueError, match="read-only"):
        arr[0] = 99
    with pytest.raises(ValueError, match="read-only"):
        arr += 1
    with pytest.raises(ValueError):
        arr.setflags(write=True)  # the shared memory underneath is not writable
    with pytest.raises(TypeError):
        memoryview(vc.get_blob(vc.get_meta(oid)["buffer_"].id))[0] = 1
    again = vc.get(oid)
    assert (again == original).all()
    assert again.__array_interface__["data"][0] == arr.__array_interface__["data"][0]


def test_writing_into_got_bytes_raises(vc):
    oid = vc.put(b"immutable")
    view = vc.get(oid)
    with pytest.raises(TypeError):
        view[0] = 0
    assert bytes(vc.get(oid)) == b"immutable"


# ------------------------------------------------------------------ closed client

def test_closed_client_raises_clear_errors(vineyardd_socket):
    client = vineyard.connect(vineyardd_socket)
    oid = client.put(np.arange(3))
    arr = client.get(oid)
    client.close()
    client.close()  # idempotent
    assert client.connected is False
    for call in (lambda: client.put(np.arange(3)), lambda: client.get(oid),
                 lambda: client.get_meta(oid), lambda: client.status,
                 lambda: client.create_blob(8), lambda: client.list_names("*"),
                 lambda: client.get_name("x", wait=True), lambda: client.sync_meta()):
        with pytest.raises(vineyard.ConnectionErrorException) as info:
            call()
        assert isinstance(info.value, ConnectionError)
        assert "disconnected" in str(info.value) and "connect again" in str(info.value)
    assert (arr == np.arange(3)).all()  # data already mapped stays readable
    with vineyard.connect(vineyardd_socket) as again:  # connecting again works
        assert again.exists(oid)


def test_closed_client_with_block(vineyardd_socket):
    with vineyard.connect(vineyardd_socket) as client:
        pass
    with pytest.raises(ConnectionError):
        client.put(1)


# ------------------------------------------------------------------ the server dies

def test_server_killed_mid_session(private):
    client, server = private
    oid = client.put(np.arange(100))
    arr = client.get(oid)
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(10)
    start = time.monotonic()
    _, err = call_with_timeout(lambda: client.get(oid), timeout=10)
    assert isinstance(err, vineyard.ConnectionErrorException) and isinstance(err, ConnectionError)
    _, err = call_with_timeout(lambda: client.put(np.arange(3)), timeout=10)
    assert isinstance(err, ConnectionError)
    assert time.monotonic() - start < 5
    assert client.connected is False
    assert (arr == np.arange(100)).all()  # the mapping outlives the server


def test_server_killed_while_a_call_waits(private):
    client, server = private
    name = f"never-{uuid.uuid4().hex}"
    box = {}

    def wait_for_name():
        try:
            box["value"] = client.get_name(name, wait=True)
        except BaseException as e:  # noqa: BLE001
            box["error"] = e

    t = threading.Thread(target=wait_for_name, daemon=True)
    t.start()
    time.sleep(0.3)
    assert t.is_alive()  # blocked in the server's wait
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(10)
    t.join(10)
    assert not t.is_alive(), "get_name(wait=True) hung after the server died"
    assert isinstance(box.get("error"), ConnectionError), box
