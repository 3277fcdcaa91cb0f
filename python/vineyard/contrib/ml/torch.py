"""torch in vineyard, as ``vineyard.contrib.ml.torch`` of the reference.

Inside ``with torch_context():``

- a ``torch.Tensor`` is put as a ``vineyard::Tensor`` (as it is outside the context), and
  every ``vineyard::Tensor`` comes back as a torch tensor, also one put from numpy;
- a ``torch.nn.Module`` is put as its state dict, and a ``dict`` (a state dict, or any dict
  of tensors, nested dicts and lists and JSON values) as a ``vineyard::torch::Module``: the
  field ``state_dict`` holds the dict as JSON with ``null`` for each tensor, and each tensor
  is the member ``tensor.<path>`` (``tensor.fc.weight``). ``get`` returns the dict, its
  tensors over shared memory (``module.load_state_dict(value)`` copies them in), its keys
  in sorted order (metadata keeps JSON objects sorted);
- a ``torch.utils.data.Dataset`` is put as a ``vineyard::DataFrame`` whose column ``i`` is
  the Tensor of every item's ``i``-th field (collated), and a DataFrame, RecordBatch or
  Table comes back as a ``TensorDataset`` of its columns.

Outside the context, dicts are pickled as any other value.
"""
from __future__ import annotations

import contextlib
import warnings
from collections import OrderedDict
from typing import Any, Dict, Generator, Optional, Tuple

import torch

from ... import _C
from ...core import context
from ...core.object import PendingObject
from ...data.torch import torch_tensor_builder, torch_tensor_resolver
from ...data.utils import from_json, to_json

__all__ = ["torch_context", "register_torch_types", "torch_tensor_builder",
           "torch_tensor_resolver", "torch_module_builder", "torch_module_resolver",
           "torch_dataset_builder", "torch_dataset_resolver"]

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
                where = path[len(_PREFIX) + 1:] or "it"
                raise TypeError(
                    f"a torch state dict is put with str keys, but {where} has the key "
                    f"{key!r} ({type(key).__name__}); convert the keys or pickle it")
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


def _columns(value: torch.utils.data.Dataset) -> Tuple[torch.Tensor, ...]:
    if isinstance(value, torch.utils.data.TensorDataset):
        return tuple(value.tensors)
    items = torch.utils.data.default_collate([value[i] for i in range(len(value))])
    if isinstance(items, torch.Tensor):
        return (items,)
    if not (isinstance(items, (list, tuple)) and all(isinstance(t, torch.Tensor) for t in items)):
        raise TypeError(f"a torch Dataset is put as columns of tensors, but its items "
                        f"collate to {type(items).__name__}: make each item a tuple of tensors")
    return tuple(items)


def torch_dataset_builder(client: Any, value: torch.utils.data.Dataset, builder: Any = None,
                          **kw: Any) -> PendingObject:
    """A Dataset -> ``vineyard::DataFrame`` of its collated fields (the reference's layout:
    columns named 0, 1, ..., a RangeIndex, one Tensor per column)."""
    import pandas as pd

    columns = _columns(value)
    rows = int(columns[0].shape[0]) if columns else 0
    meta = _C.ObjectMeta()
    meta.typename = "vineyard::DataFrame"
    meta["columns_"] = to_json(list(range(len(columns))))
    members = client.nest_all([builder.run(client, pd.RangeIndex(rows))] +
                              [torch_tensor_builder(client, t) for t in columns])
    meta.add_member("index_", members[0])
    for i, member in enumerate(members[1:]):
        meta["__values_-key-%d" % i] = to_json(i)
        meta.add_member("__values_-value-%d" % i, member)
    meta["__values_-size"] = len(columns)
    partition = list(kw.get("partition_index", [-1, -1]))
    meta["partition_index_row_"] = partition[0]
    meta["partition_index_column_"] = partition[1]
    meta["row_batch_index_"] = kw.get("row_batch_index", 0)
    meta.nbytes = sum(t.numel() * t.element_size() for t in columns)
    return PendingObject(meta)


def _tensor(column: Any) -> torch.Tensor:
    if isinstance(column, torch.Tensor):
        return column
    if hasattr(column, "to_numpy"):  # pandas, arrow and polars columns
        try:
            column = column.to_numpy(zero_copy_only=False)
        except TypeError:
            column = column.to_numpy()
    with warnings.catch_warnings():  # read-only views of shared memory
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(column)


def torch_dataset_resolver(obj: Any, resolver: Any = None, **kw: Any) -> Any:
    """A DataFrame, RecordBatch or Table -> ``TensorDataset`` of its columns."""
    if obj.meta.typename == "vineyard::DataFrame":
        size = int(obj.meta["__values_-size"])
        columns = [resolver.run(obj.member("__values_-value-%d" % i), **kw) for i in range(size)]
    else:
        value = resolver.parent_context.run(obj, **kw)
        columns = list(value.columns) if hasattr(value, "columns") else [value]
        if hasattr(value, "get_column"):  # polars
            columns = [value.get_column(name) for name in value.columns]
    return torch.utils.data.TensorDataset(*[_tensor(c) for c in columns])


def register_torch_types(builder_ctx: Any, resolver_ctx: Any) -> None:
    if builder_ctx is not None:
        builder_ctx.register(torch.Tensor, torch_tensor_builder)
        builder_ctx.register(torch.utils.data.Dataset, torch_dataset_builder)
        builder_ctx.register(torch.nn.Module, torch_module_builder)
        builder_ctx.register(dict, torch_module_builder)
        builder_ctx.register(OrderedDict, torch_module_builder)
    if resolver_ctx is not None:
        resolver_ctx.register("vineyard::Tensor", torch_tensor_resolver)
        resolver_ctx.register("vineyard::DataFrame", torch_dataset_resolver)
        resolver_ctx.register("vineyard::RecordBatch", torch_dataset_resolver)
        resolver_ctx.register("vineyard::Table", torch_dataset_resolver)
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
