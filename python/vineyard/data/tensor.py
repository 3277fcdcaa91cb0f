"""numpy.ndarray <-> ``vineyard::Tensor<T>`` (numeric, bool, datetime64/timedelta64, str).

- numeric/bool/``M8``/``m8`` (every unit): raw C-order payload, ``value_type_meta_`` = ``dtype.str``.
- 1-d ``U`` arrays and 1-d object arrays of ``str``/None: ``Tensor<std::string>`` over a
  ``BaseBinaryArray<arrow::LargeStringArray>`` exactly as the reference writes them; a ``U``
  array also records ``value_type_numpy_`` (e.g. ``<U3``) so it comes back as ``U`` (the
  reference ignores the extra field and reads an object array).
- ``U`` arrays of other ranks (0-d, n-d): raw UCS4 payload ``Tensor<str32>`` etc., as the
  reference writes them. Other object arrays (n-d, non-str items): pickled.

``vineyard::Array<T>`` (the C++ client's ``Array<T>``: ``size_`` elements in member
``buffer_``, T as C++ spells it) resolves to a read-only 1-d array over the blob.

As in the reference client the payload is always in C order; ``order_`` records whether the
array was Fortran-ordered. ``get`` of a C-ordered tensor is a zero-copy, read-only view of
the blob; a Fortran-ordered one is converted back (one copy, also read-only).

Tensors put from torch (torch.py) record ``value_type_torch_`` and come back as torch
tensors. A value of no registered type that exports DLPack in host memory is put as a Tensor
(``dlpack_builder``).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .. import _C
from ..core.object import PendingObject
from .utils import blob_list, build_buffer, from_json, to_json

_CPP = {"int32": "int", "uint32": "uint32", "int64": "int64", "uint64": "uint64",
        "float32": "float", "float64": "double"}


def normalize_cpptype(dtype: np.dtype) -> str:
    return _CPP.get(dtype.name, dtype.name)


def _is_str_array(value: np.ndarray) -> bool:
    if value.dtype.kind == "U":
        return True
    return value.dtype.kind == "O" and all(v is None or isinstance(v, str)
                                           for v in value.reshape(-1))


def _string_tensor_builder(client: Any, value: np.ndarray, **kw: Any) -> Any:
    """1-d str array -> ``Tensor<std::string>`` (reference layout, built by arrow.py), plus
    ``value_type_numpy_`` so a ``U`` array comes back as ``U``; None without pyarrow."""
    try:
        from .arrow import string_tensor_builder
    except ImportError:
        return None
    built = string_tensor_builder(client, value, **kw)
    if built is not None and value.dtype.kind == "U":
        built.meta["value_type_numpy_"] = value.dtype.str
    return built


def numpy_ndarray_builder(client: Any, value: np.ndarray, **kw: Any) -> Any:
    kind = value.dtype.kind
    if value.ndim == 1 and kind in "UO" and _is_str_array(value):
        built = _string_tensor_builder(client, value, **kw)
        if built is not None:
            return built
    if value.dtype.hasobject or kind in "SVO" or value.dtype.fields is not None:
        from .pickle import pickle_builder  # object/bytes/structured arrays
        return pickle_builder(client, value)
    order = "C" if value.flags.c_contiguous else ("F" if value.flags.f_contiguous else "C")
    data = np.ascontiguousarray(value)
    meta = _C.ObjectMeta()
    meta.typename = "vineyard::Tensor<%s>" % normalize_cpptype(value.dtype)
    meta["shape_"] = to_json([int(d) for d in value.shape])
    meta["partition_index_"] = to_json(list(kw.get("partition_index", [])))
    meta["order_"] = to_json(order)
    meta["value_type_"] = value.dtype.name
    meta["value_type_meta_"] = value.dtype.str
    meta.nbytes = int(value.nbytes)
    buffer = build_buffer(client, data.reshape(-1).view(np.uint8) if data.size else b"")
    meta.add_member("buffer_", buffer)
    return PendingObject(meta, blob_list(buffer))


_DLPACK_CPU = 1  # DLDeviceType kDLCPU


def is_dlpack_tensor(value: Any) -> bool:
    return hasattr(value, "__dlpack__") and hasattr(value, "__dlpack_device__")


def dlpack_builder(client: Any, value: Any, **kw: Any) -> Any:
    """A tensor of any library that exports DLPack (``__dlpack__``, ``__dlpack_device__``) in
    host memory: imported without a copy (numpy, else torch for dtypes numpy lacks) and put
    as a ``vineyard::Tensor``; ``get`` returns numpy (torch for those dtypes)."""
    device = value.__dlpack_device__()
    if int(device[0]) != _DLPACK_CPU:
        raise ValueError(
            f"the {type(value).__name__} is on DLPack device {tuple(device)}, not in host "
            f"memory (kDLCPU = 1): vineyard keeps tensors in host shared memory, copy it to "
            f"the host first")
    try:
        array = np.from_dlpack(value)
    except (BufferError, TypeError, ValueError, RuntimeError) as e:
        try:
            import torch
        except ImportError:
            raise TypeError(f"numpy cannot import the {type(value).__name__} through DLPack "
                            f"({e}) and torch is not installed") from e
        from .torch import torch_tensor_builder
        return torch_tensor_builder(client, torch.from_dlpack(value), **kw)
    return numpy_ndarray_builder(client, array, **kw)


def _dtype(meta: Any) -> np.dtype:
    spec = meta.get("value_type_meta_")
    try:
        if spec:
            return np.dtype(spec)
    except TypeError:
        pass
    return np.dtype(meta["value_type_"])


def _torch_tensor(obj: Any) -> Any:
    """A tensor put from torch, as a torch tensor; None when torch is missing and numpy has
    its dtype (then it reads as the numpy array, as the published client reads it)."""
    try:
        from .torch import torch_tensor_resolver
    except ImportError:
        try:
            _dtype(obj.meta)
        except TypeError:
            raise TypeError(
                f"the tensor {obj.meta.id} holds torch.{obj.meta['value_type_torch_']} "
                f"values, which numpy has no type for: install torch to read it") from None
        return None
    return torch_tensor_resolver(obj)


def numpy_ndarray_resolver(obj: Any, **kw: Any) -> np.ndarray:
    meta = obj.meta
    if meta.get("value_type_torch_"):
        tensor = _torch_tensor(obj)
        if tensor is not None:
            return tensor
    name = meta["value_type_"]
    if name in ("str", "string", "std::string", "std::__1::string"):
        return string_tensor_resolver(obj)
    if name == "object":  # the reference's pickled object arrays
        import pickle
        return pickle.loads(memoryview(obj.member("buffer_")), fix_imports=True)
    dtype = _dtype(meta)
    shape = tuple(from_json(meta["shape_"]))
    order = from_json(meta["order_"]) if "order_" in meta else "C"
    count = int(np.prod(shape, dtype=np.int64))
    if count == 0:
        array = np.zeros(shape, dtype=dtype, order="F" if order == "F" else "C")
        array.flags.writeable = False
        return array
    blob = obj.member("buffer_")
    flat = np.frombuffer(blob, dtype=dtype, count=count)
    array = flat.reshape(shape)
    if order == "F" and not array.flags.f_contiguous:
        array = np.asfortranarray(array)
        array.flags.writeable = False
    return array


_NUMPY = {cpp: np.dtype(name) for name, cpp in _CPP.items()}


def array_resolver(obj: Any, **kw: Any) -> np.ndarray:
    """``vineyard::Array<T>`` -> a read-only 1-d view of its blob (no copy)."""
    name = obj.typename[len("vineyard::Array<"):-1]
    dtype = _NUMPY.get(name) or np.dtype(name)
    size = int(obj.meta["size_"])
    if size == 0:
        array = np.zeros(0, dtype=dtype)
        array.flags.writeable = False
        return array
    return np.frombuffer(obj.member("buffer_"), dtype=dtype, count=size)


def string_tensor_resolver(obj: Any, **kw: Any) -> np.ndarray:
    """``Tensor<std::string>`` -> object ndarray of str/None, or the ``U`` dtype it was put as."""
    from .arrow import binary_array_resolver, string_array_resolver
    meta = obj.meta
    member = obj.member("buffer_")
    if "LargeBinaryArray" in member.typename:
        array = binary_array_resolver(member)
    else:
        array = string_array_resolver(member)
    # to_pandas makes one str object per distinct value (a column of repeated words
    # costs a fraction of to_numpy's one object per row).
    result = array.to_pandas().to_numpy()
    shape = tuple(from_json(meta["shape_"])) if "shape_" in meta else result.shape
    if int(np.prod(shape, dtype=np.int64)) == result.size:
        result = result.reshape(shape)
    hint = meta.get("value_type_numpy_")
    if hint:
        result = result.astype(np.dtype(hint))
    return result


def register(builder_ctx: Any = None, resolver_ctx: Any = None) -> None:
    if builder_ctx is not None:
        builder_ctx.register(np.ndarray, numpy_ndarray_builder)
    if resolver_ctx is not None:
        resolver_ctx.register("vineyard::Tensor", numpy_ndarray_resolver)
        resolver_ctx.register("vineyard::Tensor<std::string>", string_tensor_resolver)
        resolver_ctx.register("vineyard::Array", array_resolver)


from .global_object import make_global_tensor  # noqa: E402,F401  (vineyard's place for it)
