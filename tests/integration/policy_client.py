"""A load client for calloutd's policy service, as Postfix uses it.

run(addr, senders, conns) opens `conns` connections to the policy socket
and sends one request per sender, at RCPT time, as Postfix's smtpd does:
many requests per connection, one in flight per connection (the next is
sent when the answer to the previous one has arrived), optionally paced
to a rate.  Returns a list of
Answer, in the order of `senders`: the action line ("action=..."), when it
was sent and when it was answered (time.monotonic()), or an error.

classify(action) -> "reject" | "defer" | "accept" | "other".
"""
import asyncio
import socket
import time

REQUEST = ("request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\n"
           "client_address={client}\nclient_name=client.example\nhelo_name=client.example\n"
           "queue_id=\ninstance={n}\nsender={sender}\nrecipient=someone@gateway.test\n"
           "size=0\n\n")


class Answer:
    __slots__ = ("sender", "action", "sent", "answered", "error")

    def __init__(self, sender):
        self.sender = sender
        self.action = None
        self.sent = None
        self.answered = None
        self.error = None

    def __repr__(self):
        return f"Answer({self.sender!r}, {self.action!r}, error={self.error!r})"


def classify(action):
    """What the MTA does with a policy answer."""
    if not action or not action.startswith("action="):
        return "other"
    v = action[len("action="):].strip()
    word = v.split(None, 1)[0].upper() if v else ""
    if word[:1] == "5" or word == "REJECT":
        return "reject"
    if word[:1] == "4" or word in ("DEFER", "DEFER_IF_PERMIT", "DEFER_IF_REJECT"):
        return "defer"
    if word in ("DUNNO", "OK", "PREPEND", "WARN", "INFO") or word == "":
        return "accept"
    return "other"


class _Conn(asyncio.Protocol):
    def __init__(self):
        self.transport = None
        self.buf = b""
        self.waiter = None
        self.lost = None

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.buf += data
        if self.waiter and not self.waiter.done() and b"\n\n" in self.buf:
            self.waiter.set_result(None)

    def connection_lost(self, exc):
        self.lost = exc or ConnectionResetError("closed by calloutd")
        if self.waiter and not self.waiter.done():
            self.waiter.set_exception(self.lost)

    async def ask(self, data, timeout):
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        if b"\n\n" not in self.buf:
            if self.lost:
                raise self.lost
            await asyncio.wait_for(self.waiter, timeout)
        i = self.buf.index(b"\n\n")
        reply, self.buf = self.buf[:i], self.buf[i + 2:]
        return reply.decode("utf-8", "replace").split("\n", 1)[0]


async def run_async(addr, senders, conns, timeout=60, client="192.0.2.10", rate=None):
    """The requests of `senders` over `conns` connections; with `rate`,
    request i is sent no earlier than i / rate seconds after the start."""
    answers = [Answer(s) for s in senders]
    loop = asyncio.get_running_loop()
    next_i = 0
    t0 = time.monotonic()

    async def worker():
        nonlocal next_i
        try:
            _, conn = await loop.create_connection(_Conn, addr[0], addr[1])
        except OSError as e:
            # the requests this worker would have sent are taken by others
            return e
        try:
            while next_i < len(answers):
                i = next_i
                a = answers[i]
                next_i += 1
                if rate:
                    wait = t0 + i / rate - time.monotonic()
                    if wait > 0:
                        await asyncio.sleep(wait)
                data = REQUEST.format(client=client, n=i, sender=a.sender).encode()
                a.sent = time.monotonic()
                try:
                    a.action = await conn.ask(data, timeout)
                except (OSError, asyncio.TimeoutError) as e:
                    a.error = repr(e)
                    return e
                a.answered = time.monotonic()
        finally:
            conn.transport.close()
        return None

    results = await asyncio.gather(*(worker() for _ in range(conns)))
    errors = [r for r in results if r is not None]
    for a in answers:
        if a.action is None and a.error is None:
            a.error = f"never sent: {len(errors)} connections failed, first {errors[:1]!r}"
    return answers


def run(addr, senders, conns, timeout=60, client="192.0.2.10", rate=None):
    return asyncio.run(run_async(addr, senders, conns, timeout, client, rate))


def exchange(addr, attrs, timeout=30, source=None):
    """One request on a new connection, `attrs` as name=value lines; the
    raw reply, its empty last line included."""
    data = "".join(f"{k}={v}\n" for k, v in attrs.items()) + "\n"
    src = (source, 0) if source else None
    with socket.create_connection(addr, timeout=timeout, source_address=src) as s:
        s.sendall(data.encode())
        reply = b""
        while not reply.endswith(b"\n\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            reply += chunk
    return reply.decode()
