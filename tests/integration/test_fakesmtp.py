"""The fake SMTP server itself, driven by smtplib and raw sockets, so the
scenario tests can trust what it logs."""
import glob
import os
import smtplib
import socket
import ssl
import subprocess
import sys
import time

import pytest

import testnet
from conftest import SERVERS
from fakesmtp import (ScriptError, load_scenario, match_transcript, parse_bytes,
                      parse_scenario, parse_script)

HERE = os.path.dirname(os.path.abspath(__file__))

BASIC = """
on connect
    send 220-mx.fake.test ESMTP first line
    send 220 second line
on EHLO
    send 250-mx.fake.test
    send 250-PIPELINING
    send 250 8BITMIME
on MAIL
    send 250 2.1.0 Ok
on RCPT TO:<alice@*>
    send 250 2.1.5 Ok
on RCPT
    send 550 5.1.1 <{ip}> no such user
on QUIT
    send 221 2.0.0 Bye
    close
"""


class RawClient:
    """A socket and its reader; close() really closes (a makefile()
    reader would otherwise keep the socket open)."""

    def __init__(self, srv, timeout=5.0):
        self.sock = socket.create_connection((srv.host, srv.port), timeout=timeout)
        self.file = self.sock.makefile("rb")

    def __iter__(self):
        return iter((self, self.file))

    def sendall(self, data):
        self.sock.sendall(data)

    def recv(self, n):
        return self.sock.recv(n)

    def close(self):
        self.file.close()
        self.sock.close()


def raw_client(srv, timeout=5.0):
    return RawClient(srv, timeout)


def read_reply(f):
    lines = []
    while True:
        line = f.readline()
        if not line:
            return lines
        lines.append(line)
        if line[3:4] != b"-":
            return lines


# ---------------------------------------------------------------- parsing

def test_parse_bytes():
    assert parse_bytes(r'"250-x\r\n"*3 "250 end\r\n"') == b"250-x\r\n" * 3 + b"250 end\r\n"
    assert parse_bytes(r'"\x00\xff" ' "'a'*2") == b"\x00\xffaa"
    with pytest.raises(ScriptError):
        parse_bytes("unquoted")


def test_parse_script_errors():
    with pytest.raises(ScriptError):
        parse_script("    send 250 ok\n")           # action outside a rule
    with pytest.raises(ScriptError):
        parse_script("on MAIL\n    frobnicate\n")   # unknown action
    with pytest.raises(ScriptError):
        parse_script("on connect x\n")              # connect takes no pattern
    with pytest.raises(ScriptError):
        parse_script("sometimes on MAIL\n")         # unknown qualifier
    with pytest.raises(ScriptError):
        parse_script("on MAIL\n    delay soon\n")


def test_parse_qualifiers():
    sc = parse_script("session 1,3 once on RCPT TO:<a@*>\n    send 250 ok\non *\n    close\n")
    r = sc.rules[0]
    assert (r.event, r.pattern, r.sessions, r.once) == ("RCPT", "TO:<a@*>", {1, 3}, True)
    assert sc.rules[1].event == "*" and not sc.rules[1].actions[0].arg


SCENARIOS = sorted(glob.glob(os.path.join(HERE, "scenarios", "*.scn")))


@pytest.mark.parametrize("path", SCENARIOS, ids=[os.path.basename(p)[:-4] for p in SCENARIOS])
def test_every_scenario_parses(path):
    sc = load_scenario(path)
    assert sc.description, "a scenario says what it tests"
    assert sc.command, "a scenario has a command"
    assert sc.transcript is not None, "a scenario has an expected transcript"
    for key in ("verdict", "reason", "stage", "code", "enhanced"):
        assert key in sc.result, f"[result] lacks {key}"


def test_transcript_match():
    exp = parse_scenario("== transcript\nEHLO x\nMAIL FROM:<>\n+ RCPT TO:<{*}@[{ip}]>\n"
                         "[session 2]\nEHLO x\n").transcript
    assert exp == [["EHLO x", "MAIL FROM:<>", "+ RCPT TO:<{*}@[{ip}]>"], ["EHLO x"]]
    act = [["EHLO x", "MAIL FROM:<>", "+ RCPT TO:<k3x9@[127.0.0.40]>"], ["EHLO x"]]
    assert match_transcript(exp, act, {"ip": "127.0.0.40"})
    assert not match_transcript(exp, act[:1], {"ip": "127.0.0.40"})
    act[0][2] = "RCPT TO:<k3x9@[127.0.0.40]>"    # not pipelined
    assert not match_transcript(exp, act, {"ip": "127.0.0.40"})


# ---------------------------------------------------------------- dialogue

