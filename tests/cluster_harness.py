"""A multi-host harness on one machine: network namespaces, real etcd, real vineyardd.

Every "host" is a network namespace joined to a bridge in the root namespace, so
processes on different hosts talk TCP over that bridge (and a host can be cut off by
taking its link down), while the file system stays shared: a UNIX socket created by a
vineyardd inside a namespace is a file that a client in the root namespace can connect
to. The usual shape of a test or a benchmark::

    from cluster_harness import Netns, EtcdCluster, Vineyardd

    with Netns(3) as net, EtcdCluster(1, netns=net, hosts=[0]) as etcd:
        a = Vineyardd(binary, ["--meta=etcd", f"--etcd_endpoint={etcd.endpoints}"],
                      host=net.host(1))
        b = Vineyardd(binary, [...], host=net.host(2))
        ...  # clients in this process connect to a.socket and b.socket
        a.close(); b.close()

Names. A run's tag is the pid of the process that created it followed by one letter
(a counter), e.g. ``4711a``; with the default prefix ``vy`` the bridge is ``vyb4711a``,
host ``i`` is the namespace ``vy4711ah<i>`` whose ``eth0`` is a veth whose other end,
``vy4711av<i>``, sits on the bridge; the subnet is ``10.<x>.<y>.0/24`` (bridge ``.1``,
host ``i`` at ``.<i+2>``), chosen from the tag and not overlapping any address or route
of the root namespace. Temporary directories are ``<tmp>/vyh<pid>-*``. All names fit
the 15-character limit of interface names.

Cleanup. Every process started here runs in a process group of its own and is tracked;
leaving a ``with`` block (normally, on an exception or on KeyboardInterrupt), a SIGTERM
to this process, and interpreter exit all kill the tracked groups, whatever still runs
inside the namespaces, and delete the namespaces, veths, bridge and temporary
directories. A run that was SIGKILLed cannot clean up after itself: ``cleanup_stale()``
removes what runs whose pid is gone left behind (``python3 tests/cluster_harness.py
--cleanup`` from a shell).

Requirements: root (or CAP_NET_ADMIN + CAP_SYS_ADMIN), ``ip`` from iproute2, Linux
bridge and veth support; ``etcd``/``etcdctl`` for ``EtcdCluster``. Standard library
only. Every wait is bounded, and a failure names the command or the process and shows
the tail of its log.
"""

import atexit
import base64
import ipaddress
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

IP = shutil.which("ip") or "/usr/sbin/ip"
ETCD = shutil.which("etcd") or "/usr/bin/etcd"
ETCDCTL = shutil.which("etcdctl") or "/usr/bin/etcdctl"
PREFIX = "vy"
TMP = tempfile.gettempdir()

# Environment variables that would send etcd/gRPC/HTTP traffic of the children (and of
# this module's HTTP calls) through a proxy instead of over the bridge.
_PROXY_VARS = ("http_proxy", "https_proxy", "grpc_proxy", "all_proxy", "no_proxy",
               "HTTP_PROXY", "HTTPS_PROXY", "GRPC_PROXY", "ALL_PROXY", "NO_PROXY")


class HarnessError(RuntimeError):
    """A step of the harness failed; the message says which and shows the relevant log."""


# --------------------------------------------------------------------------- helpers

def require_root():
    """Returns None when namespaces can be made here, else the reason why not."""
    if not sys.platform.startswith("linux"):
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "network namespaces need root (run as root or with CAP_NET_ADMIN+CAP_SYS_ADMIN)"
    if not os.path.exists(IP):
        return "the `ip` command (iproute2) is missing: apt-get install iproute2"
    return None


def child_env(extra=None):
    """The environment for harness children: this one without proxy variables, plus
    ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in _PROXY_VARS}
    env.update(extra or {})
    return env


def log_tail(path, lines=40, limit=6000):
    """The last ``lines`` lines of a log file (at most ``limit`` characters)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 4 * limit))
            text = f.read().decode(errors="replace")
    except OSError as e:
        return f"<no log at {path}: {e}>"
    text = "\n".join(text.splitlines()[-lines:])
    return text[-limit:] if text else "<empty log>"


