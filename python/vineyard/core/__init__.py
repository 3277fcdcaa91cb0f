"""Pure-Python registries of builders, resolvers and drivers (no native dependency)."""
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
]
