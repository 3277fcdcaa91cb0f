"""scipy.sparse matrices in vineyard's layouts: each format's round trip (values compared
exactly, arrays read in place), and the published 0.24.2 client reading ours and writing
what ours reads."""
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp

import vineyard

FORMATS = ["bsr", "coo", "csc", "csr", "dia"]


def sample(fmt, dtype=np.float64):
    rng = np.random.default_rng(3)
    dense = rng.random((6, 8))
    dense[dense < 0.6] = 0
    m = sp.csr_matrix(dense.astype(dtype))
    return {"bsr": lambda: m.tobsr(blocksize=(2, 2)), "coo": m.tocoo, "csc": m.tocsc,
            "csr": lambda: m, "dia": m.todia}[fmt]()


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_round_trips_exactly_without_copying(client, fmt):
    c = vineyard.connect(client.ipc_socket)
    for dtype in (np.float64, np.int32):
        value = sample(fmt, dtype)
        oid = c.put(value)
        meta = c.get_meta(oid)
        assert meta.typename == f"vineyard::{fmt.upper()}Matrix<{np.dtype(dtype).name}>"
        assert meta["nnz"] == value.nnz
        got = c.get(oid)
        assert type(got) is type(value) and got.dtype == value.dtype and got.shape == value.shape
        assert (got != value).nnz == 0
        assert not got.data.flags.writeable  # a view of the blob
        c.delete(oid)


def test_an_empty_matrix_and_a_sparse_array(client):
    c = vineyard.connect(client.ipc_socket)
    empty = sp.csr_matrix((3, 4))
    got = c.get(c.put(empty))
    assert got.shape == (3, 4) and got.nnz == 0
    if hasattr(sp, "csr_array"):
        arr = sp.csr_array(np.eye(3))
        assert (c.get(c.put(arr)) != sp.csr_matrix(np.eye(3))).nnz == 0


def test_the_published_client_reads_ours_and_ours_reads_theirs(client, run_published):
    c = vineyard.connect(client.ipc_socket)
    mine = {fmt: c.put(sample(fmt)) for fmt in FORMATS}
    for oid in mine.values():
        c.persist(oid)
    out = run_published(f"""
    import json, sys, numpy as np, scipy.sparse as sp, vineyard
    c = vineyard.connect(sys.argv[1])
    ids = {{k: vineyard.ObjectID(v) for k, v in {({k: repr(v) for k, v in mine.items()})!r}.items()}}
    sums = {{k: float(c.get(v).toarray().sum()) for k, v in ids.items()}}
    theirs = c.put(sp.random(5, 7, density=0.4, format="csr", random_state=1))
    c.persist(theirs)
    print(json.dumps([sums, repr(theirs), float(c.get(theirs).toarray().sum())]))
    """, client.ipc_socket, needs=("scipy",))
    sums, theirs, total = out
    for fmt in FORMATS:
        assert sums[fmt] == pytest.approx(sample(fmt).toarray().sum())
    got = c.get(vineyard.ObjectID(theirs))
    assert isinstance(got, sp.csr_matrix) and got.toarray().sum() == pytest.approx(total)


def test_a_process_that_imports_scipy_after_vineyard_puts_and_gets_matrices(client):
    # vineyard registers its scipy builders when the first matrix is put.
    script = """
import sys
import vineyard
assert "scipy" not in sys.modules
import numpy as np, scipy.sparse as sp
c = vineyard.connect(sys.argv[1])
m = sp.random(50, 40, density=0.1, format="csr", random_state=1)
oid = c.put(m)
assert c.get_meta(oid).typename == "vineyard::CSRMatrix<float64>"
back = c.get(oid)
assert isinstance(back, sp.csr_matrix) and (back != m).nnz == 0
got = c.get(c.put(sp.coo_array(m)))
assert (sp.csr_matrix(got) != m).nnz == 0
print("ok")
"""
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(vineyard.__file__)))
    out = subprocess.run([sys.executable, "-c", script, client.ipc_socket],
                         capture_output=True, text=True, timeout=60, env=env, cwd="/")
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
