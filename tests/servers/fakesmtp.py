#!/usr/bin/python3
"""A scriptable fake SMTP server for the odd and hostile behaviours no real
server shows on demand.

Python 3.11 standard library only: one thread accepts, one thread per
session runs the script.  Every session is logged: the exact bytes the
client sent, split into command lines (the *client transcript*), which of
them arrived together (pipelined), TLS boundaries, and timings.

Used in-process by the pytest fixtures (fixtures_fake.py) and as a
command line tool:

    python3 tests/servers/fakesmtp.py --listen 127.0.0.30:10025 SCENARIO_FILE

The script language and the scenario file format are documented in
tests/integration/scenarios/README.md; in short:

    # optional qualifiers, then "on EVENT [PATTERN]", then indented actions
    on connect
        send 220-mx.fake.test ESMTP
        send 220 second banner line
    on EHLO
        send 250-mx.fake.test
        send 250 PIPELINING
    session 1 on MAIL FROM:<>
        send 550 5.7.1 null sender refused
    on RCPT TO:<alice@*>
        delay 0.5
        send 250 2.1.5 Ok
    on RCPT
        send 550 5.1.1 no such user
    on QUIT
        send 221 2.0.0 Bye
        close
"""
import argparse
import ast
import os
import re
import select
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

__all__ = [
    "ScriptError", "Rule", "Script", "Scenario", "FakeSMTPServer", "Session",
    "parse_script", "parse_scenario", "load_scenario", "make_self_signed_cert",
    "match_transcript", "format_sessions",
]

POLLRDHUP = getattr(select, "POLLRDHUP", 0x2000)
SETTLE = 0.005        # s: gather bytes the client sent together into one group
MAX_INBUF = 1 << 20   # bytes of unprocessed input kept per session
FOREVER_CAP = 600.0   # s: "forever" ends after this even if nobody hangs up
CLOSE_DRAIN = 2.0     # s: after our FIN, how long we still read what the client sends

DEFAULT_HOSTNAME = "fake.test"


class ScriptError(ValueError):
    """A scenario or script that cannot be parsed."""


# --------------------------------------------------------------------------
# Script: rules and actions

ACTIONS = {
    # name: (min args, max args) after splitting off the name; None: free text
    "send": None,
    "raw": None,
    "flush": (0, 0),
    "delay": (1, 1),
    "drip": None,
    "forever": None,
    "close": (0, 0),
    "reset": (0, 0),
    "hang": (0, 0),
    "starttls": (0, 1),
    "discard-input": (0, 0),
}

_TOKEN_RE = re.compile(r'\s*("(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\')(?:\*(\d+))?')


def parse_bytes(spec):
    """Bytes from a sequence of Python-style string literals, each optionally
    repeated: '"250-x\\r\\n"*3 "250 end\\r\\n"'.  Escapes are Python's
    bytes-literal escapes (\\r \\n \\t \\0 \\xNN \\\\ \\")."""
    out = bytearray()
    pos = 0
    spec = spec.rstrip()
    if not spec:
        raise ScriptError("raw bytes: nothing given")
    while pos < len(spec):
        m = _TOKEN_RE.match(spec, pos)
        if not m:
            raise ScriptError(f"raw bytes: cannot parse at {spec[pos:]!r}")
        lit = m.group(1)
        try:
            # Non-ASCII characters in the file are sent as UTF-8.
            val = ast.literal_eval("b" + lit) if lit.isascii() else \
                ast.literal_eval(lit).encode("utf-8")
        except (SyntaxError, ValueError) as e:
            raise ScriptError(f"raw bytes: bad literal {lit}: {e}") from None
        out += val * (int(m.group(2)) if m.group(2) else 1)
        pos = m.end()
    return bytes(out)


class Action:
    def __init__(self, name, arg, lineno):
        self.name = name
        self.arg = arg          # parsed argument (see Rule.parse_action)
        self.lineno = lineno

    def __repr__(self):
        return f"Action({self.name!r}, {self.arg!r})"


