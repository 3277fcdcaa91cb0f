"""vineyard.deploy.distributed.start_vineyardd against real sshd servers: each "host" is a
network namespace on one bridge (tests/cluster_harness.py) running Debian's sshd with
key authentication, in a mount namespace of its own whose socket directory is a private
tmpfs (so every host has its own /…/vineyard.sock, as separate machines would). etcd is
started over ssh on the first host; the test process reaches the instances over RPC.

Needs root, `ip`, etcd and openssh-server; skipped otherwise. Every namespace, process
and directory is removed at the end, also on failure.

Run: PYTHONPATH=python python3 -m pytest -q tests/python/test_deploy_distributed.py
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest

import vineyard
from vineyard.deploy import distributed
from vineyard.deploy.utils import DeployError

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, TESTS)

import cluster_harness as ch  # noqa: E402
from conftest import vineyardd_binary  # noqa: E402

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
UNSHARE = shutil.which("unshare") or "/usr/bin/unshare"

_reason = ch.require_root()
if _reason is None and not os.path.exists(ch.ETCD):
    _reason = f"no etcd at {ch.ETCD} (apt-get install etcd-server)"
if _reason is None and not (os.path.exists(SSHD) and shutil.which("ssh")):
    _reason = "no sshd/ssh (apt-get install openssh-server openssh-client)"
pytestmark = pytest.mark.skipif(_reason is not None, reason=_reason or "")

RPC_PORT = 9650


class SshHosts:
    """sshd on hosts 0..n_sshd-1 of ``net``, keys in a temporary directory."""

    def __init__(self, net, n_sshd):
        self.dir = tempfile.mkdtemp(prefix=f"vyh{os.getpid()}-ssh-")
        self.sockdir = os.path.join(self.dir, "run")  # a private tmpfs on each host
        os.makedirs(self.sockdir)
        os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege separation directory
        key = os.path.join(self.dir, "id_ed25519")
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
        hostkey = os.path.join(self.dir, "host_ed25519")
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", hostkey],
                       check=True)
        shutil.copy(key + ".pub", os.path.join(self.dir, "authorized_keys"))
        self.options = ["-i", key, "-o", "StrictHostKeyChecking=no",
                        "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                        "-o", "ConnectTimeout=5"]
        self.procs = []
        for i in range(n_sshd):
            h = net.host(i)
            conf = os.path.join(self.dir, f"sshd_config{i}")
            with open(conf, "w") as f:
                f.write(f"ListenAddress {h.ip}\nPort 22\nHostKey {hostkey}\nPidFile none\n"
                        "UsePAM no\nPermitRootLogin prohibit-password\n"
                        "PubkeyAuthentication yes\nPasswordAuthentication no\n"
                        "KbdInteractiveAuthentication no\n"
                        f"AuthorizedKeysFile {self.dir}/authorized_keys\nStrictModes no\n"
                        "LogLevel ERROR\n")
            log = open(os.path.join(self.dir, f"sshd{i}.log"), "wb")
            script = (f"mount -t tmpfs -o size=16m tmpfs {self.sockdir} && "
                      f"exec {SSHD} -D -e -f {conf}")
            self.procs.append(h.run([UNSHARE, "--mount", "--propagation", "private",
                                     "sh", "-c", script], stdout=log, stderr=log))
            log.close()
        for i in range(n_sshd):
            ch.wait_for(lambda: self.ssh(net.host(i).ip, "true").returncode == 0, 20,
                        f"sshd on {net.host(i)} accepting key logins; log: "
                        f"{ch.log_tail(os.path.join(self.dir, f'sshd{i}.log'))}")

    def ssh(self, ip, command, timeout=15):
        return subprocess.run(["ssh", *self.options, "-o", "BatchMode=yes", f"root@{ip}",
                               command], capture_output=True, text=True, timeout=timeout)

    def close(self):
        for p in self.procs:
            ch._killpg(p.pid)
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def net():
    n = ch.Netns(4)
    with n:
        yield n
    left = n.leftovers()
    assert not left, f"left behind: {left}"


@pytest.fixture(scope="module")
def ssh_hosts(net):
    """sshd on hosts 0..2; host 3 has none (unreachable over ssh)."""
    hosts = SshHosts(net, 3)
    try:
        yield hosts
    finally:
        hosts.close()


def remote_pids(net, i, name):
    """Pids of processes called ``name`` running in host ``i``'s namespace."""
    out = []
    for pid in net.host(i).pids():
        try:
            with open(f"/proc/{pid}/comm") as f:
                if f.read().strip() == name:
                    out.append(pid)
        except OSError:
            pass
    return out


