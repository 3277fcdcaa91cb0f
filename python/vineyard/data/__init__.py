"""Built-in builders and resolvers, registered in the default contexts on import."""
from __future__ import annotations

from typing import Any

from ..core.builder import default_builder_context
from ..core.resolver import default_resolver_context
from . import pickle, scalar, sequence


def register_builtin_types(builder_ctx: Any = None, resolver_ctx: Any = None) -> None:
    pickle.register(builder_ctx, resolver_ctx)
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
    try:
        from . import dataframe
    except ImportError:  # pandas missing: no DataFrame/Series/Index
        pass
    else:
        dataframe.register(builder_ctx, resolver_ctx)


register_builtin_types(default_builder_context, default_resolver_context)
