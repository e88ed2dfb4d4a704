"""src/lib/dns.c against a real NSD, through tests/tools/co-dns-probe.

co-dns-probe prints one JSON object per request:
  {"query", "status", "implicit_mx", "detail", "ms",
   "hosts": [{"name", "pref", "port", "addrs": [...]}]}
The zones are described in tests/integration/zones/README.
"""
import json
import os
import shutil
import socket
import subprocess
import time

import pytest

from conftest import binary

PROBE = "tests/tools/co-dns-probe"


def probe(*args, server=None, timeout=30, check=True, valgrind=False):
    cmd = [binary(PROBE)]
    if server is not None:
        cmd += ["--server", server]
    cmd += [str(a) for a in args]
    if valgrind:
        cmd = ["valgrind", "-q", "--leak-check=full", "--show-leak-kinds=all",
               "--errors-for-leak-kinds=all", "--error-exitcode=99"] + cmd
    started = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    elapsed = time.monotonic() - started
    if check:
        assert proc.returncode == 0, f"{cmd}: rc {proc.returncode}\n{proc.stdout}{proc.stderr}"
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    return results, elapsed, proc


def mx(dns_server, domain, *args):
    results, _, _ = probe(*args, domain, server=dns_server.server)
    assert len(results) == 1
    return results[0]


def hosts_of(r):
    return [(h["name"], h["pref"], h["addrs"]) for h in r["hosts"]]


# ---- the zones, one by one ---------------------------------------------------

OK_CASES = {
    "postfix.test": [("mx.postfix.test", 10, ["127.0.0.20"])],
    "failover.test": [("dead.failover.test", 10, ["127.0.0.21"]),
                      ("mx.postfix.test", 20, ["127.0.0.20"])],
    "cname.test": [("mx.postfix.test", 10, ["127.0.0.20"])],
    "cnamemx.test": [("alias.cnamemx.test", 10, ["127.0.0.20"])],
    "v6.test": [("mx6.v6.test", 10, ["::1"])],
    "dual.test": [("mx.dual.test", 10, ["::1", "127.0.0.20"])],
    "order.test": [("a.order.test", 10, ["127.0.0.20"]),
                   ("b.order.test", 20, ["127.0.0.22"]),
                   ("c.order.test", 30, ["127.0.0.23"])],
    "partial.test": [("mx.postfix.test", 20, ["127.0.0.20"])],
    "mixednull.test": [("mx.postfix.test", 10, ["127.0.0.20"])],
    "dupmx.test": [("mx.postfix.test", 10, ["127.0.0.20"])],
}
OK_CASES.update({f"fake{n}.test": [(f"mx.fake{n}.test", 10, [f"127.0.0.{30 + n}"])]
                 for n in range(10)})


@pytest.mark.parametrize("domain", sorted(OK_CASES))
def test_mx_ok(dns_server, domain):
    r = mx(dns_server, domain)
    assert r["status"] == "ok", r
    assert r["implicit_mx"] is False
    assert r["detail"] == ""
    assert hosts_of(r) == OK_CASES[domain]
    assert all(h["port"] == 0 for h in r["hosts"])


@pytest.mark.parametrize("domain", ["implicit.test", "aliasimplicit.test"])
def test_implicit_mx(dns_server, domain):
    r = mx(dns_server, domain)
    assert r["status"] == "ok", r
    assert r["implicit_mx"] is True
    assert hosts_of(r) == [(domain, 0, ["127.0.0.20"])]


FAIL_CASES = [
    # domain, status, substring of detail
    ("nullmx.test", "null_mx", "null MX for nullmx.test"),
    ("nohost.test", "no_host", "no MX and no A/AAAA for nohost.test"),
    ("badmx.test", "no_host", "badmx.test"),
    ("dangling.test", "no_host", "dangling.test"),
    ("nope.test", "nxdomain", "NXDOMAIN looking up MX for nope.test"),
    ("no.such.name.test", "nxdomain", "NXDOMAIN"),
    ("servfail.test", "tempfail", "SERVFAIL looking up MX for servfail.test"),
    ("www.servfail.test", "tempfail", "SERVFAIL"),
    ("example.org", "tempfail", "REFUSED looking up MX for example.org"),
    ("hosttemp.test", "tempfail", "SERVFAIL looking up"),
    # CNAMEs NSD cannot follow (target outside its zones): queried again
    ("aliasout.test", "tempfail", "REFUSED looking up MX for mail.example.org"),
    ("cnameout.test", "tempfail", "REFUSED looking up"),
    ("loop.test", "tempfail", "CNAME loop"),
]