def _ip(*args, check=True, timeout=10):
    """Runs ``ip ARGS``; raises HarnessError with ip's stderr when it fails."""
    cmd = [IP, *args]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise HarnessError(f"`{' '.join(cmd)}` did not finish within {timeout}s")
    if check and out.returncode != 0:
        raise HarnessError(f"`{' '.join(cmd)}` failed ({out.returncode}): "
                           f"{out.stderr.strip() or out.stdout.strip()}")
    return out


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is dead for our purposes
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _killpg(pid, sig=signal.SIGKILL):
    """Signals the process group led by ``pid``; falls back to the process itself."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        try:
            os.kill(pid, sig)
        except OSError:
            pass


def _free_port(host="127.0.0.1"):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def free_listen_port(host="0.0.0.0"):
    """A free port below the kernel's ephemeral range, for a server that binds it later:
    a port of that range (what binding port 0 gives) may meanwhile become the local port
    of some outgoing connection, and the server's bind then fails."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(max(1024, low - 12000), low)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    return _free_port(host)


def _wait(predicate, timeout, interval=0.05):
    """Polls ``predicate`` until it returns a true value or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def wait_for(predicate, timeout, what):
    """Polls ``predicate`` until it is true; an AssertionError naming ``what`` after
    ``timeout`` seconds. An exception from ``predicate`` counts as not yet (an
    instance or etcd coming back)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception:  # noqa: BLE001
            pass
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout} s: {what}")


def netns_names():
    """Names of all named network namespaces (``ip netns list``)."""
    out = _ip("netns", "list", check=False)
    return [line.split()[0] for line in out.stdout.splitlines() if line.strip()]


def link_names():
    """Names of all links of the root namespace (without the ``@peer`` suffix)."""
    out = _ip("-o", "link", "show", check=False)
    names = []
    for line in out.stdout.splitlines():
        parts = line.split(":", 2)
        if len(parts) >= 2:
            names.append(parts[1].strip().split("@")[0])
    return names


def _procs_with(fragment):
    """Pids (not this process) whose command line contains ``fragment``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if fragment in cmdline and _pid_alive(int(entry)):
            found.append(int(entry))
    return found


# ------------------------------------------------------------- process tracking

class _Tracker:
    """Processes started by the harness, each the leader of its own process group."""

    def __init__(self):
        self.procs = []     # still to be killed
        self.started = []   # every process ever started, for leftovers()
        self.lock = threading.Lock()

    def popen(self, argv, **kwargs):
        kwargs.setdefault("env", child_env())
        kwargs["start_new_session"] = True
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        try:
            proc = subprocess.Popen(argv, **kwargs)
        except OSError as e:
            raise HarnessError(f"cannot start {argv[0]!r}: {e}") from e
        with self.lock:
            self.procs.append(proc)
            self.started.append(proc)
        return proc

    def kill_all(self):
        with self.lock:
            procs, self.procs = self.procs, []
        for proc in procs:
            _killpg(proc.pid)
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass


_ROOT = _Tracker()          # processes started in the root namespace
_LIVE = set()               # objects whose close() must run on exit/SIGTERM
_LIVE_LOCK = threading.RLock()
_PREV_SIGTERM = None
_TAG_COUNTER = [0]


def _cleanup_all():
    with _LIVE_LOCK:
        live = list(_LIVE)
    # Vineyardd before etcd before namespaces: the reverse order of creation.
    order = {"Vineyardd": 0, "EtcdCluster": 1, "Netns": 2}
    for obj in sorted(live, key=lambda o: order.get(type(o).__name__, 0)):
        try:
            obj.close()
        except Exception as e:  # keep going: the rest must still be removed
            print(f"cluster_harness: cleanup of {obj!r} failed: {e}", file=sys.stderr)
    _ROOT.kill_all()


def _on_sigterm(signum, frame):
    _cleanup_all()
    prev = _PREV_SIGTERM
    if callable(prev):
        prev(signum, frame)
    raise SystemExit(128 + signum)


def _register(obj):
    global _PREV_SIGTERM
    with _LIVE_LOCK:
        if not _LIVE and threading.current_thread() is threading.main_thread():
            try:
                _PREV_SIGTERM = signal.signal(signal.SIGTERM, _on_sigterm)
            except ValueError:
                _PREV_SIGTERM = None
        _LIVE.add(obj)


def _unregister(obj):
    global _PREV_SIGTERM
    with _LIVE_LOCK:
        _LIVE.discard(obj)
        if (not _LIVE and _PREV_SIGTERM is not None
                and threading.current_thread() is threading.main_thread()):
            try:
                signal.signal(signal.SIGTERM, _PREV_SIGTERM)
            except (ValueError, TypeError):
                pass
            _PREV_SIGTERM = None


atexit.register(_cleanup_all)


def spawn(argv, host=None, **popen_kwargs):
    """Starts ``argv`` in its own process group, inside ``host``'s namespace or (None)
    in the root namespace; the process is killed with the harness (see module doc)."""
    if host is not None:
        return host.run(argv, **popen_kwargs)
    return _ROOT.popen(list(argv), **popen_kwargs)


def _mkdtemp(kind):
    return tempfile.mkdtemp(prefix=f"{PREFIX}h{os.getpid()}-{kind}-", dir=TMP)


# ------------------------------------------------------------------ namespaces

_PING = r"""
import os, socket, struct, sys, time
dst, timeout = sys.argv[1], float(sys.argv[2])
def csum(b):
    b += b"\0" * (len(b) % 2)
    s = sum(struct.unpack(f"!{len(b)//2}H", b)); s = (s >> 16) + (s & 0xFFFF); s += s >> 16
    return ~s & 0xFFFF
