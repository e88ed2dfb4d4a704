"""calloutd's milter (libmilter), end to end.

Two ways in:

  miltertest(8) scripts (tests/integration/milter/*.lua) play the MTA's
  side of the milter protocol, step by step, for what an MTA does not do
  on demand: odd sequences, macros, two transactions on one connection,
  giving up mid-check, many connections at once.  miltertest shows the
  kind of each reply (continue, replycode, ...) but not its text: the
  text is checked through Postfix, and reject or defer in calloutd's log.

  swaks -> gateway Postfix (fixtures_gateway, 127.0.0.60) with
  smtpd_milters = inet:127.0.0.1:PORT -> calloutd: the replies a client
  sees, the headers a delivered message has.

Sender domains: postfix.test (the remote Postfix, 127.0.0.20: alice, bob,
postmaster exist; anyone else is 550 5.1.1) and fakeN.test (fake SMTP
servers).  Also signals: libmilter runs a signal thread of its own, and
HUP and TERM must still reach the daemon (see milter.c).
"""
import os
import re
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time

import pytest

import conftest
import testnet

HERE = os.path.dirname(os.path.abspath(__file__))
MILTER_DIR = os.path.join(HERE, "milter")
MILTERTEST = "/usr/bin/miltertest"

# Clients the scripts pretend to be: not in the default skip_networks.
CLIENT = "192.0.2.10"
# Gateway clients (swaks) come from loopback, which calloutd skips by
# default: skip a network nobody uses instead.
VERIFY = {"skip_networks": "198.51.100.0/24"}

BAD_SENDER = "nobody@postfix.test"
GOOD_SENDER = "alice@postfix.test"
SOME_RCPT = "<someone@example.net>"

SLOW_UNKNOWN = """\
on RCPT *
    delay {delay}
    send 550 5.1.1 no such user
"""

# Slow once a session (at MAIL), whatever the RCPTs: addresses of one
# domain share sessions, so a delay per RCPT would add up in a batch.
SLOW_SESSION_UNKNOWN = """\
on MAIL *
    delay {delay}
    send 250 2.1.0 Ok
on RCPT *
    send 550 5.1.1 no such user
"""

SLOW_OK = """\
on RCPT *
    delay {delay}
    send 250 2.1.5 Ok
"""

# A primary for forward.test that knows one user.
PRIMARY = """\
on RCPT TO:<known@forward.test>*
    send 250 2.1.5 Ok
on RCPT *
    send 550 5.1.1 <unknown@forward.test>: Recipient address rejected: User unknown
"""

pytestmark = pytest.mark.skipif(not os.path.exists(MILTERTEST),
                                reason="miltertest not installed (scripts/install-deps)")


def fake_ip(index):
    return f"{testnet.FAKE_IP_BASE}{testnet.FAKE_IP_FIRST + index}"


def sections(**extra):
    out = {"verify": dict(VERIFY)}
    for name, keys in extra.items():
        out.setdefault(name, {}).update(keys)
    return out


