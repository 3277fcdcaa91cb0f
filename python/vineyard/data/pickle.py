"""Anything else <-> ``vineyard::PickleBuffer`` (pickle protocol 5, in-band)."""
from __future__ import annotations

import pickle
from typing import Any

from .. import _C
from ..core.object import PendingObject
from .utils import blob_list, build_buffer


def _type_name(value: Any) -> str:
    cls = type(value)
    module = getattr(cls, "__module__", "")
    return cls.__qualname__ if module in ("builtins", "") else f"{module}.{cls.__qualname__}"


def pickle_builder(client: Any, value: Any, **kw: Any) -> PendingObject:
    """Fallback builder: ``value`` pickled into one blob (``vineyard::PickleBuffer``)."""
    try:
        payload = pickle.dumps(value, protocol=5)
    except (pickle.PicklingError, TypeError, AttributeError, NotImplementedError) as e:
        name = _type_name(value)
        raise TypeError(
            f"vineyard cannot put a value of type {name}: no builder is registered for it "
            f"and pickling it failed ({e}). Register a builder for the type, e.g. "
            f"vineyard.core.builder.default_builder_context.register({type(value).__name__}, "
            f"my_builder) or `with vineyard.builder_context({{{type(value).__name__}: "
            f"my_builder}})`, or put a value that pickle can serialize") from e
    buffer = build_buffer(client, payload)
    meta = _C.ObjectMeta()
    meta.typename = "vineyard::PickleBuffer"
    meta.nbytes = len(payload)
    meta["size_"] = len(payload)
    meta.add_member("buffer_", buffer)
    return PendingObject(meta, blob_list(buffer))


def pickle_resolver(obj: Any, **kw: Any) -> Any:
    view = memoryview(obj.member("buffer_"))[0: int(obj.meta["size_"])]
    return pickle.loads(view, fix_imports=True)


def register(builder_ctx: Any = None, resolver_ctx: Any = None) -> None:
    if builder_ctx is not None:
        builder_ctx.set_default_builder(pickle_builder)
    if resolver_ctx is not None:
        resolver_ctx.register("vineyard::PickleBuffer", pickle_resolver)
