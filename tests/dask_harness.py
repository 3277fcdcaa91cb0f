"""A Dask cluster over a vineyard cluster, for tests and benchmarks: a real etcd, one
vineyardd per host, a `dask scheduler` and one `dask worker` per instance (`--nthreads 1`,
no nanny), each worker told its instance by VINEYARD_IPC_SOCKET::

    with DaskOnVineyard(binary, n=2) as c:
        c.clients[0].put(ddf, dask_scheduler=c.scheduler)   # inside dask_context()

With ``net`` (a ``cluster_harness.Netns``), instance ``i`` and its worker run in the
namespace of host ``i`` and etcd in host 0's; the scheduler listens on the bridge, and the
clients stay in this (root) namespace. Everything is stopped and removed on ``close()``,
also when the start fails; every wait is bounded.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import uuid

import distributed

import vineyard
from vineyard.contrib.dask import dask as vdask

import cluster_harness as ch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class DaskOnVineyard:
    """``clients`` (IPC, one per instance), ``rpc`` (RPC, one per instance), ``servers``,
    ``scheduler`` (its address), ``dask`` (a distributed.Client), ``worker_of`` (instance
    id -> worker address), ``log(name)`` (``scheduler``, ``worker<i>``)."""

    def __init__(self, binary, n=2, net=None, size="256Mi", timeout=30):
        self.closers = []
        self.logs = tempfile.mkdtemp(prefix="vy-dask-")
        try:
            self._start(binary, n, net, size, timeout)
        except BaseException:
            self.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def _start(self, binary, n, net, size, timeout):
        binary = os.path.abspath(binary)  # the servers run in their own directories
        hosts = [net.host(i) for i in range(n)] if net else [None] * n
        etcd = ch.EtcdCluster(1, netns=net, hosts=[0] if net else None)
        etcd.start_all()
        self.closers.append(etcd.close)
        prefix = "vydask-" + uuid.uuid4().hex[:8]
        self.servers = []
        for h in hosts:
            server = ch.Vineyardd(binary, [
                "--meta=etcd", f"--etcd_endpoint={etcd.endpoints}", f"--etcd_prefix={prefix}",
                "--skip_launch_etcd", "--rpc_socket_port=0",
                f"--rpc_host={h.ip if h else '127.0.0.1'}"], host=h, size=size)
            self.closers.append(server.close)
            self.servers.append(server)
        self.clients = [vineyard.connect(s.socket) for s in self.servers]
        self.rpc = [vineyard.connect(c.rpc_endpoint) for c in self.clients]
        for c in self.clients + self.rpc:
            self.closers.append(c.close)
        ip = net.bridge_ip if net else "127.0.0.1"
        port = ch.free_listen_port(ip)
        self.scheduler = f"tcp://{ip}:{port}"
        # TMPDIR: the scheduler's and workers' scratch directories go with the logs.
        env = ch.child_env({"PYTHONPATH": os.path.join(ROOT, "python"), "TMPDIR": self.logs})
        self._spawn(None, "scheduler", env, "distributed.cli.dask_scheduler",
                    "--host", ip, "--port", str(port), "--no-dashboard")
        for i, (h, server) in enumerate(zip(hosts, self.servers)):
            self._spawn(h, f"worker{i}", dict(env, VINEYARD_IPC_SOCKET=server.socket),
                        "distributed.cli.dask_worker", self.scheduler, "--name", f"w{i}",
                        "--nthreads", "1", "--no-nanny", "--no-dashboard",
                        "--host", h.ip if h else "127.0.0.1")
        self.dask = distributed.Client(self.scheduler, timeout=timeout)
        self.closers.append(self.dask.close)
        try:
            self.dask.wait_for_workers(n, timeout=timeout)
        except Exception as e:
            logs = "\n".join(self.log(f"worker{i}") for i in range(n))
            raise ch.HarnessError(f"{e}\n{self.log('scheduler')}\n{logs}") from None
        by_address = self.dask.run(vdask._instance_of_worker)
        self.worker_of = {inst: addr for addr, inst in by_address.items()}
        if sorted(self.worker_of) != sorted(c.instance_id for c in self.clients):
            raise ch.HarnessError(f"workers next to instances {sorted(self.worker_of)}, "
                                  f"expected {sorted(c.instance_id for c in self.clients)}")

    def _spawn(self, host, name, env, module, *args):
        log = open(os.path.join(self.logs, name + ".log"), "wb")
        self.closers.append(log.close)
        proc = ch.spawn([sys.executable, "-m", module, *args], host=host, env=env,
                        stdout=log, stderr=subprocess.STDOUT)

        def stop():
            ch._killpg(proc.pid)
            proc.wait(timeout=10)
        self.closers.append(stop)

    def log(self, name):
        return ch.log_tail(os.path.join(self.logs, name + ".log"))

    def close(self):
        vdask.close_dask_clients()
        for close in reversed(self.closers):
            try:
                close()
            except Exception:  # noqa: BLE001 (keep tearing down)
                pass
        self.closers = []
        shutil.rmtree(self.logs, ignore_errors=True)
