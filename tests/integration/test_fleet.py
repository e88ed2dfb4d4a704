"""Limits that hold across a fleet (issue 15): three calloutd nodes on one
Redis against ONE counting SMTP server.

The server counts at its end what reached it: connections open at once
(a connection counts from its accept until the server answered its QUIT
or saw it closed) and the times of new connections.  Addresses forge one
domain, fake7.test (MX 127.0.0.37 in the suite's zone): ok* are valid,
the rest invalid.
"""
import json
import os
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from urllib.parse import quote

import pytest

import conftest
import testnet
from fixtures_calloutd import Calloutd

MX_IP = f"127.0.0.{testnet.FAKE_IP_FIRST + 7}"
DOMAIN = "fake7.test"


class CountingSMTP:
    """A threaded SMTP server that counts connections at once."""

    def __init__(self, rcpt_delay=0.3, quit_delay=0.0):
        self.rcpt_delay = rcpt_delay
        self.quit_delay = quit_delay
        self.lock = threading.Lock()
        self.open = 0
        self.most = 0
        self.starts = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((MX_IP, testnet.SMTP_PORT))
        self.sock.listen(128)
        self.running = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while self.running:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.open += 1
                self.most = max(self.most, self.open)
                self.starts.append(time.monotonic())
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _gone(self, counted):
        if counted[0]:
            counted[0] = False
            with self.lock:
                self.open -= 1

    def _serve(self, c):
        counted = [True]
        f = c.makefile("rb")
        try:
            c.sendall(b"220 count.test ESMTP\r\n")
            for raw in f:
                line = raw.decode("ascii", "replace").strip()
                verb = line[:4].upper()
                if verb in ("EHLO", "HELO"):
                    c.sendall(b"250 count.test\r\n")
                elif verb == "RCPT":
                    time.sleep(self.rcpt_delay)
                    ok = line.lower().startswith("rcpt to:<ok")
                    c.sendall(b"250 2.1.5 Ok\r\n" if ok else
                              b"550 5.1.1 User unknown\r\n")
                elif verb == "QUIT":
                    time.sleep(self.quit_delay)
                    self._gone(counted)  # before the answer: the client may go on then
                    c.sendall(b"221 2.0.0 Bye\r\n")
                    break
                else:
                    c.sendall(b"250 Ok\r\n")
        except OSError:
            pass
        finally:
            self._gone(counted)
            f.close()
            c.close()

    def new_in_window(self, window):
        """The most connections begun within any window of that many seconds."""
        with self.lock:
            s = sorted(self.starts)
        best = 0
        for i, t in enumerate(s):
            j = i
            while j < len(s) and s[j] - t < window:
                j += 1
            best = max(best, j - i)
        return best

    def stop(self):
        print(f"[server] connections {len(self.starts)}, most at once {self.most}, "
              f"most begun within 0.9 s {self.new_in_window(0.9)}")
        self.running = False
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept
        except OSError:
            pass
        self.sock.close()


@pytest.fixture
def counting():
    servers = []

    def start(**kw):
        srv = CountingSMTP(**kw)
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        srv.stop()


class Node(Calloutd):
    """A calloutd of the fleet: ports of its own, derived from the suite's."""

    def __init__(self, workdir, dns, i):
        super().__init__(workdir, dns)
        self.i = i
        self.policy_port = testnet.CALLOUTD_POLICY_PORT + 300 + i
        self.http_port = testnet.CALLOUTD_HTTP_PORT + 300 + i
        self.milter_port = testnet.CALLOUTD_MILTER_PORT + 400 + i
        self.policy_addr = (testnet.CALLOUTD_IP, self.policy_port)
        self.http_url = f"http://{testnet.CALLOUTD_IP}:{self.http_port}"

    def write_config(self, config="", sections=None):
        mine = {k: dict(v) for k, v in (sections or {}).items()}
        mine.setdefault("policy", {})["listen"] = f"inet:{testnet.CALLOUTD_IP}:{self.policy_port}"
        mine.setdefault("http", {})["listen"] = f"inet:{testnet.CALLOUTD_IP}:{self.http_port}"
        mine.setdefault("milter", {})["listen"] = f"inet:{self.milter_port}@{testnet.CALLOUTD_IP}"
        super().write_config(config, mine)

    def verify(self, address, timeout=40):
        url = f"{self.http_url}/v1/verify?address={quote(address, safe='@')}"
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return json.load(r)

    def health(self):
        with urllib.request.urlopen(self.http_url + "/healthz", timeout=5) as r:
            return json.load(r)


