"""Helpers shared by the built-in builders."""
from __future__ import annotations

import json
from typing import Any

from .. import _C


def to_json(value: Any) -> str:
    """JSON text as the reference writes it (``json.dumps`` defaults, e.g. ``"[2, 3]"``)."""
    return json.dumps(value)


def from_json(text: Any) -> Any:
    return json.loads(text) if isinstance(text, str) else text


def build_buffer(client: Any, data: Any, defer: bool = True) -> Any:
    """A blob holding ``data`` (bytes-like) to add as a member (``meta.add_member``).

    Inside an IPC ``put`` (and with ``defer``) the bytes wait for the request that creates
    the whole tree: an ``InlineBlob`` naming them, sent in that request when small or
    copied to a blob created just before it otherwise (one request for all). Else over IPC
    an unsealed BlobBuilder (sealed by put), over RPC the ObjectMeta of a blob already sent
    (straight from ``data``'s memory); the empty Blob for 0 bytes."""
    view = memoryview(data).cast("B") if not isinstance(data, (bytes, bytearray)) else data
    size = len(view)
    if size == 0:
        return _C.Blob.empty()
    deferred = getattr(client, "deferred_buffers", None) if defer else None
    runs = deferred() if deferred is not None else None
    if runs is not None:
        runs.append(view)
        return _C.InlineBlob(len(runs) - 1, size)
    if client.is_rpc:
        return client.create_remote_blobs_from([view])[0]
    writer = client.create_blob(size)
    writer.copy(0, view)
    return writer


def blob_list(buffer: Any) -> list:
    """The builders to seal for a buffer made by ``build_buffer``."""
    return [buffer] if isinstance(buffer, _C.BlobBuilder) else []