class Rule:
    """on EVENT [PATTERN] with qualifiers; actions run when it matches."""

    def __init__(self, event, pattern, sessions, once, lineno):
        self.event = event          # "connect", a verb in upper case, or "*"
        self.pattern = pattern      # glob over the command's argument, or None
        self.sessions = sessions    # set of session numbers, or None: all
        self.once = once
        self.lineno = lineno
        self.actions = []

    def __repr__(self):
        return f"Rule({self.event!r}, {self.pattern!r}, line {self.lineno})"

    def matches(self, event, arg, session_no, subst):
        if self.sessions is not None and session_no not in self.sessions:
            return False
        if self.event == "connect" or event == "connect":
            return self.event == event
        if self.event != "*" and self.event != event:
            return False
        if self.pattern is None:
            return True
        return glob_match(substitute(self.pattern, subst), arg)


def glob_match(pattern, text):
    """Case-insensitive match where only '*' is special (any run of
    characters); brackets and '?' are literal, as in <a@[127.0.0.1]>."""
    rx = "".join(".*" if p == "*" else re.escape(p) for p in re.split(r"(\*)", pattern))
    return re.fullmatch(rx, text, re.IGNORECASE | re.DOTALL) is not None


def substitute(text, subst):
    """Replace the {name} placeholders we know; other braces stay."""
    if not subst or "{" not in text:
        return text
    return re.sub(r"\{(\w+)\}", lambda m: str(subst.get(m.group(1), m.group(0))), text)


class Script:
    def __init__(self, rules):
        self.rules = rules

    def find(self, event, arg, session_no, used, subst):
        for i, r in enumerate(self.rules):
            if r.once and i in used:
                continue
            if r.matches(event, arg, session_no, subst):
                return i, r
        return None, None


_HEADER_RE = re.compile(
    r"^(?P<qual>(?:(?:session\s+[\d,\s]+?|once)\s+)*)on\s+(?P<event>\S+)(?:\s+(?P<pattern>.+?))?\s*$",
    re.IGNORECASE)


def _parse_qualifiers(qual, lineno):
    sessions = None
    once = False
    words = qual.split()
    i = 0
    while i < len(words):
        w = words[i].lower()
        if w == "once":
            once = True
            i += 1
        elif w == "session":
            nums = []
            i += 1
            while i < len(words) and re.fullmatch(r"[\d,]+", words[i]):
                nums += [int(n) for n in words[i].split(",") if n]
                i += 1
            if not nums:
                raise ScriptError(f"line {lineno}: 'session' needs numbers")
            sessions = set(nums)
        else:
            raise ScriptError(f"line {lineno}: unknown qualifier {words[i]!r}")
    return sessions, once


def _parse_action(text, lineno):
    name, _, rest = text.partition(" ")
    name = name.lower()
    if name not in ACTIONS:
        raise ScriptError(f"line {lineno}: unknown action {name!r}")
    if name == "send":
        # The text as written, after exactly one space; CRLF appended.
        return Action(name, rest, lineno)
    if name == "raw":
        return Action(name, parse_bytes(rest), lineno)
    if name in ("drip", "forever"):
        interval, _, data = rest.strip().partition(" ")
        try:
            iv = float(interval)
        except ValueError:
            raise ScriptError(f"line {lineno}: {name} INTERVAL BYTES") from None
        return Action(name, (iv, parse_bytes(data)), lineno)
    args = rest.split()
    lo, hi = ACTIONS[name]
    if not lo <= len(args) <= hi:
        raise ScriptError(f"line {lineno}: {name}: wrong number of arguments")
    if name == "delay":
        try:
            return Action(name, float(args[0]), lineno)
        except ValueError:
            raise ScriptError(f"line {lineno}: delay SECONDS") from None
    if name == "starttls":
        if args and args[0] != "fail":
            raise ScriptError(f"line {lineno}: starttls [fail]")
        return Action(name, bool(args), lineno)
    return Action(name, None, lineno)