ident = os.getpid() & 0xFFFF
body = struct.pack("!HHHH", 8 << 8, 0, ident, 1) + b"vineyard-harness"
pkt = body[:2] + struct.pack("!H", csum(body)) + body[4:]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.settimeout(timeout)
deadline = time.monotonic() + timeout
s.sendto(pkt, (dst, 0))
while time.monotonic() < deadline:
    s.settimeout(max(0.01, deadline - time.monotonic()))
    try:
        data, addr = s.recvfrom(2048)
    except (socket.timeout, OSError):
        break
    hl = (data[0] & 0x0F) * 4
    typ, _, _, rid, _ = struct.unpack("!BBHHH", data[hl:hl + 8])
    if addr[0] == dst and typ == 0 and rid == ident:
        sys.exit(0)
sys.exit(1)
"""


class Host:
    """One namespace of a ``Netns``: ``name``, ``index``, ``ip``, ``veth`` (the end on
    the bridge)."""

    def __init__(self, netns, index, name, ip, veth):
        self.netns, self.index, self.name, self.ip, self.veth = netns, index, name, ip, veth

    def __repr__(self):
        return f"Host({self.name}, {self.ip})"

    def run(self, argv, **popen_kwargs):
        """Starts ``argv`` inside this namespace (``ip netns exec``), in a process group
        of its own, tracked and killed on cleanup. Returns the ``subprocess.Popen``;
        the default environment is this one without proxy variables."""
        if self.netns.closed:
            raise HarnessError(f"{self.name}: the Netns was already closed")
        return self.netns._tracker.popen([IP, "netns", "exec", self.name, *argv],
                                         **popen_kwargs)

    def call(self, argv, timeout=30, **kwargs):
        """Runs ``argv`` inside the namespace to completion; returns the
        CompletedProcess (text output captured). Raises HarnessError on timeout."""
        proc = self.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                        **kwargs)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _killpg(proc.pid)
            proc.communicate()
            raise HarnessError(f"{self.name}: {argv!r} did not finish within {timeout}s")
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    def ping(self, ip, timeout=1.0):
        """True when one ICMP echo from this namespace to ``ip`` is answered within
        ``timeout`` seconds (a raw socket in a small Python program: no ``ping``
        binary needed)."""
        if isinstance(ip, Host):
            ip = ip.ip
        done = self.call([sys.executable, "-c", _PING, str(ip), str(timeout)],
                         timeout=timeout + 10)
        return done.returncode == 0

    def pids(self):
        """Pids of every process inside this namespace (``ip netns pids``)."""
        out = _ip("netns", "pids", self.name, check=False)
        return [int(p) for p in out.stdout.split() if p.isdigit()]


class Netns:
    """N hosts as network namespaces on one bridge; a context manager.

    ``Netns(n)`` creates the bridge and the namespaces on ``__enter__`` (or
    ``create()``), removes everything on ``__exit__`` (or ``close()``). ``host(i)``
    is a ``Host``; ``cut(i)``/``heal(i)`` take host ``i``'s link down/up.
    """

    def __init__(self, n=2, prefix=PREFIX, mtu=None):
        if not 1 <= n <= 200:
            raise ValueError("Netns: between 1 and 200 hosts")
        _TAG_COUNTER[0] += 1
        letter = chr(ord("a") + (_TAG_COUNTER[0] - 1) % 26)
        self.tag = f"{os.getpid()}{letter}"
        self.prefix = prefix
        self.n = n
        self.mtu = mtu
        self.bridge = f"{prefix}b{self.tag}"
        if len(self.bridge) > 15 or len(f"{prefix}{self.tag}v{n - 1}") > 15:
            raise HarnessError(f"prefix {prefix!r} makes interface names longer than 15 "
                               "characters: use a shorter prefix")
        self.hosts = []
        self.subnet = None
        self.closed = False
        self._created = False
        self._tracker = _Tracker()

    def __repr__(self):
        return f"Netns({self.tag}, {self.subnet}, {self.n} hosts)"

    # -- set-up
    def _pick_subnet(self):
        used = []
        for args in (("-o", "-4", "addr", "show"), ("-4", "route", "show", "table", "all")):
            for m in re.finditer(r"(\d+\.\d+\.\d+\.\d+(?:/\d+)?)", _ip(*args).stdout):
                try:
                    used.append(ipaddress.ip_network(m.group(1), strict=False))
                except ValueError:
                    pass
        seed = os.getpid() * 26 + _TAG_COUNTER[0]
        for k in range(150 * 256):
            n = (seed + k) % (150 * 256)
            net = ipaddress.ip_network(f"10.{100 + n // 256}.{n % 256}.0/24")
            if not any(net.overlaps(u) for u in used if u.prefixlen > 0):
                return net
        raise HarnessError("no free 10.100-249.x.0/24 subnet for the bridge")

    def create(self):
        """Creates the bridge and the namespaces (idempotent)."""
        if self._created:
            return self
        reason = require_root()
        if reason:
            raise HarnessError(reason)
        _register(self)
        self._created = True
        try:
            self.subnet = self._pick_subnet()
            base = self.subnet.network_address
            self.bridge_ip = str(base + 1)
            _ip("link", "add", self.bridge, "type", "bridge")
            _ip("addr", "add", f"{self.bridge_ip}/24", "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")
            for i in range(self.n):
                name = f"{self.prefix}{self.tag}h{i}"
                veth = f"{self.prefix}{self.tag}v{i}"
                ip = str(base + 2 + i)
                self.hosts.append(Host(self, i, name, ip, veth))
                _ip("netns", "add", name)
                _ip("link", "add", veth, "type", "veth", "peer", "name", "eth0",
                    "netns", name)
                if self.mtu:
                    _ip("link", "set", veth, "mtu", str(self.mtu))
                    _ip("-n", name, "link", "set", "eth0", "mtu", str(self.mtu))
                _ip("link", "set", veth, "master", self.bridge, "up")
                _ip("-n", name, "addr", "add", f"{ip}/24", "dev", "eth0")
                _ip("-n", name, "link", "set", "eth0", "up")
                _ip("-n", name, "link", "set", "lo", "up")
                _ip("-n", name, "route", "add", "default", "via", self.bridge_ip)
        except BaseException:
            self.close()
            raise
        return self

    def __enter__(self):
        return self.create()

    def __exit__(self, *exc):
        self.close()
        return False

    def host(self, i):
        return self.hosts[i]

    def cut(self, i):
        """Takes host ``i``'s link to the bridge down: a network cut."""
        _ip("link", "set", self.hosts[i].veth, "down")

    def heal(self, i):
        """Brings host ``i``'s link back up."""
        _ip("link", "set", self.hosts[i].veth, "up")
        h = self.hosts[i]
        _wait(lambda: "LOWER_UP" in _ip("-n", h.name, "link", "show", "eth0").stdout, 5)

    # -- tear-down
    def leftovers(self):
        """What of this run still exists: namespaces, links and live processes."""
        left = [n for n in netns_names() if n.startswith(f"{self.prefix}{self.tag}")]
        left += [n for n in link_names()
                 if n == self.bridge or n.startswith(f"{self.prefix}{self.tag}v")]
        left += [f"pid {p.pid}" for p in self._tracker.started if _pid_alive(p.pid)]
        return left

    def close(self):
        """Kills every process started in (or still running inside) the namespaces, and
        deletes the namespaces, veths and bridge. Safe to call more than once."""
        if self.closed:
            return
        self.closed = True
        errors = []
        self._tracker.kill_all()
        for h in self.hosts:
            for pid in h.pids():
                _killpg(pid)
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        for h in self.hosts:
            _wait(lambda: not h.pids(), 5)
            for args in (("link", "del", h.veth), ("netns", "del", h.name)):
                out = _ip(*args, check=False)
                if out.returncode != 0 and "Cannot find" not in out.stderr \
                        and "No such" not in out.stderr:
                    errors.append(f"ip {' '.join(args)}: {out.stderr.strip()}")
        if self.bridge in link_names():
            out = _ip("link", "del", self.bridge, check=False)
            if out.returncode != 0:
                errors.append(f"ip link del {self.bridge}: {out.stderr.strip()}")
        _unregister(self)
        if errors:
            raise HarnessError("Netns cleanup left something behind (run "
                               "cluster_harness.cleanup_stale() as root):\n" +
                               "\n".join(errors))


