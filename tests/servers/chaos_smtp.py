#!/usr/bin/env python3
"""A lean, chaotic SMTP server for the load tests: many sessions, one process.

    chaos_smtp.py --port P --log FILE --status FILE [--seed S] IP=PROFILE ...

Listens on every IP given, port P (asyncio, one thread: thousands of
sessions at once).  PROFILE is one of

  normal   every session answers properly;
  chaos    each session draws one behaviour (weights in CHAOS below):
           normal, delay (every reply late, sometimes later than any
           sensible command timeout), reset (TCP RST), greylist (450 at
           RCPT, or 451 at MAIL and then 503 to the RCPTs, as Postfix does),
           busy (421 in place of a reply, then close), garble (bytes that
           are not SMTP in place of a reply, then close or silence) and
           tarpit (stop answering, keep the connection open); the faults
           strike at a random point after the banner: EHLO, MAIL, or the
           first, second or third RCPT;
  chaos-banner  the same behaviours, the faults at the banner (greylisting
           at MAIL): the server is unusable from the start of the session.

Normal answers: EHLO offers PIPELINING (replies go out one per command
line, in order, however many lines arrive at once), MAIL 250, RCPT 250 for
a local part that starts with "ok-" and "550 5.1.1 ... User unknown" for
any other, RSET 250 (a new transaction may follow: several RCPTs and
several transactions per session are fine), QUIT 221.

The log (one line per event, tab-separated, flushed every 0.1 s and at
exit) says what the server actually did:

  A  conn ip profile behaviour     a connection was accepted
  R  conn ip address what          what the server did about RCPT TO:<address>:
                                   250, 550, 450, 503 (the reply sent), or
                                   reset, busy, garble, tarpit (no reply
                                   about the mailbox), unsent (delayed
                                   reply dropped: the client hung up first)
  F  conn ip stage what            a fault before any RCPT (stage banner,
                                   ehlo, mail)
  E  conn ip                       the connection is closed

The status file is rewritten (atomically) every 0.1 s while something
changes: one JSON object {"open": N, "accepted": {IP: n}, "peak": {IP: n},
"rcpts": n} -- open connections now, connections accepted and the most
open at once, per IP.  SIGTERM flushes the log and exits.
"""
import argparse
import asyncio
import json
import os
import random
import signal
import socket
import struct
import sys
import time

# Behaviours of a "chaos" session and their weights.
CHAOS = [("normal", 40), ("delay", 15), ("reset", 9), ("greylist", 9), ("busy", 5),
         ("garble", 10), ("tarpit", 12)]
# Where a fault strikes, and how likely each point is, per profile.
STAGES = {
    "chaos": [("ehlo", 1), ("mail", 1), ("rcpt1", 4), ("rcpt2", 2), ("rcpt3", 1)],
    "chaos-banner": [("banner", 1)],
}
DELAY_MAX = 0.8       # delay: each reply this late at most ... (--delay-max)
DELAY_LONG = 6.0      # ... and now and then (DELAY_LONG_P) one this late (--delay-long)
DELAY_LONG_P = 0.1

EHLO_REPLY = (b"250-%s\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n"
              b"250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n")


def _weighted(rng, table):
    total = sum(w for _, w in table)
    x = rng.uniform(0, total)
    for name, w in table:
        x -= w
        if x <= 0:
            return name
    return table[-1][0]


def garbage(rng):
    """Bytes that no SMTP client may read as a reply: no digit anywhere."""
    kind = rng.randrange(4)
    if kind == 0:
        return b"HTTP/x.x Bad Request\r\nServer: nginx\r\n\r\n"
    if kind == 1:
        return b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"  # a TLS hello, no CRLF
    raw = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
    raw = raw.translate(bytes.maketrans(b"0123456789", b"xxxxxxxxxx"))
    return raw + (b"\r\n" if kind == 2 else b"")