def parse_script(text, first_lineno=1):
    """Parse the server script language into a Script."""
    rules = []
    cur = None
    for n, line in enumerate(text.splitlines(), first_lineno):
        if not line.strip() or line.strip().startswith("#"):
            continue
        if not line[0].isspace():
            m = _HEADER_RE.match(line.strip())
            if not m:
                raise ScriptError(f"line {n}: expected '[session N] [once] on EVENT [PATTERN]': {line!r}")
            sessions, once = _parse_qualifiers(m.group("qual") or "", n)
            event = m.group("event")
            event = "connect" if event.lower() == "connect" else event.upper()
            pattern = m.group("pattern")
            if event == "connect" and pattern:
                raise ScriptError(f"line {n}: 'on connect' takes no pattern")
            cur = Rule(event, pattern, sessions, once, n)
            rules.append(cur)
            continue
        if cur is None:
            raise ScriptError(f"line {n}: action outside of a rule")
        cur.actions.append(_parse_action(line.strip(), n))
    return Script(rules)


# Used when no rule matches.
DEFAULT_SCRIPT = parse_script(f"""
on connect
    send 220 {DEFAULT_HOSTNAME} ESMTP fakesmtp
on EHLO
    send 250 {DEFAULT_HOSTNAME}
on HELO
    send 250 {DEFAULT_HOSTNAME}
on MAIL
    send 250 2.1.0 Ok
on RCPT
    send 250 2.1.5 Ok
on RSET
    send 250 2.0.0 Ok
on NOOP
    send 250 2.0.0 Ok
on VRFY
    send 252 2.0.0 Cannot VRFY user
on STARTTLS
    send 454 4.7.0 TLS not available
on QUIT
    send 221 2.0.0 Bye
    close
on *
    send 502 5.5.2 Error: command not recognized
""")


# --------------------------------------------------------------------------
# Scenario files

SECTIONS = ("description", "server", "command", "options", "transcript", "result")


class Scenario:
    def __init__(self, path, sections, linenos):
        self.path = path
        self.name = os.path.splitext(os.path.basename(path))[0] if path else "<scenario>"
        self.sections = sections
        self.description = sections.get("description", "").strip()
        self.script = parse_script(sections.get("server", ""), linenos.get("server", 1))
        self.command = sections.get("command", "").strip()
        self.options = self._parse_kv(sections.get("options", ""), "options")
        self.result = self._parse_kv(sections.get("result", ""), "result")
        self.transcript = self._parse_transcript(sections.get("transcript"))

    @staticmethod
    def _parse_kv(text, what):
        out = {}
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            key, _, val = line.partition(" ")
            if not val.strip():
                raise ScriptError(f"[{what}] {key}: no value")
            out[key] = val.strip()
        return out

    @staticmethod
    def _parse_transcript(text):
        """List of sessions, each a list of expected transcript lines."""
        if text is None:
            return None
        sessions = [[]]
        for line in text.splitlines():
            s = line.strip()
            if not s or s.startswith("#"):
                continue
            m = re.fullmatch(r"\[session (\d+)\]", s)
            if m:
                k = int(m.group(1))
                if k == 1 and len(sessions) == 1 and not sessions[0]:
                    continue
                if k != len(sessions) + 1:
                    raise ScriptError(f"[transcript] {s!r}: sessions must be numbered 1, 2, ...")
                sessions.append([])
                continue
            sessions[-1].append(s)
        return sessions

    def option(self, key, default=None, conv=str):
        return conv(self.options[key]) if key in self.options else default


