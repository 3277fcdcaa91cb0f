"""int/float/str/bool <-> ``vineyard::Scalar<int|double|std::string>``."""
from __future__ import annotations

from typing import Any

from .. import _C
from ..core.object import PendingObject


def _scalar(typename: str, value: Any) -> PendingObject:
    meta = _C.ObjectMeta()
    meta.typename = typename
    meta["value_"] = value
    meta["type_"] = type(value).__name__
    meta.nbytes = 0
    return PendingObject(meta)


def int_builder(client: Any, value: int, **kw: Any) -> PendingObject:
    if isinstance(value, bool):
        return _scalar("vineyard::Scalar<int>", value)
    return _scalar("vineyard::Scalar<int>", int(value))


def double_builder(client: Any, value: float, **kw: Any) -> PendingObject:
    return _scalar("vineyard::Scalar<double>", float(value))


def string_builder(client: Any, value: str, **kw: Any) -> PendingObject:
    return _scalar("vineyard::Scalar<std::string>", str(value))


def scalar_resolver(obj: Any, **kw: Any) -> Any:
    meta = obj.meta
    typename = obj.typename
    value = meta["value_"]
    kind = meta.get("type_")
    if typename == "vineyard::Scalar<std::string>":
        return value
    if kind == "bool":
        return bool(value)
    if typename == "vineyard::Scalar<int>":
        return int(value)
    if typename in ("vineyard::Scalar<float>", "vineyard::Scalar<double>"):
        return float(value)
    return value


def register(builder_ctx: Any = None, resolver_ctx: Any = None) -> None:
    if builder_ctx is not None:
        builder_ctx.register(int, int_builder)  # bool too (a subclass of int)
        builder_ctx.register(float, double_builder)
        builder_ctx.register(str, string_builder)
    if resolver_ctx is not None:
        resolver_ctx.register("vineyard::Scalar", scalar_resolver)
