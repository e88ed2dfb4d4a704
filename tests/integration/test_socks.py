"""Callouts through a SOCKS5 proxy: a real Dante (fixtures_socks.py) on
loopback, with and without a password, in front of the suite's Postfix.

The proxy carries the connection and nothing else: the verdicts are those
of a direct callout, every failure of the proxy is a tempfail (never
invalid, never the host's fault), and the SSRF guard still judges the
final target.
"""
import os
import socket
import subprocess
import threading
import time
import urllib.request

import pytest

import conftest
import testnet

HELO = "verifier.test"
VALID = "alice@postfix.test"
INVALID = "nobody@postfix.test"


@pytest.fixture
def check(callout, dns_server, postfix_mx):
    def run(*args, timeout=60):
        return callout("--dns-server", dns_server.server, "--port", str(testnet.SMTP_PORT),
                       "--helo", HELO, *args, timeout=timeout)
    return run


def test_verdicts_through_the_proxy_are_the_direct_ones(check, socks_proxies):
    before = socks_proxies.log("open")
    run = check("--proxy", socks_proxies.open, VALID, INVALID)
    got = {r["address"]: (r["verdict"], r["reason"], r["code"]) for r in run.results}
    assert got == {VALID: ("valid", "accepted", 250),
                   INVALID: ("invalid", "mailbox_unknown", 550)}, run.stdout
    assert all(r["ip"] == testnet.POSTFIX_IP for r in run.results)
    # Dante saw the connection to the MX: it went through the proxy.
    after = socks_proxies.log("open")[len(before):]
    assert f"{testnet.POSTFIX_IP}.{testnet.SMTP_PORT}" in after, after


def test_username_and_password(check, socks_proxies):
    run = check("--proxy", socks_proxies.auth, VALID)
    assert (run.result["verdict"], run.result["reason"]) == ("valid", "accepted"), run.stdout


def test_wrong_password_is_a_tempfail_that_names_the_proxy(check, socks_proxies):
    run = check("--proxy", socks_proxies.auth_wrong, VALID, INVALID)
    for r in run.results:
        assert (r["verdict"], r["reason"]) == ("tempfail", "connect_failed"), r
        assert "refused the username or password" in r["text"], r
        assert "wrong" not in r["text"]  # the password is never shown
    assert run.returncode == 3
    run = check("--proxy", socks_proxies.no_credentials, VALID)
    assert run.result["verdict"] == "tempfail"
    assert "wants authentication" in run.result["text"], run.result


def test_proxy_down_is_a_tempfail(check):
    s = socket.socket()
    s.bind((testnet.SOCKS_IP, 0))  # a port where nothing listens
    port = s.getsockname()[1]
    s.close()
    run = check("--proxy", f"socks5://{testnet.SOCKS_IP}:{port}", VALID, INVALID)
    for r in run.results:
        assert (r["verdict"], r["reason"]) == ("tempfail", "connect_failed"), r
        assert f"proxy {testnet.SOCKS_IP}:{port}" in r["text"], r


def test_stalling_proxy_times_out(check):
    """A proxy that accepts and never answers: the connect timeout covers
    the handshake, and the answer is tempfail (timeout)."""
    srv = socket.socket()
    srv.bind((testnet.SOCKS_IP, 0))
    srv.listen(8)
    held = []
    stop = threading.Event()

    def accept():
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(srv.accept()[0])
            except OSError:
                pass
    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        t0 = time.monotonic()
        run = check("--proxy", f"socks5://{testnet.SOCKS_IP}:{srv.getsockname()[1]}",
                    "--connect-timeout", "1s", "--max-mx", "1", VALID)
        took = time.monotonic() - t0
    finally:
        stop.set()
        t.join(2)
        for c in held:
            c.close()
        srv.close()
    assert (run.result["verdict"], run.result["reason"]) == ("tempfail", "timeout"), run.stdout
    assert "proxy" in run.result["text"], run.result
    assert took < 10, took


def test_target_refused_behind_the_proxy(check, socks_proxies):
    """The proxy is fine, the host behind it refuses: a connection failure
    of that host, as without a proxy."""
    run = check("--proxy", socks_proxies.open, "--route", f"dead.test={testnet.DEAD_IP}",
                "someone@dead.test")
    assert (run.result["verdict"], run.result["reason"]) == ("tempfail", "connect_failed"), \
        run.stdout
    assert "could not reach the host" in run.result["text"], run.result