def test_smtplib_dialogue(fake_smtp):
    srv = fake_smtp(BASIC)
    with smtplib.SMTP(srv.host, srv.port, local_hostname="client.test", timeout=5) as c:
        code, msg = c.ehlo()
        assert code == 250 and c.has_extn("pipelining")
        assert c.mail("") == (250, b"2.1.0 Ok")
        assert c.rcpt("alice@example.org")[0] == 250
        code, msg = c.rcpt("bob@example.org")
        assert code == 550 and msg == f"5.1.1 <{srv.host}> no such user".encode()
    assert srv.wait_idle()
    assert srv.session_count == 1
    assert srv.transcripts() == [[
        "ehlo client.test", "mail FROM:<>", "rcpt TO:<alice@example.org>",
        "rcpt TO:<bob@example.org>", "QUIT"]]
    assert srv.sessions[0].end_reason == "server"


def test_multiline_banner_and_defaults(fake_smtp):
    srv = fake_smtp("on EHLO\n    send 250 x\n")
    s, f = raw_client(srv)
    assert read_reply(f) == [b"220 fake.test ESMTP fakesmtp\r\n"]     # default banner
    s.sendall(b"VRFY bob\r\n")
    assert read_reply(f) == [b"252 2.0.0 Cannot VRFY user\r\n"]
    s.sendall(b"XYZZY\r\n")
    assert read_reply(f)[0].startswith(b"502 ")
    s.sendall(b"QUIT\r\n")
    assert read_reply(f)[0].startswith(b"221 ")
    assert f.readline() == b""
    s.close()
    srv2 = fake_smtp(BASIC)
    s, f = raw_client(srv2)
    assert read_reply(f) == [b"220-mx.fake.test ESMTP first line\r\n", b"220 second line\r\n"]
    s.close()


def test_pipelined_group_and_order(fake_smtp):
    srv = fake_smtp(BASIC + "on RSET\n    delay 0.2\n    send 250 2.0.0 Ok\n")
    s, f = raw_client(srv)
    read_reply(f)
    s.sendall(b"EHLO c\r\n")
    read_reply(f)
    # One write: the server must answer all three, in order, and log them
    # as one group.
    s.sendall(b"RSET\r\nMAIL FROM:<>\r\nRCPT TO:<alice@x>\r\nRCPT TO:<zz@x>\r\n")
    replies = [read_reply(f)[0][:3] for _ in range(4)]
    assert replies == [b"250", b"250", b"250", b"550"]
    s.sendall(b"QUIT\r\n")
    read_reply(f)
    s.close()
    srv.wait_idle()
    assert srv.transcripts() == [["EHLO c", "RSET", "+ MAIL FROM:<>", "+ RCPT TO:<alice@x>",
                                  "+ RCPT TO:<zz@x>", "QUIT"]]


def test_sessions_and_once(fake_smtp):
    srv = fake_smtp("""
session 1 on MAIL FROM:<>
    send 550 5.7.1 null sender refused
on MAIL
    send 250 2.1.0 Ok
once on RCPT
    send 250 2.1.5 first
on RCPT
    send 452 4.5.3 Too many recipients
""")
    for expect_mail in (b"550", b"250"):
        s, f = raw_client(srv)
        read_reply(f)
        s.sendall(b"MAIL FROM:<>\r\n")
        assert read_reply(f)[0][:3] == expect_mail
        s.sendall(b"RCPT TO:<a@x>\r\n")
        assert read_reply(f)[0] == b"250 2.1.5 first\r\n"
        s.sendall(b"RCPT TO:<b@x>\r\n")
        assert read_reply(f)[0][:9] == b"452 4.5.3"
        s.close()
    assert srv.wait_idle()
    assert srv.session_count == 2
    assert [sess.end_reason for sess in srv.sessions] == ["client", "client"]


def test_raw_bytes_bare_lf_nul_and_8bit(fake_smtp):
    srv = fake_smtp(r"""
on connect
    raw "220 bare lf\n" "\x00\xff\xfe junk" "x"*2000 "\r\n"
""")
    s, f = raw_client(srv)
    assert f.readline() == b"220 bare lf\n"
    assert f.readline() == b"\x00\xff\xfe junk" + b"x" * 2000 + b"\r\n"
    s.sendall(b"EH\x00LO \xc3\xa9t\xe9\nx\r\npartial")
    s.close()
    srv.wait_idle()
    assert srv.transcripts() == [["EH\\x00LO ét\\xe9\\nx", "+ partial [no CRLF]"]]


def test_delay_drip_and_out_of_turn(fake_smtp):
    srv = fake_smtp(r"""
on connect
    send 220 hi
    send 250 out of turn
on EHLO
    delay 0.3
    drip 0.1 "250 ok\r\n"
""")
    s, f = raw_client(srv)
    assert read_reply(f) == [b"220 hi\r\n"]
    assert read_reply(f) == [b"250 out of turn\r\n"]     # came with the banner
    t0 = time.monotonic()
    s.sendall(b"EHLO c\r\n")
    assert read_reply(f) == [b"250 ok\r\n"]
    assert 0.3 + 7 * 0.1 - 0.05 <= time.monotonic() - t0 < 3
    s.close()


def test_forever_stops_when_client_leaves(fake_smtp):
    srv = fake_smtp(r"""
on EHLO
    forever 0.05 "250-x\r\n"
""")
    s, f = raw_client(srv)
    read_reply(f)
    s.sendall(b"EHLO c\r\n")
    for _ in range(10):
        assert f.readline() == b"250-x\r\n"
    s.close()
    assert srv.wait_idle(3)
    assert srv.sessions[0].end_reason == "client"


