"""The systems under test, one module each, all implementing bench/peers/base.py's Peer.

Each runs in a worker process of its own Python environment (bench/worker.py)."""
import importlib

# name -> (module, class); the order of the tables' columns.
PEERS = {
    "ours": ("ours", "Ours"),
    "baseline": ("baseline", "Baseline"),
    "published": ("published", "Published"),
    "ray": ("ray_store", "RayPeer"),
    "plasma": ("plasma_store", "PlasmaPeer"),
    "shm": ("shm", "SharedMemoryPeer"),
    "pickle": ("pickle_pipe", "PicklePipePeer"),
}


def load(name):
    """A new, unstarted instance of the peer called ``name``."""
    module, cls = PEERS[name]
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)()
