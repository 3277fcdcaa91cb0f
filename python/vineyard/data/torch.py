"""torch.Tensor <-> ``vineyard::Tensor<T>`` (the layout numpy arrays use, see tensor.py).

- Every dtype numpy also has (bool, [u]int8..64, float16/32/64, complex64/128) is written
  exactly as the numpy array ``tensor.numpy()`` would be: the published client reads it as
  that array.
- The others (bfloat16, complex32, the float8/float4 types, bits*, [u]int1..7) keep their
  bytes in one C-order blob, and ``value_type_`` / ``value_type_meta_`` name the torch dtype
  (``vineyard::Tensor<bfloat16>``); a reader without torch has no type for them.
- Each records ``value_type_torch_`` (the torch dtype's name), so that ``get`` returns a
  torch tensor again; the reference ignores the extra field.

``get`` returns a tensor over the mapped blob (no copy). torch has no read-only flag: the
blob is mapped read-only, so an in-place write to the tensor kills the process with SIGSEGV.
``tensor.clone()`` gives a writable copy. Quantized tensors are refused (their scale and zero
point have no place in the layout), and so are sparse tensors and tensors not in host memory.
"""
from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch

from .tensor import numpy_ndarray_builder, numpy_ndarray_resolver
from .utils import from_json, to_json

# The dtypes numpy has, which go through the numpy layout unchanged.
_NUMPY_DTYPES = {torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64,
                 torch.uint16, torch.uint32, torch.uint64, torch.float16, torch.float32,
                 torch.float64, torch.complex64, torch.complex128}


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.bfloat16`` -> ``bfloat16`` (the name ``getattr(torch, name)`` gives back)."""
    return str(dtype).split(".", 1)[1]


def _dtype_of(name: str) -> torch.dtype:
    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"this torch ({torch.__version__}) has no dtype '{name}', which the "
                        f"tensor was written with")
    return dtype


def _plain(value: torch.Tensor) -> torch.Tensor:
    """``value`` as a dense, contiguous CPU tensor without autograd, conjugate or negative
    views; a clear error for what has no place in the layout."""
    if value.layout != torch.strided:
        raise TypeError(
            f"vineyard stores dense tensors, not a {value.layout} tensor: put "
            f"tensor.to_dense(), or its parts (e.g. indices() and values()) as a tuple")
    if value.device.type != "cpu":
        raise ValueError(
            f"the tensor is on device '{value.device}': vineyard keeps tensors in host "
            f"shared memory, move it there first with tensor.cpu()")
    if value.is_quantized:
        raise TypeError(
            f"quantized tensors ({value.dtype}) cannot be put: their scale and zero point "
            f"have no place in vineyard's Tensor; put tensor.dequantize() or tensor.int_repr()")
    return value.detach().resolve_conj().resolve_neg().contiguous()


def torch_tensor_builder(client: Any, value: torch.Tensor, **kw: Any) -> Any:
    tensor = _plain(value)
    name = dtype_name(tensor.dtype)
    if tensor.dtype in _NUMPY_DTYPES:
        built = numpy_ndarray_builder(client, tensor.numpy(), **kw)
    else:  # its bytes, in a dtype numpy lacks
        built = numpy_ndarray_builder(client, tensor.reshape(-1).view(torch.uint8).numpy(), **kw)
        meta = built.meta
        meta.typename = "vineyard::Tensor<%s>" % name
        meta["shape_"] = to_json([int(d) for d in tensor.shape])
        meta["value_type_"] = name
        meta["value_type_meta_"] = name
    built.meta["value_type_torch_"] = name
    return built


def torch_tensor_resolver(obj: Any, **kw: Any) -> Any:
    """A torch tensor over the blob. A Tensor written from numpy (no ``value_type_torch_``)
    comes back as ``torch.from_numpy`` of its array when torch has its dtype, else as the
    numpy array (strings, datetimes)."""
    meta = obj.meta
    name = meta.get("value_type_torch_")
    if not name:
        array = numpy_ndarray_resolver(obj)
        if not isinstance(array, np.ndarray) or array.dtype.kind not in "biufc":
            return array
        with warnings.catch_warnings():  # a read-only array: see the module's docstring
            warnings.simplefilter("ignore", UserWarning)
            return torch.from_numpy(array)
    dtype = _dtype_of(name)
    shape = tuple(int(d) for d in from_json(meta["shape_"]))
    count = math.prod(shape)
    if count == 0:
        return torch.empty(shape, dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        raw = torch.frombuffer(obj.member("buffer_"), dtype=torch.uint8,
                               count=count * dtype.itemsize)
    return raw.view(dtype).reshape(shape)


def register(builder_ctx: Any = None, resolver_ctx: Any = None) -> None:
    """torch tensors in the default contexts: ``get`` of a tensor put from torch gives torch
    (through tensor.py's resolver, which sees ``value_type_torch_``)."""
    if builder_ctx is not None:
        builder_ctx.register(torch.Tensor, torch_tensor_builder)