@pytest.fixture
def fleet(dns_server, redis_server):
    nodes = []
    dirs = []

    def start(n=3, engine=None, cache=None, redis_prefix="fleet:", http=None):
        redis_server.flush()
        for i in range(n):
            workdir = tempfile.mkdtemp(prefix=f"fleet{i}-")
            os.chmod(workdir, 0o755)
            dirs.append(workdir)
            d = Node(workdir, dns_server.server, i)
            sections = {
                "daemon": {"reply_within": "60s"},
                "engine": {"timeout": "40s", "session_rcpts": "1", "session_idle": "0",
                           "domain_sessions": "2", "host_sessions": "0",
                           "domain_rate": "0", "host_rate": "0", **(engine or {})},
                "cache": {"cache": f"redis://{redis_server.addr}:{redis_server.port}"
                                   f"?prefix={redis_prefix}", **(cache or {})},
                "http": dict(http or {}),
            }
            d.write_config("", sections)
            nodes.append(d)
            d.start(timeout=15)
        return nodes

    yield start
    crashed = []
    for d in nodes:
        if d.proc and d.proc.poll() is None:
            d.stop()
        if d.proc and d.proc.returncode not in (0, None, -9):  # e.g. a sanitizer's report
            crashed.append(f"node {d.i} exited with {d.proc.returncode}:\n{d.log_text()[-4000:]}")
    redis_server.start()
    for w in dirs:
        subprocess.run(["rm", "-rf", w])
    if crashed:
        pytest.fail("\n".join(crashed))


