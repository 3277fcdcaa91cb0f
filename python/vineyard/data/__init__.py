"""Built-in builders and resolvers, registered in the default contexts on import."""
from __future__ import annotations

import importlib
import sys
from typing import Any, Dict

from ..core.builder import _call_with_accepted_kwargs, default_builder_context
from ..core.resolver import default_resolver_context
from . import pickle, scalar, sequence

# Libraries whose builders are registered in the default contexts when the first value of
# theirs is put, not when vineyard is imported (which would cost every process their import
# time): the value's module, or its root -> our module for it.
_ON_FIRST_VALUE: Dict[str, str] = {"torch": ".torch", "polars": ".polars", "scipy": ".sparse",
                                   "pandas": ".dataframe",
                                   "vineyard.data.dataframe": ".dataframe"}  # NDArrayArray

# The typenames whose resolvers live in .dataframe: registered as stand-ins that import
# pandas (and .dataframe) when the first of them is got.
PANDAS_TYPENAMES = ("vineyard::DataFrame", "vineyard::Series", "vineyard::Index",
                    "vineyard::SparseArray")
_pandas_resolvers: Dict[str, Any] = {}


def _pandas_resolver(typename: str) -> Any:
    def resolve(obj: Any, resolver: Any = None, **kw: Any) -> Any:
        if not _pandas_resolvers:
            from . import dataframe

            class Found:
                def register(self, name: str, fn: Any) -> None:
                    _pandas_resolvers[name] = fn

            dataframe.register(None, Found())
        return _call_with_accepted_kwargs(_pandas_resolvers[typename], (obj,), kw,
                                          "resolver", resolver)

    resolve.__name__ = f"pandas_resolver_of_{typename.split('::')[-1].lower()}"
    return resolve


def fallback_builder(client: Any, value: Any, builder: Any = None, **kw: Any) -> Any:
    """The builder of values no registered type matches: the first value of a library in
    ``_ON_FIRST_VALUE`` registers that library's builders and is built again; a DLPack
    tensor is put as a Tensor; anything else is pickled."""
    where = type(value).__module__
    module = _ON_FIRST_VALUE.pop(where, None) or _ON_FIRST_VALUE.pop(where.split(".", 1)[0], None)
    if module is not None:
        try:
            ours = importlib.import_module(module, __name__)
        except ImportError:  # e.g. polars without pyarrow: pickled
            ours = None
        if ours is not None:
            ours.register(default_builder_context, None)  # resolvers are there already
            if builder is not None:
                return builder.run(client, value, **kw)
    try:
        from .tensor import dlpack_builder, is_dlpack_tensor
    except ImportError:  # numpy missing
        pass
    else:
        if is_dlpack_tensor(value):
            return dlpack_builder(client, value, **kw)
    return pickle.pickle_builder(client, value, **kw)


def register_builtin_types(builder_ctx: Any = None, resolver_ctx: Any = None) -> None:
    pickle.register(builder_ctx, resolver_ctx)
    if builder_ctx is not None:
        builder_ctx.set_default_builder(fallback_builder)
    scalar.register(builder_ctx, resolver_ctx)
    sequence.register(builder_ctx, resolver_ctx)
    try:
        from . import tensor
    except ImportError:  # numpy missing: no tensors
        return
    tensor.register(builder_ctx, resolver_ctx)
    from . import global_object
    global_object.register(builder_ctx, resolver_ctx)
    try:
        from . import sparse
    except ImportError:  # scipy missing: no sparse matrices
        pass
    else:
        sparse.register(builder_ctx, resolver_ctx)
    try:
        from . import arrow
    except ImportError:  # pyarrow missing: no arrow types, string columns pickled
        pass
    else:
        arrow.register(builder_ctx, resolver_ctx)
    if "pandas" in sys.modules:  # imported already: nothing to save
        from . import dataframe

        dataframe.register(builder_ctx, resolver_ctx)
    elif resolver_ctx is not None:
        for typename in PANDAS_TYPENAMES:
            resolver_ctx.register(typename, _pandas_resolver(typename))


register_builtin_types(default_builder_context, default_resolver_context)
