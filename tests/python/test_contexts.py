"""Builder / resolver / driver registries: pure Python, no vineyardd needed."""
from __future__ import annotations

import collections.abc
import pickle
import threading
from types import SimpleNamespace
from typing import Any, Dict, List

import pytest

from vineyard.core import builder as builder_mod
from vineyard.core import driver as driver_mod
from vineyard.core import resolver as resolver_mod
from vineyard.core.builder import BuilderContext, builder_context, default_builder_context, get_current_builders
from vineyard.core.driver import DriverContext, default_driver_context, driver_context, get_current_drivers
from vineyard.core.resolver import (
    ResolverContext,
    default_resolver_context,
    get_current_resolvers,
    match_typename,
    resolver_context,
    typename_base,
)

CLIENT = object()


def obj(typename: str, **fields: Any) -> SimpleNamespace:
    """A stand-in for vineyard.Object: anything with a ``typename``."""
    return SimpleNamespace(typename=typename, **fields)


def tag(label: str):
    def build(client, value, **kw):
        return (label, value, kw)

    return build


# ----------------------------------------------------------------------------- builders


class Base:
    pass


class Child(Base):
    pass


class GrandChild(Child):
    pass


def test_builder_mro_uses_parent_builder():
    ctx = BuilderContext()
    ctx.register(Base, tag("base"))
    assert ctx.run(CLIENT, Base())[0] == "base"
    assert ctx.run(CLIENT, Child())[0] == "base"
    assert ctx.run(CLIENT, GrandChild())[0] == "base"


def test_builder_most_specific_wins_regardless_of_order():
    ctx = BuilderContext()
    ctx.register(Child, tag("child"))
    ctx.register(Base, tag("base"))
    ctx.register(object, tag("object"))
    assert ctx.run(CLIENT, Base())[0] == "base"
    assert ctx.run(CLIENT, Child())[0] == "child"
    assert ctx.run(CLIENT, GrandChild())[0] == "child"
    assert ctx.run(CLIENT, 3)[0] == "object"
    # bool is a subclass of int
    ctx.register(int, tag("int"))
    assert ctx.run(CLIENT, True)[0] == "int"


def test_builder_registered_abc_and_tuple_of_types():
    ctx = BuilderContext()
    ctx.register(collections.abc.Mapping, tag("mapping"))
    ctx.register((list, tuple), tag("sequence"))
    ctx.register(object, tag("object"))
    assert ctx.run(CLIENT, {"a": 1})[0] == "mapping"
    assert ctx.run(CLIENT, [1])[0] == "sequence"
    assert ctx.run(CLIENT, (1,))[0] == "sequence"
    assert ctx.run(CLIENT, 1.5)[0] == "object"


def test_builder_pickle_fallback():
    stored: List[bytes] = []

    def pickle_builder(client, value, **kw):
        stored.append(pickle.dumps(value, protocol=5))
        return "pickled"

    ctx = BuilderContext(default_builder=pickle_builder)
    ctx.register(int, tag("int"))
    assert ctx.run(CLIENT, 1)[0] == "int"
    assert ctx.run(CLIENT, {"k": [1, 2]}) == "pickled"
    assert pickle.loads(stored[-1]) == {"k": [1, 2]}
    # a layered context inherits the fallback
    child = ctx.extend({str: tag("str")})
    assert child.default_builder is pickle_builder
    assert child.run(CLIENT, None) == "pickled"
    assert child.run(CLIENT, "s")[0] == "str"
    # set_default_builder / clearing it
    other = BuilderContext()
    other.set_default_builder(pickle_builder)
    assert other.run(CLIENT, 1.0) == "pickled"
    other.set_default_builder(None)
    with pytest.raises(TypeError):
        other.run(CLIENT, 1.0)


def test_builder_clear_type_error_without_fallback():
    ctx = BuilderContext()
    ctx.register(int, tag("int"))
    with pytest.raises(TypeError) as e:
        ctx.run(CLIENT, GrandChild())
    msg = str(e.value)
    assert "GrandChild" in msg
    assert "register(GrandChild, builder)" in msg
    assert "builder_context" in msg