def test_the_ssrf_guard_still_judges_the_target(check, socks_proxies):
    """A proxy does not make a private mail host fair game: without
    --allow-private, loopback MX hosts are not contacted, proxy or not."""
    env = dict(os.environ, CALLOUT_ALLOW_PRIVATE="0")
    before = socks_proxies.log("open")
    r = subprocess.run([conftest.binary("callout"), "check", "--json", "--proxy",
                        socks_proxies.open, "--dns-server", f"{testnet.DNS_SERVER}",
                        "--port", str(testnet.SMTP_PORT), VALID],
                       capture_output=True, text=True, timeout=60, env=env)
    assert '"reason":"private_address"' in r.stdout.replace(" ", ""), r.stdout
    assert f"{testnet.POSTFIX_IP}.{testnet.SMTP_PORT}" not in \
        socks_proxies.log("open")[len(before):]


def test_bad_proxy_specs_are_usage_errors():
    for spec, why in (("http://127.0.0.1:8080", "expected socks5://"),
                      ("socks5://127.0.0.1", "port"),
                      ("socks5://u@127.0.0.1:1080", "USER:PASSWORD@")):
        r = subprocess.run([conftest.binary("callout"), "check", "--proxy", spec,
                            "a@example.org"], capture_output=True, text=True, timeout=30)
        assert r.returncode == 2, (spec, r)
        assert r.stderr.startswith(f"callout check: invalid value '{spec}' for --proxy"), \
            r.stderr
        assert why in r.stderr, (spec, r.stderr)


def test_calloutd_through_the_proxy(calloutd, socks_proxies, postfix_mx, tmp_path):
    d = calloutd(sections={"engine": {"proxy": socks_proxies.auth}})
    assert d.policy({"sender": VALID}) == "action=DUNNO"
    assert d.policy({"sender": INVALID}).startswith("action=550 5.1.7")
    # -t shows the proxy without its password
    conf = tmp_path / "t.conf"
    conf.write_text(f"[daemon]\nstate_dir = {tmp_path}\n[engine]\nproxy = {socks_proxies.auth}\n")
    r = subprocess.run([conftest.binary("calloutd"), "-t", "-c", str(conf)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert f"[engine] proxy = socks5://{testnet.SOCKS_USER}:***@" in r.stdout, r.stdout
    assert testnet.SOCKS_PASSWORD not in r.stdout
    conf.write_text("[engine]\nproxy = socks5://nowhere\n")
    r = subprocess.run([conftest.binary("calloutd"), "-t", "-c", str(conf)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and f"{conf}:2: [engine] proxy:" in r.stderr, r.stderr


def test_a_dead_proxy_puts_no_host_in_backoff(calloutd, postfix_mx):
    """The proxy's failures say nothing about the mail host: after many of
    them (backoff after 1 failure), no MX address is backing off; a host
    that refuses behind a working proxy does go into backoff."""
    s = socket.socket()
    s.bind((testnet.SOCKS_IP, 0))
    port = s.getsockname()[1]
    s.close()
    d = calloutd(sections={"engine": {"proxy": f"socks5://{testnet.SOCKS_IP}:{port}",
                                      "backoff_failures": "1"}})
    for i in range(3):
        assert d.policy({"sender": f"user{i}@postfix.test"}).startswith("action=450 ")
    with urllib.request.urlopen(d.http_url + "/metrics", timeout=5) as r:
        metrics = r.read().decode()
    assert "\ncalloutd_engine_hosts_backing_off 0\n" in metrics, metrics


def test_a_host_refusing_behind_the_proxy_backs_off(calloutd, socks_proxies):
    # failover.test: its first MX (DEAD_IP) refuses, its second is Postfix
    d = calloutd(sections={"engine": {"proxy": socks_proxies.open, "backoff_failures": "1"}})
    assert d.policy({"sender": "alice@failover.test"}) == "action=DUNNO"

    with urllib.request.urlopen(d.http_url + "/metrics", timeout=5) as r:
        metrics = r.read().decode()
    assert "\ncalloutd_engine_hosts_backing_off 0\n" not in metrics, metrics
