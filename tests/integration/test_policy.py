"""calloutd's Postfix policy service (check_policy_service), end to end.

    swaks -> gateway Postfix (fixtures_gateway, 127.0.0.60)
               smtpd_recipient_restrictions = check_policy_service inet:...
             -> calloutd (fixtures_calloutd)
                  -> callout to the sender's MX: the remote Postfix
                     (postfix.test, 127.0.0.20) or a fake SMTP server
                     (fakeN.test, 127.0.0.3N)

The first group sends mail through the gateway and asserts on what the
client saw at RCPT, on what was delivered (headers included) and on what
calloutd logged.  The second talks the policy protocol straight to the
socket for what Postfix never does: pipelining, garbage, over-long lines,
hanging up mid-check.

Postfix words a policy reply its own way: "550 5.1.7 TEXT" from the policy
service reaches the client as "550 5.1.3 <rcpt>: Recipient address
rejected: TEXT" -- the "<address>: Recipient address rejected:" prefix is
smtpd's, and smtpd_dsn_fix() turns a sender status (X.1.7) into a recipient
one (X.1.3) because the restriction runs in smtpd_recipient_restrictions.
"""
import os
import re
import socket
import tempfile
import time

import pytest

import fixtures_calloutd
import testnet

# The test clients connect from loopback, which calloutd skips by default
# (skip_networks = 127.0.0.0/8, ::1/128): skip a network nobody uses instead.
VERIFY = {"skip_networks": "198.51.100.0/24"}

GREYLIST = """\
on RCPT *
    send 450 4.7.1 Greylisted, please try again in 5 minutes
"""

SLOW_RCPT = """\
on RCPT *
    delay 3
    send 250 2.1.5 Ok
"""

# The primary behind the gateway for forward.test: knows one user.
PRIMARY = """\
on RCPT TO:<known@forward.test>*
    send 250 2.1.5 Ok
on RCPT *
    send 550 5.1.1 <unknown@forward.test>: Recipient address rejected: User unknown
"""


def fake_ip(index):
    return f"{testnet.FAKE_IP_BASE}{testnet.FAKE_IP_FIRST + index}"


def sections(**extra):
    out = {"verify": dict(VERIFY)}
    for name, keys in extra.items():
        out.setdefault(name, {}).update(keys)
    return out


@pytest.fixture
def through(calloutd, gateway, postfix_mx):
    """through(sections=..., config=...) -> (calloutd, gateway): a calloutd
    with that configuration and the gateway asking it at RCPT."""
    def start(config="", sections_=None):
        d = calloutd(config, sections=sections_ or sections())
        gw = gateway(policy=d.policy_addr)
        return d, gw
    return start


def rcpt_of(result, i=0):
    assert len(result.rcpt) > i, result
    return result.rcpt[i]


# --------------------------------------------------------------------------
# through Postfix

def test_unknown_sender_rejected_at_rcpt(through, postfix_mx):
    d, gw = through()
    r = gw.send("nobody@postfix.test", "alice@gateway.test")
    code, text = rcpt_of(r)
    assert code == 550, r
    # our text, in Postfix's frame (see the module docstring)
    assert re.match(r"5\.1\.[37] <alice@gateway\.test>: Recipient address rejected: "
                    r"<nobody@postfix\.test>: Sender address rejected: undeliverable address "
                    r"\(mailbox_unknown\)", text), text
    assert not r.accepted
    assert d.wait_log("sender=<nobody@postfix.test>")
    assert d.wait_log("verdict=invalid reason=mailbox_unknown")
    assert d.wait_log("action=reject")


def test_valid_sender_delivered(through):
    d, gw = through()
    r = gw.send("alice@postfix.test", "bob@gateway.test", subject="valid sender")
    assert rcpt_of(r)[0] == 250, r
    assert r.accepted, r
    msgs = gw.mailbox("bob", count=1)
    assert [m["Subject"] for m in msgs] == ["valid sender"]
    assert msgs[0]["Return-Path"] == "<alice@postfix.test>"
    assert msgs[0]["X-Callout"] is None     # enforce mode adds nothing
    assert d.wait_log("verdict=valid reason=accepted")


