"""Builders: translate Python values into vineyard objects, dispatched on the value's type."""
from __future__ import annotations

import abc
import contextlib
import functools
import inspect
import threading
from typing import (
    Any,
    Callable,
    Dict,
    FrozenSet,
    Generator,
    Iterable,
    List,
    Mapping,
    Optional,
    Tuple,
    TypeVar,
    Union,
)

__all__ = [
    "BuilderContext",
    "default_builder_context",
    "builder_context",
    "get_current_builders",
]

Builder = Callable[..., Any]
_K = TypeVar("_K")
_V = TypeVar("_V")


# --------------------------------------------------------------------------- helpers
# (shared with resolver.py / driver.py)


@functools.lru_cache(maxsize=2048)
def _signature_info(fn: Callable[..., Any]) -> Optional[Tuple[bool, Tuple[str, ...], FrozenSet[str]]]:
    """(accepts **kwargs, positional parameter names, keyword-able names); None if not inspectable."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    var_kw = False
    positional: List[str] = []
    keywords = set()
    for p in sig.parameters.values():
        if p.kind is p.VAR_KEYWORD:
            var_kw = True
        elif p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            positional.append(p.name)
            if p.kind is p.POSITIONAL_OR_KEYWORD:
                keywords.add(p.name)
        elif p.kind is p.KEYWORD_ONLY:
            keywords.add(p.name)
    return var_kw, tuple(positional), frozenset(keywords)


def _call_with_accepted_kwargs(
    fn: Callable[..., Any],
    args: Tuple[Any, ...],
    kwargs: Dict[str, Any],
    context_name: str,
    context: Any,
) -> Any:
    """Call ``fn(*args, **kw)`` passing only the keyword arguments ``fn`` accepts.

    ``context`` is passed as ``context_name=`` only when ``fn`` names that parameter
    explicitly (vineyard's convention: ``def builder(client, value, builder, **kw)``).
    Keyword arguments given explicitly by the caller take precedence over ``context``.
    """
    try:
        info = _signature_info(fn)
    except TypeError:  # unhashable callable
        info = _signature_info.__wrapped__(fn)
    if info is None:
        return fn(*args, **kwargs)
    var_kw, positional, keywords = info
    bound = set(positional[: len(args)])
    if var_kw:
        kw = {k: v for k, v in kwargs.items() if k not in bound}
    else:
        kw = {k: v for k, v in kwargs.items() if k in keywords and k not in bound}
    if context_name in keywords and context_name not in bound:
        kw.setdefault(context_name, context)
    return fn(*args, **kw)


def _as_items(entries: Union[Mapping[_K, _V], Iterable[Tuple[_K, _V]], None], what: str,
              is_key: Optional[Callable[[Any], bool]] = None) -> List[Tuple[_K, _V]]:
    """Accept a mapping or an iterable of pairs. A set is accepted only in the spelling of
    the reference docs, ``{key, function}`` (exactly one element satisfies ``is_key``, the
    other is a callable that does not): that one pair. Other sets are rejected."""
    if entries is None:
        return []
    if isinstance(entries, Mapping):
        return list(entries.items())
    if isinstance(entries, (set, frozenset)):
        if is_key is not None and len(entries) == 2:
            keys = [e for e in entries if is_key(e)]
            funcs = [e for e in entries if not is_key(e) and callable(e)]
            if len(keys) == 1 and len(funcs) == 1:
                return [(keys[0], funcs[0])]
        raise TypeError(
            f"{what} must be a dict like {{key: function}}, not a set "
            f"(did you write {{key, function}} instead of {{key: function}}?)"
        )
    items = []
    for item in entries:
        if not (isinstance(item, tuple) and len(item) == 2):
            raise TypeError(f"{what} must be a dict or an iterable of (key, function) pairs, got item {item!r}")
        items.append(item)
    return items


class _ContextStack(threading.local):
    """Per-thread stack of active contexts; empty means "use the module default"."""

    def __init__(self) -> None:
        self.stack: List[Any] = []

    def top(self, default: Any) -> Any:
        return self.stack[-1] if self.stack else default

    def push(self, ctx: Any) -> int:
        self.stack.append(ctx)
        return len(self.stack) - 1

    def restore(self, depth: int) -> None:
        del self.stack[depth:]

    def pop(self, ctx: Any) -> None:
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i] is ctx:
                del self.stack[i:]
                return


def _type_name(ty: type) -> str:
    module = getattr(ty, "__module__", None)
    qualname = getattr(ty, "__qualname__", getattr(ty, "__name__", repr(ty)))
    return qualname if module in (None, "builtins") else f"{module}.{qualname}"


def _compose_mro(cls: type, registered: Iterable[type]) -> Tuple[type, ...]:
    """``cls``'s MRO, with registered abstract base classes (e.g. ``collections.abc.Mapping``)
    merged in at the place ``functools.singledispatch`` would put them."""
    mro = getattr(cls, "__mro__", (cls, object))
    abcs = [t for t in registered if isinstance(t, type) and t not in mro]
    if not abcs:
        return tuple(mro)
    compose = getattr(functools, "_compose_mro", None)
    if compose is None:  # pragma: no cover - CPython always has it
        return tuple(mro)
    try:
        return tuple(compose(cls, abcs))
    except Exception:  # pragma: no cover - defensive
        return tuple(mro)


# --------------------------------------------------------------------------- context

# Bumped by every register/unregister anywhere: find() caches its answers per context and
# trusts them only while no context (its own or a parent) has changed since.
_generation = 0


def _changed() -> None:
    global _generation
    _generation += 1


class BuilderContext:
    """A registry of builders keyed by Python type, optionally layered on a parent context.

    Lookups see the parent's registrations (live); registrations on a child never leak
    into its parent.
    """

    def __init__(
        self,
        parent_context: Optional["BuilderContext"] = None,
        default_builder: Optional[Builder] = None,
    ) -> None:
        self._factory: Dict[type, Builder] = {}
        self._parent_context = parent_context
        self._default_builder = default_builder
        self._found: Dict[type, Optional[Builder]] = {}
        self._found_generation: Any = None

    # -- registration ------------------------------------------------------

    def register(self, type_id: Union[type, Tuple[type, ...]], builder: Builder) -> None:
        """Register ``builder(client, value, **kw)`` for ``type_id`` (a type or tuple of types)."""
        types = type_id if isinstance(type_id, tuple) else (type_id,)
        for ty in types:
            if not isinstance(ty, type):
                raise TypeError(f"builders are registered for Python types, got {ty!r}")
        if not callable(builder):
            raise TypeError(f"builder for {type_id!r} must be callable, got {builder!r}")
        for ty in types:
            self._factory[ty] = builder
        _changed()

    def unregister(self, type_id: type) -> None:
        """Remove the registration of ``type_id`` made on this context (parents untouched)."""
        self._factory.pop(type_id, None)
        _changed()

    @property
    def parent_context(self) -> Optional["BuilderContext"]:
        return self._parent_context

    @property
    def default_builder(self) -> Optional[Builder]:
        """Builder used when no registered type matches (inherited from the parent)."""
        ctx: Optional[BuilderContext] = self
        while ctx is not None:
            if ctx._default_builder is not None:
                return ctx._default_builder
            ctx = ctx._parent_context
        return None

    @default_builder.setter
    def default_builder(self, builder: Optional[Builder]) -> None:
        if builder is not None and not callable(builder):
            raise TypeError(f"default builder must be callable, got {builder!r}")
        self._default_builder = builder

    def set_default_builder(self, builder: Optional[Builder]) -> None:
        """Set (or clear with ``None``) the fallback builder, e.g. a pickle builder."""
        self.default_builder = builder

    def items(self) -> Dict[type, Builder]:
        """Effective registrations: parents first, overridden by this context."""
        merged: Dict[type, Builder] = {}
        chain: List[BuilderContext] = []
        ctx: Optional[BuilderContext] = self
        while ctx is not None:
            chain.append(ctx)
            ctx = ctx._parent_context
        for c in reversed(chain):
            merged.update(c._factory)
        return merged

    def __contains__(self, type_id: object) -> bool:
        return type_id in self.items()

    def __len__(self) -> int:
        return len(self.items())

    # -- dispatch ----------------------------------------------------------

    def find(self, ty: type) -> Optional[Builder]:
        """The builder for ``ty`` following its MRO (most specific registered type wins), or None."""
        # (ABCs registered later, e.g. Mapping.register(T), change what matches too.)
        generation = (_generation, abc.get_cache_token())
        if self._found_generation != generation:
            self._found = {}
            self._found_generation = generation
        try:
            return self._found[ty]
        except (KeyError, TypeError):  # TypeError: an unhashable type object
            pass
        factory = self.items()
        found = None
        for t in _compose_mro(ty, factory.keys()):
            if t in factory:
                found = factory[t]
                break
        try:
            self._found[ty] = found
        except TypeError:
            pass
        return found

    def run(self, client: Any, value: Any, **kw: Any) -> Any:
        """Build ``value`` with the builder found along ``type(value)``'s MRO.

        Falls back to the default builder (e.g. pickle) when no type matches; raises
        ``TypeError`` when there is neither. The builder receives ``builder=self`` when it
        declares a ``builder`` parameter, and the keyword arguments it accepts.
        """
        ty = type(value)
        builder = self.find(ty)
        if builder is None:
            builder = self.default_builder
        if builder is None:
            name = _type_name(ty)
            raise TypeError(
                f"no vineyard builder is registered for type '{name}' (nor any of its bases "
                f"{[_type_name(t) for t in ty.__mro__[1:]]}); register one with "
                f"`vineyard.core.builder.default_builder_context.register({ty.__name__}, builder)` "
                f"or use `with vineyard.core.builder.builder_context({{{ty.__name__}: builder}}): ...`, "
                f"where `builder(client, value, **kw)` returns the vineyard object (meta or id)"
            )
        return _call_with_accepted_kwargs(builder, (client, value), kw, "builder", self)

    def __call__(self, client: Any, value: Any, **kw: Any) -> Any:
        return self.run(client, value, **kw)

    # -- layering ----------------------------------------------------------

    def extend(
        self,
        builders: Union[Mapping[type, Builder], Iterable[Tuple[type, Builder]], None] = None,
    ) -> "BuilderContext":
        """A new context layered on this one, with ``builders`` registered on top."""
        ctx = BuilderContext(self)
        for ty, builder in _as_items(builders, "builders", lambda k: isinstance(k, type)):
            ctx.register(ty, builder)
        return ctx

    def copy(self) -> "BuilderContext":
        """An independent, flattened snapshot of the effective registrations."""
        ctx = BuilderContext(default_builder=self.default_builder)
        ctx._factory = self.items()
        return ctx

    __copy__ = copy

    def __enter__(self) -> "BuilderContext":
        _builder_stack.push(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        _builder_stack.pop(self)

    def __repr__(self) -> str:
        names = ", ".join(_type_name(t) for t in self.items())
        return f"BuilderContext({{{names}}})"


default_builder_context = BuilderContext()
_builder_stack = _ContextStack()


def get_current_builders() -> BuilderContext:
    """Obtain the current builder context (the innermost active one in this thread)."""
    return _builder_stack.top(default_builder_context)


@contextlib.contextmanager
def builder_context(
    builders: Union[Mapping[type, Builder], Iterable[Tuple[type, Builder]], None] = None,
    base: Optional[BuilderContext] = None,
) -> Generator[BuilderContext, Any, Any]:
    """Open a new context for registering builders, without populating the outer environment.

    The new context layers on ``base`` (default: the current context) and is current in
    this thread for the duration of the ``with`` block.
    """
    local = (base if base is not None else get_current_builders()).extend(builders)
    depth = _builder_stack.push(local)
    try:
        yield local
    finally:
        _builder_stack.restore(depth)
