"""Python's multiprocessing.shared_memory: one named segment per array, no daemon."""
from __future__ import annotations

import itertools
import os
from typing import Any, Dict, List

from .base import Peer

_BYTES_ONLY = "bytes only: a DataFrame or Table needs a serializer on top"


class SharedMemoryPeer(Peer):
    name = "shm"
    label = "shared_memory"
    cannot = {"s3": _BYTES_ONLY, "s4": _BYTES_ONLY, "s5": "no metadata objects"}

    def version(self) -> str:
        import platform
        return f"Python {platform.python_version()}"

    def attach(self, info: Dict[str, Any]) -> None:
        from multiprocessing import resource_tracker, shared_memory
        self.shared_memory = shared_memory
        self.tracker = resource_tracker
        self.attached: Dict[str, List[Any]] = {}  # name -> mappings opened by get()
        self.live: set = set()  # segments this process created and has not deleted
        self.names = (f"bench{os.getpid()}_{i}" for i in itertools.count())

    def stop(self) -> None:
        for name in list(self.attached):
            self.release((name,))

    def put(self, value: Any) -> Any:
        """Create a segment, copy, and close it: the segment stays until delete (an open
        mapping per object would run out of file descriptors and mappings)."""
        import numpy as np
        shm = self.shared_memory.SharedMemory(next(self.names), create=True,
                                              size=max(value.nbytes, 1))
        np.ndarray(value.shape, value.dtype, buffer=shm.buf)[...] = value
        shm.close()
        self.live.add(shm.name)
        return (shm.name, value.shape, value.dtype.str)

    def store_bytes(self) -> int:
        """The tmpfs blocks of this process's live segments (whole pages)."""
        return sum(os.stat(f"/dev/shm/{name}").st_blocks * 512 for name in self.live)

    def get(self, ref: Any) -> Any:
        """Attach by name, as another process would."""
        import numpy as np
        name, shape, dtype = ref
        shm = self.shared_memory.SharedMemory(name)
        # Attaching registers the segment with this process's resource tracker (Python
        # < 3.13), which would unlink it at exit: the creator owns it.
        self.tracker.unregister(shm._name, "shared_memory")
        self.attached.setdefault(name, []).append(shm)
        view = np.ndarray(shape, np.dtype(dtype), buffer=shm.buf)
        view.flags.writeable = False
        return view

    def release(self, ref: Any) -> None:
        for shm in self.attached.pop(ref[0], []):
            shm.close()

    def delete(self, ref: Any) -> None:
        self.release(ref)
        self.live.discard(ref[0])
        self.shared_memory._posixshmem.shm_unlink("/" + ref[0])
        self.tracker.unregister("/" + ref[0], "shared_memory")
