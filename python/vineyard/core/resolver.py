"""Resolvers: turn vineyard objects back into Python values, dispatched on the typename."""
from __future__ import annotations

import contextlib
import re
from typing import Any, Callable, Dict, Generator, Iterable, List, Mapping, Optional, Tuple, Union

from .. import _C
from .builder import _as_items, _call_with_accepted_kwargs, _ContextStack
from .object import payload_elsewhere

__all__ = [
    "ResolverContext",
    "default_resolver_context",
    "resolver_context",
    "get_current_resolvers",
    "normalize_typename",
    "typename_base",
    "match_typename",
]

Resolver = Callable[..., Any]

_SPACES_AROUND_PUNCT = re.compile(r"\s*([<>,])\s*")


def normalize_typename(typename: str) -> str:
    """Canonical spelling of a C++ typename: no spaces around ``<``, ``>`` and ``,``."""
    return _SPACES_AROUND_PUNCT.sub(r"\1", typename.strip())


def typename_base(typename: str) -> str:
    """The typename without template arguments: ``vineyard::Tensor<int64>`` -> ``vineyard::Tensor``."""
    return normalize_typename(typename).split("<", 1)[0]


def _is_prefix(key: str, typename: str) -> bool:
    """Whether the (normalized) ``key`` matches ``typename`` exactly or as a prefix ending at a
    token boundary: ``vineyard::Tensor`` matches ``vineyard::Tensor<int64>`` and ``vineyard::``
    matches ``vineyard::Tensor``, but ``vineyard::Tensor`` does not match ``vineyard::TensorX``."""
    if key == typename:
        return True
    if not key or not typename.startswith(key):
        return False
    return typename[len(key)] in "<>,:" or key[-1] in "<,:"


def match_typename(typename: str, keys: Iterable[str]) -> List[str]:
    """Registered ``keys`` matching ``typename``, most precise first (exact, then longest prefix)."""
    name = normalize_typename(typename)
    matched = [k for k in keys if _is_prefix(normalize_typename(k), name)]
    matched.sort(key=lambda k: len(normalize_typename(k)), reverse=True)
    return matched


def _typename_of(obj: Any) -> str:
    typename = getattr(obj, "typename", None)
    if typename is None:
        meta = getattr(obj, "meta", None)
        typename = getattr(meta, "typename", None)
    if typename is None and isinstance(obj, Mapping):
        typename = obj.get("typename")
    if not isinstance(typename, str):
        raise TypeError(f"cannot resolve {obj!r}: it has no vineyard typename")
    return typename


# Bumped by every register/unregister anywhere: find() caches its answers per context and
# trusts them only while no context (its own or a parent) has changed since.
_generation = 0


