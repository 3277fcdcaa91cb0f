"""The published vineyard 0.24.2 client and the vineyardd its wheel ships (vineyard/bdist/)."""
import os

from .vineyard_common import VineyardPeer


class Published(VineyardPeer):
    name = "published"
    label = "vineyard 0.24.2"

    def vineyardd(self) -> str:
        import vineyard
        return os.path.join(os.path.dirname(vineyard.__file__), "bdist", "vineyardd")
