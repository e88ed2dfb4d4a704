"""Pools of SOCKS5 proxies (issue 15): several proxies behind one name,
a per-domain choice, a per-request choice over HTTP among the proxies the
operator offers, a cap per proxy, and health checks.

Real Dante proxies (fixtures_socks.py) in front of the suite's Postfix;
a counting SMTP server (test_fleet.py's) where what must be counted is
what reached the server.
"""
import json
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest

import conftest
import testnet
from test_fleet import DOMAIN, CountingSMTP

HELO = "verifier.test"
VALID = "alice@postfix.test"
INVALID = "nobody@postfix.test"
# Postfix knows alice, bob and postmaster: the rest are unknown
MIXED = {**{f"{u}@postfix.test": "valid" for u in testnet.POSTFIX_USERS},
         **{f"nobody{i}@postfix.test": "invalid" for i in range(4)}}


def dead_port():
    """A loopback port where nothing listens."""
    s = socket.socket()
    s.bind((testnet.SOCKS_IP, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def dead_proxy():
    return f"socks5://{testnet.SOCKS_IP}:{dead_port()}"


def mx_connections(socks_proxies, name, before):
    """Connections the proxy `name` made to the Postfix MX since `before`."""
    log = socks_proxies.log(name)[len(before):]
    return log.count(f"{testnet.POSTFIX_IP}.{testnet.SMTP_PORT}")


@pytest.fixture
def check(callout, dns_server, postfix_mx):
    def run(*args, timeout=60):
        return callout("--dns-server", dns_server.server, "--port", str(testnet.SMTP_PORT),
                       "--helo", HELO, "--session-rcpts", "1", *args, timeout=timeout)
    return run


def post(d, body, path="/v1/verify"):
    req = urllib.request.Request(d.http_url + path, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def get(d, path):
    with urllib.request.urlopen(d.http_url + path, timeout=10) as r:
        return r.read().decode()


# ---- the command line ------------------------------------------------------


def test_a_pool_spreads_its_connections(check, socks_proxies):
    before = {n: socks_proxies.log(n) for n in ("open", "auth")}
    run = check("--proxy", f"{socks_proxies.open}, {socks_proxies.auth}", *MIXED)
    assert {r["address"]: r["verdict"] for r in run.results} == MIXED, run.stdout
    got = {n: mx_connections(socks_proxies, n, before[n]) for n in before}
    assert sum(got.values()) >= len(MIXED), got
    assert all(v >= 2 for v in got.values()), got  # both proxies carried sessions


def test_a_dead_proxy_of_the_pool_is_passed_over(check, socks_proxies):
    """The first session through the dead proxy fails for the proxy, not
    the host: the same host is asked through the other one, so every
    answer is the server's."""
    run = check("--proxy", f"{dead_proxy()},{socks_proxies.open}", "--backoff-failures", "1",
                *MIXED)
    assert {r["address"]: r["verdict"] for r in run.results} == MIXED, run.stdout


def test_every_proxy_down_is_a_tempfail_never_invalid(check):
    run = check("--proxy", f"{dead_proxy()},{dead_proxy()}", "--backoff-failures", "1",
                *MIXED)
    for r in run.results:
        assert (r["verdict"], r["reason"]) == ("tempfail", "connect_failed"), r
        assert "proxy" in r["text"], r
    assert run.returncode == 3


def test_bad_pool_specs_are_usage_errors():
    for spec, why in [("socks5://127.0.0.1:1080,http://x:1", "socks5://"),
                      (" , ", "expected socks5://")]:
        r = subprocess.run([conftest.binary("callout"), "check", "--proxy", spec, VALID],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 2, (spec, r.stderr)
        assert why in r.stderr, (spec, r.stderr)


# ---- calloutd ------------------------------------------------------------------


def test_http_requests_choose_among_offered_proxies(calloutd, socks_proxies, postfix_mx):
    d = calloutd(config=f"""
[proxy eu]
url = {socks_proxies.open}

[proxy private]
url = {socks_proxies.auth}
http = no
""")
    before = socks_proxies.log("open")
    status, body = post(d, {"address": VALID, "proxy": "eu"})
    assert status == 200 and body["verdict"] == "valid", body
    assert mx_connections(socks_proxies, "open", before) >= 1
    # not offered to HTTP clients, unknown, or not a name: refused by name
    for asked in ["private", "nowhere", 7, "direct"]:
        status, body = post(d, {"address": VALID, "proxy": asked})
        assert status == 400 and body["error"] == "invalid_option", (asked, body)
        assert "\"proxy\"" in body["message"] and "eu" in body["message"], body
        assert "private" not in body["message"], body


def test_a_domain_keeps_its_own_proxy(calloutd, socks_proxies, postfix_mx):
    """[domain] proxy comes before [engine] proxy (dead here) and before a
    request's choice; `direct` means no proxy at all."""
    d = calloutd(sections={"engine": {"proxy": dead_proxy(), "backoff_failures": "1"}},
                 config=f"""
[proxy eu]
url = {socks_proxies.open}

[domain postfix.test]
proxy = eu

[domain failover.test]
proxy = direct
""")
    before = socks_proxies.log("open")
    assert d.policy({"sender": VALID}) == "action=DUNNO"
    assert mx_connections(socks_proxies, "open", before) >= 1
    # failover.test goes direct: its dead first MX, then Postfix
    assert d.policy({"sender": "alice@failover.test"}) == "action=DUNNO"
    # any other domain takes the dead default: tempfail
    status, body = post(d, {"address": "alice@fake1.test"})
    assert (body["verdict"], body["reason"]) == ("tempfail", "connect_failed"), body


def test_health_and_metrics_show_each_proxy(calloutd, socks_proxies, postfix_mx):
    dead = dead_proxy()
    d = calloutd(sections={"engine": {"proxy": dead, "backoff_failures": "1",
                                      "proxy_check": "60s"}},
                 config=f"[proxy eu]\nurl = {socks_proxies.open}\n")
    assert d.policy({"sender": VALID}).startswith("action=450 ")
    health = json.loads(get(d, "/healthz"))
    assert health["status"] == "degraded", health
    assert any("proxy pool default: every proxy is down" in r for r in health["reasons"])
    pools = {(p["pool"], p["up"]) for p in health["proxies"]}
    assert pools == {("default", False), ("eu", True)}, health
    # a later request does not even try the dead proxy
    status, body = post(d, {"address": INVALID})
    assert "is down" in body["text"], body
    metrics = get(d, "/metrics")
    label = dead.split("//")[1]
    assert f'calloutd_proxy_up{{pool="default",proxy="{label}"}} 0' in metrics, metrics
    assert 'calloutd_proxy_up{pool="eu",proxy="' in metrics
    assert f'calloutd_proxy_failures_total{{pool="default",proxy="{label}"}} 1' in metrics


def test_a_proxy_that_comes_back_is_used_again(calloutd, socks_proxies, postfix_mx):
    """Down after a failure, checked every 300 ms (a greeting, no CONNECT):
    once Dante answers again, callouts go through it."""
    d = calloutd(sections={"engine": {"proxy": socks_proxies.open, "backoff_failures": "1",
                                      "proxy_check": "300ms"}})
    socks_proxies.stop("open")
    try:
        assert d.policy({"sender": VALID}).startswith("action=450 ")
        assert json.loads(get(d, "/healthz"))["proxies"][0]["up"] is False
    finally:
        socks_proxies.start("open")
    deadline = time.monotonic() + 10
    while not json.loads(get(d, "/healthz")).get("proxies", [{}])[0].get("up"):
        assert time.monotonic() < deadline, get(d, "/healthz")
        time.sleep(0.1)
    assert "is up again" in d.log_text()
    assert d.policy({"sender": VALID}) == "action=DUNNO"


@pytest.mark.slow
@pytest.mark.parametrize("cap", [1, 3])
def test_connections_per_proxy_are_capped(calloutd, socks_proxies, dns_server, cap):
    """proxy_sessions = N: never more than N sessions through the proxy at
    once, counted where they arrive (the SMTP server behind it)."""
    srv = CountingSMTP(rcpt_delay=0.3)
    try:
        d = calloutd(sections={"engine": {"proxy": socks_proxies.open,
                                          "proxy_sessions": str(cap), "session_rcpts": "1",
                                          "session_idle": "0", "domain_sessions": "20",
                                          "host_sessions": "20", "domain_rate": "0",
                                          "host_rate": "0", "timeout": "40s"},
                               "daemon": {"reply_within": "60s"}})
        addrs = [f"{'ok' if i % 2 == 0 else 'no'}cap{cap}x{i}@{DOMAIN}" for i in range(8)]
        out = {}

        def one(a):
            out[a] = post(d, {"address": a})[1]
        threads = [threading.Thread(target=one, args=(a,)) for a in addrs]
        for t in threads:
            t.start()
        for t in threads:
            t.join(90)
        for a in addrs:
            want = "valid" if a.startswith("ok") else "invalid"
            assert out[a]["verdict"] == want, (a, out[a])
        assert srv.most <= cap, srv.most
        assert len(srv.starts) == len(addrs)
    finally:
        srv.stop()


def test_config_errors_name_the_section(tmp_path, socks_proxies):
    cases = [
        ("[proxy eu]\nsessions = 3\n", "[proxy eu]: url is missing"),
        ("[proxy default]\nurl = socks5://127.0.0.1:1\n", "the name is taken"),
        ("[proxy e u]\nurl = socks5://127.0.0.1:1\n", "[proxy e u]:"),
        ("[proxy eu]\nurl = socks5://127.0.0.1:1, ftp://x\n", "[proxy eu] url:"),
        ("[domain a.test]\nproxy = eu\n", "[domain a.test] proxy: no [proxy eu] section"),
        ("[domain a.test]\nproxy = default\n", "[engine] proxy is not set"),
    ]
    for text, why in cases:
        conf = tmp_path / "t.conf"
        conf.write_text(f"[daemon]\nstate_dir = {tmp_path}\n{text}")
        r = subprocess.run([conftest.binary("calloutd"), "-t", "-c", str(conf)],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 1 and why in r.stderr, (text, r.stderr)
    conf.write_text(f"[daemon]\nstate_dir = {tmp_path}\n[proxy eu]\nurl = {socks_proxies.auth}\n"
                    "[domain a.test]\nproxy = eu\n")
    r = subprocess.run([conftest.binary("calloutd"), "-t", "-c", str(conf)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
