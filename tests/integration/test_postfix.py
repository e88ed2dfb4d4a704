"""`callout check` against a real Postfix smtpd (the `postfix_mx` fixture).

The first group talks to the private Postfix instance with smtplib, to show
the fixture is the MX the other tests believe it is.  The rest run the
callout CLI the way a user would, with the test DNS zones (`dns_server`)
pointing postfix.test at it, and assert on the JSON output, the exit status
and on what Postfix itself logged.
"""
import re
import smtplib
import ssl
import subprocess
import time

import pytest

import conftest
import testnet

HELO = "verifier.test"
DEAD_DNS = "127.0.0.1:10054"   # nothing listens there


# --------------------------------------------------------------------------
# helpers

def transcript_of(result):
    t = result.get("transcript")
    if isinstance(t, list):
        return "\n".join(t)
    return t or ""


def rcpt_commands(transcript):
    return re.findall(r"RCPT TO:<[^>\r\n]*>", transcript, re.IGNORECASE)


@pytest.fixture
def check(callout, dns_server, postfix_mx):
    """run `callout check --json` with the test network's DNS, port and HELO."""
    def run(*args, dns=None, timeout=60, input=None):
        return callout("--dns-server", dns or dns_server.server,
                       "--port", str(testnet.SMTP_PORT), "--helo", HELO,
                       *args, timeout=timeout, input=input)
    return run


@pytest.fixture
def check_nodns(callout, postfix_mx):
    """like `check`, but with --dns-server pointing where nothing answers."""
    def run(*args, timeout=60, input=None):
        return callout("--dns-server", DEAD_DNS,
                       "--port", str(testnet.SMTP_PORT), "--helo", HELO,
                       *args, timeout=timeout, input=input)
    return run


def smtp(host=None):
    return smtplib.SMTP(host or testnet.POSTFIX_IP, testnet.SMTP_PORT,
                        local_hostname=HELO, timeout=10)


# --------------------------------------------------------------------------
# the fixture itself (smtplib; no callout binary needed)

class TestPostfixFixture:
    def test_accepts_known_users_in_every_domain(self, postfix_mx):
        s = smtp()
        try:
            assert s.ehlo(HELO)[0] == 250
            assert s.mail("<>")[0] == 250
            for domain in testnet.POSTFIX_DOMAINS:
                for user in testnet.POSTFIX_USERS:
                    code, msg = s.rcpt(f"{user}@{domain}")
                    assert code == 250, (user, domain, msg)
        finally:
            s.quit()

    def test_rejects_unknown_user_at_rcpt(self, postfix_mx):
        s = smtp()
        try:
            s.ehlo(HELO)
            assert s.mail("<>")[0] == 250
            code, msg = s.rcpt("nobody@postfix.test")
            assert code == 550
            assert msg.startswith(b"5.1.1 ")
            assert b"User unknown in virtual mailbox table" in msg
        finally:
            s.quit()

    def test_denies_relay(self, postfix_mx):
        s = smtp()
        try:
            s.ehlo(HELO)
            s.mail("<>")
            code, msg = s.rcpt("alice@example.org")
            assert code == 554 and msg.startswith(b"5.7.1 "), msg
            assert b"Relay access denied" in msg
        finally:
            s.quit()

    def test_address_literal_is_local(self, postfix_mx):
        s = smtp()
        try:
            s.ehlo(HELO)
            s.mail("<>")
            assert s.rcpt(f"alice@[{testnet.POSTFIX_IP}]")[0] == 250
            code, msg = s.rcpt(f"nobody@[{testnet.POSTFIX_IP}]")
            assert code == 550 and msg.startswith(b"5.1.1 "), msg
        finally:
            s.quit()

    def test_offers_pipelining_and_starttls(self, postfix_mx):
        s = smtp()
        try:
            s.ehlo(HELO)
            assert s.has_extn("pipelining")
            assert s.has_extn("starttls")
            assert s.has_extn("enhancedstatuscodes")
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            code, _ = s.starttls(context=ctx)
            assert code == 220
            cert = s.sock.getpeercert(binary_form=True)
            assert cert
            s.ehlo(HELO)
            assert not s.has_extn("starttls")
            s.mail("<>")
            assert s.rcpt("alice@postfix.test")[0] == 250
        finally:
            s.quit()

    def test_listens_on_ipv6(self, postfix_mx):
        if not postfix_mx.ip6:
            pytest.skip("no IPv6 on loopback")
        s = smtp(host=postfix_mx.ip6)
        try:
            s.ehlo(HELO)
            s.mail("<>")
            assert s.rcpt("bob@v6.test")[0] == 250
        finally:
            s.quit()

    def test_counts_sessions(self, postfix_mx):
        before = postfix_mx.sessions()
        s = smtp()
        s.ehlo(HELO)
        s.quit()
        assert postfix_mx.sessions() == before + 1
        assert postfix_mx.sessions(settle=0.2) == before + 1
        assert "connect from" in postfix_mx.log()