def test_builder_kwargs_passing():
    seen: Dict[str, Any] = {}

    def with_builder(client, value, builder, **kw):
        seen["builder"] = builder
        seen["kw"] = kw
        return builder.run(client, value[0], **kw) if isinstance(value, list) else value

    def narrow(client, value, persist=False):
        seen["persist"] = persist
        return value

    ctx = BuilderContext()
    ctx.register(list, with_builder)
    ctx.register(int, narrow)
    # the builder context is handed to builders that name a `builder` parameter;
    # kwargs not accepted by a builder are dropped, accepted ones are passed through
    assert ctx.run(CLIENT, [7], persist=True, name="x") == 7
    assert seen["builder"] is ctx
    assert seen["kw"] == {"persist": True, "name": "x"}
    assert seen["persist"] is True
    # `builder=` is not injected into a plain **kw builder
    ctx.register(str, tag("str"))
    assert ctx.run(CLIENT, "v", a=1) == ("str", "v", {"a": 1})


def test_builder_callable_is_run():
    ctx = BuilderContext()
    ctx.register(int, tag("int"))
    assert ctx(CLIENT, 5)[0] == "int"


def test_builder_register_validation():
    ctx = BuilderContext()
    with pytest.raises(TypeError):
        ctx.register("int", tag("x"))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ctx.register(int, 42)  # type: ignore[arg-type]


def test_builder_extend_layers_without_leaking():
    parent = BuilderContext()
    parent.register(int, tag("parent-int"))
    child = parent.extend({int: tag("child-int"), str: tag("child-str")})
    assert child.parent_context is parent
    assert child.run(CLIENT, 1)[0] == "child-int"
    assert parent.run(CLIENT, 1)[0] == "parent-int"
    with pytest.raises(TypeError):
        parent.run(CLIENT, "s")
    # later registrations on the parent are visible through the layer
    parent.register(float, tag("parent-float"))
    assert child.run(CLIENT, 1.0)[0] == "parent-float"
    # copy() is a flattened snapshot, independent of both
    snap = child.copy()
    parent.register(bytes, tag("parent-bytes"))
    with pytest.raises(TypeError):
        snap.run(CLIENT, b"x")
    assert snap.run(CLIENT, 1)[0] == "child-int"
    assert int in snap and bytes not in snap


def test_builder_context_manager_nesting_and_restore():
    assert get_current_builders() is default_builder_context
    with builder_context({int: tag("outer")}) as outer:
        assert get_current_builders() is outer
        assert outer.run(CLIENT, 1)[0] == "outer"
        with builder_context({int: tag("inner")}) as inner:
            assert get_current_builders() is inner
            assert inner.parent_context is outer
            assert inner.run(CLIENT, 1)[0] == "inner"
        assert get_current_builders() is outer
        with pytest.raises(RuntimeError):
            with builder_context({int: tag("boom")}):
                raise RuntimeError("boom")
        assert get_current_builders() is outer
    assert get_current_builders() is default_builder_context
    # nothing leaked into the default (which holds vineyard.data's built-in int builder)
    assert default_builder_context.find(int) is None or \
        getattr(default_builder_context.find(int), "__name__", "") == "int_builder"


def test_builder_context_base_and_enter_exit():
    base = BuilderContext()
    base.register(str, tag("base-str"))
    with builder_context(base=base) as ctx:
        assert ctx.parent_context is base
        assert ctx.run(CLIENT, "a")[0] == "base-str"
    with pytest.raises(ValueError):
        with base:
            assert get_current_builders() is base
            raise ValueError()
    assert get_current_builders() is default_builder_context


# ----------------------------------------------------------------------------- resolvers


def rtag(label: str):
    def resolve(o, **kw):
        return (label, o.typename, kw)

    return resolve


