"""vineyard.csi.read / write: objects as paths on a volume that holds the socket.

Run: PYTHONPATH=python python3 -m pytest -q tests/python/test_csi.py
"""
import os

import numpy as np
import pandas as pd
import pytest

import vineyard
from vineyard import csi

from conftest import Server


@pytest.fixture(scope="module")
def volume():
    """A vineyardd whose socket is <dir>/vineyard.sock: <dir> is the volume."""
    s = Server()
    yield s
    s.stop()


def test_write_then_read_by_path(volume):
    base = os.path.dirname(volume.socket)
    path = os.path.join(base, "a", "b", "arr")
    oid = csi.write(np.arange(8), path)
    assert (csi.read(path) == np.arange(8)).all()
    with vineyard.connect(volume.socket) as c:
        assert c.get_name("a:b:arr") == oid and c.is_persisted(oid)
    df = pd.DataFrame({"x": [1, 2]})
    csi.write(df, os.path.join(base, "frame"))
    pd.testing.assert_frame_equal(csi.read(os.path.join(base, "frame")), df)
    assert vineyard.csi is csi


def test_rewrite_replaces_and_frees_the_old_object(volume):
    path = os.path.join(os.path.dirname(volume.socket), "again")
    first = csi.write(np.zeros(4), path)
    second = csi.write(np.ones(4), path)
    assert first != second and (csi.read(path) == 1).all()
    with vineyard.connect(volume.socket) as c:
        assert not c.exists(first)


def test_read_of_a_path_with_no_object(volume):
    path = os.path.join(os.path.dirname(volume.socket), "never", "written")
    with pytest.raises(vineyard.ObjectNotExistsException) as e:
        csi.read(path)
    assert path in str(e.value) and "never:written" in str(e.value)


def test_path_on_no_volume(tmp_path):
    with pytest.raises(ValueError, match="not on a vineyard volume"):
        csi.read(str(tmp_path / "x" / "y"))


def test_config_file_names_the_socket(volume, tmp_path):
    (tmp_path / "vineyard-config.yaml").write_text(
        f"Vineyard:\n  IPCSocket: {volume.socket}\n  RPCEndpoint: ''\n")
    path = str(tmp_path / "via-config")
    oid = csi.write(np.arange(3), path)
    assert (csi.read(path) == np.arange(3)).all()
    with vineyard.connect(volume.socket) as c:
        assert c.get_name("via-config") == oid
