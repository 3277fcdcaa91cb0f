"""The Python examples of the reference docs (../shared/seeds), run as written.

Only the socket path is adapted (the session's vineyardd instead of
/var/run/vineyard.sock). Where a doc prints a value, the test checks it; ids and random
numbers differ from run to run, so those are checked by form. Examples that need
features of later issues are skipped with the reason.
"""
import os
import re
import signal
import socket as pysocket
import subprocess
import sys
import textwrap
import time
import uuid

import numpy as np
import pandas as pd
import pytest

import vineyard

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OBJECT_REPR = re.compile(r"^o[0-9a-f]{16}$")

CLUSTER_ISSUE = "needs a two-instance cluster sharing metadata through etcd (a later issue)"
STREAM_ISSUE = "needs streams and I/O drivers (vineyard.io; a later issue)"
CSI_ISSUE = "needs the CSI driver (vineyard.csi; a later issue)"
DEPLOY_ISSUE = "needs vineyard.deploy / try_init (a later issue)"


@pytest.fixture
def client(vineyardd_socket):
    """``client = vineyard.connect('/var/run/vineyard.sock')``, on the test server."""
    client = vineyard.connect(vineyardd_socket)
    yield client
    client.close()


def run_script(code, socket, timeout=60):
    """Runs ``code`` as a __main__ script with SOCKET set to the test server's socket."""
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"))
    env.pop("VINEYARD_IPC_SOCKET", None)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), socket], env=env,
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout)


# ================================================================ getting started (000, 002)

def test_put_get_numpy_arange(client):
    import vineyard.data.tensor  # noqa: F401  (the docs import it; harmless here)

    arr = np.arange(8)
    arr_id = client.put(arr)
    assert OBJECT_REPR.match(repr(arr_id))
    shared_arr = client.get(arr_id)
    assert repr(shared_arr) == "array([0, 1, 2, 3, 4, 5, 6, 7])"
    # "shared_arr doesn't allocate memory in the client process"
    assert client.is_shared_memory(shared_arr)
    assert not shared_arr.flags.owndata and not shared_arr.flags.writeable


def test_put_get_random_matrix(client):
    object_id = client.put(np.random.rand(2, 4))
    shared_array = client.get(object_id)
    assert shared_array.shape == (2, 4) and shared_array.dtype == np.float64
    assert client.find_shared_memory(shared_array) is not None


def test_dataframe_get_object_typename(client):
    import vineyard.data.dataframe  # noqa: F401

    df = pd.DataFrame({'u': [0, 0, 1, 2, 2, 3],
                       'v': [1, 2, 3, 3, 4, 4],
                       'weight': [1.5, 3.2, 4.7, 0.3, 0.8, 2.5]})
    df_id = client.put(df)
    shared_object = client.get_object(df_id)
    assert shared_object.typename == "vineyard::DataFrame"
    shared_df = client.get(df_id)
    pd.testing.assert_frame_equal(shared_df, df)
    assert str(shared_df) == str(df)


def test_shareable_list_freeze(client, vineyardd_socket):
    from vineyard import shared_memory

    value = shared_memory.ShareableList(client, [b"a", "bb", 1234, 56.78, True])
    name = value.shm.name
    assert re.match(r"^o8[0-9a-f]{15}$", name)
    assert repr(value) == f"ShareableList([b'a', 'bb', 1234, 56.78, True], name={name!r})"
    value[4] = False
    assert repr(value) == f"ShareableList([b'a', 'bb', 1234, 56.78, False], name={name!r})"
    value.freeze()
    # After being frozen, the list is available for other clients.
    with vineyard.connect(vineyardd_socket) as other:
        value1 = shared_memory.ShareableList(other, name=value.shm.name)
        assert repr(value1) == f"ShareableList([b'a', 'bb', 1234, 56.78, False], name={name!r})"
        with pytest.raises(TypeError):
            value1[0] = b"z"
        value1.shm.close()
    value.shm.unlink()