def parse_scenario(text, path=None):
    sections = {}
    linenos = {}
    cur = None
    for n, line in enumerate(text.splitlines(), 1):
        m = re.fullmatch(r"==\s*(\w+)\s*", line)
        if m:
            cur = m.group(1).lower()
            if cur not in SECTIONS:
                raise ScriptError(f"{path}:{n}: unknown section {cur!r}")
            if cur in sections:
                raise ScriptError(f"{path}:{n}: section {cur!r} twice")
            sections[cur] = ""
            linenos[cur] = n + 1
            continue
        if cur is None:
            if line.strip() and not line.startswith("#"):
                raise ScriptError(f"{path}:{n}: text before the first '== section'")
            continue
        sections[cur] += line + "\n"
    try:
        return Scenario(path, sections, linenos)
    except ScriptError as e:
        raise ScriptError(f"{path}: {e}") from None


def load_scenario(path):
    with open(path, encoding="utf-8") as f:
        return parse_scenario(f.read(), path)


# --------------------------------------------------------------------------
# Transcripts

def _show(b):
    """A received line as text: UTF-8 where valid, control bytes escaped."""
    s = b.decode("utf-8", "backslashreplace")
    return "".join(c if c >= " " and c != "\x7f" else f"\\x{ord(c):02x}" if c not in "\r\n\t"
                   else {"\r": "\\r", "\n": "\\n", "\t": "\\t"}[c] for c in s)


def match_line(expected, actual, subst):
    """expected may hold {*} (any text) and the placeholders in subst."""
    parts = re.split(r"(\{\*\})", expected)
    rx = "".join(".*" if p == "{*}" else re.escape(substitute(p, subst)) for p in parts)
    return re.fullmatch(rx, actual, re.DOTALL) is not None


def match_transcript(expected_sessions, actual_sessions, subst):
    """True when every session's lines match, and the counts agree."""
    if len(expected_sessions) != len(actual_sessions):
        return False
    for exp, act in zip(expected_sessions, actual_sessions):
        if len(exp) != len(act):
            return False
        if not all(match_line(e, a, subst) for e, a in zip(exp, act)):
            return False
    return True


def format_sessions(sessions):
    out = []
    for i, lines in enumerate(sessions, 1):
        out.append(f"[session {i}]")
        out += ["    " + l for l in lines]
    return "\n".join(out)


# --------------------------------------------------------------------------
# TLS

def make_self_signed_cert(directory, cn=DEFAULT_HOSTNAME):
    """Generate cert.pem and key.pem with `openssl req` into directory."""
    cert = os.path.join(directory, "cert.pem")
    key = os.path.join(directory, "key.pem")
    if not (os.path.exists(cert) and os.path.exists(key)):
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", key, "-out", cert, "-days", "7", "-subj", f"/CN={cn}",
             "-addext", f"subjectAltName=DNS:{cn},DNS:*.test,IP:127.0.0.1"],
            check=True, capture_output=True)
    return cert, key


# A TLS 1.x fatal alert record: handshake_failure (40).
TLS_ALERT_HANDSHAKE_FAILURE = b"\x15\x03\x03\x00\x02\x02\x28"


# --------------------------------------------------------------------------
# Sessions

class _PeerGone(Exception):
    """The client hung up, or the server is stopping: end the session."""