def test_three_hosts_form_one_cluster_and_stop(net, ssh_hosts):
    hosts = [f"root@{net.host(i).ip}" for i in range(3)]
    socket = os.path.join(ssh_hosts.sockdir, "vineyard.sock")
    with distributed.start_vineyardd(hosts, vineyardd_path=vineyardd_binary(), size="64Mi",
                                     socket=socket, rpc_socket_port=RPC_PORT,
                                     ssh_options=ssh_hosts.options, timeout=60) as (
                                         procs, sock, etcd_endpoints):
        assert sock == socket and etcd_endpoints == f"http://{net.host(0).ip}:2379"
        assert [p.host for p in procs] == hosts and all(p.running() for p in procs)
        for i in range(3):
            assert len(remote_pids(net, i, "vineyardd")) == 1
        assert remote_pids(net, 0, "etcd")
        # One cluster: an object persisted through host 0 is visible through host 2.
        c0 = vineyard.connect(net.host(0).ip, RPC_PORT)
        c2 = vineyard.connect(net.host(2).ip, RPC_PORT)
        assert len(c0.meta) == 3
        oid = c0.put(np.arange(10), persist=True, name="spread")
        c2.sync_meta()
        assert c2.get_name("spread") == oid
        assert (c2.get(oid) == np.arange(10)).all()
        # Each host has its own socket (its private tmpfs), as separate machines do.
        for i in range(3):
            out = ssh_hosts.ssh(net.host(i).ip, f"test -S {socket} && echo yes")
            assert out.stdout.strip() == "yes", out
        c0.close()
        c2.close()
    for i in range(3):
        ch.wait_for(lambda: not remote_pids(net, i, "vineyardd"), 10,
                    f"vineyardd on host {i} stopped")
    ch.wait_for(lambda: not remote_pids(net, 0, "etcd"), 10, "etcd stopped")
    assert not os.path.exists(procs[0].log_path)  # the local work directory is gone
    out = ssh_hosts.ssh(net.host(0).ip, "ls -d /tmp/vineyard-etcd.* 2>/dev/null | wc -l")
    assert out.stdout.strip() == "0", "etcd's data directory was not removed"


@pytest.mark.parametrize("how", ["refused", "silent"])
def test_unreachable_host_stops_the_others_and_names_it(net, ssh_hosts, how):
    # Host 3 is a namespace of ours without sshd: its port 22 refuses connections;
    # with its link cut, nothing answers at all (ssh gives up after ConnectTimeout=5).
    bad = f"root@{net.host(3).ip}"
    hosts = [f"root@{net.host(0).ip}", f"root@{net.host(1).ip}", bad]
    socket = os.path.join(ssh_hosts.sockdir, "vineyard.sock")
    if how == "silent":
        net.cut(3)
    started = time.monotonic()
    try:
        with pytest.raises(DeployError) as e:
            with distributed.start_vineyardd(hosts, vineyardd_path=vineyardd_binary(),
                                             size="64Mi", socket=socket,
                                             rpc_socket_port=RPC_PORT,
                                             ssh_options=ssh_hosts.options, timeout=30):
                pytest.fail("started with an unreachable host")
    finally:
        if how == "silent":
            net.heal(3)
    assert bad in str(e.value) and "ssh" in str(e.value), e.value
    assert time.monotonic() - started < 30
    for i in range(3):
        ch.wait_for(lambda: not remote_pids(net, i, "vineyardd") and
                    not remote_pids(net, i, "etcd"), 10, f"nothing left on host {i}")


def test_an_instance_that_fails_names_its_host(net, ssh_hosts):
    # A socket directory that does not exist on the hosts: every vineyardd exits.
    hosts = [f"root@{net.host(0).ip}", f"root@{net.host(1).ip}"]
    with pytest.raises(DeployError) as e:
        with distributed.start_vineyardd(hosts, vineyardd_path=vineyardd_binary(),
                                         size="64Mi", socket="/nonexistent-dir/v.sock",
                                         rpc_socket_port=RPC_PORT,
                                         etcd_endpoints="http://127.0.0.1:1",
                                         ssh_options=ssh_hosts.options, timeout=20):
            pytest.fail("started with a socket in a missing directory")
    msg = str(e.value)
    assert "vineyardd exited" in msg and "/nonexistent-dir" in msg, msg
    assert any(h in msg for h in hosts), msg
    for i in range(2):
        ch.wait_for(lambda: not remote_pids(net, i, "vineyardd"), 10, f"host {i} clean")