# --------------------------------------------------------------------------
# callout check against Postfix

def test_valid_mailbox(check, postfix_mx):
    before = postfix_mx.sessions()
    run = check("alice@postfix.test")
    r = run.result
    assert r["address"] == "alice@postfix.test"
    assert (r["verdict"], r["reason"]) == ("valid", "accepted"), r
    assert r["code"] == 250
    assert r["stage"] == "rcpt"
    assert r["mx"] == "mx.postfix.test"
    assert r["ip"] == testnet.POSTFIX_IP
    assert isinstance(r["ms"], int) and r["ms"] >= 0
    assert r["cached"] is False
    assert run.returncode == 0, run.stderr
    assert postfix_mx.sessions() == before + 1


def test_unknown_mailbox(check, postfix_mx):
    run = check("nobody@postfix.test")
    r = run.result
    assert (r["verdict"], r["reason"]) == ("invalid", "mailbox_unknown"), r
    assert r["code"] == 550
    assert r["enhanced"] == "5.1.1"
    assert r["stage"] == "rcpt"
    assert "User unknown" in r["text"]
    assert r["mx"] == "mx.postfix.test"
    assert r["ip"] == testnet.POSTFIX_IP
    assert run.returncode == 1


def test_postfix_sees_helo_null_sender_and_clean_quit(check, postfix_mx):
    """What the remote MX sees: our HELO name, MAIL FROM:<>, one RCPT, QUIT."""
    off = postfix_mx.log_offset()
    run = check("nobody@postfix.test")
    assert run.result["verdict"] == "invalid"
    log = postfix_mx.log_since(off)
    assert re.search(r"NOQUEUE: reject: RCPT from \S+: 550 5\.1\.1 <nobody@postfix\.test>.*"
                     rf"from=<> to=<nobody@postfix\.test> proto=ESMTP helo=<{re.escape(HELO)}>",
                     log), log
    disconnect = [line for line in log.splitlines() if "disconnect from" in line]
    assert len(disconnect) == 1, log
    # ehlo=1 mail=1 rcpt=0/1 quit=1: no DATA, no RSET needed, a clean QUIT
    assert "ehlo=1" in disconnect[0] and "mail=1" in disconnect[0], disconnect
    assert "rcpt=0/1" in disconnect[0] and "quit=1" in disconnect[0], disconnect
    assert "data" not in disconnect[0], disconnect
    assert "lost connection" not in log
    assert "improper command pipelining" not in log


def test_valid_session_quits_cleanly(check, postfix_mx):
    off = postfix_mx.log_offset()
    run = check("bob@postfix.test")
    assert run.result["verdict"] == "valid"
    log = postfix_mx.log_since(off)
    disconnect = [line for line in log.splitlines() if "disconnect from" in line]
    assert len(disconnect) == 1, log
    assert "rcpt=1 " in disconnect[0] and "quit=1" in disconnect[0], disconnect
    assert "data" not in disconnect[0], disconnect
    assert "improper command pipelining" not in log


def test_sender_option(check, postfix_mx):
    off = postfix_mx.log_offset()
    run = check("--sender", "probe@verifier.test", "nobody@postfix.test")
    assert run.result["verdict"] == "invalid"
    log = postfix_mx.log_since(off)
    assert "from=<probe@verifier.test> to=<nobody@postfix.test>" in log, log