class Session:
    """One client connection: the log and the script interpreter."""

    def __init__(self, server, sock, peer, number):
        self.server = server
        self.sock = sock
        self.peer = peer
        self.number = number        # 1-based, in accept order
        self.started = time.monotonic()
        self.ended = None
        self.end_reason = None      # "client" | "server" | "stop" | "error: ..."
        self.raw = bytearray()      # every byte received (decrypted after TLS)
        self.entries = []           # ("line", text, group, t) | ("mark", text, None, t)
        self.sent = bytearray()     # every byte we sent (before encryption)
        self.tls = False
        self.done = threading.Event()
        self._inbuf = bytearray()
        self._pending = []          # [(bytes line, group)] received, not yet processed
        self._group = 0
        self._eof = False
        self._out = bytearray()
        self._used = set()
        self._lock = threading.Lock()

    # ---- the log

    @property
    def lines(self):
        """The command lines received, in order, without markers."""
        with self._lock:
            return [e[1] for e in self.entries if e[0] == "line"]

    def transcript(self):
        """The client transcript in scenario notation: one entry a line,
        '+ ' before a line that arrived together with the one before it
        (pipelined), '[tls]' and similar markers in brackets."""
        out = []
        prev_group = None
        with self._lock:
            entries = list(self.entries)
        for kind, text, group, _t in entries:
            if kind == "mark":
                out.append(f"[{text}]")
                prev_group = None
                continue
            out.append(("+ " if group is not None and group == prev_group else "") + text)
            prev_group = group
        return out

    def _mark(self, text):
        with self._lock:
            self.entries.append(("mark", text, None, time.monotonic() - self.started))
        self.server._log(self, f"-- {text}")

    def _add_bytes(self, data):
        """Record received bytes; complete lines become transcript entries
        and pending commands.  One call = one group."""
        self._group += 1
        self.raw += data
        self._inbuf += data
        now = time.monotonic() - self.started
        while True:
            i = self._inbuf.find(b"\r\n")
            if i < 0:
                break
            line = bytes(self._inbuf[:i])
            del self._inbuf[:i + 2]
            with self._lock:
                self.entries.append(("line", _show(line), self._group, now))
            self._pending.append((line, self._group))
            self.server._log(self, f"C: {_show(line)}")
        if len(self._inbuf) > MAX_INBUF:
            # A line without end: log it as it is and forget it.
            self._flush_partial()

    def _flush_partial(self):
        if self._inbuf:
            with self._lock:
                self.entries.append(("line", _show(bytes(self._inbuf)) + " [no CRLF]",
                                     self._group, time.monotonic() - self.started))
            self._inbuf.clear()

    # ---- socket helpers

    def _stopping(self):
        return self.server._stop.is_set()

    def _poll(self, events, timeout):
        p = select.poll()
        p.register(self.sock.fileno(), events)
        try:
            return p.poll(max(0, int(timeout * 1000)))
        except (OSError, ValueError):
            return [(0, select.POLLERR)]

    def _recv_some(self, blocking_timeout):
        """Receive what is there (waiting up to blocking_timeout for the
        first byte); return b"" on EOF, None when nothing came."""
        pending_tls = isinstance(self.sock, ssl.SSLSocket) and self.sock.pending()
        if not pending_tls and not self._poll(select.POLLIN | select.POLLHUP | select.POLLERR, blocking_timeout):
            return None
        try:
            self.sock.settimeout(1.0)
            data = self.sock.recv(65536)
        except (TimeoutError, socket.timeout, ssl.SSLWantReadError):
            return None
        except (ConnectionError, OSError, ssl.SSLError):
            return b""
        return data

    def _fill(self):
        """Wait for more input; gather everything the client sent in one
        go.  Returns False on EOF (pending lines may remain)."""
        while not self._stopping():
            data = self._recv_some(0.1)
            if data is None:
                continue
            if data == b"":
                self._eof = True
                return False
            # Anything else already on its way belongs to the same group.
            while True:
                more = self._recv_some(SETTLE)
                if more is None:
                    break
                if more == b"":
                    self._eof = True
                    break
                data += more
            self._add_bytes(data)
            return not self._eof
        raise _PeerGone("stop")

    def _drain_nowait(self, wait=0.0):
        """Read and record what the client sent without processing it
        (at the end, or while we are not reading commands)."""
        deadline = time.monotonic() + wait
        while True:
            data = self._recv_some(max(0.0, deadline - time.monotonic()))
            if not data:
                if data == b"":
                    self._eof = True
                return
            self._add_bytes(data)

    def _peer_closed(self):
        ev = self._poll(POLLRDHUP | select.POLLHUP | select.POLLERR, 0)
        return bool(ev) and any(e & (POLLRDHUP | select.POLLHUP | select.POLLERR) for _, e in ev)

    def _wait(self, seconds):
        """Sleep, unless the client hangs up or the server stops."""
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if self._stopping():
                raise _PeerGone("stop")
            ev = self._poll(POLLRDHUP | select.POLLHUP | select.POLLERR, min(left, 0.1))
            if ev and any(e & (POLLRDHUP | select.POLLHUP | select.POLLERR) for _, e in ev):
                raise _PeerGone("client")

    def _send_now(self, data):
        self.sent += data
        try:
            self.sock.settimeout(10.0)
            self.sock.sendall(data)
        except (OSError, ssl.SSLError):
            raise _PeerGone("client") from None

    def flush(self):
        if self._out:
            data = bytes(self._out)
            self._out.clear()
            for line in data.split(b"\r\n")[:-1] if data.endswith(b"\r\n") else [data]:
                self.server._log(self, f"S: {_show(line)}")
            self._send_now(data)

    # ---- the interpreter

    def _subst(self):
        return {"ip": self.server.host, "port": self.server.port, "session": self.number,
                "hostname": DEFAULT_HOSTNAME, **self.server.subst}

    def _run_rule(self, event, arg):
        subst = self._subst()
        for script in (self.server.script, DEFAULT_SCRIPT):
            idx, rule = script.find(event, arg, self.number, self._used if script is self.server.script
                                    else set(), subst)
            if rule is not None:
                if rule.once and script is self.server.script:
                    self._used.add(idx)
                break
        for act in rule.actions:
            if self._do(act, subst):
                return True
        self.flush()
        return False

    def _do(self, act, subst):
        """Run one action; True when the session is over."""
        name, arg = act.name, act.arg
        if name == "send":
            self._out += substitute(arg, subst).encode("utf-8") + b"\r\n"
        elif name == "raw":
            self._out += arg
        elif name == "flush":
            self.flush()
        elif name == "delay":
            self.flush()
            self._wait(arg)
        elif name == "drip":
            self.flush()
            interval, data = arg
            for i in range(len(data)):
                if i:
                    self._wait(interval)
                self._send_now(data[i:i + 1])
            self.server._log(self, f"S: (dripped) {_show(data)}")
        elif name == "forever":
            self.flush()
            interval, data = arg
            self.server._log(self, f"S: (forever every {interval}s) {_show(data)}")
            deadline = time.monotonic() + FOREVER_CAP
            while time.monotonic() < deadline:
                self._send_now(data)
                self._drain_nowait()
                if self._eof:
                    raise _PeerGone("client")
                self._wait(interval)
            raise _PeerGone("server")
        elif name == "close":
            self.flush()
            self._close_gracefully()
            return True
        elif name == "reset":
            self._out.clear()
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            except OSError:
                pass
            self.end_reason = "server"
            self.server._log(self, "-- reset")
            return True
        elif name == "hang":
            self.flush()
            self.server._log(self, "-- hang: not reading any more")
            while True:
                self._wait(3600)
        elif name == "starttls":
            self.flush()
            if not self._starttls(fail=arg):
                self.end_reason = "server"
                return True
        elif name == "discard-input":
            self._pending.clear()
            self._inbuf.clear()
        return False

    def _close_gracefully(self):
        """FIN, then keep reading (and logging) until the client closes."""
        self.end_reason = "server"
        self.server._log(self, "-- close")
        if isinstance(self.sock, ssl.SSLSocket):
            return
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            return
        deadline = time.monotonic() + CLOSE_DRAIN
        while not self._eof and time.monotonic() < deadline and not self._stopping():
            self._drain_nowait(min(0.1, deadline - time.monotonic()))

    def _starttls(self, fail):
        # RFC 3207: whatever the client sent after STARTTLS before the
        # handshake must be discarded (it is in the transcript already).
        self._pending.clear()
        self._inbuf.clear()
        if fail:
            # Read the ClientHello record, answer with a fatal alert.
            try:
                self.sock.settimeout(10.0)
                hdr = self._recv_exact(5)
                if hdr and hdr[0] == 0x16:
                    self._recv_exact(int.from_bytes(hdr[3:5], "big"))
                    self._mark("tls failed: alert sent")
                else:
                    self._mark("tls failed: no ClientHello")
                self.sock.sendall(TLS_ALERT_HANDSHAKE_FAILURE)
            except (OSError, ValueError):
                self._mark("tls failed: client gone")
            return False
        ctx = self.server.ssl_context()
        try:
            self.sock.settimeout(10.0)
            tls = ctx.wrap_socket(self.sock, server_side=True, do_handshake_on_connect=False)
            tls.do_handshake()
        except (OSError, ssl.SSLError) as e:
            self._mark(f"tls failed: {e.__class__.__name__}")
            return False
        self.sock = tls
        self.tls = True
        self._mark("tls")
        return True

    def _recv_exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return buf

    def run(self):
        try:
            try:
                if not self._run_rule("connect", ""):
                    while True:
                        if not self._pending:
                            if self._eof:
                                self.end_reason = "client"
                                break
                            self._fill()
                            continue
                        line, _group = self._pending.pop(0)
                        text = line.decode("utf-8", "surrogateescape")
                        verb, _, arg = text.partition(" ")
                        if self._run_rule(verb.upper(), arg):
                            break
            except _PeerGone as e:
                self.end_reason = self.end_reason or str(e)
                if not self._stopping():
                    try:
                        self._drain_nowait()
                    except Exception:
                        pass
            if self.end_reason == "stop" or self._stopping():
                # Record what the client sent that we never read.
                try:
                    self._drain_nowait()
                except Exception:
                    pass
            self._flush_partial()
        except Exception as e:  # pragma: no cover - a bug here must be visible
            self.end_reason = f"error: {e!r}"
            self.server._log(self, f"-- internal error {e!r}")
        finally:
            try:
                self.sock.close()
            except OSError:
                pass
            self.ended = time.monotonic()
            self.server._log(self, f"-- end ({self.end_reason})")
            self.done.set()


