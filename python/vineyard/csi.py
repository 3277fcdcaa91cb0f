"""Objects as paths, for the volumes of vineyard's CSI driver.

A volume is a directory that holds the socket of a vineyardd: either ``vineyard.sock``
itself or a ``vineyard-config.yaml`` whose ``Vineyard.IPCSocket`` names it (the file the
CSI driver writes). An object's path is a path under that directory; the object is
persisted under a name made of the path relative to that directory, with ``/`` written
as ``:`` since names cannot hold ``/`` (``/mnt/v/a/b`` with ``/mnt/v/vineyard.sock`` is
the name ``a:b``), so every pod that mounts the volume reads it back by the same path.
"""
from __future__ import annotations

import os
from typing import Any, Tuple

__all__ = ["read", "write"]

_SOCKET = "vineyard.sock"
_CONFIG = "vineyard-config.yaml"


def _name(full: str, directory: str) -> str:
    return os.path.relpath(full, directory).replace(os.sep, ":")


def _resolve(path: str) -> Tuple[str, str]:
    """(socket, object name) for ``path``: the nearest directory above it holding the
    socket or a config file that names one."""
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise ValueError(f"vineyard.csi: expected a path, got {path!r}")
    full = os.path.abspath(os.fspath(path))
    directory = os.path.dirname(full)
    looked = []
    while True:
        sock = os.path.join(directory, _SOCKET)
        conf = os.path.join(directory, _CONFIG)
        if os.path.exists(sock):
            return sock, _name(full, directory)
        if os.path.exists(conf):
            from .core.client import _socket_from_config

            return _socket_from_config(conf), _name(full, directory)
        looked.append(directory)
        parent = os.path.dirname(directory)
        if parent == directory:
            break
        directory = parent
    raise ValueError(f"vineyard.csi: no {_SOCKET} nor {_CONFIG} in any directory above "
                     f"{full} (looked in {', '.join(looked[:4])}"
                     f"{', ...' if len(looked) > 4 else ''}): the path is not on a "
                     f"vineyard volume")


def read(path: str) -> Any:
    """The Python value of the object at ``path`` (see the module doc).

    Raises ``ValueError`` when ``path`` is on no vineyard volume, and
    ``vineyard.ObjectNotExistsException`` (a KeyError) naming the path when no object
    was written there."""
    from . import _C
    from .core.client import IPCClient

    sock, name = _resolve(path)
    with IPCClient(sock) as client:
        try:
            object_id = client.get_name(name)
        except _C.ObjectNotExistsException:
            raise _C.ObjectNotExistsException(
                f"vineyard.csi.read({os.fspath(path)!r}): no object was written at this path "
                f"(no name {name!r} on the vineyardd at {sock})") from None
        return client.get(object_id)


def write(value: Any, path: str) -> Any:
    """Puts ``value``, persists it and names it after ``path``; returns the object id.
    The object written at ``path`` before, if any, is deleted (with its members, unless
    another object still holds them)."""
    from . import _C
    from .core.client import IPCClient

    sock, name = _resolve(path)
    with IPCClient(sock) as client:
        try:
            old = client.get_name(name)
        except _C.ObjectNotExistsException:
            old = None
        object_id = client.put(value, persist=True)
        client.put_name(object_id, name)
        if old is not None and old != object_id:
            try:
                client.delete(old, force=False, deep=True)
            except _C.VineyardException:
                pass  # still a member of another object, or deleted meanwhile
        return object_id