def flood(nodes, addresses):
    """Every address asked at once, spread over the nodes; {address: result}."""
    out, lock = {}, threading.Lock()

    def one(i, a):
        try:
            r = nodes[i % len(nodes)].verify(a)
        except Exception as e:  # noqa: BLE001 - a failed request is a result here
            r = {"verdict": "error", "error": repr(e)}
        with lock:
            out[a] = r

    threads = [threading.Thread(target=one, args=(i, a)) for i, a in enumerate(addresses)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    return out


def addresses(n, tag):
    return [f"{'ok' if i % 2 == 0 else 'no'}{tag}{i}@{DOMAIN}" for i in range(n)]


def assert_correct(results, allow_tempfail=False):
    for a, r in results.items():
        want = "valid" if a.startswith("ok") else "invalid"
        ok = {want, "tempfail"} if allow_tempfail else {want}
        assert r.get("verdict") in ok, (a, r)


def wait_nodes(nodes, n, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(d.health().get("limits", {}).get("nodes") == n for d in nodes):
            return
        time.sleep(0.2)
    raise AssertionError([d.health() for d in nodes])


@pytest.mark.slow
def test_three_nodes_hold_one_domain_sessions_limit(fleet, counting):
    srv = counting(rcpt_delay=0.3)
    nodes = fleet(3)
    results = flood(nodes, addresses(18, "a"))
    assert_correct(results)
    assert len(srv.starts) == 18
    assert srv.most <= 2, f"the server saw {srv.most} sessions at once"
    h = nodes[0].health()
    assert h["status"] == "ok" and h["limits"]["shared"] and h["limits"]["up"], h
    assert sum(d.health()["limits"]["admissions"] for d in nodes) == 18


@pytest.mark.slow
def test_one_redis_connection_a_node(fleet, counting, redis_server):
    """The cache and the limits of a node share one connection
    (redis_conn.c): the records and the admissions go down one pipe.  The
    bulk jobs' store has its own, named calloutd-jobs."""
    counting(rcpt_delay=0.0)
    nodes = fleet(3)
    wait_nodes(nodes, 3)
    assert_correct(flood(nodes, addresses(6, "c")))
    clients = [x for x in redis_server.cli("CLIENT", "LIST").splitlines()
               if x.startswith("id=") and "cmd=client" not in x]  # not redis-cli itself
    jobs = [x for x in clients if " name=calloutd-jobs " in x]
    assert len(clients) - len(jobs) == 3, clients
    assert len(jobs) == 3, clients


@pytest.mark.slow
def test_three_nodes_share_one_domain_rate(fleet, counting):
    """A burst of 3, then 60 a minute (one a second) for the whole fleet."""
    srv = counting(rcpt_delay=0.0)
    nodes = fleet(3, engine={"domain_sessions": "0", "domain_rate": "60", "domain_burst": "3"})
    start = time.monotonic()
    results = flood(nodes, addresses(7, "r"))
    assert_correct(results)
    assert len(srv.starts) == 7
    assert srv.new_in_window(0.9) <= 3, sorted(t - start for t in srv.starts)
    starts = sorted(srv.starts)
    assert starts[-1] - starts[0] >= 3.5, "4 sessions past the burst, one a second"


@pytest.mark.slow
def test_shared_limits_no_each_node_alone(fleet, counting):
    """shared_limits = no: today's behaviour, each node holds the limit."""
    srv = counting(rcpt_delay=0.4)
    nodes = fleet(3, cache={"shared_limits": "no"})
    results = flood(nodes, addresses(18, "n"))
    assert_correct(results)
    assert srv.most > 2, "three nodes alone hold more than one node's limit"
    assert "limits" not in nodes[0].health()


@pytest.mark.slow
def test_a_killed_node_frees_its_slots_within_the_lease_ttl(fleet, counting):
    srv = counting(rcpt_delay=30)  # sessions hang on RCPT
    nodes = fleet(2, engine={"domain_sessions": "1"})
    a, b = nodes
    threading.Thread(target=lambda: flood([a], ["okhang@" + DOMAIN]), daemon=True).start()
    deadline = time.monotonic() + 5
    while len(srv.starts) < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(srv.starts) == 1
    srv.rcpt_delay = 0.0
    got = {}
    t = threading.Thread(target=lambda: got.update(flood([b], ["okother@" + DOMAIN])))
    t.start()
    time.sleep(2)
    assert len(srv.starts) == 1, "b waits while a holds the domain's one slot"
    a.kill()  # kill -9: its lease is not released, it expires
    killed = time.monotonic()
    t.join(40)
    assert got["okother@" + DOMAIN]["verdict"] == "valid", got
    assert len(srv.starts) == 2
    waited = sorted(srv.starts)[1] - killed
    assert waited <= 10.5, f"b got the slot {waited:.1f}s after the kill (lease TTL 10s)"


@pytest.mark.slow
def test_redis_down_each_node_keeps_its_share(fleet, counting, redis_server):
    """domain_sessions = 3 over 3 nodes: with Redis gone each node may hold 1."""
    srv = counting(rcpt_delay=0.4)
    nodes = fleet(3, engine={"domain_sessions": "3"})
    wait_nodes(nodes, 3)
    redis_server.kill()
    try:
        results = flood(nodes, addresses(15, "d"))
        assert_correct(results, allow_tempfail=True)
        assert srv.most <= 3, f"the server saw {srv.most} sessions at once"
        assert sum(r["verdict"] != "tempfail" for r in results.values()) >= 3
        h = nodes[0].health()
        assert h["status"] == "degraded" and not h["limits"]["up"], h
        assert h["limits"]["fallbacks"] > 0, h
    finally:
        redis_server.start()
    # Back to shared once Redis answers.
    deadline = time.monotonic() + 10
    while not nodes[0].health().get("limits", {}).get("up") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert nodes[0].health()["limits"]["up"]


def hang(nodes, addrs, srv, timeout=5):
    """Verifications that hang on RCPT, started in the background, one an
    address spread over the nodes; returns once the server has them all."""
    want = len(srv.starts) + len(addrs)
    threading.Thread(target=lambda: flood(nodes, addrs), daemon=True).start()
    deadline = time.monotonic() + timeout
    while len(srv.starts) < want and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(srv.starts) == want, f"{len(srv.starts)} sessions began, not {want}"


def wait_up(nodes, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(d.health().get("limits", {}).get("up") for d in nodes):
            return
        time.sleep(0.1)
    raise AssertionError([d.health() for d in nodes])


@pytest.mark.slow
def test_sessions_opened_while_redis_was_down_count_when_it_returns(fleet, counting,
                                                                   redis_server):
    """domain_sessions = 3 over 3 nodes: with Redis gone each node opens its
    share (1); when Redis returns those sessions are registered there, so
    the fleet still holds 3, not its shares plus the limit."""
    srv = counting(rcpt_delay=12)  # the sessions of the fallback hang
    nodes = fleet(3, engine={"domain_sessions": "3", "command_timeout": "30s"})
    wait_nodes(nodes, 3)
    redis_server.kill()
    try:
        hang(nodes, addresses(3, "fb"), srv)
    finally:
        redis_server.start()
    wait_up(nodes)
    srv.rcpt_delay = 0.2
    results = flood(nodes, addresses(6, "back"))
    assert_correct(results)
    assert srv.most <= 3, f"the server saw {srv.most} sessions at once"


@pytest.mark.slow
def test_fleet_nodes_sets_the_share_of_a_node_that_counts_itself_alone(fleet, counting,
                                                                       redis_server):
    """One node running (the others not up, or never reached Redis): with
    [cache] fleet_nodes = 3 its share of domain_sessions = 3 is 1 while
    Redis is down, not the whole limit."""
    srv = counting(rcpt_delay=0.4)
    nodes = fleet(1, engine={"domain_sessions": "3"}, cache={"fleet_nodes": "3"})
    assert nodes[0].health()["limits"]["nodes"] == 3
    redis_server.kill()
    results = flood(nodes, addresses(4, "alone"))
    assert_correct(results)
    assert srv.most == 1, f"the server saw {srv.most} sessions at once"


@pytest.mark.slow
def test_sessions_open_when_redis_goes_count_in_the_shares(fleet, counting, redis_server):
    """domain_sessions = 3 over 3 nodes, each holding one session through
    Redis when it dies: each node's share (1) is taken by the session it
    already has, so nobody opens another until those end."""
    srv = counting(rcpt_delay=6)
    nodes = fleet(3, engine={"domain_sessions": "3", "command_timeout": "30s"})
    wait_nodes(nodes, 3)
    hang(nodes, addresses(3, "open"), srv)
    redis_server.kill()
    srv.rcpt_delay = 0.2
    results = flood(nodes, addresses(6, "down"))
    assert_correct(results)
    assert srv.most <= 3, f"the server saw {srv.most} sessions at once"


@pytest.mark.slow
@pytest.mark.parametrize("how", ["flushall", "restart"])
def test_redis_losing_its_data_keeps_the_slots_held(fleet, counting, redis_server, how):
    """A node holds the domain's 2 slots; Redis forgets everything (FLUSHALL,
    or a restart: no persistence).  The holder's renewal writes its leases
    again, so the other nodes still wait."""
    srv = counting(rcpt_delay=10)
    nodes = fleet(3, engine={"domain_sessions": "2", "command_timeout": "30s"})
    wait_nodes(nodes, 3)
    hang(nodes[:1], addresses(2, "held"), srv)
    if how == "flushall":
        redis_server.flush()
        time.sleep(3)  # one renewal (every 2.5 s)
    else:
        redis_server.kill()
        redis_server.start()
        wait_up(nodes)
    srv.rcpt_delay = 0.2
    results = flood(nodes[1:], addresses(4, "after"))
    assert_correct(results)
    assert srv.most <= 2, f"the server saw {srv.most} sessions at once"


@pytest.mark.slow
def test_a_fallback_after_flushall_keeps_the_share(fleet, counting, redis_server):
    """FLUSHALL forgets the heartbeats: the nodes are counted again one
    renewal at a time.  Redis gone right then: each node keeps the share
    of the count before (3 over 3 nodes: 1 each), not the whole limit."""
    srv = counting(rcpt_delay=0.4)
    nodes = fleet(3, engine={"domain_sessions": "3"})
    wait_nodes(nodes, 3)
    redis_server.flush()
    deadline = time.monotonic() + 3  # past one renewal: every node has counted
    while time.monotonic() < deadline:
        if any(d.health()["limits"]["nodes"] < 3 for d in nodes):
            break
        time.sleep(0.02)
    redis_server.kill()
    try:
        results = flood(nodes, addresses(15, "fl"))
        assert_correct(results, allow_tempfail=True)
        assert srv.most <= 3, f"the server saw {srv.most} sessions at once"
    finally:
        redis_server.start()


@pytest.mark.slow
def test_handover_never_holds_three(counting, dns_server):
    """One node, domain_sessions = 2, a session an address: a session
    closed to make room for the next counts until the server answered its
    QUIT (slow here), so the server never sees 3 at once."""
    srv = counting(rcpt_delay=0.1, quit_delay=0.5)
    addrs = addresses(8, "h")
    cmd = [conftest.binary("callout"), "check", "--json", "--port", str(testnet.SMTP_PORT),
           "--helo", "verifier.test", "--dns-server", testnet.DNS_SERVER,
           "--allow-private", "-c", "8", "--session-rcpts", "1", "--domain-sessions", "2",
           "--no-cache", *addrs]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    results = {json.loads(x)["address"]: json.loads(x) for x in p.stdout.splitlines() if x}
    assert_correct(results)
    assert len(srv.starts) == 8
    assert srv.most <= 2, f"the server saw {srv.most} sessions at once"