# --------------------------------------------------------------------------
# Server

class FakeSMTPServer:
    """Listen on host:port and run script for every connection.

    script: a Script, a Scenario, or script text.
    """

    def __init__(self, script, host="127.0.0.40", port=10025, cert=None, key=None,
                 log=None, subst=None):
        if isinstance(script, str):
            script = parse_script(script)
        elif isinstance(script, Scenario):
            script = script.script
        self.script = script
        self.host = host
        self.port = port
        self.cert = cert
        self.key = key
        self.logfile = log
        self.subst = dict(subst or {})
        self.sessions = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._listener = None
        self._thread = None
        self._ssl_ctx = None
        self._tmpdir = None

    # ---- lifecycle

    def start(self):
        s = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((self.host, self.port))
            s.listen(64)
        except OSError:
            s.close()
            raise
        self._listener = s
        if self.port == 0:
            self.port = s.getsockname()[1]
        self._thread = threading.Thread(target=self._accept_loop, name=f"fakesmtp-{self.host}",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout=5.0):
        """Stop accepting, end every session (recording what the clients
        sent and we did not read), and wait for the threads."""
        self._stop.set()
        if self._thread:
            self._thread.join(timeout)
        if self._listener:
            self._listener.close()
            self._listener = None
        for sess in self.sessions_snapshot():
            sess.done.wait(timeout)
        if self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _accept_loop(self):
        while not self._stop.is_set():
            r, _, _ = select.select([self._listener], [], [], 0.1)
            if not r:
                continue
            # Under the lock, so wait_idle() never sees a connection that
            # left the backlog but is not a session yet.
            with self._cond:
                try:
                    conn, peer = self._listener.accept()
                except OSError:
                    continue
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sess = Session(self, conn, peer, len(self.sessions) + 1)
                self.sessions.append(sess)
                self._cond.notify_all()
            self._log(sess, f"-- connect from {peer[0]}:{peer[1]}")
            threading.Thread(target=self._run_session, args=(sess,), daemon=True,
                             name=f"fakesmtp-{self.host}-s{sess.number}").start()

    def _run_session(self, sess):
        sess.run()
        with self._cond:
            self._cond.notify_all()

    # ---- what happened

    def sessions_snapshot(self):
        with self._lock:
            return list(self.sessions)

    @property
    def session_count(self):
        with self._lock:
            return len(self.sessions)

    def transcripts(self):
        """One list of transcript lines per session (scenario notation)."""
        return [s.transcript() for s in self.sessions_snapshot()]

    def wait_sessions(self, n, timeout=5.0):
        """Wait until at least n sessions were accepted."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.sessions) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def wait_idle(self, timeout=5.0):
        """Wait until no connection waits to be accepted and every session
        has ended.  False on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            with self._cond:
                backlog = bool(self._listener) and bool(select.select([self._listener], [], [], 0)[0])
                busy = backlog or any(not s.done.is_set() for s in self.sessions)
            if not busy:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)

    # ---- TLS

    def ssl_context(self):
        with self._lock:
            if self._ssl_ctx is None:
                if not self.cert:
                    self._tmpdir = tempfile.mkdtemp(prefix="fakesmtp-tls-")
                    self.cert, self.key = make_self_signed_cert(self._tmpdir)
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                ctx.load_cert_chain(self.cert, self.key)
                self._ssl_ctx = ctx
            return self._ssl_ctx

    # ---- log

    def _log(self, sess, text):
        if self.logfile is None:
            return
        t = time.monotonic() - sess.started
        try:
            print(f"[{self.host} s{sess.number} {t:7.3f}] {text}", file=self.logfile, flush=True)
        except (OSError, ValueError):
            pass