@pytest.mark.parametrize("domain,status,detail", FAIL_CASES)
def test_mx_failures(dns_server, domain, status, detail):
    r = mx(dns_server, domain)
    assert r["status"] == status, r
    assert detail in r["detail"], r
    assert r["hosts"] == []


def test_nohost_is_implicit(dns_server):
    assert mx(dns_server, "nohost.test")["implicit_mx"] is True


def test_cnameout_follows_the_target(dns_server):
    r = mx(dns_server, "cnameout.test")
    assert "mail.example.org" in r["detail"], r


def test_trailing_dot_and_case(dns_server):
    for name in ["postfix.test.", "PostFix.TEST"]:
        r = mx(dns_server, name)
        assert r["status"] == "ok", r
        assert hosts_of(r) == OK_CASES["postfix.test"]


@pytest.mark.parametrize("name", ["a..b.test", "x" * 64 + ".test", ""])
def test_invalid_domain(dns_server, name):
    r = mx(dns_server, name)
    assert r["status"] == "nxdomain", r
    assert "invalid" in r["detail"]


# ---- ordering and limits --------------------------------------------------------

def test_equal_preferences_are_shuffled(dns_server):
    results, _, _ = probe("--repeat", 30, "equal.test", server=dns_server.server)
    assert len(results) == 30
    firsts = []
    for r in results:
        assert r["status"] == "ok", r
        assert sorted(hosts_of(r)) == [("a.equal.test", 10, ["127.0.0.20"]),
                                       ("b.equal.test", 10, ["127.0.0.22"]),
                                       ("c.equal.test", 10, ["127.0.0.23"])]
        firsts.append(r["hosts"][0]["name"])
    # 3 hosts, 30 runs: all on one host by chance has probability 3 * 3**-30.
    assert len(set(firsts)) >= 2, firsts


def test_equal_preferences_differ_between_processes(dns_server):
    firsts = set()
    for _ in range(10):
        firsts.add(mx(dns_server, "equal.test")["hosts"][0]["name"])
    assert len(firsts) >= 2, firsts


def test_max_hosts_default(dns_server):
    r = mx(dns_server, "manymx.test")
    assert r["status"] == "ok"
    assert [h["name"] for h in r["hosts"]] == [f"mx{i:02d}.manymx.test" for i in range(1, 17)]
    assert [h["pref"] for h in r["hosts"]] == [10 * i for i in range(1, 17)]


def test_max_hosts_option(dns_server):
    r = mx(dns_server, "manymx.test", "--max-hosts", 3)
    assert [h["name"] for h in r["hosts"]] == ["mx01.manymx.test", "mx02.manymx.test",
                                              "mx03.manymx.test"]
    r = mx(dns_server, "failover.test", "--max-hosts", 1)
    assert hosts_of(r) == [("dead.failover.test", 10, ["127.0.0.21"])]


def test_address_limit_keeps_both_families(dns_server):
    r = mx(dns_server, "many.test")
    assert r["status"] == "ok"
    (host,) = r["hosts"]
    assert host["addrs"] == ["2001:db8::1", "2001:db8::2", "2001:db8::3", "2001:db8::4",
                             "127.0.1.1", "127.0.1.2", "127.0.1.3", "127.0.1.4"]


