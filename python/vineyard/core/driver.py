"""Drivers: extra methods attached to resolved objects by typename (e.g. ``repartition``)."""
from __future__ import annotations

import contextlib
import functools
from typing import Any, Callable, Dict, Generator, Iterable, List, Mapping, Optional, Tuple, Union

from .builder import _as_items, _ContextStack
from .resolver import _typename_of, match_typename, normalize_typename

__all__ = [
    "registerize",
    "DriverContext",
    "default_driver_context",
    "driver_context",
    "get_current_drivers",
]

Driver = Callable[..., Any]
Drivers = Union[Mapping[str, Mapping[str, Driver]], Iterable[Tuple[str, Mapping[str, Driver]]], None]


class DriverContext:
    """A registry of named methods keyed by typename (or typename prefix), optionally layered
    on a parent context. ``resolve(obj)`` attaches them: ``obj.<name>(...)`` calls
    ``driver(obj, ...)``."""

    def __init__(self, parent_context: Optional["DriverContext"] = None) -> None:
        self._factory: Dict[str, Dict[str, Driver]] = {}
        self._parent_context = parent_context

    def register(self, typename: str, name: str, driver: Driver) -> None:
        """Register ``driver`` as method ``name`` of objects whose typename matches ``typename``."""
        if not isinstance(typename, str) or not typename.strip():
            raise TypeError(f"drivers are registered for typename strings, got {typename!r}")
        if not isinstance(name, str) or not name.isidentifier():
            raise TypeError(f"driver name must be a valid identifier, got {name!r}")
        if not callable(driver):
            raise TypeError(f"driver {name!r} for {typename!r} must be callable, got {driver!r}")
        self._factory.setdefault(normalize_typename(typename), {})[name] = driver

    def unregister(self, typename: str, name: Optional[str] = None) -> None:
        """Remove one method (or all with ``name=None``) registered on this context for ``typename``."""
        key = normalize_typename(typename)
        if name is None:
            self._factory.pop(key, None)
        elif key in self._factory:
            self._factory[key].pop(name, None)

    @property
    def parent_context(self) -> Optional["DriverContext"]:
        return self._parent_context

    def items(self) -> Dict[str, Dict[str, Driver]]:
        """Effective registrations: parents first, methods overridden by this context."""
        chain: List[DriverContext] = []
        ctx: Optional[DriverContext] = self
        while ctx is not None:
            chain.append(ctx)
            ctx = ctx._parent_context
        merged: Dict[str, Dict[str, Driver]] = {}
        for c in reversed(chain):
            for typename, methods in c._factory.items():
                merged.setdefault(typename, {}).update(methods)
        return merged

    def __contains__(self, typename: object) -> bool:
        return isinstance(typename, str) and normalize_typename(typename) in self.items()

    def lookup(self, typename: str) -> Dict[str, Driver]:
        """Methods for ``typename``: all matching registrations, the most precise winning per name."""
        factory = self.items()
        methods: Dict[str, Driver] = {}
        for key in reversed(match_typename(typename, factory.keys())):
            methods.update(factory[key])
        return methods

    def get(self, typename: str, name: str) -> Optional[Driver]:
        """The driver ``name`` for ``typename``, or None."""
        return self.lookup(typename).get(name)

    def resolve(self, obj: Any, typename: Optional[str] = None) -> Any:
        """Attach the drivers for ``typename`` (default: ``obj``'s typename) to ``obj``; returns ``obj``.

        Objects that do not accept attributes (e.g. tuples) are returned unchanged.
        """
        if typename is None:
            typename = _typename_of(obj)
        for name, driver in self.lookup(typename).items():
            try:
                setattr(obj, name, functools.partial(driver, obj))
            except (AttributeError, TypeError):
                break
        return obj

    def __call__(self, obj: Any, typename: Optional[str] = None) -> Any:
        return self.resolve(obj, typename)

    def extend(self, drivers: Drivers = None) -> "DriverContext":
        """A new context layered on this one; ``drivers`` is ``{typename: {name: driver}}``."""
        ctx = DriverContext(self)
        for typename, methods in _as_items(drivers, "drivers"):
            for name, driver in _as_items(methods, f"drivers for {typename!r}"):
                ctx.register(typename, name, driver)
        return ctx

    def copy(self) -> "DriverContext":
        """An independent, flattened snapshot of the effective registrations."""
        ctx = DriverContext()
        ctx._factory = self.items()
        return ctx

    __copy__ = copy

    def __enter__(self) -> "DriverContext":
        _driver_stack.push(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        _driver_stack.pop(self)

    def __repr__(self) -> str:
        return f"DriverContext({ {k: sorted(v) for k, v in self.items().items()} })"


default_driver_context = DriverContext()
_driver_stack = _ContextStack()


def get_current_drivers() -> DriverContext:
    """Obtain the current driver context (the innermost active one in this thread)."""
    return _driver_stack.top(default_driver_context)


@contextlib.contextmanager
def driver_context(drivers: Drivers = None, base: Optional[DriverContext] = None) -> Generator[DriverContext, Any, Any]:
    """Open a new context for registering drivers, without populating the outer environment."""
    local = (base if base is not None else get_current_drivers()).extend(drivers)
    depth = _driver_stack.push(local)
    try:
        yield local
    finally:
        _driver_stack.restore(depth)


def registerize(func: Callable[..., Any]) -> Callable[..., Any]:
    """Give ``func`` a registry of implementations, as vineyard's I/O entry points have:
    ``func.register(impl)`` appends to a list, ``func.register(key, impl)`` (or
    ``func.register(key, subkey, impl)``) to a dict of lists under ``key``; ``func._factory``
    holds them (None until the first registration)."""

    @functools.wraps(func)
    def wrap(*args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)

    wrap._factory = None  # type: ignore[attr-defined]

    def register(*args: Any) -> None:
        if not args or not callable(args[-1]):
            raise TypeError("register(...) takes optional keys and then a callable")
        if len(args) == 1:
            if wrap._factory is None:  # type: ignore[attr-defined]
                wrap._factory = []  # type: ignore[attr-defined]
            if not isinstance(wrap._factory, list):  # type: ignore[attr-defined]
                raise RuntimeError("inconsistent registration: this registry is keyed")
            wrap._factory.append(args[0])  # type: ignore[attr-defined]
            return
        if wrap._factory is None:  # type: ignore[attr-defined]
            wrap._factory = {}  # type: ignore[attr-defined]
        if not isinstance(wrap._factory, dict):  # type: ignore[attr-defined]
            raise RuntimeError("inconsistent registration: this registry is a list")
        node = wrap._factory  # type: ignore[attr-defined]
        for key in args[:-2]:
            node = node.setdefault(key, {})
        node.setdefault(args[-2], []).append(args[-1])

    wrap.register = register  # type: ignore[attr-defined]
    return wrap
