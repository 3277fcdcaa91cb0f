"""vineyard: an in-memory immutable data manager.

This package ships the ``vineyardd`` server; ``python3 -m vineyard [flags]`` runs it.
``vineyard.connect(socket)`` returns an ``IPCClient`` whose ``put``/``get`` store and load
Python values (numpy arrays zero-copy).
"""
import os
from typing import Any, Optional, Union

__version__ = "0.1.0"


def vineyardd_path() -> str:
    """Path of the ``vineyardd`` binary bundled with this package."""
    path = os.path.join(os.path.dirname(__file__), "bin", "vineyardd")
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"vineyardd is not bundled at {path}: install the package with `pip install .`"
        )
    return path


from . import _C  # noqa: E402
from ._C import Blob, BlobBuilder, InstanceStatus, ObjectBuilder, ObjectID, ObjectMeta, ObjectName  # noqa: E402
from ._C import RemoteBlob, RemoteBlobBuilder  # noqa: E402
from ._C import VineyardException  # noqa: E402

_exceptions = [n for n in dir(_C) if n.endswith("Exception") and n != "VineyardException"]
globals().update({n: getattr(_C, n) for n in _exceptions})

from .core import (  # noqa: E402
    BuilderContext,
    DriverContext,
    ResolverContext,
    builder_context,
    default_builder_context,
    default_driver_context,
    default_resolver_context,
    driver_context,
    get_current_builders,
    get_current_drivers,
    get_current_resolvers,
    resolver_context,
)
from .core.client import ClientBase, IPCClient, RPCClient, connect  # noqa: E402
from .core.object import Object  # noqa: E402
from . import data  # noqa: E402,F401  (registers the built-in builders and resolvers)
from . import deploy  # noqa: E402,F401
from .deploy.local import get_current_socket, shutdown, try_init  # noqa: E402

_default_client: Optional[ClientBase] = None


def _client(client: Optional[ClientBase] = None) -> ClientBase:
    global _default_client
    if client is not None:
        return client
    if _default_client is None or not _default_client.connected:
        _default_client = connect()
    return _default_client


def set_default_client(client: Optional[ClientBase]) -> None:
    """Use ``client`` for the module-level ``put``/``get`` (None: reconnect lazily)."""
    global _default_client
    _default_client = client


def put(value: Any, builder: Optional[BuilderContext] = None, persist: bool = False,
        name: Optional[str] = None, client: Optional[ClientBase] = None, **kwargs: Any) -> ObjectID:
    """``ClientBase.put`` on the default client (``connect()`` over $VINEYARD_IPC_SOCKET)."""
    return _client(client).put(value, builder=builder, persist=persist, name=name, **kwargs)


def get(object_id: Optional[Union[ObjectID, int, str]] = None, name: Optional[str] = None,
        resolver: Optional[ResolverContext] = None, client: Optional[ClientBase] = None,
        **kwargs: Any) -> Any:
    """``ClientBase.get`` on the default client (``connect()`` over $VINEYARD_IPC_SOCKET)."""
    return _client(client).get(object_id, name=name, resolver=resolver, **kwargs)


__all__ = [
    "__version__", "vineyardd_path", "connect", "IPCClient", "RPCClient", "RemoteBlob", "RemoteBlobBuilder", "Object", "ObjectBuilder", "ObjectID", "ObjectName",
    "ObjectMeta", "Blob", "BlobBuilder", "InstanceStatus", "VineyardException", "put", "get",
    "set_default_client", "BuilderContext", "ResolverContext", "DriverContext",
    "default_builder_context", "default_resolver_context", "default_driver_context",
    "builder_context", "resolver_context", "driver_context", "get_current_builders",
    "get_current_resolvers", "get_current_drivers", "try_init", "get_current_socket",
    "shutdown", "deploy", "csi",
] + _exceptions

from . import shared_memory  # noqa: E402,F401  (vineyard.shared_memory after `import vineyard`)
from . import csi  # noqa: E402,F401
from . import io  # noqa: E402,F401  (streams and I/O drivers; registers the stream resolvers)