def test_typename_helpers():
    assert typename_base("vineyard::Tensor<int64>") == "vineyard::Tensor"
    assert typename_base("vineyard::Tensor<std::vector<int>>") == "vineyard::Tensor"
    assert typename_base("vineyard::Blob") == "vineyard::Blob"
    keys = ["vineyard::Tensor", "vineyard::Tensor<int64>", "vineyard::", "vineyard::Tens", "other"]
    assert match_typename("vineyard::Tensor<int64>", keys) == [
        "vineyard::Tensor<int64>",
        "vineyard::Tensor",
        "vineyard::",
    ]
    assert match_typename("vineyard::TensorBuilder", keys) == ["vineyard::"]


def test_resolver_exact_beats_longest_prefix():
    ctx = ResolverContext()
    ctx.register("vineyard::", rtag("namespace"))
    ctx.register("vineyard::Tensor", rtag("tensor"))
    ctx.register("vineyard::Tensor<int64>", rtag("tensor-int64"))
    ctx.register("vineyard::Tensor<std::vector", rtag("tensor-vector"))
    assert ctx.run(obj("vineyard::Tensor<int64>"))[0] == "tensor-int64"
    assert ctx.run(obj("vineyard::Tensor<double>"))[0] == "tensor"
    assert ctx.run(obj("vineyard::Tensor"))[0] == "tensor"
    assert ctx.run(obj("vineyard::Tensor<std::vector<int>>"))[0] == "tensor-vector"
    assert ctx.run(obj("vineyard::DataFrame"))[0] == "namespace"
    # a prefix must end at a token boundary
    assert ctx.run(obj("vineyard::TensorBuilder<int>"))[0] == "namespace"


def test_resolver_template_arguments_and_spacing():
    ctx = ResolverContext()
    ctx.register("vineyard::NumericArray", rtag("numeric"))
    ctx.register("vineyard::BaseBinaryArray<arrow::LargeStringArray>", rtag("large-string"))
    ctx.register("vineyard::HashMap<int64, double>", rtag("hashmap"))
    assert ctx.run(obj("vineyard::NumericArray<int64>"))[0] == "numeric"
    assert ctx.run(obj("vineyard::BaseBinaryArray<arrow::LargeStringArray>"))[0] == "large-string"
    assert ctx.run(obj("vineyard::HashMap<int64,double>"))[0] == "hashmap"
    assert ctx.run(obj("vineyard::HashMap< int64 , double >"))[0] == "hashmap"
    # no match for the binary array with another template argument: the object itself
    o = obj("vineyard::BaseBinaryArray<arrow::StringArray>")
    assert ctx.run(o) is o


def test_resolver_no_match_returns_object():
    ctx = ResolverContext()
    o = obj("vineyard::Unknown")
    assert ctx.run(o) is o
    # typename via .meta.typename, like vineyard.Object
    o2 = SimpleNamespace(meta=SimpleNamespace(typename="vineyard::Unknown"))
    assert ctx.run(o2) is o2
    with pytest.raises(TypeError):
        ctx.run(42)


def test_resolver_kwargs_and_resolver_passing():
    seen: Dict[str, Any] = {}

    def sequence_resolver(o, resolver):
        seen["resolver"] = resolver
        return tuple(resolver.run(m) for m in o.members)

    def scalar_resolver(o, **kw):
        return (o.value, kw)

    def narrow(o, fetch=False):
        return ("narrow", fetch)

    ctx = ResolverContext()
    ctx.register("vineyard::Sequence", sequence_resolver)
    ctx.register("vineyard::Scalar", scalar_resolver)
    ctx.register("vineyard::Narrow", narrow)
    seq = obj("vineyard::Sequence", members=[obj("vineyard::Scalar<int>", value=1), obj("vineyard::Scalar<double>", value=2.0)])
    assert ctx.run(seq, unused=True) == ((1, {}), (2.0, {}))
    assert seen["resolver"] is ctx
    # **kw resolvers get every kwarg but no injected `resolver`
    assert ctx.run(obj("vineyard::Scalar<int>", value=3), a=1, b=2) == (3, {"a": 1, "b": 2})
    # others only what they name
    assert ctx.run(obj("vineyard::Narrow"), fetch=True, other=1) == ("narrow", True)
    assert ctx(obj("vineyard::Narrow")) == ("narrow", False)


