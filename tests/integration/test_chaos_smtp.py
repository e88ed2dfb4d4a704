"""The chaotic SMTP server of the load tests (chaos_smtp.py) logs what it
really did: the load tests judge every answer of calloutd by that log, so
the log is checked here against what a client actually received.

300 sessions at once, each pipelining two transactions with three RCPTs
(unique addresses), against a "chaos" and a "chaos-banner" server with
short delays, read until the server closes or stays silent longer than
its longest delay.
"""
import asyncio
import re

import pytest

import testnet

SESSIONS = 300
SILENCE = 2.5       # the client's patience: longer than --delay-long
REPLY = re.compile(rb"^(\d{3})([ -])")


def commands(tag, domain):
    rcpts = [f"ok-{tag}a@{domain}", f"no-{tag}b@{domain}", f"ok-{tag}c@{domain}"]
    cmds = [("EHLO", None), ("MAIL", None), ("RCPT", rcpts[0]), ("RCPT", rcpts[1]),
            ("RSET", None), ("MAIL", None), ("RCPT", rcpts[2]), ("QUIT", None)]
    text = {"EHLO": "EHLO client.test", "MAIL": "MAIL FROM:<>", "RSET": "RSET", "QUIT": "QUIT"}
    wire = "".join((f"RCPT TO:<{a}>" if v == "RCPT" else text[v]) + "\r\n" for v, a in cmds)
    return cmds, wire.encode()


def replies(data):
    """The complete replies in a byte stream: their codes, in order."""
    out = []
    for line in data.split(b"\n"):
        m = REPLY.match(line)
        if m and m.group(2) == b" ":
            out.append(m.group(1).decode())
    return out


async def session(ip, tag, domain):
    cmds, wire = commands(tag, domain)
    try:
        reader, writer = await asyncio.open_connection(ip, testnet.SMTP_PORT)
    except ConnectionError:
        return cmds, {}  # reset at once: the connect itself fails
    data = b""
    try:
        writer.write(wire)
        while True:
            chunk = await asyncio.wait_for(reader.read(65536), SILENCE)
            if not chunk:
                break
            data += chunk
    except (asyncio.TimeoutError, ConnectionError):
        pass
    finally:
        writer.close()
    codes = replies(data)
    got = {}
    # replies in order: the banner, then one per command
    for (verb, addr), code in zip(cmds, codes[1:]):
        if verb == "RCPT":
            got[addr.lower()] = code
    return cmds, got


async def run_all(specs):
    return await asyncio.gather(*(session(ip, tag, dom) for ip, tag, dom in specs))


@pytest.mark.slow
def test_log_matches_what_clients_received(chaos_smtp):
    chaos_ip, banner_ip = testnet.chaos_ip(1), testnet.chaos_ip(9)
    server = chaos_smtp({chaos_ip: "chaos", banner_ip: "chaos-banner"}, seed=3,
                        args=["--delay-max", "0.3", "--delay-long", "1.5"])
    specs = [(chaos_ip if i % 3 else banner_ip, f"s{i}",
              "chaos1.test" if i % 3 else "chaos9.test") for i in range(SESSIONS)]
    results = asyncio.run(run_all(specs))
    assert server.wait_idle(0.5, timeout=30)
    server.stop()
    events = server.events()
    logged, conn_of, behaviour = {}, {}, {}
    for e in events:
        if e[0] == "A":
            behaviour[e[1]] = e[4]
        if e[0] == "R":
            assert e[3].lower() not in logged, f"one RCPT, one line: {e}"
            logged[e[3].lower()] = e[4]
            conn_of[e[3].lower()] = e[1]

    seen = set()
    for cmds, got in results:
        for verb, addr in cmds:
            if verb != "RCPT":
                continue
            addr = addr.lower()
            did = logged.get(addr)
            if addr in got:
                # every reply a client read is in the log, as it was sent
                # (busy: 421 in place of the reply, then the server hangs up)
                assert {"busy": "421"}.get(did, did) == got[addr], (addr, did, got[addr])
                if did in ("250", "550"):
                    assert (did == "250") == addr.startswith("ok-"), (addr, did)
            elif behaviour.get(conn_of.get(addr)) != "reset":
                # no reply read: the log does not claim one (but a reset
                # makes the client's kernel drop what it had not read yet)
                assert did in (None, "garble", "tarpit"), (addr, did)
            seen.add(did)
    beh = {e[4] for e in events if e[0] == "A"}
    assert beh == {"normal", "delay", "reset", "greylist", "busy", "garble", "tarpit"}, beh
    # every outcome shows up, faults at RCPT included
    assert {"250", "550", "450", "503", "reset", "garble", "tarpit", "busy"} <= seen, seen
    # the banner server's faults all strike before any RCPT
    banner_conns = {e[1] for e in events if e[0] == "A" and e[2] == banner_ip
                    and e[4] not in ("normal", "delay", "greylist")}
    assert banner_conns
    assert not [e for e in events if e[0] == "R" and e[1] in banner_conns]
    assert {e[3] for e in events if e[0] == "F" and e[1] in banner_conns} == {"banner"}
