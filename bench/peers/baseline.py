"""Our vineyardd as it was before the event loops (thread per connection, commit d76b34a,
built into build/baseline/ by `make bench`), driven by our Python package (python/): only
the server binary differs from the "ours" peer."""
import os

from .vineyard_common import VineyardPeer


class Baseline(VineyardPeer):
    name = "baseline"
    label = "ours, thread per connection (d76b34a)"

    def vineyardd(self) -> str:
        return os.environ["BENCH_BASELINE_VINEYARDD"]