def test_resolver_context_manager_overrides_and_restores():
    default_resolver_context.register("test::Tensor", rtag("numpy"))
    try:
        assert get_current_resolvers() is default_resolver_context
        with resolver_context({"test::Tensor": rtag("xgboost")}) as ctx:
            assert get_current_resolvers() is ctx
            assert get_current_resolvers().run(obj("test::Tensor<double>"))[0] == "xgboost"
            with resolver_context({"test::Tensor<double>": rtag("inner")}) as inner:
                assert inner.run(obj("test::Tensor<double>"))[0] == "inner"
                assert inner.run(obj("test::Tensor<int>"))[0] == "xgboost"
            with pytest.raises(KeyError):
                with resolver_context({"test::Tensor": rtag("boom")}):
                    raise KeyError("x")
            assert get_current_resolvers() is ctx
        assert get_current_resolvers() is default_resolver_context
        assert default_resolver_context.run(obj("test::Tensor<double>"))[0] == "numpy"
    finally:
        default_resolver_context.unregister("test::Tensor")
    assert "test::Tensor" not in default_resolver_context


def test_resolver_context_set_literal():
    # the reference docs write {'vineyard::Tensor', resolver} (a set): read as that one pair
    with resolver_context({"vineyard::Tensor", rtag("doc")}):  # type: ignore[arg-type]
        assert get_current_resolvers().run(obj("vineyard::Tensor<int64>"))[0] == "doc"
    assert get_current_resolvers() is default_resolver_context
    # any other set is ambiguous: rejected
    for bad in ({"a::B", "c::D"}, {"a::B", rtag("x"), rtag("y")}, {rtag("x")}):
        with pytest.raises(TypeError, match="not a set"):
            with resolver_context(bad):  # type: ignore[arg-type]
                pass
    with pytest.raises(TypeError, match="not a set"):
        with builder_context({int, str}):  # type: ignore[arg-type]
            pass
    assert get_current_resolvers() is default_resolver_context
    # pairs are accepted too
    with resolver_context([("a::B", rtag("pairs"))]) as ctx:
        assert ctx.run(obj("a::B"))[0] == "pairs"


def test_resolver_register_validation():
    ctx = ResolverContext()
    with pytest.raises(TypeError):
        ctx.register(int, rtag("x"))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ctx.register("a::B", None)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- threads


def test_thread_isolation_of_current_contexts():
    barrier = threading.Barrier(2)
    results: Dict[str, Any] = {}
    errors: List[BaseException] = []

    def inside():
        try:
            with builder_context({int: tag("thread")}) as b, resolver_context({"t::T": rtag("thread")}) as r, driver_context() as d:
                barrier.wait(timeout=10)  # main thread checks now
                barrier.wait(timeout=10)
                results["inside"] = (get_current_builders() is b, get_current_resolvers() is r, get_current_drivers() is d)
        except BaseException as e:  # pragma: no cover
            errors.append(e)

    def fresh():
        results["fresh"] = (
            get_current_builders() is default_builder_context,
            get_current_resolvers() is default_resolver_context,
            get_current_drivers() is default_driver_context,
        )

    with builder_context({int: tag("main")}) as mine:
        t = threading.Thread(target=inside)
        t.start()
        barrier.wait(timeout=10)
        # the other thread's contexts are invisible here
        assert get_current_builders() is mine
        assert get_current_resolvers() is default_resolver_context
        assert get_current_drivers() is default_driver_context
        t2 = threading.Thread(target=fresh)
        t2.start()
        t2.join()
        barrier.wait(timeout=10)
        t.join()
    assert not errors
    assert results["inside"] == (True, True, True)
    assert results["fresh"] == (True, True, True)  # new threads start at the defaults
    assert get_current_builders() is default_builder_context


# ----------------------------------------------------------------------------- drivers


class Resolved:
    """A resolved value that accepts attributes (e.g. a pandas DataFrame)."""

    def __init__(self, typename: str) -> None:
        self.typename = typename


