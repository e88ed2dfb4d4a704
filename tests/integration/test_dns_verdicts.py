"""`callout check` end to end: what the DNS of a domain means for the verdict.

The test zones (tests/integration/zones/, served by the `dns_server`
fixture) point most domains at the private Postfix (`postfix_mx`), which
accepts alice, bob and postmaster in every domain of testnet.POSTFIX_DOMAINS.
Each test runs the CLI as a user would and checks the JSON verdict, the exit
status and, where no connection may happen, Postfix's session count.
"""
import time

import pytest

import testnet

HELO = "verifier.test"
DEAD_DNS = "127.0.0.1:10054"   # nothing listens there


@pytest.fixture
def check(callout, dns_server, postfix_mx):
    def run(*args, dns=None, timeout=60):
        return callout("--dns-server", dns or dns_server.server,
                       "--port", str(testnet.SMTP_PORT), "--helo", HELO,
                       *args, timeout=timeout)
    return run


def transcript_of(result):
    t = result.get("transcript")
    if isinstance(t, list):
        return "\n".join(t)
    return t or ""


def assert_no_session(postfix_mx, before):
    assert postfix_mx.sessions(settle=0.5) == before, \
        "callout connected to Postfix although no connection was due"


# --------------------------------------------------------------------------
# domains that lead to Postfix

def test_mx(check):
    run = check("alice@postfix.test")
    r = run.result
    assert (r["verdict"], r["reason"]) == ("valid", "accepted"), r
    assert r["mx"] == "mx.postfix.test" and r["ip"] == testnet.POSTFIX_IP
    assert run.returncode == 0


def test_failover_to_second_mx(check, postfix_mx):
    """MX 10 refuses connections (127.0.0.21), MX 20 is Postfix."""
    before = postfix_mx.sessions()
    t0 = time.monotonic()
    run = check("alice@failover.test")
    r = run.result
    assert (r["verdict"], r["reason"]) == ("valid", "accepted"), r
    assert r["mx"] == "mx.postfix.test"
    assert r["ip"] == testnet.POSTFIX_IP
    assert run.returncode == 0
    assert postfix_mx.sessions() == before + 1
    assert time.monotonic() - t0 < 10, "a refused connection should fail over at once"


def test_failover_unknown_user(check):
    r = check("nobody@failover.test").result
    assert (r["verdict"], r["reason"]) == ("invalid", "mailbox_unknown"), r
    assert r["ip"] == testnet.POSTFIX_IP


def test_implicit_mx(check):
    """No MX: the domain's own A record is the mail host (RFC 5321 5.1)."""
    run = check("alice@implicit.test")
    r = run.result
    assert (r["verdict"], r["reason"]) == ("valid", "accepted"), r
    assert r["ip"] == testnet.POSTFIX_IP
    assert r["mx"] == "implicit.test"
    assert run.returncode == 0
    r = check("nobody@implicit.test").result
    assert (r["verdict"], r["reason"]) == ("invalid", "mailbox_unknown"), r


def test_domain_is_cname(check):
    run = check("alice@cname.test")
    r = run.result
    assert (r["verdict"], r["reason"]) == ("valid", "accepted"), r
    assert r["ip"] == testnet.POSTFIX_IP
    assert run.returncode == 0


def test_mx_host_is_cname(check):
    run = check("alice@cnamemx.test")
    r = run.result
    assert (r["verdict"], r["reason"]) == ("valid", "accepted"), r
    assert r["ip"] == testnet.POSTFIX_IP
    assert r["mx"] in ("alias.cnamemx.test", "mx.postfix.test"), r
    assert run.returncode == 0


def test_ipv6_only_mx(check, postfix_mx):
    if not postfix_mx.ip6:
        pytest.skip("no IPv6 on loopback")
    off = postfix_mx.log_offset()
    run = check("alice@v6.test")
    r = run.result
    assert (r["verdict"], r["reason"]) == ("valid", "accepted"), r
    assert r["ip"] == "::1"
    assert r["mx"] == "mx6.v6.test"
    assert run.returncode == 0
    assert "connect from unknown[::1]" in postfix_mx.log_since(off)
    r = check("nobody@v6.test").result
    assert (r["verdict"], r["reason"]) == ("invalid", "mailbox_unknown"), r
    assert r["ip"] == "::1"


def test_dual_stack_mx(check, postfix_mx):
    """mx.dual.test has A 127.0.0.20 and AAAA ::1: either is Postfix."""
    if "dual.test" not in testnet.POSTFIX_DOMAINS:
        pytest.skip("dual.test is not in testnet.POSTFIX_DOMAINS")
    r = check("alice@dual.test").result
    assert (r["verdict"], r["reason"]) == ("valid", "accepted"), r
    assert r["mx"] == "mx.dual.test"
    assert r["ip"] in (testnet.POSTFIX_IP, testnet.POSTFIX_IP6)


