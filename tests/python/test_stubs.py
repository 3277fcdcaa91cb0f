"""Type information for IDEs: the committed python/vineyard/_C.pyi matches the built
vineyard._C, the package is marked typed, and the pure-Python API is annotated.

After changing cpp/python, rebuild and regenerate the stub:
    PYTHONPATH=python python3 -m nanobind.stubgen -m vineyard._C \\
        -o python/vineyard/_C.pyi -M python/vineyard/py.typed
"""
import ast
import inspect
import os

import pytest

import vineyard
from vineyard import _C
from vineyard.core.client import IPCClient
from vineyard.core.object import BlobObject, Object

PACKAGE = os.path.dirname(os.path.abspath(vineyard.__file__))
STUB = os.path.join(PACKAGE, "_C.pyi")
REGENERATE = ("stale python/vineyard/_C.pyi: regenerate it with `PYTHONPATH=python python3 -m "
              "nanobind.stubgen -m vineyard._C -o python/vineyard/_C.pyi -M python/vineyard/py.typed`")


def stub_names():
    """{top-level name: set of member names (empty for non-classes)} of the stub."""
    with open(STUB) as f:
        tree = ast.parse(f.read(), STUB)
    out = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            members = set()
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    members.add(item.name)
                elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    members.add(item.target.id)
                elif isinstance(item, ast.Assign):
                    members.update(t.id for t in item.targets if isinstance(t, ast.Name))
            out[node.name] = members
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            out[node.name] = set()
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            out[node.target.id] = set()
        elif isinstance(node, ast.Assign):
            out.update((t.id, set()) for t in node.targets if isinstance(t, ast.Name))
    return out


def public(names):
    return {n for n in names if not n.startswith("_")}


def test_stub_and_marker_exist():
    assert os.path.isfile(STUB), REGENERATE
    assert os.path.isfile(os.path.join(PACKAGE, "py.typed"))


def test_every_public_name_of_the_module_is_in_the_stub():
    stub = stub_names()
    runtime = {n for n in public(dir(_C)) if not inspect.ismodule(getattr(_C, n))}
    assert runtime - set(stub) == set(), REGENERATE
    assert public(stub) - runtime == set(), REGENERATE  # nothing stale either


@pytest.mark.parametrize("name", sorted(n for n in public(dir(_C))
                                        if inspect.isclass(getattr(_C, n))
                                        and not issubclass(getattr(_C, n), BaseException)))
def test_every_public_member_of_a_class_is_in_the_stub(name):
    members = stub_names()[name]
    runtime = public(vars(getattr(_C, name)))
    assert runtime - members == set(), REGENERATE
    assert public(members) - runtime == set(), REGENERATE


def _unannotated(fn):
    sig = inspect.signature(fn)
    missing = [p.name for p in sig.parameters.values()
               if p.name not in ("self", "cls") and p.annotation is inspect.Parameter.empty]
    if sig.return_annotation is inspect.Signature.empty:
        missing.append("return")
    return missing


def _public_callables(cls):
    for name, attr in vars(cls).items():
        if name.startswith("_") and name not in ("__init__", "__enter__", "__exit__"):
            continue
        if isinstance(attr, property):
            yield f"{cls.__name__}.{name}", attr.fget
        elif isinstance(attr, staticmethod):
            yield f"{cls.__name__}.{name}", attr.__func__
        elif inspect.isfunction(attr):
            yield f"{cls.__name__}.{name}", attr


def test_public_python_api_is_annotated():
    targets = [(f"vineyard.{n}", getattr(vineyard, n))
               for n in ("connect", "put", "get", "set_default_client", "vineyardd_path")]
    for cls in (IPCClient, Object, BlobObject):
        targets += list(_public_callables(cls))
    missing = {name: m for name, fn in targets if (m := _unannotated(fn))}
    assert missing == {}