class Server:
    def __init__(self, profiles, log_path, status_path, seed, delay_max=DELAY_MAX,
                 delay_long=DELAY_LONG):
        self.profiles = profiles  # ip -> profile
        self.delay_max = delay_max
        self.delay_long = delay_long
        self.rng = random.Random(seed)
        self.log_f = open(log_path, "w", encoding="utf-8", errors="replace")
        self.log_buf = []
        self.status_path = status_path
        self.open = 0
        self.open_ip = {ip: 0 for ip in profiles}
        self.accepted = {ip: 0 for ip in profiles}
        self.peak = {ip: 0 for ip in profiles}
        self.rcpts = 0
        self.next_id = 0
        self.dirty = True

    def log(self, *fields):
        self.log_buf.append("\t".join(str(f) for f in fields) + "\n")
        self.dirty = True

    def flush(self):
        if self.log_buf:
            self.log_f.write("".join(self.log_buf))
            self.log_buf.clear()
            self.log_f.flush()
        if self.dirty:
            self.dirty = False
            tmp = self.status_path + ".tmp"
            with open(tmp, "w") as f:
                json.dump({"open": self.open, "accepted": self.accepted, "peak": self.peak,
                           "rcpts": self.rcpts, "time": time.time()}, f)
            os.replace(tmp, self.status_path)

    async def flusher(self):
        while True:
            await asyncio.sleep(0.1)
            self.flush()


