"""Ray's object store: ray.put / ray.get on a local Ray instance (raylet + plasma)."""
from __future__ import annotations

import time
from typing import Any, Dict, List, Tuple

from .base import Peer


class RayPeer(Peer):
    name = "ray"
    label = "Ray"
    cannot = {"s5": "no metadata objects: values only"}

    def version(self) -> str:
        import ray
        return ray.__version__

    def start(self, workdir: str, size: int) -> Dict[str, Any]:
        import ray
        self.ray = ray
        ctx = ray.init(num_cpus=2, object_store_memory=size, include_dashboard=False,
                       log_to_driver=False, _temp_dir=workdir, configure_logging=False)
        self.info = {"address": ctx.address_info["address"]}
        self.driver = True
        return self.info

    def attach(self, info: Dict[str, Any]) -> None:
        import ray
        self.ray = ray
        ray.init(address=info["address"], log_to_driver=False, configure_logging=False)

    def stop(self) -> None:
        self.ray.shutdown()

    def server_pids(self) -> List[int]:
        node = self.ray._private.worker._global_node
        return [p.process.pid for key in ("raylet", "gcs_server")
                for p in node.all_processes.get(key, [])]

    def put(self, value: Any) -> Any:
        return self.ray.put(value)

    def get(self, ref: Any) -> Any:
        return self.ray.get(ref)

    def delete(self, ref: Any) -> None:
        del ref  # freed when the last reference goes

    def produce_consume(self, array: Any, count: int, window: int) -> Tuple[float, float]:
        """An actor (another process) gets and sums; refs go as task arguments, the Ray
        way to hand objects to another process (a ref passed out of band is never freed)."""
        ray = self.ray

        @ray.remote
        class Consumer:
            def __init__(self) -> None:
                self.total = 0.0

            def consume(self, box: List[Any]) -> None:
                self.total += float(ray.get(box[0]).sum())

            def result(self) -> float:
                return self.total

        consumer = Consumer.remote()
        ray.get(consumer.result.remote())  # the actor process is up
        start = time.perf_counter()
        pending: List[Any] = []
        for _ in range(count):
            pending.append(consumer.consume.remote([ray.put(array)]))
            if len(pending) >= window:
                ray.get(pending.pop(0))
        ray.get(pending)
        total = ray.get(consumer.result.remote())
        seconds = time.perf_counter() - start
        ray.kill(consumer)
        return seconds, total