class ResolverContext:
    """A registry of resolvers keyed by typename (or typename prefix), optionally layered on a
    parent context. Lookups see the parent's registrations; a child's never leak upwards."""

    def __init__(self, parent_context: Optional["ResolverContext"] = None) -> None:
        self._factory: Dict[str, Resolver] = {}
        self._parent_context = parent_context
        self._found: Dict[str, Optional[Resolver]] = {}
        self._found_generation = -1

    @staticmethod
    def _changed() -> None:
        global _generation
        _generation += 1

    def register(self, typename_prefix: str, resolver: Resolver) -> None:
        """Register ``resolver(obj, **kw)`` for a typename, e.g. ``vineyard::Tensor``
        (which also matches ``vineyard::Tensor<double>``) or an exact ``vineyard::Tensor<int64>``."""
        if not isinstance(typename_prefix, str) or not typename_prefix.strip():
            raise TypeError(f"resolvers are registered for typename strings, got {typename_prefix!r}")
        if not callable(resolver):
            raise TypeError(f"resolver for {typename_prefix!r} must be callable, got {resolver!r}")
        self._factory[normalize_typename(typename_prefix)] = resolver
        self._changed()

    def unregister(self, typename_prefix: str) -> None:
        """Remove a registration made on this context (parents untouched)."""
        self._factory.pop(normalize_typename(typename_prefix), None)
        self._changed()

    @property
    def parent_context(self) -> Optional["ResolverContext"]:
        return self._parent_context

    def items(self) -> Dict[str, Resolver]:
        """Effective registrations: parents first, overridden by this context."""
        chain: List[ResolverContext] = []
        ctx: Optional[ResolverContext] = self
        while ctx is not None:
            chain.append(ctx)
            ctx = ctx._parent_context
        merged: Dict[str, Resolver] = {}
        for c in reversed(chain):
            merged.update(c._factory)
        return merged

    def __contains__(self, typename: object) -> bool:
        return isinstance(typename, str) and normalize_typename(typename) in self.items()

    def __len__(self) -> int:
        return len(self.items())

    def find(self, typename: str) -> Optional[Resolver]:
        """The most precise resolver for ``typename`` (exact, then longest prefix), or None."""
        if self._found_generation != _generation:
            self._found = {}
            self._found_generation = _generation
        try:
            return self._found[typename]
        except KeyError:
            pass
        factory = self.items()
        matched = match_typename(typename, factory.keys())
        resolver = factory[matched[0]] if matched else None
        self._found[typename] = resolver
        return resolver

    def run(self, obj: Any, **kw: Any) -> Any:
        """Resolve ``obj`` (anything with a ``typename`` or ``meta.typename``) to a Python value.

        The resolver receives ``resolver=self`` when it declares a ``resolver`` parameter
        (to resolve members), and the keyword arguments it accepts. Without a matching
        resolver the object itself is returned.
        """
        meta = getattr(obj, "meta", None)
        if isinstance(meta, _C.ObjectMeta) and payload_elsewhere(meta):
            # A member on another instance of the cluster (of a global object): its
            # payload is not here; get(..., fetch=True) brings it.
            return None
        resolver = self.find(_typename_of(obj))
        if resolver is None:
            return obj
        return _call_with_accepted_kwargs(resolver, (obj,), kw, "resolver", self)

    def __call__(self, obj: Any, **kw: Any) -> Any:
        return self.run(obj, **kw)

    def extend(
        self,
        resolvers: Union[Mapping[str, Resolver], Iterable[Tuple[str, Resolver]], None] = None,
    ) -> "ResolverContext":
        """A new context layered on this one, with ``resolvers`` registered on top."""
        ctx = ResolverContext(self)
        for typename, resolver in _as_items(resolvers, "resolvers", lambda k: isinstance(k, str)):
            ctx.register(typename, resolver)
        return ctx

    def copy(self) -> "ResolverContext":
        """An independent, flattened snapshot of the effective registrations."""
        ctx = ResolverContext()
        ctx._factory = self.items()
        return ctx

    __copy__ = copy

    def __enter__(self) -> "ResolverContext":
        _resolver_stack.push(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        _resolver_stack.pop(self)

    def __repr__(self) -> str:
        return f"ResolverContext({sorted(self.items())})"


default_resolver_context = ResolverContext()
_resolver_stack = _ContextStack()


def get_current_resolvers() -> ResolverContext:
    """Obtain the current resolver context (the innermost active one in this thread)."""
    return _resolver_stack.top(default_resolver_context)


@contextlib.contextmanager
def resolver_context(
    resolvers: Union[Mapping[str, Resolver], Iterable[Tuple[str, Resolver]], None] = None,
    base: Optional[ResolverContext] = None,
) -> Generator[ResolverContext, Any, Any]:
    """Open a new context for registering resolvers, without populating the outer environment.

    E.g. ``with resolver_context({'vineyard::Tensor': xgboost_resolver}): ...`` resolves
    tensors with ``xgboost_resolver`` inside the block only. Contexts nest; the new one
    layers on ``base`` (default: the current context) and is current in this thread.
    """
    local = (base if base is not None else get_current_resolvers()).extend(resolvers)
    depth = _resolver_stack.push(local)
    try:
        yield local
    finally:
        _resolver_stack.restore(depth)