def test_greylisting_sender_domain_deferred(through, fake_smtp):
    srv = fake_smtp(GREYLIST, index=5)
    d, gw = through()
    r = gw.send("someone@fake5.test", "alice@gateway.test")
    code, text = rcpt_of(r)
    assert code == 450, r
    assert "<someone@fake5.test>: Sender address rejected: unverified address (greylisted)" \
        in text
    assert not r.accepted
    assert srv.session_count >= 1


def test_greylisting_sender_accepted_with_defer_ok(through, fake_smtp):
    fake_smtp(GREYLIST, index=5)
    d, gw = through(sections_=sections(verify={"defer_ok": "yes"}))
    r = gw.send("someone@fake5.test", "alice@gateway.test", subject="defer_ok")
    assert rcpt_of(r)[0] == 250, r
    assert r.accepted, r
    assert [m["Subject"] for m in gw.mailbox("alice", count=1)] == ["defer_ok"]
    assert d.wait_log("verdict=tempfail reason=greylisted")


def test_null_sender_untouched(through, postfix_mx):
    d, gw = through()
    before = postfix_mx.sessions()
    r = gw.send("", "alice@gateway.test", subject="a bounce")
    assert rcpt_of(r)[0] == 250, r
    assert r.accepted, r
    msgs = gw.mailbox("alice", count=1)
    assert msgs[0]["Return-Path"] == "<>"
    assert d.wait_log('skipped="null sender"')
    # no callout was made
    assert postfix_mx.sessions(settle=1.0) == before


def test_authenticated_client_skipped(calloutd, postfix_mx):
    # smtpd would need Dovecot or Cyrus SASL to authenticate a client, and
    # the suite has neither: send the request Postfix would send for an
    # authenticated client straight to the policy socket.
    d = calloutd(sections=sections())
    before = postfix_mx.sessions()
    assert d.policy({"sender": "nobody@postfix.test", "recipient": "alice@gateway.test",
                     "sasl_method": "PLAIN", "sasl_username": "nobody"}) == "action=DUNNO"
    assert d.wait_log('skipped="authenticated client"')
    assert postfix_mx.sessions(settle=0.5) == before
    # the same request unauthenticated is verified, and refused
    assert d.policy({"sender": "nobody@postfix.test", "recipient": "alice@gateway.test"}) \
        .startswith("action=550 5.1.7 ")


def test_tag_mode_prepends_header(through):
    d, gw = through(sections_=sections(daemon={"mode": "tag"}))
    r = gw.send("nobody@postfix.test", "alice@gateway.test", "bob@gateway.test",
                subject="tagged")
    assert [c for c, _ in r.rcpt] == [250, 250], r
    assert r.accepted, r
    for user in ("alice", "bob"):
        msgs = gw.mailbox(user, count=1)
        # once, though Postfix asked at each of the two RCPTs
        assert msgs[0].get_all("X-Callout") == \
            ["verdict=invalid; reason=mailbox_unknown; sender=nobody@postfix.test"]
    assert d.wait_log("mode=tag")
    # on the socket: the same transaction ("instance") gets the header once
    c = Conn(d.policy_addr)
    tag = "action=PREPEND X-Callout: verdict=invalid; reason=mailbox_unknown; " \
          "sender=nobody@postfix.test"
    for instance, rcpt, want in (("1.1", "alice", tag), ("1.1", "bob", "action=DUNNO"),
                                 ("1.2", "alice", tag)):
        c.send(request(sender="nobody@postfix.test", recipient=f"{rcpt}@gateway.test",
                       instance=instance))
        assert c.reply() == want, (instance, rcpt)
    c.close()


def test_dry_run_changes_nothing(through):
    d, gw = through(sections_=sections(daemon={"mode": "dry-run"}))
    r = gw.send("nobody@postfix.test", "alice@gateway.test", subject="dry run")
    assert rcpt_of(r)[0] == 250, r
    assert r.accepted, r
    msgs = gw.mailbox("alice", count=1)
    assert msgs[0]["X-Callout"] is None
    assert d.wait_log("would=")
    log = d.log_text()
    line = [ln for ln in log.splitlines() if "sender=<nobody@postfix.test>" in ln
            and "verdict=" in ln]
    assert line, log
    assert "action=pass" in line[0] and "would=reject" in line[0] and "mode=dry-run" in line[0]