class Session(asyncio.Protocol):
    def __init__(self, srv, ip):
        self.srv = srv
        self.ip = ip
        self.loop = asyncio.get_running_loop()
        srv.next_id += 1
        self.id = srv.next_id
        rng = srv.rng
        self.rng = rng
        self.behaviour = "normal"
        profile = srv.profiles[ip]
        if profile != "normal":
            self.behaviour = _weighted(rng, CHAOS)
        self.stage = None
        if self.behaviour not in ("normal", "delay"):
            self.stage = _weighted(rng, STAGES[profile])
            if self.behaviour == "greylist" and self.stage in ("banner", "ehlo"):
                self.stage = "mail"
        self.transport = None
        self.buf = b""
        self.queue = []          # command lines waiting for their turn (delay mode)
        self.busy = False        # a delayed reply is pending
        self.silent = False      # tarpit or after garbage: never answer again
        self.closed = False
        self.mail_ok = False
        self.mail_failed = False
        self.nrcpt = 0
        self.greylisting = False

    # -- connection -------------------------------------------------------
    def connection_made(self, transport):
        self.transport = transport
        srv, ip = self.srv, self.ip
        srv.open += 1
        srv.open_ip[ip] += 1
        srv.accepted[ip] += 1
        if srv.open_ip[ip] > srv.peak[ip]:
            srv.peak[ip] = srv.open_ip[ip]
        srv.log("A", self.id, ip, srv.profiles[ip], self.behaviour, f"{time.monotonic():.6f}")
        if self.strikes("banner"):
            srv.log("F", self.id, ip, "banner", self.fault("banner", None))
        else:
            self.reply(None, b"220 %s ESMTP chaos\r\n" % self.hostname(), "banner")

    def connection_lost(self, exc):
        self.closed = True
        srv = self.srv
        srv.open -= 1
        srv.open_ip[self.ip] -= 1
        srv.log("E", self.id, self.ip, f"{time.monotonic():.6f}")

    def eof_received(self):
        self.closed = True
        return False  # close our side too

    def hostname(self):
        return b"mx-" + self.ip.encode()

    # -- faults -----------------------------------------------------------
    def strikes(self, point):
        return self.stage == point

    def fault(self, point, address):
        """Do this session's fault in place of the reply; what to log."""
        b = self.behaviour
        t = self.transport
        if b == "reset":
            sock = t.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            t.abort()
            self.closed = True
            return "reset"
        if b == "busy":
            t.write(b"421 4.3.2 Service not available, closing transmission channel\r\n")
            t.close()
            self.closed = True
            return "busy"
        if b == "garble":
            t.write(garbage(self.rng))
            if self.rng.random() < 0.5:
                t.close()
                self.closed = True
            else:
                self.silent = True
            return "garble"
        if b == "tarpit":
            self.silent = True
            return "tarpit"
        raise AssertionError(b)

    # -- replies ----------------------------------------------------------
    def reply(self, line, data, what, address=None):
        """Send data (the reply to line); log `what` for an RCPT."""
        if self.behaviour == "delay":
            delay = self.rng.uniform(0, self.srv.delay_max)
            if self.rng.random() < DELAY_LONG_P:
                delay = self.srv.delay_long
            self.busy = True
            self.loop.call_later(delay, self._send_late, data, what, address)
            return
        self._send(data, what, address)

    def _send(self, data, what, address):
        if address is not None:
            self.srv.rcpts += 1
            self.srv.log("R", self.id, self.ip, address, what if not self.closed else "unsent")
        if self.closed:
            return
        self.transport.write(data)
        if what == "221":
            self.transport.close()
            self.closed = True

    def _send_late(self, data, what, address):
        self.busy = False
        self._send(data, what, address)
        self.pump()

    # -- commands ---------------------------------------------------------
    def data_received(self, data):
        if self.silent or self.closed:
            return
        self.buf += data
        if len(self.buf) > 65536:
            self.transport.close()
            self.closed = True
            return
        while True:
            i = self.buf.find(b"\n")
            if i < 0:
                break
            self.queue.append(self.buf[:i].rstrip(b"\r"))
            self.buf = self.buf[i + 1:]
        self.pump()

    def pump(self):
        while self.queue and not self.busy and not self.silent and not self.closed:
            self.command(self.queue.pop(0))

    def command(self, line):
        verb = line[:4].upper()
        if verb in (b"EHLO", b"HELO"):
            if self.strikes("ehlo"):
                self.srv.log("F", self.id, self.ip, "ehlo", self.fault("ehlo", None))
                return
            if verb == b"HELO":
                self.reply(line, b"250 %s\r\n" % self.hostname(), "250")
            else:
                self.reply(line, EHLO_REPLY % self.hostname(), "250")
        elif verb == b"MAIL":
            if self.strikes("mail"):
                if self.behaviour == "greylist":
                    self.mail_failed = True
                    self.srv.log("F", self.id, self.ip, "mail", "451")
                    self.reply(line, b"451 4.7.1 Greylisted, please try again later\r\n", "451")
                else:
                    self.srv.log("F", self.id, self.ip, "mail", self.fault("mail", None))
                return
            self.mail_ok = True
            self.reply(line, b"250 2.1.0 Ok\r\n", "250")
        elif verb == b"RCPT":
            self.rcpt(line)
        elif verb == b"RSET":
            self.mail_ok = False
            self.reply(line, b"250 2.0.0 Ok\r\n", "250")
        elif verb == b"QUIT":
            self.srv.log("Q", self.id, self.ip, f"{time.monotonic():.6f}")
            self.reply(line, b"221 2.0.0 Bye\r\n", "221")
        elif verb == b"NOOP":
            self.reply(line, b"250 2.0.0 Ok\r\n", "250")
        else:
            self.reply(line, b"502 5.5.2 Error: command not recognized\r\n", "502")

    def rcpt(self, line):
        self.nrcpt += 1
        text = line.decode("utf-8", "replace")
        lt, gt = text.find("<"), text.find(">")
        address = text[lt + 1:gt] if 0 <= lt < gt else text[8:].strip()
        address = address.replace("\t", " ")
        point = f"rcpt{self.nrcpt}"
        if not self.mail_ok:
            self.reply(line, b"503 5.5.1 Error: need MAIL command\r\n", "503", address)
            return
        if self.strikes(point) and self.behaviour == "greylist":
            self.greylisting = True
        if self.greylisting:
            self.reply(line, b"450 4.2.0 <%s>: Recipient address rejected: Greylisted, "
                       b"see http://postgrey.example/\r\n" % address.encode(), "450", address)
            return
        if self.strikes(point):
            self.srv.rcpts += 1
            self.srv.log("R", self.id, self.ip, address, self.fault(point, address))
            return
        local = address.rsplit("@", 1)[0]
        if local.startswith("ok-"):
            self.reply(line, b"250 2.1.5 Ok\r\n", "250", address)
        else:
            self.reply(line, b"550 5.1.1 <%s>: Recipient address rejected: User unknown in "
                       b"virtual mailbox table\r\n" % address.encode(), "550", address)


async def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--status", required=True)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--backlog", type=int, default=4096)
    ap.add_argument("--delay-max", type=float, default=DELAY_MAX)
    ap.add_argument("--delay-long", type=float, default=DELAY_LONG)
    ap.add_argument("listen", nargs="+", help="IP=PROFILE (normal, chaos, chaos-banner)")
    args = ap.parse_args()
    profiles = {}
    for item in args.listen:
        ip, _, profile = item.partition("=")
        if profile != "normal" and profile not in STAGES:
            ap.error(f"{item}: profile must be normal, chaos or chaos-banner")
        profiles[ip] = profile
    srv = Server(profiles, args.log, args.status, args.seed, args.delay_max, args.delay_long)
    loop = asyncio.get_running_loop()
    servers = []
    for ip in profiles:
        servers.append(await loop.create_server(lambda ip=ip: Session(srv, ip), ip,
                                                args.port, backlog=args.backlog,
                                                reuse_address=True))
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    flusher = asyncio.ensure_future(srv.flusher())
    srv.flush()
    print("ready", flush=True)
    await stop.wait()
    flusher.cancel()
    for s in servers:
        s.close()
    srv.dirty = True
    srv.flush()
    srv.log_f.close()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