def test_close_stages_and_reset(fake_smtp):
    srv = fake_smtp("""
session 1 on connect
    close
session 2 on connect
    send 220-first half
    close
session 3 on connect
    reset
""")
    s, f = raw_client(srv)
    assert f.readline() == b""
    s.close()
    s, f = raw_client(srv)
    assert f.readline() == b"220-first half\r\n"
    assert f.readline() == b""
    s.close()
    try:
        s, f = raw_client(srv)
    except ConnectionResetError:
        pass  # the RST can reach the client before its connect() returns
    else:
        with pytest.raises(ConnectionResetError):
            s.recv(10)
            s.recv(10)
        s.close()
    assert srv.wait_idle()
    assert srv.session_count == 3


def test_hang_records_what_it_did_not_read(fake_smtp):
    srv = fake_smtp("on EHLO\n    hang\n")
    s, f = raw_client(srv)
    read_reply(f)
    s.sendall(b"EHLO c\r\n")
    time.sleep(0.2)
    s.sendall(b"MAIL FROM:<>\r\n")      # unread by the server ...
    time.sleep(0.2)
    s.close()
    assert srv.wait_idle(3)
    assert srv.transcripts() == [["EHLO c", "MAIL FROM:<>"]]   # ... and still logged


def test_hang_until_stop(fake_smtp):
    srv = fake_smtp("on connect\n    hang\n")
    s, f = raw_client(srv)
    s.sendall(b"EHLO c\r\n")
    assert not srv.wait_idle(0.3)
    srv.stop()
    assert srv.transcripts() == [["EHLO c"]]
    assert srv.sessions[0].end_reason == "stop"
    s.close()


def test_discard_input(fake_smtp):
    srv = fake_smtp("on MAIL\n    send 250 ok\n    discard-input\n")
    s, f = raw_client(srv)
    read_reply(f)
    s.sendall(b"MAIL FROM:<>\r\nRCPT TO:<a@b>\r\n")   # RCPT is dropped unanswered
    assert read_reply(f) == [b"250 ok\r\n"]
    s.sendall(b"NOOP\r\n")
    assert read_reply(f)[0].startswith(b"250 2.0.0")
    s.close()


STARTTLS = """
on EHLO
    send 250-mx.fake.test
    send 250 STARTTLS
on STARTTLS
    send 220 2.0.0 Ready to start TLS
    starttls
on MAIL
    send 250 2.1.0 Ok
"""


def test_starttls(fake_smtp):
    srv = fake_smtp(STARTTLS)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with smtplib.SMTP(srv.host, srv.port, local_hostname="c.test", timeout=5) as c:
        c.ehlo()
        c.starttls(context=ctx)
        c.ehlo()
        assert c.mail("")[0] == 250
    assert srv.wait_idle()
    assert srv.transcripts() == [["ehlo c.test", "STARTTLS", "[tls]", "ehlo c.test",
                                  "mail FROM:<>", "QUIT"]]
    assert srv.sessions[0].tls


def test_starttls_fail(fake_smtp):
    srv = fake_smtp(STARTTLS.replace("    starttls", "    starttls fail"))
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with smtplib.SMTP(srv.host, srv.port, local_hostname="c.test", timeout=5) as c:
        c.ehlo()
        with pytest.raises((ssl.SSLError, ConnectionError)):
            c.starttls(context=ctx)
        c.close()
    assert srv.wait_idle()
    assert srv.transcripts() == [["ehlo c.test", "STARTTLS", "[tls failed: alert sent]"]]


def test_dns_index_address(fake_smtp):
    srv = fake_smtp(BASIC, index=9)
    assert srv.host == "127.0.0.39" and srv.port == testnet.SMTP_PORT
    assert srv.subst["domain"] == "fake9.test"
    a = fake_smtp(BASIC)
    b = fake_smtp(BASIC)
    assert a.host != b.host and int(a.host.rsplit(".", 1)[1]) >= 40


def test_cli(tmp_path):
    scn = tmp_path / "x.scn"
    scn.write_text("== description\nx\n== server\non connect\n    send 220 cli ready\n")
    port = 0
    with socket.socket() as probe:          # a free port for this test only
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen([sys.executable, os.path.join(SERVERS, "fakesmtp.py"),
                             "--listen", f"127.0.0.1:{port}", str(scn)],
                            stderr=subprocess.PIPE, text=True)
    try:
        assert "listening" in proc.stderr.readline()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            f = s.makefile("rb")
            assert f.readline() == b"220 cli ready\r\n"
            s.sendall(b"QUIT\r\n")
            assert f.readline().startswith(b"221")
    finally:
        proc.send_signal(2)
        err = proc.communicate(timeout=10)[1]
    assert "1 session(s)" in err and "QUIT" in err
    assert subprocess.run([sys.executable, os.path.join(SERVERS, "fakesmtp.py"), "--check",
                           str(scn)]).returncode == 0