def test_call_forward(through, fake_smtp):
    primary = fake_smtp(PRIMARY, index=6)
    d, gw = through(config=f"[domain {testnet.FORWARD_DOMAIN}]\n"
                           f"route = {fake_ip(6)}:{testnet.SMTP_PORT}\n")
    r = gw.send("alice@postfix.test", "unknown@forward.test", quit_after="RCPT")
    code, text = rcpt_of(r)
    assert code == 550, r
    assert text.startswith("5.1.1 <unknown@forward.test>: Recipient address rejected: "
                           "<unknown@forward.test>: Recipient address rejected: "
                           "undeliverable address"), text
    r = gw.send("alice@postfix.test", "known@forward.test", subject="forwarded")
    assert rcpt_of(r)[0] == 250, r
    assert r.accepted, r
    sent = "\n".join("\n".join(t) for t in primary.transcripts())
    assert "RCPT TO:<unknown@forward.test>" in sent
    assert "RCPT TO:<known@forward.test>" in sent
    assert d.wait_log("checked=recipient verdict=invalid reason=mailbox_unknown")


@pytest.mark.slow
def test_reply_within_then_cache(through, fake_smtp):
    slow = fake_smtp(SLOW_RCPT, index=7)
    d, gw = through(sections_=sections(daemon={"reply_within": "1s"},
                                       engine={"catch_all": "no"}))
    r = gw.send("someone@fake7.test", "alice@gateway.test", quit_after="RCPT")
    code, text = rcpt_of(r)
    assert code == 450, r
    assert "4.7.1" in text and "in progress" in text, text
    assert r.elapsed < 2.9, r.elapsed     # did not wait for the 3 s RCPT
    # the probe goes on and fills the cache
    assert slow.wait_sessions(1)
    assert slow.wait_idle(timeout=10)
    time.sleep(0.3)
    r = gw.send("someone@fake7.test", "alice@gateway.test", subject="retry")
    assert rcpt_of(r)[0] == 250, r
    assert r.accepted, r
    assert r.elapsed < 1.0, r.elapsed     # answered from the cache
    assert slow.session_count == 1
    assert d.wait_log("cached=yes")


def test_policy_over_unix_socket(calloutd, gateway, postfix_mx):
    sockdir = tempfile.mkdtemp(prefix="calloutd-sock-")
    os.chmod(sockdir, 0o755)   # smtpd (user postfix) must reach the socket
    path = os.path.join(sockdir, "policy")
    # a socket file left behind by an earlier run is replaced
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)
    stale.close()
    d = calloutd(sections=sections(policy={"listen": f"unix:{path}", "socket_mode": "0666"}))
    try:
        assert oct(os.stat(path).st_mode & 0o777) == oct(0o666)
        gw = gateway(policy=path)
        r = gw.send("nobody@postfix.test", "alice@gateway.test")
        assert rcpt_of(r)[0] == 550, r
        r = gw.send("alice@postfix.test", "alice@gateway.test")
        assert r.accepted, r
        assert d.stop() == 0
        assert not os.path.exists(path)
    finally:
        d.stop()
        if os.path.exists(path):
            os.unlink(path)
        os.rmdir(sockdir)


def test_unix_socket_path_not_a_socket(dns_server, tmp_path):
    # started by hand: the calloutd fixture counts an exit status as a crash
    path = tmp_path / "policy"
    path.write_text("not a socket\n")
    d = fixtures_calloutd.Calloutd(str(tmp_path), dns_server.server)
    d.write_config(sections=sections(policy={"listen": f"unix:{path}"}))
    with pytest.raises(RuntimeError, match="exists and is not a socket"):
        d.start()
    assert d.proc.wait(10) == 3
    assert path.read_text() == "not a socket\n"   # left alone


# --------------------------------------------------------------------------
# the protocol, straight on the socket

