"""vineyard: an in-memory immutable data manager.

This package ships the ``vineyardd`` server; ``python3 -m vineyard [flags]`` runs it.
"""
import os

__version__ = "0.1.0"


def vineyardd_path() -> str:
    """Path of the ``vineyardd`` binary bundled with this package."""
    path = os.path.join(os.path.dirname(__file__), "bin", "vineyardd")
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"vineyardd is not bundled at {path}: install the package with `pip install .`"
        )
    return path