def test_equal_preference(check):
    """Three MX at preference 10, only a.equal.test answers: whatever the
    shuffle, the verdict is the same and comes from Postfix."""
    for _ in range(6):
        run = check("alice@equal.test")
        r = run.result
        assert (r["verdict"], r["reason"]) == ("valid", "accepted"), r
        assert r["mx"] == "a.equal.test" and r["ip"] == testnet.POSTFIX_IP, r
        assert run.returncode == 0
    r = check("nobody@equal.test").result
    assert (r["verdict"], r["reason"]) == ("invalid", "mailbox_unknown"), r


def test_preference_order(check):
    """order.test lists MX 30 c, 10 a, 20 b: a (Postfix) comes first."""
    run = check("--transcript", "alice@order.test")
    r = run.result
    assert (r["verdict"], r["reason"]) == ("valid", "accepted"), r
    assert r["mx"] == "a.order.test" and r["ip"] == testnet.POSTFIX_IP, r
    t = transcript_of(r)
    # b and c must not have been tried before a answered
    assert "127.0.0.23" not in t and "c.order.test" not in t, t
    assert "127.0.0.22" not in t and "b.order.test" not in t, t
    assert run.returncode == 0


# --------------------------------------------------------------------------
# domains that cannot receive mail: answered from DNS, no connection

def test_null_mx(check, postfix_mx):
    before = postfix_mx.sessions()
    run = check("alice@nullmx.test")
    r = run.result
    assert (r["verdict"], r["reason"]) == ("invalid", "null_mx"), r
    assert run.returncode == 1
    assert_no_session(postfix_mx, before)


def test_nxdomain(check, postfix_mx):
    before = postfix_mx.sessions()
    run = check("alice@nope.test")
    r = run.result
    assert (r["verdict"], r["reason"]) == ("invalid", "nxdomain"), r
    assert run.returncode == 1
    assert_no_session(postfix_mx, before)


def test_no_mx_no_address(check, postfix_mx):
    before = postfix_mx.sessions()
    run = check("alice@nohost.test")
    r = run.result
    assert (r["verdict"], r["reason"]) == ("invalid", "no_mail_host"), r
    assert run.returncode == 1
    assert_no_session(postfix_mx, before)


def test_mx_host_missing(check, postfix_mx):
    before = postfix_mx.sessions()
    run = check("alice@badmx.test")
    r = run.result
    assert (r["verdict"], r["reason"]) == ("invalid", "no_mail_host"), r
    assert run.returncode == 1
    assert_no_session(postfix_mx, before)


# --------------------------------------------------------------------------
# DNS that does not answer: never a verdict about the mailbox

def test_servfail(check, postfix_mx):
    before = postfix_mx.sessions()
    run = check("alice@servfail.test")
    r = run.result
    assert (r["verdict"], r["reason"]) == ("tempfail", "dns_tempfail"), r
    assert run.returncode == 3
    assert_no_session(postfix_mx, before)


def test_refused(check, postfix_mx):
    """example.org is outside the test zones: our NSD answers REFUSED."""
    before = postfix_mx.sessions()
    run = check("alice@example.org")
    r = run.result
    assert (r["verdict"], r["reason"]) == ("tempfail", "dns_tempfail"), r
    assert run.returncode == 3
    assert_no_session(postfix_mx, before)


def test_dead_dns_server(check, postfix_mx):
    before = postfix_mx.sessions()
    t0 = time.monotonic()
    run = check("alice@postfix.test", dns=DEAD_DNS, timeout=120)
    elapsed = time.monotonic() - t0
    r = run.result
    assert (r["verdict"], r["reason"]) == ("tempfail", "dns_tempfail"), r
    assert run.returncode == 3
    assert elapsed < 60, f"took {elapsed:.1f}s"
    assert_no_session(postfix_mx, before)


def test_dead_dns_server_respects_timeout(check):
    t0 = time.monotonic()
    run = check("--timeout", "5", "alice@postfix.test", dns=DEAD_DNS, timeout=60)
    elapsed = time.monotonic() - t0
    r = run.result
    assert (r["verdict"], r["reason"]) == ("tempfail", "dns_tempfail"), r
    assert run.returncode == 3
    assert elapsed < 10, f"--timeout 5 took {elapsed:.1f}s"


def test_mixed_batch_verdicts(check, postfix_mx):
    """One run, many domains: every address gets its own right answer."""
    expect = {
        "alice@postfix.test": ("valid", "accepted"),
        "nobody@postfix.test": ("invalid", "mailbox_unknown"),
        "bob@failover.test": ("valid", "accepted"),
        "postmaster@implicit.test": ("valid", "accepted"),
        "alice@cname.test": ("valid", "accepted"),
        "alice@nullmx.test": ("invalid", "null_mx"),
        "alice@nope.test": ("invalid", "nxdomain"),
        "alice@nohost.test": ("invalid", "no_mail_host"),
        "alice@badmx.test": ("invalid", "no_mail_host"),
        "alice@servfail.test": ("tempfail", "dns_tempfail"),
        "a@@b": ("invalid", "syntax"),
    }
    run = check("--concurrency", "4", *expect)
    got = {r["address"]: (r["verdict"], r["reason"]) for r in run.results}
    assert got == expect
    assert run.returncode == 1
