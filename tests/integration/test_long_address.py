"""Long local parts are asked, not refused as syntax.

SRS, VERP and BATV senders have local parts well over RFC 5321's 64
octets, and mail servers (Postfix among them) accept them.  Only what no
SMTP command can carry is invalid/syntax; a well-formed address longer
than the 256-octet path we ask about is our limit (tempfail, local_limit),
never invalid.  Checked through the CLI against the real Postfix, and
through calloutd's policy service and milter against fake servers that
accept anyone.
"""
import re

import pytest

import conftest
import testnet
import test_milter

ACCEPT = """
on RCPT
    send 250 2.1.5 Ok
"""

# Knows the one long sender: a random local part (the catch-all test) is
# refused, so the sender comes out valid.
KNOWS_SENDER = """
on RCPT TO:<SRS0=*
    send 250 2.1.5 Ok
on RCPT *
    send 550 5.1.1 no such user
"""

# A forwarder's SRS0 rewrite of a long original address: 100 octets.
SRS_LOCAL = ("SRS0=Hx4f=2Q=very-long-original-domain.example.com="
             "alice.wonderland-with-a-rather-long-name.of.xyzzy")
assert len(SRS_LOCAL) == 100
# Well-formed, but a path of 300 octets.
TOO_LONG_LOCAL = "prvs=0123456789=" + "n" * 275


def received(srv):
    """Every command line the fake server srv received."""
    return [ln for sess in srv.sessions_snapshot() for ln in sess.lines]


def check(*args):
    return conftest.run_callout("--port", str(testnet.SMTP_PORT), "--helo", "verifier.test",
                                *args)


def test_srs_sender_reaches_postfix(dns_server, postfix_mx):
    """Postfix takes the 100-octet local part and answers for the mailbox
    itself: the verdict is its 550 5.1.1, not our syntax rule."""
    address = f"{SRS_LOCAL}@postfix.test"
    off = postfix_mx.log_offset()
    run = check("--dns-server", dns_server.server, address)
    r = run.result
    assert r["address"] == address
    assert (r["verdict"], r["reason"], r["stage"]) == ("invalid", "mailbox_unknown", "rcpt"), r
    assert (r["code"], r["enhanced"]) == (550, "5.1.1")
    assert r["mx"] == "mx.postfix.test"
    log = postfix_mx.log_since(off)
    assert re.search(rf"NOQUEUE: reject: RCPT from \S+: 550 5\.1\.1 <{re.escape(address)}>", log), log


def test_long_local_parts_are_asked(fake_smtp):
    srv = fake_smtp(ACCEPT)
    for n in (65, 100, 200):
        address = f"{'l' * (n - 2)}.x@[{srv.host}]"
        run = check(address)
        assert (run.result["verdict"], run.result["reason"]) == ("valid", "accepted"), n
        assert run.returncode == 0
    rcpts = [ln for ln in received(srv) if ln.startswith("RCPT TO:")]
    assert [len(ln) - len("RCPT TO:<>") - len(f"@[{srv.host}]") for ln in rcpts] == [65, 100, 200]


def test_too_long_is_our_limit_not_invalid(fake_smtp):
    srv = fake_smtp(ACCEPT)
    run = check(f"{TOO_LONG_LOCAL}@[{srv.host}]")
    r = run.result
    assert (r["verdict"], r["reason"], r["stage"]) == ("tempfail", "local_limit", "syntax"), r
    assert "too long to ask" in r["text"]
    assert run.returncode == 3
    assert srv.session_count == 0
    # what no command can carry is still a syntax error
    run = check(f'"{SRS_LOCAL}@[{srv.host}]')
    assert (run.result["verdict"], run.result["reason"]) == ("invalid", "syntax")
    assert run.returncode == 1


def test_policy_service_asks_long_sender(calloutd, fake_smtp):
    srv = fake_smtp(KNOWS_SENDER, index=5)
    d = calloutd()
    sender = f"{SRS_LOCAL}@fake5.test"
    assert d.policy({"sender": sender}) == "action=DUNNO"
    assert d.wait_log(f"sender=<{sender[:40]}")
    assert "checked=sender verdict=valid reason=accepted" in d.log_text()
    assert f"RCPT TO:<{sender}>" in received(srv)
    # too long to ask: deferred (our limit), never the 550 of an invalid sender
    action = d.policy({"sender": f"{TOO_LONG_LOCAL}@fake5.test"})
    # (and longer than the front ends keep, which must not make it another address)
    assert action.startswith("action=450 4.1.7 "), action
    action = d.policy({"sender": "x" * 1500 + "@fake5.test"})
    assert action.startswith("action=450 4.1.7 "), action
    assert d.wait_log("reason=local_limit")


@pytest.mark.skipif(not test_milter.os.path.exists(test_milter.MILTERTEST),
                    reason="miltertest not installed (scripts/install-deps)")
def test_milter_asks_long_sender(calloutd, fake_smtp):
    srv = fake_smtp(KNOWS_SENDER, index=6)
    d = calloutd(sections=test_milter.sections())
    sender = f"{SRS_LOCAL}@fake6.test"
    test_milter.run(d, "transaction.lua", SENDER=f"<{sender}>", RCPTS=test_milter.SOME_RCPT)
    line, = test_milter.wait_decisions(d, f"sender=<{sender}>")
    assert "checked=sender verdict=valid reason=accepted" in line and "action=pass" in line
    assert f"RCPT TO:<{sender}>" in received(srv)
    # longer than the library parses (and than calloutd's milter kept
    # before): deferred as too long, not cut into another address or a
    # syntax error.  (miltertest itself crashes on a MAIL over ~1024 octets.)
    huge = "x" * 998 + "@fake6.test"
    test_milter.run(d, "transaction.lua", SENDER=f"<{huge}>", RCPTS=test_milter.SOME_RCPT,
                    WANT_RCPTS="replycode")
    line, = test_milter.wait_decisions(d, "reason=local_limit")
    assert "checked=sender verdict=tempfail" in line and "action=defer" in line


def test_cli_file_line_too_long_is_our_limit(tmp_path):
    """A batch file line over the CLI's 1024 bytes: not an invalid address
    (a list cleaner would delete it), and the next line is verified."""
    f = tmp_path / "list"
    f.write_text("x" * 1100 + "@example.org\n" + "a@@b\n")
    run = check("-f", str(f))
    first, second = run.results
    assert (first["verdict"], first["reason"]) == ("tempfail", "local_limit"), first
    assert "line too long (line 1)" in first["text"]
    assert (second["verdict"], second["reason"]) == ("invalid", "syntax")
