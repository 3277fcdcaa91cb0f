"""This repository's vineyardd (build/vineyardd) and Python package (python/, on PYTHONPATH)."""
import os

from .vineyard_common import VineyardPeer


class Ours(VineyardPeer):
    name = "ours"
    label = "ours"

    def vineyardd(self) -> str:
        return os.environ["BENCH_VINEYARDD"]