def request(**attrs):
    req = {"request": "smtpd_access_policy", "protocol_state": "RCPT",
           "protocol_name": "ESMTP", "client_address": "192.0.2.10",
           "client_name": "client.example", "helo_name": "client.example",
           "queue_id": "", "sender": "", "recipient": "alice@gateway.test",
           "recipient_count": "0", "instance": "a1b.6543f.2"}
    req.update(attrs)
    return "".join(f"{k}={v}\n" for k, v in req.items() if v is not None) + "\n"


class Conn:
    """One policy connection: send text, read whole replies."""

    def __init__(self, addr, timeout=20):
        self.s = socket.create_connection(addr, timeout=timeout)
        self.buf = b""

    def send(self, text):
        self.s.sendall(text.encode() if isinstance(text, str) else text)

    def replies(self, n=1):
        while self.buf.count(b"\n\n") < n:
            chunk = self.s.recv(65536)
            if not chunk:
                raise EOFError(f"closed after {self.buf!r}")
            self.buf += chunk
        out = []
        for _ in range(n):
            one, self.buf = self.buf.split(b"\n\n", 1)
            out.append(one.decode())
        return out

    def reply(self):
        return self.replies(1)[0]

    def closed(self, timeout=5):
        """True when the server hangs up (EOF or reset) within timeout."""
        self.s.settimeout(timeout)
        try:
            while True:
                chunk = self.s.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    def close(self):
        self.s.close()


@pytest.fixture
def daemon(calloutd, postfix_mx):
    return calloutd(sections=sections())


REJECT_NOBODY = ("action=550 5.1.7 <nobody@postfix.test>: Sender address rejected: "
                 "undeliverable address (mailbox_unknown)")


def test_many_requests_one_connection(daemon):
    c = Conn(daemon.policy_addr)
    c.send(request(protocol_state="MAIL", sender="nobody@postfix.test", recipient=""))
    assert c.reply() == "action=DUNNO"
    c.send(request(sender=""))
    assert c.reply() == "action=DUNNO"
    c.send(request(sender="nobody@postfix.test"))
    assert c.reply() == REJECT_NOBODY
    c.send(request(sender="alice@postfix.test"))
    assert c.reply() == "action=DUNNO"
    # pipelined (Postfix does not, a client may): answered in order
    c.send(request(sender="alice@postfix.test", recipient="bob@gateway.test")
           + request(sender="nobody@postfix.test", recipient="bob@gateway.test")
           + request(protocol_state="DATA", sender="nobody@postfix.test")
           + request(sender="", recipient="bob@gateway.test"))
    assert c.replies(4) == ["action=DUNNO", REJECT_NOBODY, "action=DUNNO", "action=DUNNO"]
    c.close()


def test_crlf_lines_tolerated(daemon):
    c = Conn(daemon.policy_addr)
    c.send(request(sender="nobody@postfix.test").replace("\n", "\r\n"))
    assert c.reply() == REJECT_NOBODY
    c.close()


def test_other_request_and_states_dunno(daemon, postfix_mx):
    before = postfix_mx.sessions()
    c = Conn(daemon.policy_addr)
    c.send(request(request="junk_policy", sender="nobody@postfix.test"))
    assert c.reply() == "action=DUNNO"
    c.send(request(request=None, sender="nobody@postfix.test"))
    assert c.reply() == "action=DUNNO"
    for state in ("CONNECT", "EHLO", "HELO", "MAIL", "DATA", "END-OF-MESSAGE", "VRFY",
                  "ETRN", "rcpt"):
        c.send(request(protocol_state=state, sender="nobody@postfix.test"))
        assert c.reply() == "action=DUNNO", state
    assert daemon.wait_log("request=junk_policy is not smtpd_access_policy")
    assert postfix_mx.sessions(settle=0.5) == before   # no callout for any of them
    c.close()


def test_garbage_lines(daemon):
    c = Conn(daemon.policy_addr)
    c.send("this is not an attribute\nsender=nobody@postfix.test\n\n")
    assert c.reply() == "action=DUNNO"
    c.send(request(sender="nobody@postfix.test", helo_name="a\x00b"))
    assert c.reply() == "action=DUNNO"
    c.send(request(sender="nobody@postfix.test") + request(sender="nobody@postfix.test")
           .replace("sender=", "sender=x@y\nsender="))
    assert c.replies(2) == [REJECT_NOBODY, "action=DUNNO"]    # duplicate attribute
    c.send("\n")   # an empty request: no request=smtpd_access_policy
    assert c.reply() == "action=DUNNO"
    c.send(b"\xff\xfe=\x80\n\n")
    assert c.reply() == "action=DUNNO"
    # still in step: the next request is answered properly
    c.send(request(sender="nobody@postfix.test"))
    assert c.reply() == REJECT_NOBODY
    assert daemon.wait_log("bad request (line is not name=value)")
    c.close()


