"""Where callouts must not go: loopback, private, link-local and this
host's own addresses are not contacted unless allowed (--allow-private,
[engine] allow_private), so that whoever can ask -- a forged sender, an
HTTP client -- cannot make us connect into the networks behind us.

The rest of the suite allows them (conftest.py): every "remote" server
here is on loopback.  These tests take the permission away and count the
sessions the servers saw.
"""
import json
import os
import subprocess
import urllib.request

import conftest
import testnet

ACCEPT = """
on RCPT
    send 250 2.1.5 Ok
"""


def check(*args):
    env = dict(os.environ, CALLOUT_ALLOW_PRIVATE="0")
    proc = subprocess.run([conftest.binary("callout"), "check", "--json", "--port",
                           str(testnet.SMTP_PORT), "--helo", "verifier.test", *args],
                          capture_output=True, text=True, timeout=30, env=env)
    return proc, [json.loads(line) for line in proc.stdout.splitlines()]


def test_literal_on_loopback_is_not_contacted(fake_smtp):
    srv = fake_smtp(ACCEPT)
    proc, [r] = check(f"alice@[{srv.host}]")
    assert (r["verdict"], r["reason"], r["stage"]) == ("unknown", "private_address", "connect")
    assert "loopback address, not contacted" in r["text"]
    assert proc.returncode == 3
    assert srv.session_count == 0
    # allowed: the same address is asked
    proc, [r] = check("--allow-private", f"alice@[{srv.host}]")
    assert r["verdict"] == "valid"
    assert srv.session_count == 1


def test_mx_on_loopback_is_not_contacted(fake_smtp, dns_server):
    srv = fake_smtp(ACCEPT, index=2)
    proc, [r] = check("--dns-server", dns_server.server, "alice@fake2.test")
    assert (r["verdict"], r["reason"]) == ("unknown", "private_address")
    assert f"mx.fake2.test [{srv.host}]" in r["text"]
    assert srv.session_count == 0


def test_routes_are_the_operators_choice(fake_smtp):
    srv = fake_smtp(ACCEPT)
    proc, [r] = check("--route", f"example.com={srv.host}:{testnet.SMTP_PORT}",
                      "alice@example.com")
    assert r["verdict"] == "valid"
    assert srv.session_count == 1


def test_calloutd_refuses_private_addresses_by_default(calloutd, fake_smtp):
    srv = fake_smtp(ACCEPT, index=3)
    d = calloutd(sections={"engine": {"allow_private": "no"}})
    url = f"{d.http_url}/v1/verify?address=alice@[{srv.host}]"
    with urllib.request.urlopen(url, timeout=10) as resp:
        r = json.load(resp)
    assert (r["verdict"], r["reason"]) == ("unknown", "private_address")
    # a forged sender on such a domain: not probed; unknown passes
    assert d.policy({"sender": "someone@fake3.test"}) == "action=DUNNO"
    assert d.wait_log("reason=private_address")
    assert srv.session_count == 0


def test_mapped_literal_on_loopback_is_not_contacted(fake_smtp):
    """[IPv6:::ffff:127.0.0.N] is the loopback fake server in IPv6 clothes:
    the same refusal, and allowed it does reach that server."""
    srv = fake_smtp(ACCEPT)
    proc, [r] = check(f"alice@[IPv6:::ffff:{srv.host}]")
    assert (r["verdict"], r["reason"], r["stage"]) == ("unknown", "private_address", "connect")
    assert "loopback address inside an IPv6 address, not contacted" in r["text"]
    assert proc.returncode == 3
    assert srv.session_count == 0
    proc, [r] = check("--allow-private", f"alice@[IPv6:::ffff:{srv.host}]")
    assert r["verdict"] == "valid"
    assert srv.session_count == 1


def test_mx_with_embedded_loopback_is_not_contacted(fake_smtp, dns_server):
    """An MX whose AAAA carries 127.0.0.34 (IPv4-mapped, NAT64, 6to4) is
    refused like 127.0.0.34 itself (zones/README)."""
    srv = fake_smtp(ACCEPT, index=4)
    for domain, ip in (("mapped.test", "::ffff:127.0.0.34"),
                       ("nat64.test", "64:ff9b::7f00:22"),
                       ("sixtofour.test", "2002:7f00:22::1")):
        proc, [r] = check("--dns-server", dns_server.server, f"alice@{domain}")
        assert (r["verdict"], r["reason"]) == ("unknown", "private_address"), (domain, r)
        assert f"mx.{domain} [{ip}]: loopback address inside an IPv6 address" in r["text"]
        assert proc.returncode == 3
    assert srv.session_count == 0
    # the mapped one is the fake server indeed: allowed, it is asked
    proc, [r] = check("--dns-server", dns_server.server, "--allow-private", "alice@mapped.test")
    assert r["verdict"] == "valid"
    assert srv.session_count == 1


def test_calloutd_refuses_embedded_loopback(calloutd, fake_smtp):
    """The HTTP API (anyone's question) and a forged sender on the policy
    service: a NAT64 literal of a loopback server is not contacted."""
    srv = fake_smtp(ACCEPT, index=4)
    d = calloutd(sections={"engine": {"allow_private": "no"}})
    url = f"{d.http_url}/v1/verify?address=alice@%5BIPv6:64:ff9b::{srv.host}%5D"
    with urllib.request.urlopen(url, timeout=10) as resp:
        r = json.load(resp)
    assert (r["verdict"], r["reason"]) == ("unknown", "private_address")
    assert d.policy({"sender": "someone@nat64.test"}) == "action=DUNNO"
    assert d.wait_log("reason=private_address")
    assert srv.session_count == 0