# --------------------------------------------------------------------------
# Command line

def main(argv=None):
    ap = argparse.ArgumentParser(description="Scriptable fake SMTP server "
                                             "(see tests/integration/scenarios/README.md).")
    ap.add_argument("--listen", default="127.0.0.40:10025", metavar="IP:PORT",
                    help="address to listen on (IPv6 in brackets), default %(default)s")
    ap.add_argument("--tls-cert", help="certificate for STARTTLS (default: self-signed, generated)")
    ap.add_argument("--tls-key", help="key for --tls-cert")
    ap.add_argument("--quiet", action="store_true", help="do not log sessions to stderr")
    ap.add_argument("--check", action="store_true", help="only parse the file and exit")
    ap.add_argument("file", help="a scenario (.scn) or a bare server script")
    args = ap.parse_args(argv)

    with open(args.file, encoding="utf-8") as f:
        text = f.read()
    try:
        if re.search(r"^==\s*\w+\s*$", text, re.M):
            script = parse_scenario(text, args.file).script
        else:
            script = parse_script(text)
    except ScriptError as e:
        print(f"fakesmtp: {e}", file=sys.stderr)
        return 2
    if args.check:
        return 0
    m = re.fullmatch(r"\[?([^\]]+?)\]?:(\d+)", args.listen)
    if not m:
        ap.error("--listen IP:PORT")
    srv = FakeSMTPServer(script, m.group(1), int(m.group(2)), args.tls_cert, args.tls_key,
                         log=None if args.quiet else sys.stderr)
    srv.start()
    print(f"fakesmtp: listening on {args.listen}", file=sys.stderr, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        srv.stop()
        print(f"fakesmtp: {srv.session_count} session(s)", file=sys.stderr)
        for i, t in enumerate(srv.transcripts(), 1):
            print(f"[session {i}]", file=sys.stderr)
            for line in t:
                print("    " + line, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