def miltertest(d, script, timeout=60, spec=None, **defs):
    """Run tests/integration/milter/SCRIPT against daemon d; -D NAME=VALUE
    for each keyword.  Returns the CompletedProcess."""
    cmd = [MILTERTEST, "-s", os.path.join(MILTER_DIR, script),
           "-D", f"DIR={MILTER_DIR}", "-D", f"SPEC={spec or d.milter_spec}",
           "-D", f"CLIENT={CLIENT}"]
    for k, v in defs.items():
        if v is not None:
            cmd += ["-D", f"{k}={v}"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def run(d, script, **defs):
    """miltertest that must pass."""
    p = miltertest(d, script, **defs)
    assert p.returncode == 0, (f"miltertest {script} {defs} failed ({p.returncode}):\n"
                               f"{p.stdout}{p.stderr}\n--- calloutd:\n{d.log_text()}")
    return p


def decisions(d, needle=""):
    """calloutd's milter decision lines (one per answer), containing needle."""
    return [ln for ln in d.log_text().splitlines()
            if " milter client=" in ln and needle in ln]


def wait_decisions(d, needle, n=1, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = decisions(d, needle)
        if len(lines) >= n:
            return lines
        time.sleep(0.05)
    raise AssertionError(f"fewer than {n} decisions with {needle!r}:\n{d.log_text()}")


def milter_up(d):
    """A connection that gets through connect and HELO."""
    run(d, "transaction.lua", SENDER="<>", RCPTS=SOME_RCPT)


# --------------------------------------------------------------------------
# the milter protocol, with miltertest


def test_valid_sender_passes(calloutd, postfix_mx):
    d = calloutd()
    run(d, "transaction.lua", SENDER=f"<{GOOD_SENDER}>", RCPTS=SOME_RCPT, QID="MT0001",
        DATA="yes", HEADERS="none")
    line, = wait_decisions(d, f"sender=<{GOOD_SENDER}>")
    assert line.split("calloutd: ")[-1].startswith("info: MT0001: milter client=192.0.2.10 ")
    assert "recipient=<someone@example.net>" in line
    assert "checked=sender verdict=valid reason=accepted" in line
    assert "action=pass" in line


def test_unknown_sender_rejected_at_each_rcpt(calloutd, postfix_mx):
    d = calloutd()
    run(d, "transaction.lua", SENDER=f"<{BAD_SENDER}>",
        RCPTS="<a@example.net>,<b@example.net>", WANT_RCPTS="replycode,replycode")
    first, second = wait_decisions(d, f"sender=<{BAD_SENDER}>", 2)
    assert "recipient=<a@example.net> checked=sender verdict=invalid reason=mailbox_unknown" \
        in first
    assert "action=reject" in first
    # the second RCPT asks again; the cache answers
    assert "recipient=<b@example.net>" in second and "action=reject" in second
    assert "cached=yes" in second
    assert postfix_mx.sessions(settle=0.3) >= 1


def test_sender_at_mail(calloutd, postfix_mx):
    d = calloutd(sections={"milter": {"sender_at": "mail"}})
    run(d, "transaction.lua", SENDER=f"<{BAD_SENDER}>", WANT_MAIL="replycode")
    line, = wait_decisions(d, f"sender=<{BAD_SENDER}>")
    assert "recipient=<> checked=sender verdict=invalid" in line and "action=reject" in line
    # a good sender is checked once, at MAIL; its RCPTs ask nothing more
    run(d, "transaction.lua", SENDER=f"<{GOOD_SENDER}>",
        RCPTS="<a@example.net>,<b@example.net>", DATA="yes")
    line, = wait_decisions(d, f"sender=<{GOOD_SENDER}>")
    assert "recipient=<> checked=sender verdict=valid" in line and "action=pass" in line
    time.sleep(0.3)
    assert len(decisions(d, f"sender=<{GOOD_SENDER}>")) == 1, d.log_text()


def test_sender_at_data(calloutd, postfix_mx):
    d = calloutd(sections={"milter": {"sender_at": "data"}})
    run(d, "transaction.lua", SENDER=f"<{BAD_SENDER}>", RCPTS="<a@example.net>",
        DATA="yes", WANT_DATA="replycode")
    line, = wait_decisions(d, f"sender=<{BAD_SENDER}>")
    assert "recipient=<> checked=sender verdict=invalid" in line and "action=reject" in line


def test_sender_passes_once_at_rcpt(calloutd, postfix_mx):
    """sender_at = rcpt: the sender is verified at the first RCPT; once it
    passed, further RCPTs ask nothing (no [domain] route)."""
    d = calloutd()
    run(d, "transaction.lua", SENDER=f"<{GOOD_SENDER}>",
        RCPTS="<a@example.net>,<b@example.net>,<c@example.net>", DATA="yes")
    wait_decisions(d, f"sender=<{GOOD_SENDER}>")
    time.sleep(0.3)
    lines = decisions(d, f"sender=<{GOOD_SENDER}>")
    assert len(lines) == 1 and "recipient=<a@example.net>" in lines[0], d.log_text()


def test_null_sender_passes(calloutd, postfix_mx):
    d = calloutd()
    before = postfix_mx.sessions()
    run(d, "transaction.lua", SENDER="<>", RCPTS=SOME_RCPT, DATA="yes", HEADERS="none")
    line, = wait_decisions(d, "sender=<>")
    assert 'action=pass skipped="null sender"' in line
    assert postfix_mx.sessions(settle=0.5) == before


def test_authenticated_client_skipped(calloutd, postfix_mx):
    d = calloutd()
    before = postfix_mx.sessions()
    run(d, "transaction.lua", SENDER=f"<{BAD_SENDER}>", RCPTS=SOME_RCPT, AUTH="someone",
        DATA="yes")
    line, = wait_decisions(d, f"sender=<{BAD_SENDER}>")
    assert 'action=pass skipped="authenticated client"' in line
    assert postfix_mx.sessions(settle=0.5) == before   # no callout at all


def test_unknown_client_address(calloutd, postfix_mx):
    d = calloutd()
    run(d, "unknown_client.lua", SENDER=f"<{BAD_SENDER}>", RCPT=SOME_RCPT,
        WANT_RCPT="replycode")
    line, = wait_decisions(d, f"sender=<{BAD_SENDER}>")
    assert " milter client= " in line and "action=reject" in line


def test_tag_mode_header_at_eom(calloutd, postfix_mx):
    d = calloutd(sections={"daemon": {"mode": "tag"}})
    run(d, "transaction.lua", SENDER=f"<{BAD_SENDER}>", RCPTS="<a@example.net>,<b@example.net>",
        DATA="yes",
        HEADERS=f"^verdict=invalid; reason=mailbox_unknown; sender={BAD_SENDER}$")
    assert "mode=tag" in wait_decisions(d, f"sender=<{BAD_SENDER}>")[0]


def test_tag_mode_valid_sender(calloutd, postfix_mx):
    d = calloutd(sections={"daemon": {"mode": "tag"}})
    run(d, "transaction.lua", SENDER=f"<{GOOD_SENDER}>", RCPTS=SOME_RCPT, DATA="yes",
        HEADERS=f"^verdict=valid; reason=accepted; sender={GOOD_SENDER}$")


def test_two_transactions_share_nothing(calloutd, postfix_mx):
    d = calloutd(sections={"daemon": {"mode": "tag"}})
    run(d, "two_transactions.lua", SENDER1=f"<{BAD_SENDER}>", WANT_RCPT1="continue",
        SENDER2=f"<{GOOD_SENDER}>", WANT_RCPT2="continue", RCPT=SOME_RCPT,
        HEADERS2=f"^verdict=valid; reason=accepted; sender={GOOD_SENDER}$")
    d2 = d
    # enforce: a rejected first transaction, then a good one on the same
    # connection must be checked again, not pass for "already checked"
    d2.stop()
    d = calloutd()
    run(d, "two_transactions.lua", SENDER1=f"<{BAD_SENDER}>", WANT_RCPT1="replycode",
        SENDER2="<bob@postfix.test>", WANT_RCPT2="continue", RCPT=SOME_RCPT, HEADERS2="none")
    assert "action=pass" in wait_decisions(d, "sender=<bob@postfix.test>")[0]


def test_dry_run_passes_and_logs(calloutd, postfix_mx):
    d = calloutd(sections={"daemon": {"mode": "dry-run"}})
    run(d, "transaction.lua", SENDER=f"<{BAD_SENDER}>", RCPTS=SOME_RCPT, DATA="yes",
        HEADERS="none")
    line, = wait_decisions(d, f"sender=<{BAD_SENDER}>")
    assert "action=pass would=reject mode=dry-run" in line


@pytest.mark.parametrize("sender_at", ["mail", "rcpt", "data"])
def test_call_forward_every_rcpt(calloutd, postfix_mx, fake_smtp, sender_at):
    primary = fake_smtp(PRIMARY, index=6)
    d = calloutd(f"[domain {testnet.FORWARD_DOMAIN}]\n"
                 f"route = {fake_ip(6)}:{testnet.SMTP_PORT}\n",
                 sections={"milter": {"sender_at": sender_at}})
    run(d, "transaction.lua", SENDER=f"<{GOOD_SENDER}>",
        RCPTS="<known@forward.test>,<unknown@forward.test>,<x@example.net>",
        WANT_RCPTS="continue,replycode,continue", DATA="yes")
    bad, = wait_decisions(d, "recipient=<unknown@forward.test>")
    assert "checked=recipient verdict=invalid reason=mailbox_unknown" in bad
    assert "action=reject" in bad
    # (at sender_at = rcpt the first RCPT checks both, recipient first, and
    # logs the last check: the sender's)
    good, = wait_decisions(d, "recipient=<known@forward.test>")
    assert "verdict=valid" in good and "action=pass" in good
    sent = "\n".join("\n".join(t) for t in primary.transcripts())
    assert "RCPT TO:<unknown@forward.test>" in sent and "RCPT TO:<known@forward.test>" in sent
    # the sender is verified at its own stage, once
    wait_decisions(d, "checked=sender verdict=valid")
    time.sleep(0.3)
    assert len(decisions(d, "checked=sender")) == 1, d.log_text()


def test_reply_within_defers(calloutd, fake_smtp):
    fake_smtp(SLOW_OK.format(delay=3), index=7)
    d = calloutd(sections={"daemon": {"reply_within": "1s"}, "engine": {"catch_all": "no"}})
    start = time.monotonic()
    run(d, "transaction.lua", SENDER="<someone@fake7.test>", RCPTS=SOME_RCPT,
        WANT_RCPTS="replycode")
    assert time.monotonic() - start < 2.9
    line, = wait_decisions(d, "sender=<someone@fake7.test>")
    assert "action=defer" in line and "reason=timeout" in line


def test_reply_within_defer_ok(calloutd, fake_smtp):
    fake_smtp(SLOW_OK.format(delay=3), index=7)
    d = calloutd(sections={"daemon": {"reply_within": "1s"}, "engine": {"catch_all": "no"},
                           "verify": {"defer_ok": "yes"}})
    run(d, "transaction.lua", SENDER="<someone@fake7.test>", RCPTS=SOME_RCPT)
    assert "action=pass" in wait_decisions(d, "sender=<someone@fake7.test>")[0]


def test_mta_gives_up_mid_check(calloutd, fake_smtp, postfix_mx):
    slow = fake_smtp(SLOW_UNKNOWN.format(delay=3), index=8)
    d = calloutd(sections={"engine": {"catch_all": "no"}})
    run(d, "abort.lua", SENDER="<gone@fake8.test>", RCPT=SOME_RCPT, WAIT="1")
    # the check goes on without the MTA and is decided, once
    line, = wait_decisions(d, "sender=<gone@fake8.test>", timeout=15)
    assert "verdict=invalid" in line and "action=reject" in line
    assert slow.session_count == 1
    # and the milter goes on serving
    run(d, "transaction.lua", SENDER=f"<{GOOD_SENDER}>", RCPTS=SOME_RCPT, DATA="yes")
    assert d.stop() == 0


def test_many_connections_at_once(calloutd, fake_smtp):
    """Every connection is served while others wait for their callout:
    40 MTA connections with a check of 1 s each end in about 1 s, not 40."""
    fake_smtp(SLOW_SESSION_UNKNOWN.format(delay=1), index=9)
    d = calloutd(sections={"engine": {"catch_all": "no"}})
    n = 40
    results = [None] * n

    def one(i):
        results[i] = miltertest(d, "transaction.lua", SENDER=f"<user{i}@fake9.test>",
                                RCPTS=SOME_RCPT, WANT_RCPTS="replycode")

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    failed = [r.stdout + r.stderr for r in results if r.returncode != 0]
    assert not failed, failed[0] + "\n--- calloutd:\n" + d.log_text()
    assert elapsed < 8, elapsed
    assert len(wait_decisions(d, "@fake9.test> ", n)) == n
    assert all("action=reject" in ln for ln in decisions(d, "@fake9.test> "))


def test_reload_applies_to_next_connection(calloutd, postfix_mx):
    d = calloutd()
    run(d, "transaction.lua", SENDER=f"<{BAD_SENDER}>", RCPTS=SOME_RCPT,
        WANT_RCPTS="replycode")
    d.write_config(sections={"milter": {"sender_at": "mail"}})
    d.hup()
    assert d.wait_log("configuration reloaded")
    run(d, "transaction.lua", SENDER=f"<{BAD_SENDER}>", WANT_MAIL="replycode")


def test_unix_socket(calloutd, postfix_mx):
    sockdir = tempfile.mkdtemp(prefix="calloutd-milter-")
    path = os.path.join(sockdir, "milter.sock")
    try:
        d = calloutd(sections={"milter": {"listen": f"unix:{path}"}})
        st = os.stat(path)
        assert stat.S_ISSOCK(st.st_mode)
        assert stat.S_IMODE(st.st_mode) == 0o660
        run(d, "transaction.lua", spec=f"unix:{path}", SENDER=f"<{BAD_SENDER}>",
            RCPTS=SOME_RCPT, WANT_RCPTS="replycode")
        assert d.stop() == 0
        assert not os.path.exists(path)
    finally:
        subprocess.run(["rm", "-rf", sockdir])


def test_listen_address_in_use(dns_server, tmp_path):
    """A milter socket that cannot be bound stops the start, with the reason."""
    with socket.socket() as busy:
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        conf = tmp_path / "calloutd.conf"
        conf.write_text(f"[daemon]\nlog = stderr\nstate_dir = {tmp_path}/state\n"
                        "[policy]\nlisten = none\n[http]\nlisten = none\n"
                        f"[milter]\nlisten = inet:{port}@127.0.0.1\n")
        p = subprocess.run([conftest.binary("calloutd"), "-c", str(conf)],
                           capture_output=True, text=True, timeout=30)
    assert p.returncode == 3, p.stderr
    assert f"milter: cannot listen on inet:{port}@127.0.0.1: Address already in use" \
        in p.stderr, p.stderr


def test_listen_unix_directory_missing(dns_server, tmp_path):
    conf = tmp_path / "calloutd.conf"
    missing = tmp_path / "missing"
    conf.write_text(f"[daemon]\nlog = stderr\nstate_dir = {tmp_path}/state\n"
                    "[policy]\nlisten = none\n[http]\nlisten = none\n"
                    f"[milter]\nlisten = unix:{missing}/milter.sock\n")
    p = subprocess.run([conftest.binary("calloutd"), "-c", str(conf)],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 3, p.stderr
    assert (f"milter: cannot listen on unix:{missing}/milter.sock: "
            f"{missing}: No such file or directory") in p.stderr, p.stderr


# --------------------------------------------------------------------------
# signals: libmilter's own signal thread must not take HUP or TERM


def test_hup_always_reaches_the_daemon(calloutd):
    """Each HUP reloads, the milter still serves afterwards.

    The process is stopped while HUP is sent and then continued: the
    signal is then pending for the whole process, and whichever thread
    runs first may take it -- libmilter's sigwait() thread among them,
    were it waiting (without calloutd's sigwait() it got about one HUP in
    thirty this way, and the milter was gone).
    """
    d = calloutd()
    milter_up(d)
    for i in range(1, 41):
        os.kill(d.proc.pid, signal.SIGSTOP)
        time.sleep(0.01)
        os.kill(d.proc.pid, signal.SIGHUP)
        os.kill(d.proc.pid, signal.SIGCONT)
        deadline = time.monotonic() + 5
        while d.log_text().count("configuration reloaded") < i:
            assert time.monotonic() < deadline, f"HUP {i} was lost:\n{d.log_text()}"
            time.sleep(0.01)
    assert "libmilter stopped" not in d.log_text()
    milter_up(d)


def test_hup_and_term_together(calloutd):
    """TERM right behind HUP (HUP still pending) stops the daemon."""
    d = calloutd()
    milter_up(d)
    os.kill(d.proc.pid, signal.SIGSTOP)
    os.kill(d.proc.pid, signal.SIGHUP)
    os.kill(d.proc.pid, signal.SIGTERM)
    os.kill(d.proc.pid, signal.SIGCONT)
    start = time.monotonic()
    assert d.proc.wait(timeout=15) == 0, d.log_text()
    assert time.monotonic() - start < 8
    assert "stopping" in d.log_text()


def test_term_stops_promptly_with_milter_connections_open(calloutd):
    """TERM while an MTA holds an idle milter connection: the daemon
    exits at once (libmilter's listener is woken, not waited for)."""
    d = calloutd()
    milter_up(d)
    idle = socket.create_connection(("127.0.0.1", testnet.CALLOUTD_MILTER_PORT))
    try:
        start = time.monotonic()
        assert d.stop() == 0, d.log_text()
        assert time.monotonic() - start < 5, d.log_text()
    finally:
        idle.close()


def test_term_answers_check_in_flight(calloutd, fake_smtp):
    fake_smtp(SLOW_UNKNOWN.format(delay=2), index=8)
    d = calloutd(sections={"engine": {"catch_all": "no"}})
    mt = subprocess.Popen([MILTERTEST, "-s", os.path.join(MILTER_DIR, "transaction.lua"),
                           "-D", f"DIR={MILTER_DIR}", "-D", f"SPEC={d.milter_spec}",
                           "-D", f"CLIENT={CLIENT}", "-D", "SENDER=<late@fake8.test>",
                           "-D", f"RCPTS={SOME_RCPT}", "-D", "WANT_RCPTS=replycode"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(0.7)          # the RCPT is waiting for the callout
        d.proc.send_signal(signal.SIGTERM)
        out, _ = mt.communicate(timeout=20)
    finally:
        if mt.poll() is None:
            mt.kill()
    assert mt.returncode == 0, out + "\n--- calloutd:\n" + d.log_text()
    assert d.proc.wait(timeout=20) == 0, d.log_text()
    assert "action=reject" in decisions(d, "sender=<late@fake8.test>")[0]


# --------------------------------------------------------------------------
# through Postfix (smtpd_milters)


@pytest.fixture
def through(calloutd, gateway, postfix_mx):
    """through(sections=..., config=...) -> (calloutd, gateway): the gateway
    with calloutd as its milter."""
    def start(config="", sections_=None, main_cf=None):
        d = calloutd(config, sections=sections_ or sections())
        gw = gateway(milters=f"inet:{testnet.CALLOUTD_IP}:{testnet.CALLOUTD_MILTER_PORT}",
                     main_cf=main_cf)
        return d, gw
    return start


def rcpt_of(result, i=0):
    assert len(result.rcpt) > i, result
    return result.rcpt[i]


def reply_to(result, command):
    for cmd, code, text in result.replies:
        if (cmd or "").upper().startswith(command):
            return code, text
    raise AssertionError(f"no reply to {command}:\n{result}")


def test_postfix_unknown_sender_rejected(through):
    d, gw = through()
    r = gw.send(BAD_SENDER, "alice@gateway.test", quit_after="RCPT")
    code, text = rcpt_of(r)
    assert code == 550, r
    assert text == (f"5.1.7 <{BAD_SENDER}>: Sender address rejected: undeliverable address "
                    "(mailbox_unknown)"), r
    assert "action=reject" in wait_decisions(d, f"sender=<{BAD_SENDER}>")[0]
    assert "milter-reject: RCPT from" in gw.log_since()


def test_postfix_valid_sender_delivered(through):
    d, gw = through()
    r = gw.send(GOOD_SENDER, "alice@gateway.test", subject="through the milter")
    assert rcpt_of(r)[0] == 250, r
    assert r.accepted, r
    msgs = gw.mailbox("alice", count=1)
    assert len(msgs) == 1 and msgs[0]["Subject"] == "through the milter"
    assert msgs[0]["X-Callout"] is None
    line, = wait_decisions(d, f"sender=<{GOOD_SENDER}>")
    assert "verdict=valid" in line and "action=pass" in line


def test_postfix_tag_mode_header_delivered(through):
    d, gw = through(sections_=sections(daemon={"mode": "tag"}))
    r = gw.send(BAD_SENDER, "bob@gateway.test", subject="tagged")
    assert r.accepted, r
    msgs = gw.mailbox("bob", count=1)
    assert len(msgs) == 1
    assert msgs[0]["X-Callout"] == \
        f"verdict=invalid; reason=mailbox_unknown; sender={BAD_SENDER}"


def test_postfix_percent_in_reply_text(through):
    d, gw = through(sections_=sections(verify={
        "sender_reject": "550 5.1.7 100% sure: <$address> takes no mail (50%off)"}))
    r = gw.send(BAD_SENDER, "alice@gateway.test", quit_after="RCPT")
    code, text = rcpt_of(r)
    assert code == 550, r
    # Postfix reads the reply as Sendmail does, "%%" for "%": unescaped, a
    # lone '%' would be dropped ("100 sure")
    assert text == f"5.1.7 100% sure: <{BAD_SENDER}> takes no mail (50%off)", r


def test_postfix_sender_at_mail(through):
    d, gw = through(sections_=sections(milter={"sender_at": "mail"}))
    r = gw.send(BAD_SENDER, "alice@gateway.test", quit_after="RCPT")
    code, text = reply_to(r, "MAIL")
    assert code == 550 and text.startswith(f"5.1.7 <{BAD_SENDER}>: Sender address rejected"), r


def test_postfix_sender_at_data(through):
    d, gw = through(sections_=sections(milter={"sender_at": "data"}))
    r = gw.send(BAD_SENDER, "alice@gateway.test", "bob@gateway.test", subject="at data")
    assert [c for c, _ in r.rcpt] == [250, 250], r
    assert not r.accepted, r
    code, text = reply_to(r, "DATA")
    assert code == 550 and text.startswith(f"5.1.7 <{BAD_SENDER}>: Sender address rejected"), r
    assert gw.mailbox("alice", timeout=0.5) == []
    # at DATA Postfix has a queue file, and hands its id ({i}) to the milter
    log = gw.log_since()
    m = re.search(r"(\w+): milter-reject: DATA from", log)
    assert m, log
    line, = wait_decisions(d, f"sender=<{BAD_SENDER}>")
    assert f"info: {m.group(1)}: milter client=127.0.0.1 " in line, line


def test_postfix_defer_in_progress(through, fake_smtp):
    fake_smtp(SLOW_OK.format(delay=3), index=7)
    d, gw = through(sections_=sections(daemon={"reply_within": "1s"},
                                       engine={"catch_all": "no"}))
    r = gw.send("someone@fake7.test", "alice@gateway.test", quit_after="RCPT")
    code, text = rcpt_of(r)
    assert code == 450, r
    assert text == "4.7.1 Address verification in progress, try again later", r


def test_postfix_call_forward(through, fake_smtp):
    fake_smtp(PRIMARY, index=6)
    d, gw = through(config=f"[domain {testnet.FORWARD_DOMAIN}]\n"
                           f"route = {fake_ip(6)}:{testnet.SMTP_PORT}\n")
    r = gw.send(GOOD_SENDER, "unknown@forward.test", "known@forward.test", quit_after="RCPT")
    (c1, t1), (c2, _) = rcpt_of(r, 0), rcpt_of(r, 1)
    assert c1 == 550 and t1.startswith(
        "5.1.1 <unknown@forward.test>: Recipient address rejected: undeliverable"), r
    assert c2 == 250, r
