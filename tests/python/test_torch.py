"""torch tensors in vineyard's Tensor layout: every dtype's exact round trip, zero copy,
what a write to a got tensor does, state dicts and modules in ``torch_context``, DLPack
tensors of other libraries, the published client reading ours, and refused input."""
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import vineyard
from vineyard.contrib.ml.torch import torch_context
from vineyard.data.tensor import normalize_cpptype

NUMPY_DTYPES = ["bool", "uint8", "int8", "int16", "int32", "int64", "uint16", "uint32",
                "uint64", "float16", "float32", "float64", "complex64", "complex128"]
OTHER_DTYPES = ["bfloat16", "complex32", "float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2",
                "float8_e5m2fnuz", "float8_e8m0fnu", "float4_e2m1fn_x2", "bits8", "bits16",
                "bits1x8", "bits2x4", "bits4x2", "uint1", "uint4", "int4", "int7"]
DTYPES = [n for n in NUMPY_DTYPES + OTHER_DTYPES
          if isinstance(getattr(torch, n, None), torch.dtype)]


@pytest.fixture
def c(client):
    return vineyard.connect(client.ipc_socket)


def random_tensor(dtype, shape=(3, 5)):
    """Random bytes as ``dtype`` (every bit pattern, so the comparison is of the bytes)."""
    count = int(np.prod(shape)) * dtype.itemsize
    raw = torch.from_numpy(np.random.default_rng(7).integers(0, 256, count, dtype=np.uint8))
    if dtype == torch.bool:
        raw = raw % 2
    return raw.view(dtype).reshape(shape)


def same_bytes(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and \
        torch.equal(a.contiguous().reshape(-1).view(torch.uint8),
                    b.contiguous().reshape(-1).view(torch.uint8))


def blob_of(c, oid):
    return c.get_object(oid).member("buffer_")


@pytest.mark.parametrize("name", DTYPES)
def test_each_dtype_round_trips_exactly_over_the_blob(c, name):
    dtype = getattr(torch, name)
    value = random_tensor(dtype)
    oid = c.put(value)
    meta = c.get_meta(oid)
    if name in NUMPY_DTYPES:  # the layout of value.numpy()
        np_dtype = value.numpy().dtype
        assert meta.typename == f"vineyard::Tensor<{normalize_cpptype(np_dtype)}>"
        assert meta["value_type_meta_"] == np_dtype.str
    else:
        assert meta.typename == f"vineyard::Tensor<{name}>"
    assert meta["value_type_torch_"] == name and meta.nbytes == value.numel() * dtype.itemsize
    got = c.get(oid)
    assert type(got) is torch.Tensor and same_bytes(got, value)
    blob = blob_of(c, oid)
    assert got.data_ptr() == blob.address
    c.delete(oid)


def test_empty_scalar_noncontiguous_and_autograd_tensors(c):
    for value in (torch.empty(0, 3), torch.tensor(2.5, dtype=torch.bfloat16),
                  torch.tensor(7)):
        got = c.get(c.put(value))
        assert same_bytes(got, value)
    base = torch.arange(48, dtype=torch.float32).reshape(6, 8)
    for view in (base.t(), base[::2, 1::3], base.expand(2, 6, 8), torch.conj(base * 1j)):
        assert not view.is_contiguous() or view.is_conj()
        got = c.get(c.put(view))
        assert got.is_contiguous() and torch.equal(got, view.resolve_conj())
    param = torch.nn.Parameter(torch.randn(4, 4))
    got = c.get(c.put(param))
    assert type(got) is torch.Tensor and not got.requires_grad and torch.equal(got, param)


def test_zero_copy_get_no_memory_growth(c):
    value = torch.randn(32, 1 << 20)  # 128 MiB
    oid = c.put(value)
    del value

    def anon_kib():
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("RssAnon:"))

    before = anon_kib()
    got = c.get(oid)
    assert float(got.sum()) != 0  # every page read
    assert anon_kib() - before < 16 * 1024  # a copy would add 128 MiB
    blob = blob_of(c, oid)
    assert blob.address <= got.data_ptr() and \
        got.data_ptr() + got.numel() * 4 <= blob.address + blob.size
    del got
    c.delete(oid)