def test_producer_consumer_processes(vineyardd_socket):
    # The docs' script; the socket comes from argv. The docs start the consumer right
    # after the producer, but get(name=...) does not wait for the name (neither in the
    # reference client), so the consumer starts once the producer is done.
    name = f"dataset-{uuid.uuid4().hex}"
    out = run_script(f"""
        import multiprocessing as mp
        import sys
        import vineyard

        import numpy as np
        import pandas as pd

        socket = sys.argv[1]

        def produce(name):
           client = vineyard.connect(socket)
           client.put(pd.DataFrame(np.random.randn(100, 4), columns=list('ABCD')),
                      persist=True, name=name)

        def consume(name):
           client = vineyard.connect(socket)
           print(client.get(name=name, fetch=True).sum())

        if __name__ == '__main__':
           name = {name!r}

           producer = mp.Process(target=produce, args=(name,))
           producer.start()
           producer.join()
           consumer = mp.Process(target=consume, args=(name,))
           consumer.start()
           consumer.join()
           sys.exit(producer.exitcode or consumer.exitcode)
    """, vineyardd_socket)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["A", "B", "C", "D", "dtype:"]
    assert lines[-1] == "dtype: float64"
    with vineyard.connect(vineyardd_socket) as c:
        oid = c.get_name(name)
        assert c.get_meta(oid).ispersist
        assert c.get(name=name).shape == (100, 4)
        c.drop_name(name)
        c.delete(oid)