def test_many_requests_in_parallel(dns_server):
    domains = ["postfix.test", "failover.test", "implicit.test", "nope.test",
               "servfail.test", "cnamemx.test", "v6.test", "nullmx.test"]
    # 1200 requests at once: more queries than may be in flight (they queue)
    results, elapsed, _ = probe("--repeat", 150, *domains, server=dns_server.server)
    assert len(results) == 1200
    want = {"postfix.test": "ok", "failover.test": "ok", "implicit.test": "ok",
            "nope.test": "nxdomain", "servfail.test": "tempfail", "cnamemx.test": "ok",
            "v6.test": "ok", "nullmx.test": "null_mx"}
    for r in results:
        assert r["status"] == want[r["query"]], r
        assert r["ms"] < 1500, r  # no answer lost and retried after the timeout
    assert elapsed < 10


# ---- servers that do not answer --------------------------------------------------

def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture
def blackhole():
    """A UDP and TCP port on loopback that receives queries and never answers."""
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    port = udp.getsockname()[1]
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        tcp.bind(("127.0.0.1", port))
        tcp.listen(16)
    except OSError:
        pass
    yield f"127.0.0.1:{port}"
    udp.close()
    tcp.close()


def test_dead_dns_port_is_tempfail_quickly():
    dead = f"127.0.0.1:{free_port()}"
    results, elapsed, _ = probe("--timeout", 2000, "postfix.test", server=dead)
    (r,) = results
    assert r["status"] == "tempfail", r
    assert "unreachable" in r["detail"], r
    assert elapsed < 3


def test_silent_dns_server_times_out(blackhole):
    # c-ares: 2 tries, the second with twice the timeout: about 3 x 300 ms
    results, elapsed, _ = probe("--timeout", 300, "postfix.test", "v6.test", server=blackhole)
    for r in results:
        assert r["status"] == "tempfail", r
        assert "timeout looking up MX" in r["detail"], r
    assert 0.5 < elapsed < 5


def test_second_server_answers_when_first_is_silent(dns_server, blackhole):
    results, elapsed, _ = probe("--timeout", 300, "postfix.test",
                                server=f"{blackhole},{dns_server.server}")
    (r,) = results
    assert r["status"] == "ok", r
    assert elapsed < 5


def test_servfail_with_two_servers(dns_server):
    # with several servers c-ares tries the next one on SERVFAIL/REFUSED and
    # reports "no usable answer" (ARES_ECONNREFUSED) when all of them fail
    two = f"{dns_server.server},{dns_server.server}"
    results, _, _ = probe("servfail.test", "example.org", "postfix.test", server=two)
    assert [r["status"] for r in results] == ["tempfail", "tempfail", "ok"]
    assert "no usable answer" in results[0]["detail"]


def test_bad_server_string():
    _, _, proc = probe("postfix.test", server="not-an-address", check=False)
    assert proc.returncode == 1
    assert "not-an-address" in proc.stderr


# ---- co_dns_resolve_hosts ----------------------------------------------------------

def test_hosts_names_and_literals(dns_server):
    results, _, _ = probe("--hosts", "mx.postfix.test@2525", "192.0.2.7", "nope.test",
                          "mx.dual.test", "[::1]@26", "2001:db8::5", "alias.cnamemx.test",
                          server=dns_server.server)
    (r,) = results
    assert r["status"] == "ok", r
    assert r["implicit_mx"] is False
    assert [(h["name"], h["pref"], h["port"], h["addrs"]) for h in r["hosts"]] == [
        ("mx.postfix.test", 0, 2525, ["127.0.0.20"]),
        ("192.0.2.7", 1, 0, ["192.0.2.7"]),
        # nope.test (pref 2) has no address: dropped
        ("mx.dual.test", 3, 0, ["::1", "127.0.0.20"]),
        ("::1", 4, 26, ["::1"]),
        ("2001:db8::5", 5, 0, ["2001:db8::5"]),
        ("alias.cnamemx.test", 6, 0, ["127.0.0.20"]),
    ]


def test_hosts_literals_need_no_dns():
    dead = f"127.0.0.1:{free_port()}"
    results, _, _ = probe("--hosts", "127.0.0.20", "::1", server=dead)
    (r,) = results
    assert r["status"] == "ok"
    assert [h["addrs"] for h in r["hosts"]] == [["127.0.0.20"], ["::1"]]


