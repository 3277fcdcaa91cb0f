"""Pure-Python registries of builders, resolvers and drivers (no native dependency)."""
import contextlib
from typing import Any, Generator, Optional, Tuple

from .builder import BuilderContext, builder_context, default_builder_context, get_current_builders
from .driver import DriverContext, default_driver_context, driver_context, get_current_drivers
from .resolver import ResolverContext, default_resolver_context, get_current_resolvers, resolver_context

__all__ = [
    "BuilderContext",
    "ResolverContext",
    "DriverContext",
    "default_builder_context",
    "default_resolver_context",
    "default_driver_context",
    "builder_context",
    "resolver_context",
    "driver_context",
    "get_current_builders",
    "get_current_resolvers",
    "get_current_drivers",
    "context",
]


@contextlib.contextmanager
def context(builders: Any = None, resolvers: Any = None,
            base_builder: Optional[BuilderContext] = None,
            base_resolver: Optional[ResolverContext] = None,
            ) -> Generator[Tuple[BuilderContext, ResolverContext], Any, Any]:
    """``builder_context`` and ``resolver_context`` at once: yields both new contexts, which
    are current in this thread for the duration of the ``with`` block."""
    with builder_context(builders, base_builder) as builder_ctx:
        with resolver_context(resolvers, base_resolver) as resolver_ctx:
            yield builder_ctx, resolver_ctx
