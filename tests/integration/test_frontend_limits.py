"""Front-end limits of calloutd (issue #12 items 5-7): attacks on loopback
while the Postfix policy socket must keep answering.

Every port comes from testnet.py (through the calloutd fixture)."""
import socket
import time

import pytest

import testnet
from policy_client import exchange

RCPT = ("request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\n"
        "client_address=127.0.0.1\nsender=\nrecipient=someone@example.test\n\n")
NOT_RCPT = {"request": "smtpd_access_policy", "protocol_state": "CONNECT"}


def ask(addr, source="127.0.0.1", timeout=5):
    """One DUNNO-answered request; returns (reply, seconds)."""
    t = time.monotonic()
    reply = exchange(addr, NOT_RCPT, timeout, source)
    return reply.strip(), time.monotonic() - t


def p99(xs):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * 0.99))]


def test_policy_per_client_cap_keeps_postfix_answered(calloutd):
    d = calloutd(sections={"policy": {"max_client_connections": "20"}})
    hog = []
    for _ in range(60):  # one local client opens far more than its share
        s = socket.socket()
        s.settimeout(2)
        s.bind(("127.0.0.5", 0))
        s.connect(d.policy_addr)
        hog.append(s)
    time.sleep(0.3)
    closed = 0
    for s in hog:
        try:
            s.settimeout(0.05)
            if s.recv(1) == b"":
                closed += 1
        except socket.timeout:
            pass
        except ConnectionError:
            closed += 1
    assert closed == 40, closed  # beyond its 20, each is refused
    lat = [ask(d.policy_addr)[1] for _ in range(100)]  # "Postfix", another address
    assert p99(lat) < 0.1, p99(lat)
    assert "max_client_connections" in d.log_text()
    for s in hog:
        s.close()


def test_policy_request_deadline_is_not_reset_by_bytes(calloutd):
    d = calloutd(sections={"policy": {"request_timeout": "1s"}})
    s = socket.create_connection(d.policy_addr, timeout=5)
    start = time.monotonic()
    dropped = None
    # a byte every 200 ms: an idle timer would never fire
    while time.monotonic() - start < 4:
        try:
            s.sendall(b"x")
        except OSError:
            dropped = time.monotonic() - start
            break
        s.settimeout(0.2)
        try:
            if s.recv(1) == b"":
                dropped = time.monotonic() - start
                break
        except socket.timeout:
            pass
    assert dropped is not None and dropped < 2.5, dropped
    assert "request not complete within 1000 ms" in d.log_text()
    reply, secs = ask(d.policy_addr)
    assert reply == "action=DUNNO" and secs < 0.1


def test_check_config_shows_the_limits(calloutd):
    d = calloutd(sections={"http": {"max_body": "32768"}})
    import subprocess
    import conftest
    out = subprocess.run([conftest.binary("calloutd"), "-t", "-c", d.config_path],
                         capture_output=True, text=True).stdout
    assert "max_client_connections 200, request_timeout 10000 ms" in out
    assert "max_body 32768 bytes" in out