def cleanup_stale(prefix=PREFIX, verbose=False):
    """Removes what harness runs whose pid is no longer alive left behind: their
    namespaces (and the processes inside), veths, bridges, root-namespace processes
    started from their temporary directories, and those directories. Returns the list
    of removed items."""
    removed = []
    ns_re = re.compile(rf"^{re.escape(prefix)}(\d+)[a-z]h\d+$")
    link_re = re.compile(rf"^{re.escape(prefix)}(?:b(\d+)[a-z]|(\d+)[a-z]v\d+)$")
    dir_re = re.compile(rf"^{re.escape(prefix)}h(\d+)-")

    def dead(pid):
        return int(pid) != os.getpid() and not _pid_alive(int(pid))

    for name in netns_names():
        m = ns_re.match(name)
        if m and dead(m.group(1)):
            out = _ip("netns", "pids", name, check=False)
            for pid in out.stdout.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (OSError, ValueError):
                    pass
            _ip("netns", "del", name, check=False)
            removed.append(f"netns {name}")
    for name in link_names():
        m = link_re.match(name)
        if m and dead(m.group(1) or m.group(2)):
            _ip("link", "del", name, check=False)
            removed.append(f"link {name}")
    for entry in os.listdir(TMP):
        m = dir_re.match(entry)
        if m and dead(m.group(1)):
            path = os.path.join(TMP, entry)
            for pid in _procs_with(path):
                _killpg(pid)
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
                removed.append(f"pid {pid}")
            shutil.rmtree(path, ignore_errors=True)
            removed.append(f"dir {path}")
    if verbose:
        for item in removed:
            print(f"removed {item}")
    return removed