def test_a_write_to_a_got_tensor_faults_and_clone_is_writable(c, client):
    value = torch.arange(10, dtype=torch.float32)
    oid = c.put(value)
    got = c.get(oid)
    copy = got.clone()
    copy += 1
    assert torch.equal(copy, value + 1) and torch.equal(got, value)
    script = textwrap.dedent("""
        import sys, torch, vineyard
        c = vineyard.connect(sys.argv[1])
        t = c.get(vineyard.ObjectID(sys.argv[2]))
        print("got", float(t.sum()), flush=True)
        t[0] = 99.0
        print("wrote", flush=True)
    """)
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(vineyard.__file__)))
    out = subprocess.run([sys.executable, "-c", script, client.ipc_socket, repr(oid)],
                         capture_output=True, text=True, timeout=60, env=env, cwd="/")
    assert out.stdout.splitlines() == ["got 45.0"]  # the write never returned
    assert out.returncode == -signal.SIGSEGV
    assert torch.equal(c.get(oid), value)  # the stored tensor is unchanged
    c.delete(oid)


def test_state_dict_and_module_round_trip_in_torch_context(c):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.BatchNorm1d(4),
                                torch.nn.Linear(4, 2).to(torch.bfloat16))
    with torch_context():
        oid = c.put(model)
        meta = c.get_meta(oid)
        assert meta.typename == "vineyard::torch::Module"
        assert "tensor.0.weight" in meta.member_names()
        state = c.get(oid)
        assert set(state) == set(model.state_dict())  # (keys come back sorted)
        for key, tensor in model.state_dict().items():
            assert same_bytes(state[key], tensor), key
        fresh = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.BatchNorm1d(4),
                                    torch.nn.Linear(4, 2).to(torch.bfloat16))
        fresh.load_state_dict(state)
        fresh.eval(), model.eval()
        x = torch.randn(3, 8)
        assert torch.equal(fresh[:2](x), model[:2](x))

        nested = {"weights": {"a": torch.ones(2), "b": [torch.zeros(3, dtype=torch.int8), 5]},
                  "step": 12, "name": "run", "lr": None}
        got = c.get(c.put(nested))
        assert got["step"] == 12 and got["name"] == "run" and got["lr"] is None
        assert torch.equal(got["weights"]["a"], torch.ones(2))
        assert torch.equal(got["weights"]["b"][0], torch.zeros(3, dtype=torch.int8))
        assert got["weights"]["b"][1] == 5

        # every Tensor comes back as torch in the context, one put from numpy too
        from_numpy = c.put(np.arange(6, dtype=np.int32))
        assert torch.equal(c.get(from_numpy), torch.arange(6, dtype=torch.int32))

        with pytest.raises(TypeError, match="str keys"):
            c.put({0: torch.ones(1)})
        with pytest.raises(TypeError, match="JSON values"):
            c.put({"when": object()})
    assert isinstance(c.get(from_numpy), np.ndarray)  # outside: numpy again


def test_datasets_and_frames_in_torch_context(c):
    import pandas as pd
    import pyarrow as pa

    features, labels = torch.randn(10, 3), torch.randint(0, 2, (10,))
    frame = pd.DataFrame({"a": [1, 2, 3], "b": [0.5, 1.5, 2.5]})
    with torch_context():
        oid = c.put(torch.utils.data.TensorDataset(features, labels))
        assert c.get_meta(oid).typename == "vineyard::DataFrame"
        got = c.get(oid)
        assert isinstance(got, torch.utils.data.TensorDataset) and len(got) == 10
        assert same_bytes(got.tensors[0], features) and same_bytes(got.tensors[1], labels)

        class Pairs(torch.utils.data.Dataset):  # any map-style dataset: items collated
            def __len__(self):
                return 4

            def __getitem__(self, i):
                return torch.full((2,), float(i)), torch.tensor(i)

        got = c.get(c.put(Pairs()))
        assert torch.equal(got.tensors[0][3], torch.full((2,), 3.0))
        assert torch.equal(got.tensors[1], torch.arange(4))
        for value in (frame, pa.Table.from_pandas(frame, preserve_index=False),
                      pa.RecordBatch.from_pandas(frame, preserve_index=False)):
            got = c.get(c.put(value))
            assert isinstance(got, torch.utils.data.TensorDataset)
            assert torch.equal(got.tensors[0], torch.tensor([1, 2, 3]))
            assert torch.equal(got.tensors[1], torch.tensor([0.5, 1.5, 2.5], dtype=torch.float64))


