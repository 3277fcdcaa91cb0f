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


def build_buffer(client: Any, data: Any) -> Any:
    """A blob holding ``data`` (bytes-like) to add as a member: over IPC an unsealed
    BlobBuilder (sealed by put), over RPC the ObjectMeta of a blob already sent (straight
    from ``data``'s memory); the empty Blob for 0 bytes."""
    view = memoryview(data).cast("B") if not isinstance(data, (bytes, bytearray)) else data
    size = len(view)
    if size == 0:
        return _C.Blob.empty()
    if client.is_rpc:
        return client.create_remote_blobs_from([view])[0]
    writer = client.create_blob(size)
    writer.copy(0, view)
    return writer


def blob_list(buffer: Any) -> list:
    """The builders to seal for a buffer made by ``build_buffer``."""
    return [buffer] if isinstance(buffer, _C.BlobBuilder) else []
