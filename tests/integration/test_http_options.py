"""A request's own options over HTTP (issue 14): honoured within what the
operator opens in [http] request_options, or refused with 400 naming the
option -- never accepted and ignored; results list the MX hosts used and,
on request, the SMTP dialogue.  Checked at the scriptable fake SMTP server,
which records what it was sent.
"""
import json
import subprocess

import pytest

import conftest
import testnet
from fakesmtp import FakeSMTPServer
from test_http import SCRIPT, verify_post

OPEN = "timeout, sender, fallback_sender, helo, port, catch_all, max_mx, connect_timeout"


@pytest.fixture
def mx(fake_smtp):
    return fake_smtp(SCRIPT)


def post(body):
    r = verify_post(json.dumps(body))
    return r.status, r.json


def sent(srv):
    """Every command line the server was sent, over all its sessions."""
    return [line for s in srv.sessions_snapshot() for line in s.lines]


def test_closed_by_default_but_the_transcript(calloutd, mx):
    calloutd()
    addr = f"alice@[{mx.host}]"
    for body in ({"sender": "probe@example.org"}, {"helo": "other.test"}, {"port": 2525},
                 {"catch_all": True}, {"max_mx": 1}):
        status, j = post({"address": addr, **body})
        name = next(iter(body))
        assert status == 400 and j["error"] == "invalid_option", (body, j)
        assert f'"{name}" is not open to requests here' in j["message"], j
    status, j = post({"address": addr, "transcript": True})
    assert status == 200 and j["verdict"] == "valid", j
    assert f"RCPT TO:<{addr}>" in j["transcript"], j
    assert "250 2.1.5 Ok" in j["transcript"], j
    status, j = post({"address": addr, "transcript": "yes"})
    assert status == 400 and '"transcript": expected true or false' in j["message"], j
    status, j = post({"address": addr})
    assert "transcript" not in j, j


def test_opened_options_reach_the_server(calloutd, mx):
    calloutd(sections={"http": {"request_options": OPEN}})
    addr = f"alice@[{mx.host}]"
    status, j = post({"address": addr, "sender": "probe@example.org", "helo": "Other.Test",
                      "catch_all": False})
    assert status == 200 and j["verdict"] == "valid", j
    lines = sent(mx)
    assert "MAIL FROM:<probe@example.org>" in lines, lines
    assert any(line.lower() == "ehlo other.test" for line in lines), lines
    assert sum(line.startswith("RCPT") for line in lines) == 1, lines  # no random RCPT


def test_opened_options_are_still_judged(calloutd, mx):
    calloutd(sections={"http": {"request_options": OPEN}})
    addr = f"alice@[{mx.host}]"
    for body, words in [({"sender": "not an address"}, ['"sender": not a valid ADDR']),
                        ({"sender": 7}, ['"sender": expected ADDR']),
                        ({"helo": "bad name!"}, ['"helo": not a valid NAME']),
                        ({"sender": "a@b.example\r\nRCPT TO:<x@y>"}, ['"sender": not a valid']),
                        ({"max_mx": 50}, ['"max_mx": at most 5 here', "[engine] max_mx"]),
                        ({"connect_timeout": "10m"}, ['"connect_timeout": at most']),
                        ({"port": 70000}, ['"port":']),
                        ({"allow_private": True}, ['cannot be set per request'])]:
        status, j = post({"address": addr, **body})
        assert status == 400 and j["error"] == "invalid_option", (body, j)
        for w in words:
            assert w in j["message"], (w, j)
    assert mx.session_count == 0  # nothing reached the server


def test_another_port_is_asked_but_never_cached(calloutd, mx):
    """An answer on another port is not the domain's: it is neither served
    from the cache nor kept for those who ask on the usual port (where
    this server says valid and the other one invalid)."""
    other = FakeSMTPServer("on RCPT\n    send 550 5.1.1 no such user\n", host=mx.host,
                           port=testnet.SMTP_PORT + 1)
    other.start()
    try:
        calloutd(sections={"http": {"request_options": OPEN}})
        addr = f"bob+x@[{mx.host}]"
        for _ in range(2):
            status, j = post({"address": addr, "port": testnet.SMTP_PORT + 1})
            assert (status, j["verdict"], j["cached"]) == (200, "invalid", False), j
        assert sum(line.startswith("RCPT") for line in sent(other)) == 2
        status, j = post({"address": addr})
        assert (j["verdict"], j["cached"]) == ("valid", False), j
        status, j = post({"address": addr})
        assert (j["verdict"], j["cached"]) == ("valid", True), j
    finally:
        other.stop()


def test_results_list_the_mx_hosts(calloutd, fake_smtp):
    fake_smtp(SCRIPT, index=0)
    calloutd()
    status, j = post({"address": "alice@fake0.test"})
    assert (status, j["verdict"], j["mx"]) == (200, "valid", "mx.fake0.test"), j
    assert j["mx_hosts"] == ["mx.fake0.test"], j
    status, j = post({"address": "alice@fake0.test"})
    assert j["cached"] and "mx_hosts" not in j, j  # a cached answer names its server only
    status, j = post({"address": f"alice@[{testnet.FAKE_IP_BASE}{testnet.FAKE_IP_FIRST}]"})
    assert "mx_hosts" not in j, j  # an address literal has none


def test_request_options_config_errors(tmp_path):
    conf = tmp_path / "t.conf"
    for value, why in [("allow_private", "'allow_private' cannot be opened to requests"),
                       ("cache", "'cache' cannot be opened"),
                       ("bogus", "'bogus' cannot be opened")]:
        conf.write_text(f"[daemon]\nstate_dir = {tmp_path}\n[http]\nrequest_options = {value}\n")
        r = subprocess.run([conftest.binary("calloutd"), "-t", "-c", str(conf)],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 1 and why in r.stderr, (value, r.stderr)
        assert "sender" in r.stderr  # says which can
    conf.write_text(f"[daemon]\nstate_dir = {tmp_path}\n[http]\nrequest_options = {OPEN}\n")
    r = subprocess.run([conftest.binary("calloutd"), "-t", "-c", str(conf)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
