"""The multi-host harness (tests/cluster_harness.py) on real namespaces and a real etcd.

Needs root, `ip` (iproute2) and etcd; skipped otherwise. About 15 s.
Run: python3 -m pytest -q tests/python/test_cluster_harness.py
"""

import os
import shutil
import subprocess
import sys
import textwrap
import time

import pytest

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, TESTS)

import cluster_harness as ch  # noqa: E402

_reason = ch.require_root()
if _reason is None and not os.path.exists(ch.ETCD):
    _reason = f"no etcd at {ch.ETCD} (apt-get install etcd-server)"
pytestmark = pytest.mark.skipif(_reason is not None, reason=_reason or "")


@pytest.fixture(scope="module")
def net():
    """Three hosts; after the module, nothing of the run may remain."""
    n = ch.Netns(3)
    with n:
        yield n
    left = n.leftovers()
    assert not left, f"left behind by {n!r}: {left}"


def test_hosts_ping_over_the_bridge_and_not_after_a_cut(net):
    h0, h1 = net.host(0), net.host(1)
    assert h0.ping(h1) and h1.ping(h0), "hosts on the bridge must reach each other"
    assert h0.ping(net.bridge_ip), "the root namespace is reachable from a host"
    net.cut(1)
    try:
        assert not h0.ping(h1, timeout=0.5), "a cut host still answers"
        assert not h1.ping(h0, timeout=0.5), "a cut host still reaches the bridge"
    finally:
        net.heal(1)
    assert ch._wait(lambda: h0.ping(h1, timeout=0.5), 5), "no reachability after heal"


def test_three_member_etcd_across_hosts_survives_a_killed_member(net):
    with ch.EtcdCluster(3, netns=net) as etcd:
        assert etcd.endpoints == ",".join(f"http://{h.ip}:2379" for h in net.hosts)
        assert all(etcd.healthy(i) for i in range(3))
        etcd.put("/t/before", "1")

        etcd.kill(1)
        assert not etcd.healthy(1, timeout=0.5)
        etcd.put("/t/after", "2", timeout=20)  # a new leader, if 1 led, within a few s
        assert etcd.dump("/t/") == {"/t/before": "1", "/t/after": "2"}
        health = etcd.etcdctl("endpoint", "health")  # it reports on stderr
        report = health.stdout + health.stderr
        assert report.count(" is healthy") == 2 and " is unhealthy" in report, report

        etcd.start(1)  # same data directory: it catches up on what it missed
        resp = etcd._request(etcd.endpoint(1), "kv/range", {"key": ch._b64("/t/after")})
        assert resp.get("kvs"), f"member 1 did not catch up:\n{etcd.log(1)}"


def test_single_member_wipe_and_restart_forgets_every_key():
    with ch.EtcdCluster(1) as etcd:  # root namespace, loopback, free ports
        assert etcd.endpoint(0).startswith("http://127.0.0.1:")
        etcd.put("/w/k", "v")
        etcd.wipe_and_restart()
        assert etcd.dump("/w/") == {}
        workdir = etcd.workdir
    assert not os.path.exists(workdir)


def test_exception_and_sigterm_leave_nothing_behind():
    # An exception inside the block.
    with pytest.raises(RuntimeError):
        with ch.Netns(2) as n:
            sleeper = n.host(1).run(["sleep", "300"])
            raise RuntimeError("boom")
    assert sleeper.poll() is not None
    assert not n.leftovers(), n.leftovers()

    # SIGTERM to a process using the harness: its handler removes everything.
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {TESTS!r})
        import cluster_harness as ch
        with ch.Netns(2) as n, ch.EtcdCluster(1, netns=n, hosts=[1]) as e:
            p = n.host(0).run(["sleep", "300"])
            print(n.tag, p.pid, e.members[0]["proc"].pid, e.workdir, flush=True)
            time.sleep(300)
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        line = child.stdout.readline().split()
        assert len(line) == 4, child.stderr.read() if child.poll() is not None else line
        tag, pids, workdir = line[0], [int(p) for p in line[1:3]], line[3]
        child.terminate()
        assert child.wait(timeout=30) == 128 + 15
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert not [x for x in ch.netns_names() if tag in x]
    assert not [x for x in ch.link_names() if tag in x]
    assert not [p for p in pids if ch._pid_alive(p)]
    assert not os.path.exists(workdir)


def test_cleanup_stale_removes_what_a_killed_run_left():
    # A run killed with SIGKILL cannot clean up: cleanup_stale() does it afterwards.
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {TESTS!r})
        import cluster_harness as ch
        n = ch.Netns(1).create()
        p = n.host(0).run(["sleep", "300"])
        print(n.tag, p.pid, flush=True)
        time.sleep(300)
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                             text=True)
    try:
        tag, pid = child.stdout.readline().split()
    finally:
        child.kill()
        child.wait()
    assert [x for x in ch.netns_names() if tag in x]
    ch.cleanup_stale()  # (a parallel run may have removed them first: same outcome)
    assert not [x for x in ch.netns_names() if tag in x]
    assert not [x for x in ch.link_names() if tag in x]
    assert ch._wait(lambda: not ch._pid_alive(int(pid)), 5)