def test_postmaster_and_case(check):
    run = check("postmaster@postfix.test", "Bob@Postfix.TEST")
    assert run.returncode == 0, run.stdout
    assert [r["verdict"] for r in run.results] == ["valid", "valid"], run.stdout


def test_several_addresses_any_invalid_exits_1(check):
    run = check("alice@postfix.test", "nobody@postfix.test", "bob@postfix.test")
    assert len(run.results) == 3, run.stdout
    by = {r["address"]: r for r in run.results}
    assert by["alice@postfix.test"]["verdict"] == "valid"
    assert by["bob@postfix.test"]["verdict"] == "valid"
    assert by["nobody@postfix.test"]["verdict"] == "invalid"
    assert run.returncode == 1


def test_transcript(check):
    run = check("--transcript", "alice@postfix.test")
    r = run.result
    assert r["verdict"] == "valid"
    t = transcript_of(r)
    assert "220 mx.postfix.test ESMTP" in t, t
    assert re.search(rf"EHLO {re.escape(HELO)}", t, re.IGNORECASE), t
    assert "MAIL FROM:<>" in t, t
    assert rcpt_commands(t) == ["RCPT TO:<alice@postfix.test>"], t
    assert "250 2.1.5" in t, t
    assert re.search(r"^.*QUIT", t, re.IGNORECASE | re.MULTILINE), t


def test_no_transcript_unless_asked(check):
    r = check("alice@postfix.test").result
    assert not r.get("transcript"), r


def test_tls(check, postfix_mx):
    off = postfix_mx.log_offset()
    run = check("--tls", "--transcript", "alice@postfix.test")
    r = run.result
    assert (r["verdict"], r["reason"]) == ("valid", "accepted"), r
    assert r["tls"] is True
    assert "STARTTLS" in transcript_of(r).upper()
    log = postfix_mx.log_since(off)
    assert "TLS connection established from" in log, log
    disconnect = [line for line in log.splitlines() if "disconnect from" in line]
    assert len(disconnect) == 1, log
    assert "starttls=1" in disconnect[0], disconnect
    # the QUIT the transcript shows must have reached the server, over TLS
    assert "quit=1" in disconnect[0], disconnect
    assert run.returncode == 0


def test_tls_unknown_mailbox(check):
    r = check("--tls", "nobody@postfix.test").result
    assert (r["verdict"], r["reason"]) == ("invalid", "mailbox_unknown"), r
    assert r["tls"] is True
    assert r["enhanced"] == "5.1.1"


def test_catch_all_probe_against_postfix(check, postfix_mx):
    off = postfix_mx.log_offset()
    run = check("--catch-all", "--transcript", "alice@postfix.test")
    r = run.result
    assert (r["verdict"], r["reason"]) == ("valid", "accepted"), r
    assert r["catch_all"] is False
    rcpts = rcpt_commands(transcript_of(r))
    assert len(rcpts) == 2, transcript_of(r)
    assert "RCPT TO:<alice@postfix.test>" in rcpts
    other = [c for c in rcpts if c != "RCPT TO:<alice@postfix.test>"]
    assert len(other) == 1 and other[0].lower().endswith("@postfix.test>"), rcpts
    # Postfix saw one session with two RCPTs, one of them refused.
    log = postfix_mx.log_since(off)
    assert len(re.findall(r"smtpd\[\d+\]: connect from", log)) == 1, log
    assert "rcpt=1/2" in log, log
    assert run.returncode == 0


def test_catch_all_unknown_mailbox(check):
    r = check("--catch-all", "nobody@postfix.test").result
    assert (r["verdict"], r["reason"]) == ("invalid", "mailbox_unknown"), r


def test_no_pipelining(check, postfix_mx):
    off = postfix_mx.log_offset()
    run = check("--no-pipelining", "alice@postfix.test", "nobody@postfix.test")
    by = {r["address"]: r for r in run.results}
    assert by["alice@postfix.test"]["verdict"] == "valid"
    assert by["nobody@postfix.test"]["reason"] == "mailbox_unknown"
    assert "improper command pipelining" not in postfix_mx.log_since(off)