def test_hosts_none_resolves(dns_server):
    results, _, _ = probe("--hosts", "nope.test", "nohost.test", server=dns_server.server)
    (r,) = results
    assert r["status"] == "no_host", r
    assert r["hosts"] == []


def test_hosts_tempfail(dns_server):
    results, _, _ = probe("--hosts", "nope.test", "mx.servfail.test", server=dns_server.server)
    (r,) = results
    assert r["status"] == "tempfail", r
    assert "SERVFAIL" in r["detail"]


def test_hosts_empty_list(dns_server):
    results, _, _ = probe("--hosts", server=dns_server.server)
    (r,) = results
    assert r["status"] == "no_host"


def test_hosts_never_uses_etc_hosts(dns_server):
    # "localhost" is in /etc/hosts; NSD refuses it (outside test.)
    results, _, _ = probe("--hosts", "localhost", server=dns_server.server)
    (r,) = results
    assert r["status"] == "tempfail", r
    assert "REFUSED" in r["detail"]


# ---- cancellation -----------------------------------------------------------------

def test_cancel_in_flight(blackhole):
    # cancelled requests never call back (the probe exits 3 if one does) and
    # their c-ares queries still end by timeout before the loop is empty
    results, elapsed, _ = probe("--timeout", 200, "--cancel-after", 50,
                                "postfix.test", "equal.test", server=blackhole)
    assert [r["status"] for r in results] == ["cancelled", "cancelled"]
    assert elapsed < 5


def test_free_with_requests_in_flight(blackhole):
    results, elapsed, _ = probe("--timeout", 5000, "--free-after", 50,
                                "postfix.test", "equal.test", server=blackhole)
    assert [r["status"] for r in results] == ["cancelled", "cancelled"]
    assert elapsed < 3


def test_cancel_from_a_callback(dns_server):
    results, _, _ = probe("--cancel-in-callback", "--repeat", 20, "postfix.test",
                          "failover.test", "manymx.test", server=dns_server.server)
    assert len(results) == 60
    assert sum(r["status"] != "cancelled" for r in results) >= 1


def test_free_from_a_callback(dns_server):
    results, _, _ = probe("--free-in-callback", "--repeat", 20, "postfix.test",
                          "failover.test", "manymx.test", server=dns_server.server)
    assert sum(r["status"] != "cancelled" for r in results) == 1


# ---- memory --------------------------------------------------------------------------

VALGRIND_DOMAINS = sorted(OK_CASES) + [d for d, _, _ in FAIL_CASES] + [
    "implicit.test", "aliasimplicit.test", "equal.test", "many.test", "manymx.test", "a..b"]


@pytest.mark.skipif(shutil.which("valgrind") is None or os.environ.get("CALLOUT_SANITIZED"),
                    reason="valgrind not installed, or a sanitizer build (they exclude each other)")
@pytest.mark.parametrize("args", [
    ["--repeat", 2] + VALGRIND_DOMAINS,
    ["--hosts", "mx.postfix.test@25", "127.0.0.1", "nope.test", "[::1]", "mx.servfail.test"],
    ["--cancel-in-callback"] + VALGRIND_DOMAINS,
    ["--free-in-callback"] + VALGRIND_DOMAINS,
], ids=["mx", "hosts", "cancel-in-callback", "free-in-callback"])
def test_valgrind(dns_server, args):
    probe(*args, server=dns_server.server, valgrind=True, timeout=120)


@pytest.mark.skipif(shutil.which("valgrind") is None or os.environ.get("CALLOUT_SANITIZED"),
                    reason="valgrind not installed, or a sanitizer build (they exclude each other)")
@pytest.mark.parametrize("args", [
    ["--cancel-after", 50], ["--free-after", 50], [],
    # more queries than may be in flight: some wait in the queue
    ["--repeat", 100, "--cancel-after", 50], ["--repeat", 100, "--free-after", 50],
], ids=["cancel-after", "free-after", "timeout", "cancel-queued", "free-queued"])
def test_valgrind_silent_server(blackhole, args):
    probe("--timeout", 200, *args, "postfix.test", "equal.test", "nope.test",
          server=blackhole, valgrind=True, timeout=120)