def test_driver_registration_and_lookup():
    ctx = DriverContext()

    def repartition(o, n):
        return ("repartition", o.typename, n)

    def describe(o):
        return ("describe-generic", o.typename)

    def describe_f64(o):
        return ("describe-f64", o.typename)

    ctx.register("vineyard::DataFrame", "repartition", repartition)
    ctx.register("vineyard::Tensor", "describe", describe)
    ctx.register("vineyard::Tensor<double>", "describe", describe_f64)
    assert ctx.lookup("vineyard::DataFrame") == {"repartition": repartition}
    assert ctx.lookup("vineyard::Tensor<int>") == {"describe": describe}
    assert ctx.lookup("vineyard::Tensor<double>") == {"describe": describe_f64}
    assert ctx.get("vineyard::DataFrame", "repartition") is repartition
    assert ctx.get("vineyard::DataFrame", "missing") is None
    assert ctx.lookup("vineyard::Blob") == {}

    df = ctx.resolve(Resolved("vineyard::DataFrame"))
    assert df.repartition(4) == ("repartition", "vineyard::DataFrame", 4)
    t = ctx(Resolved("other"), "vineyard::Tensor<double>")
    assert t.describe() == ("describe-f64", "other")
    # objects that do not take attributes are returned untouched
    assert ctx.resolve((1, 2), "vineyard::DataFrame") == (1, 2)
    with pytest.raises(TypeError):
        ctx.register("vineyard::X", "not an identifier", describe)


def test_driver_context_manager_layering():
    def a(o):
        return "a"

    def b(o):
        return "b"

    default_driver_context.register("test::Frame", "m", a)
    try:
        with driver_context({"test::Frame": {"m": b, "n": b}}) as ctx:
            assert get_current_drivers() is ctx
            assert ctx.lookup("test::Frame") == {"m": b, "n": b}
            assert ctx.resolve(Resolved("test::Frame")).m() == "b"
        assert get_current_drivers() is default_driver_context
        assert default_driver_context.lookup("test::Frame") == {"m": a}
        snap = default_driver_context.copy()
        default_driver_context.unregister("test::Frame", "m")
        assert snap.lookup("test::Frame") == {"m": a}
        assert default_driver_context.lookup("test::Frame") == {}
    finally:
        default_driver_context.unregister("test::Frame")


def test_module_exports():
    import vineyard.core as core

    for name in core.__all__:
        assert hasattr(core, name)
    assert builder_mod.default_builder_context is core.default_builder_context
    assert resolver_mod.default_resolver_context is core.default_resolver_context
    assert driver_mod.default_driver_context is core.default_driver_context


def test_lookups_see_registrations_made_after_them():
    """find() caches its answers; a later registration (here or in a parent), or an ABC
    registered later, must still win."""
    from vineyard.core.builder import BuilderContext
    from vineyard.core.resolver import ResolverContext

    class Base:
        pass

    class Derived(Base):
        pass

    parent = BuilderContext()
    child = BuilderContext(parent)
    parent.register(Base, lambda client, value: "base")
    assert child.find(Derived)(None, None) == "base"
    parent.register(Derived, lambda client, value: "derived")
    assert child.find(Derived)(None, None) == "derived"
    child.unregister(Derived)
    parent.unregister(Derived)
    assert child.find(Derived)(None, None) == "base"

    class Plain:
        pass

    child.register(collections.abc.Sized, lambda client, value: "sized")
    assert child.find(Plain) is None
    collections.abc.Sized.register(Plain)
    assert child.find(Plain)(None, None) == "sized"

    resolvers = ResolverContext()
    resolvers.register("test::Thing", lambda obj: "prefix")
    assert resolvers.find("test::Thing<int>")(None) == "prefix"
    resolvers.register("test::Thing<int>", lambda obj: "exact")
    assert resolvers.find("test::Thing<int>")(None) == "exact"
    resolvers.unregister("test::Thing<int>")
    assert resolvers.find("test::Thing<int>")(None) == "prefix"