# ------------------------------------------------------------------------ etcd

def _http_json(url, body, timeout):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    req = urllib.request.Request(url, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"},
                                 method="POST")
    with opener.open(req, timeout=timeout) as resp:
        return json.loads(resp.read() or b"{}")


def _b64(s):
    if isinstance(s, str):
        s = s.encode()
    return base64.b64encode(s).decode()


def _prefix_end(prefix):
    """The etcd ``range_end`` that selects every key starting with ``prefix``."""
    b = bytearray(prefix.encode() if isinstance(prefix, str) else prefix)
    while b:
        if b[-1] < 0xFF:
            b[-1] += 1
            return bytes(b)
        b.pop()
    return b"\0"


class EtcdCluster:
    """A real etcd cluster of 1 or 3 (any odd number of) members; a context manager.

    With ``netns``, member ``i`` runs on ``netns.host(hosts[i])`` (default host ``i``)
    at ``http://<host ip>:2379`` (peer port 2380). Without, all members run in the root
    namespace on ``bind`` (default 127.0.0.1) with free ports. Each member has its own
    temporary data directory and log (``log(i)``). ``endpoints`` is the
    comma-separated list of client URLs, as vineyardd's ``--etcd_endpoint`` takes it.
    """

    def __init__(self, size=1, netns=None, hosts=None, bind="127.0.0.1", etcd=ETCD,
                 etcdctl=ETCDCTL, timeout=30.0, extra_args=()):
        if size < 1:
            raise ValueError("EtcdCluster: at least one member")
        if not os.path.exists(etcd):
            raise HarnessError(f"no etcd at {etcd!r}: apt-get install etcd-server "
                               "(or pass etcd=PATH)")
        self.size, self.netns, self.etcd, self.etcdctl_path = size, netns, etcd, etcdctl
        self.timeout = timeout
        self.extra_args = list(extra_args)
        self.workdir = None
        self.members = []
        self.closed = False
        if netns is not None:
            hosts = list(range(size)) if hosts is None else list(hosts)
            if len(hosts) != size:
                raise ValueError("EtcdCluster: one host per member")
            self._hosts = [netns.host(h) for h in hosts]
        else:
            self._hosts = [None] * size
        self.bind = bind

    def __repr__(self):
        return f"EtcdCluster({self.endpoints if self.members else 'not started'})"

    # -- set-up
    def _plan(self):
        self.workdir = _mkdtemp("etcd")
        token = f"vy-{os.getpid()}-{os.path.basename(self.workdir)}"
        for i, host in enumerate(self._hosts):
            if host is not None:
                ip, cport, pport = host.ip, 2379, 2380
            else:
                ip, cport, pport = self.bind, _free_port(self.bind), _free_port(self.bind)
            self.members.append({
                "name": f"m{i}", "host": host, "ip": ip,
                "client": f"http://{ip}:{cport}", "peer": f"http://{ip}:{pport}",
                "data": os.path.join(self.workdir, f"m{i}.data"),
                "log": os.path.join(self.workdir, f"m{i}.log"),
                "proc": None,
            })
        cluster = ",".join(f"{m['name']}={m['peer']}" for m in self.members)
        for m in self.members:
            m["argv"] = [
                self.etcd, "--name", m["name"], "--data-dir", m["data"],
                "--listen-client-urls", m["client"], "--advertise-client-urls", m["client"],
                "--listen-peer-urls", m["peer"], "--initial-advertise-peer-urls", m["peer"],
                "--initial-cluster", cluster, "--initial-cluster-state", "new",
                "--initial-cluster-token", token, *self.extra_args,
            ]

    def _launch(self, i):
        m = self.members[i]
        with open(m["log"], "ab") as log:
            m["proc"] = spawn(m["argv"], host=m["host"], stdout=log,
                              stderr=subprocess.STDOUT, cwd=self.workdir)

    def start_all(self):
        """Starts every member and waits until each answers a read."""
        if self.members:
            return self
        _register(self)
        try:
            self._plan()
            for i in range(self.size):
                self._launch(i)
            for i in range(self.size):
                self._wait_healthy(i)
        except BaseException:
            self.close()
            raise
        return self

    def __enter__(self):
        return self.start_all()

    def __exit__(self, *exc):
        self.close()
        return False

    # -- status
    @property
    def endpoints(self):
        return ",".join(m["client"] for m in self.members)

    def endpoint(self, i):
        return self.members[i]["client"]

    def log(self, i):
        return log_tail(self.members[i]["log"])

    def _request(self, endpoint, path, body, timeout=2.0):
        return _http_json(f"{endpoint}/v3/{path}", body, timeout)

    def healthy(self, i, timeout=1.0):
        """True when member ``i`` answers a linearizable read (it has a leader)."""
        try:
            self._request(self.endpoint(i), "kv/range", {"key": _b64("health")}, timeout)
            return True
        except (OSError, urllib.error.URLError, ValueError):
            return False

    def _wait_healthy(self, i):
        m = self.members[i]
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if m["proc"].poll() is not None:
                raise HarnessError(f"etcd member {m['name']} exited ({m['proc'].returncode})"
                                   f" at start-up; log {m['log']}:\n{self.log(i)}")
            if self.healthy(i):
                return
            time.sleep(0.1)
        raise HarnessError(f"etcd member {m['name']} ({m['client']}) not healthy within "
                           f"{self.timeout}s; log {m['log']}:\n{self.log(i)}")

    # -- faults
    def stop(self, i, timeout=10.0):
        """SIGTERM member ``i`` and wait for it (SIGKILL after ``timeout``)."""
        proc = self.members[i]["proc"]
        if proc is None or proc.poll() is not None:
            return
        _killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _killpg(proc.pid)
            proc.wait(timeout=10)

    def kill(self, i):
        """SIGKILL member ``i`` (its data directory stays)."""
        proc = self.members[i]["proc"]
        if proc is not None and proc.poll() is None:
            _killpg(proc.pid)
            proc.wait(timeout=10)

    def start(self, i, wait=True):
        """Starts member ``i`` again on its data directory (after ``stop``/``kill``);
        with ``wait``, until it answers reads (needs a quorum)."""
        proc = self.members[i]["proc"]
        if proc is not None and proc.poll() is None:
            raise HarnessError(f"etcd member {i} is still running: stop(i) or kill(i) first")
        self._launch(i)
        if wait:
            self._wait_healthy(i)

    def wipe_and_restart(self, i=0):
        """Kills the (single) member, empties its data directory and starts it fresh:
        etcd forgets every key. Only for a 1-member cluster (a member of a larger one
        with an empty data directory would need a membership change)."""
        if self.size != 1:
            raise HarnessError("wipe_and_restart: only for a 1-member EtcdCluster")
        self.kill(i)
        shutil.rmtree(self.members[i]["data"], ignore_errors=True)
        self.start(i)

    # -- data
    def _any(self, path, body, timeout=10.0):
        """Sends the request to the live members in turn (2 s per attempt) until one
        answers or ``timeout`` passes: a write forwarded to a leader that just died
        fails after a while, and succeeds once the others elected a new one."""
        errors = []
        deadline = time.monotonic() + timeout
        while True:
            live = [m for m in self.members if m["proc"] and m["proc"].poll() is None]
            for m in live:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    return self._request(m["client"], path, body, min(2.0, left))
                except (OSError, urllib.error.URLError, ValueError) as e:
                    errors.append(f"{m['client']}: {e}")
            if not live or time.monotonic() >= deadline:
                break
            time.sleep(0.1)
        raise HarnessError(f"no etcd member answered /v3/{path} within {timeout}s: "
                           f"{'; '.join(errors[-6:]) or 'none running'}")

    def put(self, key, value, endpoint=None, timeout=10.0):
        """Writes ``key`` = ``value`` through ``endpoint`` (one attempt), else through
        any live member (retried until ``timeout``)."""
        body = {"key": _b64(key), "value": _b64(value)}
        if endpoint is not None:
            return self._request(endpoint, "kv/put", body, timeout)
        return self._any("kv/put", body, timeout)

    def dump(self, prefix=""):
        """Every key under ``prefix`` with its value, as a dict of str (through the HTTP
        gateway of any live member)."""
        body = {"key": _b64(prefix or b"\0"), "range_end": _b64(_prefix_end(prefix))}
        resp = self._any("kv/range", body, timeout=10.0)
        out = {}
        for kv in resp.get("kvs", []):
            key = base64.b64decode(kv["key"]).decode(errors="replace")
            out[key] = base64.b64decode(kv.get("value", "")).decode(errors="replace")
        return out

    def etcdctl(self, *args, timeout=15):
        """Runs ``etcdctl --endpoints <all> ARGS`` (API v3) from the root namespace."""
        return subprocess.run([self.etcdctl_path, "--endpoints", self.endpoints, *args],
                              capture_output=True, text=True, timeout=timeout,
                              env=child_env({"ETCDCTL_API": "3"}))

    # -- tear-down
    def close(self):
        """Kills every member and removes the data directories."""
        if self.closed:
            return
        self.closed = True
        for i in range(len(self.members)):
            self.kill(i)
        if self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        _unregister(self)