def test_python_m_vineyard_launches_a_server(tmp_path):
    # $ python3 -m vineyard --socket /tmp/vineyard.sock   (RPC off: port 9600 may be taken)
    sock = str(tmp_path / "vineyard.sock")
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"))
    proc = subprocess.Popen([sys.executable, "-m", "vineyard", "--socket", sock, "--size=64Mi",
                             "--norpc", "--meta=local"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while not os.path.exists(sock):
            assert proc.poll() is None, proc.stderr.read().decode(errors="replace")
            assert time.monotonic() < deadline, "python3 -m vineyard did not listen"
            time.sleep(0.05)
        for _ in range(100):
            probe = pysocket.socket(pysocket.AF_UNIX)
            try:
                probe.connect(sock)
                break
            except OSError:
                time.sleep(0.05)
            finally:
                probe.close()
        with vineyard.connect(sock) as client:
            assert client.ipc_socket == sock
            assert client.status.memory_limit == 64 * 1024 * 1024
            assert (client.get(client.put(np.arange(3))) == [0, 1, 2]).all()
    finally:
        proc.send_signal(signal.SIGTERM)  # "press Ctrl-C in the terminal"
        assert proc.wait(timeout=20) is not None


def test_python_m_vineyard_help():
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"))
    out = subprocess.run([sys.executable, "-m", "vineyard", "--help"], env=env,
                         capture_output=True, text=True, timeout=30)
    assert "--socket" in out.stdout + out.stderr


def test_open_stream_example():
    pytest.skip(STREAM_ISSUE)


# ================================================================ Python API reference (001)

def test_object_id_example():
    from vineyard import ObjectID

    id = ObjectID("000043c5c6d5e646")  # noqa: A001 (as in the docs)
    assert repr(id) == "o000043c5c6d5e646"  # newer releases print the 'o' prefix
    assert str(id) == 'ObjectID <"o000043c5c6d5e646">'
    assert int(id) == 74516723525190
    assert id == ObjectID("o000043c5c6d5e646") and hash(id) == hash(74516723525190)


def test_object_meta_hashmap_example(client):
    # A hashmap-like object: plain fields plus an "entries" member over a blob.
    builder = client.create_blob(5 * 16)
    builder.copy(0, np.arange(10, dtype=np.int64).tobytes())
    blob = builder.seal(client)
    entries = vineyard.ObjectMeta()
    entries["typename"] = "vineyard::Array<vineyard::ska::detailv3::entry>"
    entries["num_slots_minus_one_"] = 7
    entries["max_lookups_"] = 3
    entries["num_elements_"] = 5
    entries["nbytes"] = 80
    entries.add_member("entries_", blob.id)
    client.create_metadata(entries)
    hashmap = vineyard.ObjectMeta()
    hashmap["typename"] = "vineyard::Hashmap<int64,int64>"
    hashmap["num_elements_"] = 5
    hashmap.add_member("entries", entries)
    hashmap_id = client.create_metadata(hashmap).id

    meta = client.get_meta(hashmap_id)
    assert repr(meta).startswith("ObjectMeta {") and f'"id": "{hashmap_id!r}"' in repr(meta)
    assert meta["num_elements_"] == 5  # the published 0.24 client returns numbers as numbers
    assert isinstance(meta["entries"], vineyard.ObjectMeta)
    assert meta["entries"].id == entries.id
    keys = list(k for k in meta["entries"])
    for key in ("num_slots_minus_one_", "max_lookups_", "num_elements_", "entries_", "nbytes",
                "typename", "instance_id", "id", "transient"):
        assert key in keys
    assert "entries" in meta and "missing" not in meta
    assert meta.get("missing") is None and meta.get("missing", 7) == 7
    assert meta.get_member("entries").typename == entries.typename
    assert meta.member("entries").memory_usage == 80
    client.delete(hashmap_id)  # deep by default: the entries member goes too
    assert not client.exists(hashmap_id) and not client.exists(entries.id)


def test_get_and_put_examples(client):
    arr = np.arange(8)
    arr_id = client.put(arr)
    arr_id = vineyard.ObjectID(repr(arr_id))  # vineyard.ObjectID('...') as in the docs
    arr = client.get(arr_id)
    assert repr(arr) == "array([0, 1, 2, 3, 4, 5, 6, 7])"


def test_client_meta_example(client):
    meta = client.meta
    assert isinstance(meta, dict) and client.instance_id in meta
    info = meta[client.instance_id]
    for field in ("hostid", "hostname", "timestamp"):
        assert field in info


def test_instance_status_example(client):
    status = client.status
    text = str(status)
    assert text.splitlines()[0] == "InstanceStatus:"
    for field in ("instance_id", "deployment", "memory_usage", "memory_limit",
                  "deferred_requests", "ipc_connections", "rpc_connections"):
        assert re.search(rf"^    {field}: \S+$", text, re.M), text
    assert status.instance_id == client.instance_id
    assert status.deployment == "local"
    assert isinstance(status.memory_usage, int) and status.memory_usage >= 0
    assert status.memory_limit == 512 * 1024 * 1024
    assert status.deferred_requests == 0
    assert status.ipc_connections >= 1
    assert status.rpc_connections == 0


def test_resolver_context_example(client):
    from vineyard.core.resolver import default_resolver_context, resolver_context

    def numpy_resolver(obj):
        return ("numpy", obj.typename)

    def xgboost_resolver(obj):
        return ("xgboost", obj.typename)

    tensor_id = client.put(np.arange(4))
    saved = default_resolver_context._factory.get("vineyard::Tensor")
    try:
        default_resolver_context.register('vineyard::Tensor', numpy_resolver)
        assert client.get(tensor_id) == ("numpy", "vineyard::Tensor<int64>")
        # the docs' spelling: {'vineyard::Tensor', xgboost_resolver}
        with resolver_context({'vineyard::Tensor', xgboost_resolver}):
            assert client.get(tensor_id) == ("xgboost", "vineyard::Tensor<int64>")
            with resolver_context({'vineyard::Tensor': numpy_resolver}):  # nestable
                assert client.get(tensor_id)[0] == "numpy"
            assert client.get(tensor_id)[0] == "xgboost"
        assert client.get(tensor_id)[0] == "numpy"
    finally:
        default_resolver_context.unregister("vineyard::Tensor")
        if saved is not None:
            default_resolver_context.register("vineyard::Tensor", saved)
    assert (client.get(tensor_id) == np.arange(4)).all()


class Point:
    def __init__(self, x, y):
        self.x, self.y = x, y


def test_builder_context_example(client):
    from vineyard.core.builder import builder_context, get_current_builders

    def point_builder(client, value, **kw):
        meta = vineyard.ObjectMeta()
        meta["typename"] = "example::Point"
        meta["x"], meta["y"] = value.x, value.y
        meta["nbytes"] = 0
        return client.create_metadata(meta)

    with builder_context({Point: point_builder}) as ctx:
        assert get_current_builders() is ctx
        oid = client.put(Point(1, 2))
    meta = client.get_meta(oid)
    assert meta.typename == "example::Point" and (meta["x"], meta["y"]) == (1, 2)
    # outside the context the Point falls back to pickle
    assert client.get_meta(client.put(Point(3, 4))).typename == "vineyard::PickleBuffer"


def test_csi_read_write_examples():
    pytest.skip(CSI_ISSUE)


def test_io_open_read_write_examples():
    pytest.skip(STREAM_ISSUE)


def test_get_current_socket_and_deploy_examples():
    pytest.skip(DEPLOY_ISSUE)


# ================================================================ shared data access (003)

def test_local_objects_example(client):
    df = pd.DataFrame(np.random.rand(10, 2))
    r = client.put(df)
    assert type(r) is vineyard._C.ObjectID and type(r).__module__ == "vineyard._C"
    data = client.get(r)
    pd.testing.assert_frame_equal(data, df)


def test_get_meta_contents_example(client):
    r = client.put(pd.DataFrame(np.random.rand(10, 2)))
    meta = client.get_meta(r)
    assert meta.id == r
    assert meta.instance_id == client.instance_id
    assert meta.typename == "vineyard::DataFrame"
    assert meta["nbytes"] == 0 and meta["transient"] is True
    value = meta["__values_-value-0"]
    assert value["global"] is False
    assert OBJECT_REPR.match(value["id"]) and value["id"] == repr(value.id)
    assert value["instance_id"] == client.instance_id
    assert value["nbytes"] == 80
    assert value["shape_"] == "[10]"
    assert value["typename"] == "vineyard::Tensor<double>"
    assert value["value_type_"] == "float64"
    assert value["value_type_meta_"] == "<f8"
    assert value["order_"] in ('"C"', '"F"')
    assert value["buffer_"].typename == "vineyard::Blob"
    assert value["buffer_"].id.is_blob


def test_create_and_get_blob_example(client):
    payload = b'abcdefgh1234567890uvwxyz'
    buffer_builder = client.create_blob(len(payload))
    buffer_builder.copy(0, payload)
    blob = buffer_builder.seal(client)

    blob = client.get_blob(blob.id)
    assert type(blob) is vineyard._C.Blob
    assert repr(blob) == f'Object <"{blob.id!r}": vineyard::Blob>'
    assert bytes(memoryview(blob)) == b'abcdefgh1234567890uvwxyz'


def test_rpc_client_examples(rpc_server):
    # "Local Objects" (003), then "Remote Objects" on the same instance over TCP.
    vineyard_ipc_client = vineyard.connect(rpc_server.socket)
    df = pd.DataFrame(np.random.rand(10, 2))
    r = vineyard_ipc_client.put(df)
    assert type(r) is vineyard._C.ObjectID
    pd.testing.assert_frame_equal(vineyard_ipc_client.get(r), df)

    vineyard_endpoint = f"localhost:{rpc_server.port}"
    vineyard_rpc_client = vineyard.connect(*vineyard_endpoint.split(':'))
    meta = vineyard_rpc_client.get_meta(r)
    assert meta.id == r
    assert meta.instance_id == vineyard_ipc_client.instance_id
    assert meta.typename == 'vineyard::DataFrame'

    payload = b'abcdefgh1234567890uvwxyz'
    remote_buffer_builder = vineyard.RemoteBlobBuilder(len(payload))
    remote_buffer_builder.copy(0, payload)
    remote_blob_id = vineyard_rpc_client.create_remote_blob(remote_buffer_builder)
    remote_blob = vineyard_rpc_client.get_remote_blob(remote_blob_id)
    assert type(remote_blob) is vineyard._C.RemoteBlob
    assert bytes(memoryview(remote_blob)) == b'abcdefgh1234567890uvwxyz'
    vineyard_rpc_client.close()
    vineyard_ipc_client.close()


# ================================================================ sharing Python objects (004)

def test_blob_put_get_object_example(client):
    payload = b"Hello, World!"
    blob_id = client.put(payload)
    blob = client.get_object(blob_id)
    assert (blob.typename, blob.size) == ("vineyard::Blob", len(payload))
    assert str(blob) == f'Object <"{blob_id!r}": vineyard::Blob>'
    assert bytes(blob) == payload
    assert bytes(client.get(blob_id)) == payload


def test_distributed_pair_example():
    pytest.skip(CLUSTER_ISSUE)
