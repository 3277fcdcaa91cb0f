"""torch in vineyard, as ``vineyard.contrib.ml.torch`` of the reference.

Inside ``with torch_context():``

- a ``torch.Tensor`` is put as a ``vineyard::Tensor`` (as it is outside the context), and
  every ``vineyard::Tensor`` comes back as a torch tensor, also one put from numpy;
- a ``torch.nn.Module`` is put as its state dict, and a ``dict`` (a state dict, or any dict
  of tensors, nested dicts and lists and JSON values) as a ``vineyard::torch::Module``: the
  field ``state_dict`` holds the dict as JSON with ``null`` for each tensor, and each tensor
  is the member ``tensor.<path>`` (``tensor.fc.weight``). ``get`` returns the dict, its
  tensors over shared memory (``module.load_state_dict(value)`` copies them in), its keys
  in sorted order (metadata keeps JSON objects sorted).

Outside the context, dicts are pickled as any other value.
"""
from __future__ import annotations

import contextlib
from collections import OrderedDict
from typing import Any, Dict, Generator, Optional, Tuple

import torch

from ... import _C
from ...core import context
from ...core.object import PendingObject
from ...data.torch import torch_tensor_builder, torch_tensor_resolver
from ...data.utils import from_json, to_json

__all__ = ["torch_context", "register_torch_types", "torch_tensor_builder",
           "torch_tensor_resolver", "torch_module_builder", "torch_module_resolver"]

_PREFIX = "tensor"


def _split(value: Any, path: str, tensors: Dict[str, torch.Tensor]) -> Any:
    """The JSON skeleton of ``value`` (None for each tensor), collecting the tensors by path."""
    if isinstance(value, torch.Tensor):
        tensors[path] = value
        return None
    if isinstance(value, dict):
        skeleton = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(
                    f"a torch state dict is put with str keys, but {path[len(_PREFIX) + 1:] or 'it'}"
                    f" has the key {key!r} ({type(key).__name__}); convert the keys or pickle it")
            skeleton[key] = _split(item, f"{path}.{key}", tensors)
        return skeleton
    if isinstance(value, (list, tuple)):
        return [_split(item, f"{path}.{i}", tensors) for i, item in enumerate(value)]
    return value


def _join(skeleton: Any, path: str, tensors: Dict[str, Any]) -> Any:
    if path in tensors:
        return tensors[path]
    if isinstance(skeleton, dict):
        return {key: _join(item, f"{path}.{key}", tensors) for key, item in skeleton.items()}
    if isinstance(skeleton, list):
        return [_join(item, f"{path}.{i}", tensors) for i, item in enumerate(skeleton)]
    return skeleton


def torch_module_builder(client: Any, value: Any, **kw: Any) -> PendingObject:
    """A Module (its state dict) or a dict of tensors -> ``vineyard::torch::Module``."""
    state = value.state_dict() if isinstance(value, torch.nn.Module) else value
    tensors: Dict[str, torch.Tensor] = {}
    skeleton = _split(state, _PREFIX, tensors)
    meta = _C.ObjectMeta()
    meta.typename = "vineyard::torch::Module"
    try:
        meta["state_dict"] = to_json(skeleton)
    except (TypeError, ValueError) as e:
        raise TypeError(f"a torch state dict holds tensors, dicts, lists and JSON values "
                        f"only: {e}") from e
    members = client.nest_all([torch_tensor_builder(client, t) for t in tensors.values()])
    for path, member in zip(tensors, members):
        meta.add_member(path, member)
    meta.nbytes = sum(t.numel() * t.element_size() for t in tensors.values())
    return PendingObject(meta)


def torch_module_resolver(obj: Any, resolver: Any = None, **kw: Any) -> Dict[str, Any]:
    """``vineyard::torch::Module`` -> the dict it was put as, its tensors zero-copy."""
    meta = obj.meta
    tensors = {name: resolver.run(obj.member(name), **kw)
               for name in meta.member_names() if name.startswith(_PREFIX + ".")}
    return _join(from_json(meta["state_dict"]), _PREFIX, tensors)


def register_torch_types(builder_ctx: Any, resolver_ctx: Any) -> None:
    if builder_ctx is not None:
        builder_ctx.register(torch.Tensor, torch_tensor_builder)
        builder_ctx.register(torch.nn.Module, torch_module_builder)
        builder_ctx.register(dict, torch_module_builder)
        builder_ctx.register(OrderedDict, torch_module_builder)
    if resolver_ctx is not None:
        resolver_ctx.register("vineyard::Tensor", torch_tensor_resolver)
        resolver_ctx.register("vineyard::torch::Module", torch_module_resolver)


@contextlib.contextmanager
def torch_context(client: Optional[Any] = None) -> Generator[Tuple[Any, Any], Any, Any]:
    """Builders and resolvers of torch values, current for the ``with`` block (this
    thread). With ``client``, its RPC compression is off meanwhile, as in the reference."""
    with contextlib.ExitStack() as stack:
        if client is not None and getattr(client, "is_rpc", False):
            compression = client.compression
            client.compression = False
            stack.callback(setattr, client, "compression", compression)
        builder_ctx, resolver_ctx = stack.enter_context(context())
        register_torch_types(builder_ctx, resolver_ctx)
        yield builder_ctx, resolver_ctx