def test_overlong_line_disconnects(daemon):
    c = Conn(daemon.policy_addr)
    c.send(request(sender="nobody@postfix.test"))
    assert c.reply() == REJECT_NOBODY
    c.send("request=smtpd_access_policy\nsender=" + "x" * 5000)   # no LF yet
    assert c.closed()
    c.close()
    # a long line that ends, too
    c = Conn(daemon.policy_addr)
    c.send("helo_name=" + "h" * 3000 + "\n\n")
    assert c.closed()
    c.close()
    # too many attributes in one request
    c = Conn(daemon.policy_addr)
    c.send("".join(f"x{i}=y\n" for i in range(100)) + "\n")
    assert c.closed()
    c.close()
    assert daemon.wait_log("line too long; disconnecting")
    assert daemon.wait_log("too many attributes in a request; disconnecting")
    # the daemon serves others as before
    assert daemon.policy({"sender": "nobody@postfix.test"}) == REJECT_NOBODY


def test_long_sender_verified_not_dropped(daemon):
    # a sender longer than RFC 5321 allows still fits a line: it is answered
    # by the verification (too long to ask: deferred, never an invalid
    # sender's 550), not waved through as a bad request
    c = Conn(daemon.policy_addr)
    c.send(request(sender="x" * 1500 + "@postfix.test"))
    reply = c.reply()
    assert reply.startswith("action=450 4.1.7 "), reply
    c.close()


@pytest.mark.slow
def test_client_closes_mid_check(daemon, fake_smtp):
    slow = fake_smtp(SLOW_RCPT, index=8)
    c = Conn(daemon.policy_addr)
    c.send(request(sender="someone@fake8.test") + request(sender="other@fake8.test"))
    assert slow.wait_sessions(1)
    time.sleep(0.3)
    c.close()                                   # hang up while the check runs
    # others are answered meanwhile
    assert daemon.policy({"sender": "nobody@postfix.test"}) == REJECT_NOBODY
    # the check ends into the cache; its answer goes nowhere, no harm done
    assert daemon.wait_log("sender=<someone@fake8.test>")
    assert slow.wait_idle(timeout=15)
    assert daemon.policy({"sender": "someone@fake8.test"}) == "action=DUNNO"
    assert daemon.proc.poll() is None


def test_half_close_answered(daemon):
    # Exim's ${readsocket} shuts its side down after the request
    c = Conn(daemon.policy_addr)
    c.send(request(sender="nobody@postfix.test") + request(sender="alice@postfix.test"))
    c.s.shutdown(socket.SHUT_WR)
    assert c.replies(2) == [REJECT_NOBODY, "action=DUNNO"]
    assert c.closed()                            # and then closes
    c.close()
    # a request cut short by the end of input is dropped, not answered
    c = Conn(daemon.policy_addr)
    c.send("request=smtpd_access_policy\nprotocol_state=RCPT\nsender=nobody@postfix.test\n")
    c.s.shutdown(socket.SHUT_WR)
    assert c.closed()
    assert c.buf == b""
    c.close()


def test_sigterm_answers_requests_in_flight(calloutd, fake_smtp):
    fake_smtp(SLOW_RCPT, index=9)
    # one RCPT, no catch-all probe: the check takes the 3 s of one delay
    daemon = calloutd(sections=sections(engine={"catch_all": "no"}))
    c = Conn(daemon.policy_addr)
    c.send(request(sender="someone@fake9.test"))
    time.sleep(0.5)
    start = time.monotonic()
    daemon.proc.send_signal(15)
    assert c.reply() == "action=DUNNO"           # the check finished, answered
    assert time.monotonic() - start < 5
    assert daemon.proc.wait(10) == 0
    c.close()