def test_plain_dicts_and_lists_of_tensors_outside_the_context(c):
    state = {"w": torch.randn(3, 3), "b": torch.ones(3, dtype=torch.bfloat16)}
    got = c.get(c.put(state))  # pickled
    assert set(got) == {"w", "b"} and all(same_bytes(got[k], state[k]) for k in state)
    parts = [torch.arange(4), torch.ones(2, dtype=torch.float8_e4m3fn)]
    got = c.get(c.put(parts))  # a Sequence of Tensors
    assert isinstance(got, tuple) and all(same_bytes(a, b) for a, b in zip(got, parts))


class Exported:
    """A tensor of another library: only the DLPack protocol."""

    def __init__(self, inner, device=None):
        self.inner, self.device = inner, device

    def __dlpack__(self, **kw):
        return self.inner.__dlpack__(**kw)

    def __dlpack_device__(self):
        return self.device or self.inner.__dlpack_device__()


def test_dlpack_tensors_are_put_as_tensors(c):
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    oid = c.put(Exported(array))
    assert c.get_meta(oid).typename == "vineyard::Tensor<float>"
    got = c.get(oid)
    assert isinstance(got, np.ndarray) and np.array_equal(got, array)
    half = torch.randn(5, dtype=torch.bfloat16)  # numpy cannot import it: through torch
    got = c.get(c.put(Exported(half)))
    assert same_bytes(got, half)
    usage = c.status.memory_usage
    with pytest.raises(ValueError, match="DLPack device \\(2, 0\\)"):
        c.put(Exported(array, device=(2, 0)))  # kDLCUDA
    assert c.status.memory_usage == usage


@pytest.mark.filterwarnings("ignore::UserWarning")  # (sparse CSR is beta, quantize is deprecated)
def test_refused_tensors_are_clear_errors_and_leave_nothing(c):
    usage = c.status.memory_usage
    with pytest.raises(ValueError, match="device 'meta'.*tensor.cpu"):
        c.put(torch.empty(3, device="meta"))
    sparse = torch.eye(3).to_sparse()
    with pytest.raises(TypeError, match="sparse_coo.*to_dense"):
        c.put(sparse)
    with pytest.raises(TypeError, match="dense tensors"):
        c.put(torch.eye(3).to_sparse_csr())
    quantized = torch.quantize_per_tensor(torch.ones(3), 0.1, 0, torch.qint8)
    with pytest.raises(TypeError, match="quantized.*dequantize"):
        c.put(quantized)
    assert c.status.memory_usage == usage
    assert same_bytes(c.get(c.put(sparse.to_dense())), torch.eye(3))


def test_over_rpc(rpc_server):
    rpc = vineyard.connect("127.0.0.1", rpc_server.port)
    value = torch.randn(64, 64, dtype=torch.bfloat16)
    got = rpc.get(rpc.put(value))
    assert same_bytes(got, value)
    with torch_context(rpc):
        state = {"w": torch.arange(5)}
        assert torch.equal(rpc.get(rpc.put(state))["w"], state["w"])
    rpc.close()


def test_the_published_client_reads_our_tensors_as_numpy(c, client, run_published):
    values = {name: random_tensor(getattr(torch, name)) for name in
              ("float32", "int64", "bool", "float16", "uint8", "complex64")}
    ids = {}
    for name, value in values.items():
        ids[name] = c.put(value)
        c.persist(ids[name])
    out = run_published(f"""
    import json, sys, numpy as np, vineyard
    c = vineyard.connect(sys.argv[1])
    ids = {({k: repr(v) for k, v in ids.items()})!r}
    out = {{}}
    for k, v in ids.items():
        a = c.get(vineyard.ObjectID(v))
        out[k] = [str(a.dtype), list(a.shape), a.tobytes().hex()]
    print(json.dumps(out))
    """, client.ipc_socket)
    for name, value in values.items():
        dtype, shape, data = out[name]
        assert dtype == str(value.numpy().dtype) and shape == list(value.shape)
        assert bytes.fromhex(data) == value.numpy().tobytes()


def test_vineyard_imports_none_of_the_libraries_it_loads_on_first_use():
    script = ("import sys, vineyard; "
              "print(sorted({'torch', 'polars', 'scipy', 'pandas'} & set(sys.modules)))")
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(vineyard.__file__)))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60, env=env, cwd="/")
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr[-2000:]
