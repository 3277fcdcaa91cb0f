"""Launchers: ``local`` (this host), ``distributed`` (hosts over ssh) and ``kubernetes``
(through the official client). ``distributed`` and ``kubernetes`` are imported on first
use (``vineyard.deploy.kubernetes`` needs the ``kubernetes`` package)."""
import importlib

from . import local  # noqa: F401
from .utils import DeployError  # noqa: F401

__all__ = ["local", "distributed", "kubernetes", "DeployError"]


def __getattr__(name):
    if name in ("distributed", "kubernetes"):
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
