"""SMTP servers with a fixed personality, for the order-independence tests.

Each loopback address runs one *persona*: a real-world server behaviour
that answers every recipient as a fixed function of its local part, so
that the right verdict of an address never depends on what else was asked
in the same session, in what order, or what a cache remembers:

  local part   v-...  a mailbox that exists
               p-...  refused by a per-recipient policy (Microsoft 365's
                      "550 5.4.1 Recipient address rejected: Access denied")
               anything else (u-..., the catch-all probe, whose random
               local part has no "-"): no such user

  persona      accept      250 / 550 5.1.1
               catchall    250 for everything
               policy      250 / 550 5.4.1 Access denied / 550 5.1.1
               nullsender  MAIL FROM:<> refused; other senders as accept
               hangup      as accept, but closes the connection after any
                           refusal of a recipient (anti-harvesting)
               busy        as accept, but "421 ... closing" in place of the
                           third RCPT reply of a session, then closes
               stall       as accept, but answers nothing after the second
                           RCPT of a session
               greylist    450 4.7.1 greylisted for every recipient
               blocked     554 5.7.1 "Client host ... blocked using
                           zen.spamhaus.org" for every recipient: a block
                           of us, whoever is asked

Replies go out in order, one per command line, however many lines arrive
together (PIPELINING).  One asyncio loop in a thread serves every address;
`sessions` logs what each session was asked and answered.
"""
import asyncio
import threading

PERSONAS = ("accept", "catchall", "policy", "nullsender", "hangup", "busy", "stall",
            "greylist", "blocked")


def kind(local):
    """v (exists), p (policy refusal) or u (no such user)."""
    k = local.lower().split("-", 1)[0]
    return k if "-" in local and k in ("v", "p") else "u"


def expected(persona, local, catch_all=True):
    """The verdict and reason of local@server verified alone, as a rule."""
    kind_ = kind(local)
    if persona == "greylist":
        return ("tempfail", "greylisted")
    if persona == "blocked":
        return ("unknown", "policy_block")
    if persona == "nullsender":
        return ("unknown", "null_sender_rejected")
    if persona == "catchall":
        return ("unknown", "catch_all") if catch_all else ("valid", "accepted")
    if kind_ == "v":
        return ("valid", "accepted")
    if kind_ == "p" and persona == "policy":
        return ("unknown", "policy_block")
    return ("invalid", "mailbox_unknown")


class _Session(asyncio.Protocol):
    def __init__(self, srv, ip, persona):
        self.srv, self.ip, self.persona = srv, ip, persona
        self.buf = b""
        self.rcpts = 0
        self.silent = False
        self.log = {"ip": ip, "persona": persona, "rcpts": [], "ended": "client"}

    def connection_made(self, transport):
        self.t = transport
        self.srv.sessions.append(self.log)
        self.t.write(b"220 persona.test ESMTP\r\n")

    def data_received(self, data):
        self.buf += data
        while b"\r\n" in self.buf and not self.t.is_closing():
            line, self.buf = self.buf.split(b"\r\n", 1)
            if not self.silent:
                self.command(line.decode("latin-1"))

    def say(self, text):
        self.t.write(text.encode() + b"\r\n")

    def close(self, why):
        self.log["ended"] = why
        self.t.close()

    def command(self, line):
        verb = line.split(" ", 1)[0].upper()
        if verb in ("EHLO", "HELO"):
            self.say("250-persona.test\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES"
                     if verb == "EHLO" else "250 persona.test")
        elif verb == "MAIL":
            if self.persona == "nullsender" and line.upper().startswith("MAIL FROM:<>"):
                self.say("550 5.1.7 <>: Sender address rejected: null sender not accepted")
            else:
                self.say("250 2.1.0 Ok")
        elif verb == "RCPT":
            self.rcpt(line)
        elif verb in ("RSET", "NOOP"):
            self.say("250 2.0.0 Ok")
        elif verb == "QUIT":
            self.say("221 2.0.0 Bye")
            self.close("quit")
        else:
            self.say("502 5.5.2 Error: command not recognized")

    def rcpt(self, line):
        addr = line[line.find("<") + 1:line.rfind(">")]
        k = kind(addr.split("@", 1)[0])
        self.rcpts += 1
        p = self.persona
        if p == "busy" and self.rcpts == 3:
            self.log["rcpts"].append((addr, 421))
            self.say("421 4.7.0 persona.test Too much at once, closing connection")
            self.close("421")
            return
        if p == "stall" and self.rcpts == 3:
            self.log["rcpts"].append((addr, None))
            self.log["ended"] = "stalled"
            self.silent = True
            return
        if p == "greylist":
            reply = f"450 4.7.1 <{addr}>: Recipient address rejected: Greylisted, try again later"
        elif p == "blocked":
            reply = ("554 5.7.1 Service unavailable; Client host [127.0.0.1] blocked using "
                     "zen.spamhaus.org")
        elif p == "catchall" or k == "v":
            reply = "250 2.1.5 Ok"
        elif p == "policy" and k == "p":
            reply = f"550 5.4.1 <{addr}>: Recipient address rejected: Access denied"
        else:
            reply = f"550 5.1.1 <{addr}>: Recipient address rejected: User unknown"
        self.log["rcpts"].append((addr, int(reply[:3])))
        self.say(reply)
        if p == "hangup" and reply.startswith("5"):
            self.close("hangup")

    def connection_lost(self, exc):
        pass


class PersonaServers:
    """One persona per loopback address, all on one port."""

    def __init__(self, personas, port):
        self.personas = dict(personas)  # ip -> persona
        self.port = port
        self.sessions = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.servers = []

    def start(self):
        self.thread.start()

        async def listen():
            for ip, persona in self.personas.items():
                self.servers.append(await self.loop.create_server(
                    lambda ip=ip, persona=persona: _Session(self, ip, persona), ip, self.port,
                    reuse_address=True))
        asyncio.run_coroutine_threadsafe(listen(), self.loop).result(10)
        return self

    def stop(self):
        async def close():
            for s in self.servers:
                s.close()
        asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def sessions_of(self, ip):
        return [s for s in list(self.sessions) if s["ip"] == ip]