# -------------------------------------------------------------------- vineyardd

class Vineyardd:
    """One vineyardd process, in ``host``'s namespace or (None) the root namespace.

    ``Vineyardd(binary, args, host=None, size="256Mi")`` runs ``binary
    --socket=<tmp>/vineyard.sock --size=<size> *args`` with its log at
    ``<tmp>/vineyardd.log`` and waits (``timeout``) until the socket accepts a
    connection. ``socket``, ``pid``, ``log()``, ``kill()`` (SIGKILL), ``stop()``
    (SIGTERM and wait), ``close()`` (kill and remove the directory; also a context
    manager).
    """

    def __init__(self, binary, args=(), host=None, size="256Mi", env=None, timeout=30.0,
                 start=True):
        if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
            raise HarnessError(f"no executable vineyardd at {binary!r}")
        self.binary, self.host, self.timeout = binary, host, timeout
        self.workdir = _mkdtemp("vd")
        self.socket = os.path.join(self.workdir, "vineyard.sock")
        self.log_path = os.path.join(self.workdir, "vineyardd.log")
        self.argv = [binary, f"--socket={self.socket}", *([f"--size={size}"] if size else []),
                     *args]
        self.env = child_env(env)
        self.proc = None
        self.closed = False
        _register(self)
        if start:
            try:
                self.start()
            except BaseException:
                self.close()
                raise

    def __repr__(self):
        where = self.host.name if self.host else "root"
        return f"Vineyardd({where}, {self.socket})"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def log(self, lines=40):
        return log_tail(self.log_path, lines=lines)

    def start(self):
        """Starts the process (again, on the same socket) and waits until it accepts."""
        if self.proc is not None and self.proc.poll() is None:
            raise HarnessError(f"{self!r} is running")
        if os.path.exists(self.socket):
            os.unlink(self.socket)
        with open(self.log_path, "ab") as log:
            self.proc = spawn(self.argv, host=self.host, stdout=log,
                              stderr=subprocess.STDOUT, cwd=self.workdir, env=self.env)
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise HarnessError(f"vineyardd exited ({self.proc.returncode}) at start-up: "
                                   f"{' '.join(self.argv)}\nlog {self.log_path}:\n{self.log()}")
            if os.path.exists(self.socket):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    s.settimeout(1.0)
                    s.connect(self.socket)
                    return self
                except OSError:
                    pass
                finally:
                    s.close()
            time.sleep(0.05)
        self.kill()
        raise HarnessError(f"vineyardd did not accept on {self.socket} within "
                           f"{self.timeout}s: {' '.join(self.argv)}\n"
                           f"log {self.log_path}:\n{self.log()}")

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        """SIGKILL (the whole process group)."""
        if self.proc is not None and self.proc.poll() is None:
            _killpg(self.proc.pid)
            self.proc.wait(timeout=10)

    def stop(self, timeout=20.0):
        """SIGTERM and wait; raises HarnessError (after a SIGKILL) if it does not exit
        within ``timeout``. Returns the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _killpg(self.proc.pid)
            self.proc.wait(timeout=10)
            raise HarnessError(f"vineyardd ignored SIGTERM for {timeout}s; "
                               f"log {self.log_path}:\n{self.log()}")

    def close(self):
        if self.closed:
            return
        self.closed = True
        self.kill()
        shutil.rmtree(self.workdir, ignore_errors=True)
        _unregister(self)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--cleanup"]:
        removed = cleanup_stale(*(sys.argv[2:3] or [PREFIX]), verbose=True)
        print(f"{len(removed)} stale item(s) removed")
    else:
        print(__doc__)
        print("usage: python3 tests/cluster_harness.py --cleanup [PREFIX]")