def test_address_literal_without_dns(check_nodns, postfix_mx):
    before = postfix_mx.sessions()
    run = check_nodns(f"alice@[{testnet.POSTFIX_IP}]")
    r = run.result
    assert (r["verdict"], r["reason"]) == ("valid", "accepted"), r
    assert r["ip"] == testnet.POSTFIX_IP
    assert run.returncode == 0
    assert postfix_mx.sessions() == before + 1


def test_address_literal_unknown_user(check_nodns):
    r = check_nodns(f"nobody@[{testnet.POSTFIX_IP}]").result
    assert (r["verdict"], r["reason"]) == ("invalid", "mailbox_unknown"), r
    assert r["enhanced"] == "5.1.1"


def test_route_to_postfix_for_foreign_domain_is_not_invalid(check_nodns):
    """Call forward to a server that is not responsible: relay denied
    (554 5.7.1) is a policy answer about us, never `invalid`."""
    run = check_nodns("--route", f"example.org={testnet.POSTFIX_IP}:{testnet.SMTP_PORT}",
                      "alice@example.org")
    r = run.result
    assert r["verdict"] == "unknown", r
    assert r["reason"] == "policy_block", r
    assert r["code"] == 554 and r["enhanced"] == "5.7.1", r
    assert run.returncode == 3


def test_route_call_forward(check_nodns):
    run = check_nodns("--route", f"postfix.test={testnet.POSTFIX_IP}:{testnet.SMTP_PORT}",
                      "alice@postfix.test", "nobody@postfix.test")
    by = {r["address"]: r for r in run.results}
    assert by["alice@postfix.test"]["verdict"] == "valid", run.stdout
    assert by["nobody@postfix.test"]["reason"] == "mailbox_unknown", run.stdout
    assert run.returncode == 1


def test_batch_from_stdin(check, postfix_mx):
    expect = {}
    domains = ["postfix.test", "failover.test", "implicit.test", "cname.test",
               "cnamemx.test", "order.test", "equal.test"]
    if postfix_mx.ip6:
        domains.append("v6.test")
    i = 0
    while len(expect) < 20:
        d = domains[i % len(domains)]
        if i % 4 == 3:
            expect[f"nobody{i}@{d}"] = ("invalid", "mailbox_unknown")
        else:
            expect[f"{testnet.POSTFIX_USERS[i % 3]}@{d}"] = ("valid", "accepted")
        i += 1
    assert len(expect) == 20
    text = "".join(f"{a}\n" for a in expect)
    run = check("-f", "-", "--concurrency", "5", input=text, timeout=120)
    assert len(run.results) == 20, run.stdout + run.stderr
    got = {r["address"]: (r["verdict"], r["reason"]) for r in run.results}
    assert got == expect
    assert run.returncode == 1


def test_batch_all_valid_exits_0(check):
    text = "alice@postfix.test\nbob@postfix.test\n\npostmaster@postfix.test\n"
    run = check("-f", "-", "--concurrency", "2", input=text)
    assert sorted(r["address"] for r in run.results) == [
        "alice@postfix.test", "bob@postfix.test", "postmaster@postfix.test"]
    assert all(r["verdict"] == "valid" for r in run.results), run.stdout
    assert run.returncode == 0


# --------------------------------------------------------------------------
# syntax errors never reach the network

@pytest.mark.parametrize("address", [
    "a@@b",
    '"a\r\nRCPT TO:<x@y>"@postfix.test',
    "alice@postfix.test\r\nRCPT TO:<bob@postfix.test>",
    "no-at-sign",
    "@postfix.test",
    "alice@",
], ids=["double-at", "crlf-in-quoted-local", "crlf-after-domain", "no-at",
        "empty-local", "empty-domain"])
def test_syntax_error_no_session(check, postfix_mx, address):
    before = postfix_mx.sessions()
    run = check(address)
    r = run.result
    assert (r["verdict"], r["reason"]) == ("invalid", "syntax"), r
    assert run.returncode == 1
    assert postfix_mx.sessions(settle=0.5) == before


# --------------------------------------------------------------------------
# exit statuses and output forms

def test_exit_status_usage_error():
    proc = subprocess.run([conftest.binary("callout"), "check", "--no-such-option",
                           "alice@postfix.test"], capture_output=True, text=True, timeout=30,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert proc.stderr.strip(), "a usage error should say what is wrong"


LIMIT_OPTIONS = ("--max-probes", "--domain-sessions", "--host-sessions", "--domain-rate",
                 "--host-rate", "--session-rcpts", "--session-idle", "--backoff",
                 "--no-limit-wait")


def test_limit_options_listed_and_checked():
    def run(*args):
        return subprocess.run([conftest.binary("callout"), "check", *args], capture_output=True,
                              text=True, timeout=30, stdin=subprocess.DEVNULL)
    r = run("--help")
    assert r.returncode == 0, r.stderr
    # "--[no-]limit-wait" lists --limit-wait and --no-limit-wait
    listed = re.sub(r"--\[no-\]([a-z-]+)", r"--\1 --no-\1", r.stdout)
    for opt in LIMIT_OPTIONS:
        assert opt in listed, opt
    for args, want in (
            (["--domain-rate", "x"], "invalid value 'x' for --domain-rate: expected a whole "
                                     "number from 0 (no limit) to 1000000"),
            (["--max-probes", "-1"], "invalid value '-1' for --max-probes"),
            (["--host-sessions", "1000001"], "invalid value '1000001' for --host-sessions"),
            (["--session-rcpts", "0"], "invalid value '0' for --session-rcpts: expected a "
                                       "whole number from 1 to 1000"),
            (["--session-idle", "61"], "invalid value '61' for --session-idle: expected a "
                                       "duration from 0 to 1m"),
            (["--backoff", "0"], "invalid value '0' for --backoff: expected a duration from "
                                 "1s to 1h"),
            (["--no-limit-wait=yes"], "option '--no-limit-wait' takes no value")):
        r = run(*args, "alice@postfix.test")
        assert r.returncode == 2, (args, r)
        assert r.stdout == "", (args, r)
        assert r.stderr.startswith("callout check: " + want), (args, r.stderr)
        assert r.stderr.endswith("Try 'callout check --help' for more information.\n")


def test_limit_options_accepted(check):
    """Every limit lifted (0) or at its smallest: the verdicts do not change."""
    run = check("--max-probes", "0", "--domain-sessions", "0", "--host-sessions", "0",
                "--domain-rate", "0", "--host-rate", "0", "--session-rcpts", "1",
                "--session-idle", "0", "--backoff", "1m", "--no-limit-wait",
                "alice@postfix.test", "nobody@postfix.test")
    assert sorted(r["verdict"] for r in run.results) == ["invalid", "valid"], run.stdout
    assert run.returncode == 1
    run = check("--domain-sessions", "1", "--domain-rate", "1000000", "--session-rcpts",
                "1000", "--session-idle", "60s", "--backoff", "1h", "alice@postfix.test")
    assert run.result["verdict"] == "valid", run.result


def test_durations_as_the_config_file_writes_them(check):
    """One duration syntax for the CLI and calloutd.conf: "30s" is what the
    configuration file says, and the CLI takes it too."""
    run = check("--timeout", "30s", "--connect-timeout", "5000ms", "--command-timeout", "0.5m",
                "--dns-timeout", "2", "alice@postfix.test")
    assert run.result["verdict"] == "valid", run.result
    for args, want in ((["--timeout", "30x"], "invalid value '30x' for --timeout: expected a "
                                              "duration from 1ms to 1d"),
                       (["--timeout", "0"], "invalid value '0' for --timeout"),
                       (["--timeout", "2d"], "invalid value '2d' for --timeout"),
                       (["--dns-timeout", "-1s"], "invalid value '-1s' for --dns-timeout")):
        r = subprocess.run([conftest.binary("callout"), "check", *args, "alice@postfix.test"],
                           capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
        assert r.returncode == 2 and r.stderr.startswith("callout check: " + want), r.stderr


def test_trace_shows_each_step(check, tmp_path):
    """--trace: one line for each change of the probe's state, with its
    milliseconds; a probe asked live, then the same answered from the
    cache, then an unknown user."""
    import re
    cache = ["--cache", f"lmdb:{tmp_path / 'c.lmdb'}", "--catch-all"]

    def steps(run):
        lines = [ln for ln in run.stderr.splitlines() if ln.startswith("callout: trace: ")]
        assert lines, run.stderr
        out = []
        for ln in lines:
            m = re.match(r"callout: trace: +(\d+) ms <([^>]*)> (\w+) -> (\w+)(?:: (.*))?$", ln)
            assert m, ln
            out.append((m.group(2), m.group(3), m.group(4), m.group(5) or ""))
        # a chain: each step starts where the one before ended
        for a, b in zip(out, out[1:]):
            assert a[2] == b[1], (a, b)
        return out

    run = check("--trace", *cache, "alice@postfix.test")
    assert run.result["verdict"] == "valid"
    s = steps(run)
    assert [(f, t) for _, f, t, _ in s] == [
        ("new", "cache"), ("cache", "dns"), ("dns", "session"), ("session", "next"),
        ("next", "store"), ("store", "done")], s
    assert s[1][3] == "MX of postfix.test"
    assert s[2][3].startswith("mx.postfix.test [127.0.0.20]:")
    assert s[3][3] == "valid/accepted 250 2.1.5"
    assert s[-1][3] == "valid/accepted"
    assert {a for a, _, _, _ in s} == {"alice@postfix.test"}
    # the same, from the cache
    s = steps(check("--trace", *cache, "alice@postfix.test"))
    assert [(f, t, d) for _, f, t, d in s] == [
        ("new", "cache", ""), ("cache", "done", "valid/accepted from the cache")], s
    # no trace without --trace
    assert "trace:" not in check(*cache, "bob@postfix.test").stderr
    s = steps(check("--trace", "--no-cache", "nobody@postfix.test"))
    assert [t for _, _, t, _ in s] == ["dns", "session", "next", "done"], s
    assert s[2][3].startswith("invalid/mailbox_unknown 550 5.1.1"), s


def test_exit_status_no_address():
    proc = subprocess.run([conftest.binary("callout"), "check"],
                          capture_output=True, text=True, timeout=30,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)


def test_exit_status_tempfail_only_is_3(check):
    run = check("alice@servfail.test")
    assert run.result["verdict"] == "tempfail"
    assert run.returncode == 3


def test_exit_status_valid_and_tempfail_is_3(check):
    run = check("alice@postfix.test", "alice@servfail.test")
    assert sorted(r["verdict"] for r in run.results) == ["tempfail", "valid"]
    assert run.returncode == 3


def test_exit_status_invalid_wins_over_tempfail(check):
    run = check("nobody@postfix.test", "alice@servfail.test")
    assert sorted(r["verdict"] for r in run.results) == ["invalid", "tempfail"]
    assert run.returncode == 1


def test_human_output(dns_server, postfix_mx):
    """Without --json: one readable line per address, same exit status."""
    proc = subprocess.run(
        [conftest.binary("callout"), "check", "--dns-server", dns_server.server,
         "--port", str(testnet.SMTP_PORT), "--helo", HELO,
         "alice@postfix.test", "nobody@postfix.test"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 1, proc.stderr
    out = proc.stdout
    alice = [line for line in out.splitlines() if "alice@postfix.test" in line]
    nobody = [line for line in out.splitlines() if "nobody@postfix.test" in line]
    assert alice and "valid" in alice[0] and "invalid" not in alice[0], out
    assert nobody and "invalid" in nobody[0], out
    assert not out.lstrip().startswith("{"), out


def test_human_transcript(dns_server, postfix_mx):
    proc = subprocess.run(
        [conftest.binary("callout"), "check", "--transcript", "--dns-server",
         dns_server.server, "--port", str(testnet.SMTP_PORT), "--helo", HELO,
         "alice@postfix.test"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout + proc.stderr
    assert "MAIL FROM:<>" in out, out
    assert "RCPT TO:<alice@postfix.test>" in out, out


def test_whole_run_is_quick(check):
    """A plain valid check on loopback takes well under a second."""
    t0 = time.monotonic()
    run = check("alice@postfix.test")
    assert run.result["verdict"] == "valid"
    assert time.monotonic() - t0 < 5
    assert run.result["ms"] < 5000
