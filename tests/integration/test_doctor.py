"""`callout doctor` and calloutd's GET /v1/doctor: checks of our own side.

Against the suite's NSD (zones/README: the doctor's names, the reverse
zone 0.0.127.in-addr.arpa, the blocklist bl.test), the fake SMTP server
(with and without STARTTLS, a skewed Date in the banner) and Postfix.  Our
"egress" address is chosen with --source-address among 127.0.0.120 (PTR
good.doctor.test, forward-confirmed), .121 (PTR bad.doctor.test, which
resolves elsewhere; listed on bl.test) and .122 (no PTR).
"""
import email.utils
import json
import os
import subprocess

import pytest

import conftest
import testnet
from test_http import metrics, request

GOOD, BAD, NOPTR = "127.0.0.120", "127.0.0.121", "127.0.0.122"
NAMES = ["connect", "egress", "ptr", "fcrdns", "helo", "dnsbl", "starttls", "clock"]

TLS = """\
on connect
    send 220 mx.{domain} ESMTP fake; {date}
on EHLO
    send 250-mx.{domain}
    send 250 STARTTLS
on STARTTLS
    send 220 2.0.0 Ready to start TLS
    starttls
"""

PLAIN = """\
on connect
    send 220 mx.{domain} ESMTP fake; Mon, 1 Jan 2001 00:00:00 +0000
on EHLO
    send 250 mx.{domain}
"""

TLS_BROKEN = """\
on EHLO
    send 250-mx.{domain}
    send 250 STARTTLS
on STARTTLS
    send 220 2.0.0 Ready to start TLS
    starttls fail
"""


def doctor(*args, env=None, timeout=60):
    cmd = [conftest.binary("callout"), "doctor", "--dns-servers", testnet.DNS_SERVER,
           "--port", str(testnet.SMTP_PORT), "--timeout", "20s", "--connect-timeout", "3s",
           "--command-timeout", "3s", "--dns-timeout", "1s", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def doctor_json(*args, **kw):
    proc = doctor("--json", *args, **kw)
    assert proc.stdout.count("\n") == 1, (proc.stdout, proc.stderr)
    return proc, json.loads(proc.stdout)


def levels(j):
    return {c["check"]: c["level"] for c in j["checks"]}


def detail(j, name):
    return next(c["detail"] for c in j["checks"] if c["check"] == name)


@pytest.fixture
def tls_mx(dns_server, fake_smtp):
    now = email.utils.formatdate(usegmt=True)
    return fake_smtp(TLS.replace("{date}", now), index=5)


def test_all_pass_and_json_shape(tls_mx):
    proc, j = doctor_json("--source-address", GOOD, "--helo", "good.doctor.test",
                          "--dnsbl", "bl.test", "fake5.test")
    assert proc.returncode == 0, proc.stdout
    assert list(j) == ["target", "mx", "ip", "port", "egress", "helo", "ptr", "result", "ms",
                       "checks", "dnsbl"]
    assert [c["check"] for c in j["checks"]] == NAMES
    assert all(set(c) == {"check", "level", "detail"} for c in j["checks"])
    assert levels(j) == dict.fromkeys(NAMES, "pass"), j
    assert j["result"] == "pass"
    assert (j["target"], j["mx"], j["ip"], j["port"]) == (
        "fake5.test", "mx.fake5.test", "127.0.0.35", testnet.SMTP_PORT)
    assert (j["egress"], j["helo"], j["ptr"]) == (GOOD, "good.doctor.test", "good.doctor.test")
    assert j["dnsbl"] == [{"zone": "bl.test", "listed": False, "detail": "not listed"}]
    assert "TLS" in detail(j, "starttls")


def test_listed_and_mismatching_ptr(tls_mx):
    proc, j = doctor_json("--source-address", BAD, "--helo", "helo.doctor.test",
                          "--dnsbl", "bl.test", "fake5.test")
    assert proc.returncode == 1, proc.stdout
    lv = levels(j)
    assert lv["connect"] == lv["egress"] == "pass"
    assert lv["ptr"] == "warn"  # bad.doctor.test, not the HELO name
    assert "bad.doctor.test" in detail(j, "ptr")
    assert lv["fcrdns"] == "fail"
    assert "127.0.0.99" in detail(j, "fcrdns")
    assert lv["helo"] == "fail"  # helo.doctor.test is .120, not .121
    assert lv["dnsbl"] == "fail"
    assert j["dnsbl"] == [{"zone": "bl.test", "listed": True, "detail": "listed (127.0.0.2)"}]
    assert j["result"] == "fail"


def test_no_ptr(tls_mx):
    proc, j = doctor_json("--source-address", NOPTR, "--helo", "good.doctor.test",
                          "fake5.test")
    assert proc.returncode == 1
    lv = levels(j)
    assert lv["ptr"] == "fail" and "no PTR" in detail(j, "ptr")
    assert lv["fcrdns"] == "skip"
    assert lv["dnsbl"] == "skip"  # none configured


def test_helo_that_does_not_resolve(tls_mx):
    proc, j = doctor_json("--source-address", GOOD, "--helo", "nohelo.doctor.test",
                          "fake5.test")
    assert proc.returncode == 1
    assert levels(j)["helo"] == "fail"
    assert "does not exist" in detail(j, "helo")
    assert levels(j)["ptr"] == "warn"  # good.doctor.test is not the HELO name


def test_blocklist_servfail_is_a_warning_never_listed(tls_mx):
    proc, j = doctor_json("--source-address", GOOD, "--helo", "good.doctor.test",
                          "--dnsbl", "servfail.test,bl.test", "fake5.test")
    assert proc.returncode == 0, proc.stdout  # warnings only
    assert levels(j)["dnsbl"] == "warn"
    assert j["result"] == "warn"
    sf, bl = j["dnsbl"]
    assert sf["zone"] == "servfail.test" and sf["listed"] is None
    assert "could not check" in sf["detail"] and "SERVFAIL" in sf["detail"]
    assert bl["listed"] is False


def test_port_closed_fails(dns_server):
    proc, j = doctor_json("--host", testnet.DEAD_IP, "--helo", "good.doctor.test")
    assert proc.returncode == 1
    lv = levels(j)
    assert lv["connect"] == "fail"
    assert "refused" in detail(j, "connect").lower()
    assert lv["egress"] == lv["ptr"] == lv["starttls"] == "skip"
    assert j["mx"] == "" and j["egress"] == ""


def test_port_closed_with_a_source_still_checks_it(dns_server):
    proc, j = doctor_json("--host", f"{testnet.DEAD_IP}:{testnet.SMTP_PORT}",
                          "--source-address", BAD, "--dnsbl", "bl.test")
    assert proc.returncode == 1
    lv = levels(j)
    assert lv["connect"] == "fail" and lv["egress"] == "pass"
    assert lv["dnsbl"] == "fail" and lv["fcrdns"] == "fail"


def test_no_starttls_and_a_skewed_clock(dns_server, fake_smtp):
    fake_smtp(PLAIN, index=6)
    proc, j = doctor_json("--source-address", GOOD, "--helo", "good.doctor.test",
                          "fake6.test")
    assert proc.returncode == 0, proc.stdout
    lv = levels(j)
    assert lv["starttls"] == "warn" and "not offered" in detail(j, "starttls")
    assert lv["clock"] == "warn" and "ahead of" in detail(j, "clock")


def test_tls_handshake_failure(dns_server, fake_smtp):
    fake_smtp(TLS_BROKEN, index=7)
    proc, j = doctor_json("--source-address", GOOD, "--helo", "good.doctor.test",
                          "fake7.test")
    assert proc.returncode == 1
    assert levels(j)["starttls"] == "fail"
    assert levels(j)["clock"] == "skip"  # the default banner has no date


def test_clock_before_the_build_fails(tls_mx):
    proc, j = doctor_json("--source-address", GOOD, "--helo", "good.doctor.test",
                          "fake5.test", env={"CALLOUT_NOW": "86400"})
    assert proc.returncode == 1
    assert levels(j)["clock"] == "fail"
    assert "before this program was built" in detail(j, "clock")


def test_egress_discovered_from_the_connection(tls_mx):
    proc, j = doctor_json("--helo", "good.doctor.test", "fake5.test")
    assert j["egress"] == "127.0.0.1"
    assert "local end of the connection" in detail(j, "egress")
    assert levels(j)["ptr"] == "fail"  # 127.0.0.1 has no PTR here


def test_postfix_offers_starttls(dns_server, postfix_mx):
    proc, j = doctor_json("--source-address", GOOD, "--helo", "good.doctor.test",
                          "postfix.test")
    assert levels(j)["connect"] == "pass", j
    assert levels(j)["starttls"] == "pass", j
    assert j["ip"] == testnet.POSTFIX_IP


def test_ipv6_egress_on_a_blocklist(dns_server, postfix_mx):
    if not postfix_mx.ip6:
        pytest.skip("no IPv6")
    proc, j = doctor_json("--host", "[::1]", "--source-address", "::1", "--dnsbl", "bl.test")
    assert j["egress"] == "::1"
    assert j["dnsbl"][0]["listed"] is True, j


def test_private_target_refused_unless_allowed(dns_server, fake_smtp):
    fake_smtp(PLAIN, index=6)
    env = {k: v for k, v in os.environ.items() if k != "CALLOUT_ALLOW_PRIVATE"}
    cmd = [conftest.binary("callout"), "doctor", "--json", "--dns-servers", testnet.DNS_SERVER,
           "--port", str(testnet.SMTP_PORT), "--timeout", "10s", "fake6.test"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30, env=env)
    j = json.loads(proc.stdout)
    assert proc.returncode == 1
    assert levels(j)["connect"] == "fail"
    assert "allow-private" in detail(j, "connect")


def test_human_output(tls_mx):
    proc = doctor("--source-address", GOOD, "--helo", "good.doctor.test", "--dnsbl", "bl.test",
                  "fake5.test")
    assert proc.returncode == 0, proc.stdout
    lines = proc.stdout.splitlines()
    assert [ln.split()[:2] for ln in lines[:8]] == [["pass", n] for n in NAMES]
    assert lines[8].split() == ["dnsbl", "bl.test:", "not", "listed"]
    assert lines[-1] == "result: pass"


@pytest.mark.parametrize("args, message", [
    ([], "no domain or --host"),
    (["a.test", "b.test"], "one domain at a time"),
    (["--host", "mx.test", "a.test"], "not both"),
    (["bad..domain"], "invalid domain"),
    (["a\r\nb.test"], "invalid domain"),
    (["--host", "[::1"], "invalid host"),
    (["--host", "mx.test:0"], "invalid host"),
    (["--host", "mx\n.test"], "invalid host"),
    (["--dnsbl", "bl.test,,x.test", "a.test"], "empty zone"),
    (["--dnsbl", "bl..test", "a.test"], "invalid zone"),
    (["--dnsbl", "bl\r\n.test", "a.test"], "invalid zone"),
    (["--helo", "bad helo", "a.test"], "invalid HELO"),
    (["--source-address", "nope", "a.test"], "--source-address"),
    (["--port", "0", "a.test"], "--port"),
    (["--timeout", "-1", "a.test"], "--timeout"),
    (["--bogus", "a.test"], "bad option"),
])
def test_bad_input_is_a_usage_error(args, message):
    proc = subprocess.run([conftest.binary("callout"), "doctor", *args], capture_output=True,
                          text=True, timeout=10)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert message in proc.stderr
    assert proc.stdout == ""


def test_help():
    proc = subprocess.run([conftest.binary("callout"), "doctor", "--help"], capture_output=True,
                          text=True, timeout=10)
    assert proc.returncode == 0
    assert "--dnsbl" in proc.stdout and "Exit status" in proc.stdout
    top = subprocess.run([conftest.binary("callout"), "--help"], capture_output=True,
                         text=True, timeout=10)
    assert "doctor" in top.stdout


# ---- calloutd: GET /v1/doctor and the metrics ------------------------------------------

def test_http_doctor_and_metrics(calloutd, tls_mx):
    calloutd(sections={"engine": {"source_address": BAD, "helo": "good.doctor.test"},
                       "doctor": {"dnsbl": "bl.test, servfail.test", "domain": "fake5.test"}})
    before = metrics()
    assert before.get("calloutd_doctor_check", check="ptr") == -1
    assert before.get("calloutd_doctor_last_run_timestamp_seconds") == 0

    r = request("GET", "/v1/doctor?domain=fake5.test")
    assert r.status == 200, r
    j = r.json
    assert [c["check"] for c in j["checks"]] == NAMES
    lv = levels(j)
    assert j["egress"] == BAD and j["helo"] == "good.doctor.test"
    assert lv["connect"] == "pass" and lv["dnsbl"] == "fail" and lv["fcrdns"] == "fail"
    assert lv["ptr"] == "warn" and lv["starttls"] == "pass"
    assert [z["listed"] for z in j["dnsbl"]] == [True, None]

    m = metrics()
    codes = {"pass": 0, "warn": 1, "fail": 2, "skip": 3}
    for name in NAMES:
        assert m.get("calloutd_doctor_check", check=name) == codes[lv[name]], name
    assert m.get("calloutd_doctor_last_run_timestamp_seconds") > 0

    # the default target, [doctor] domain
    r = request("GET", "/v1/doctor")
    assert r.status == 200 and r.json["target"] == "fake5.test"


def test_http_doctor_bad_requests(calloutd, dns_server):
    calloutd()
    for path, status in [("/v1/doctor", 400), ("/v1/doctor?domain=a..b", 400),
                         ("/v1/doctor?host=%5B::1", 400), ("/v1/doctor?domain=a.test&host=b.test", 400),
                         ("/v1/doctor?domain=a.test&domain=b.test", 400),
                         ("/v1/doctor?what=1", 400), ("/v1/doctor?domain=a%0D%0Ab.test", 400)]:
        r = request("GET", path)
        assert r.status == status, (path, r)
        assert r.json["error"] == "invalid_request", (path, r)
    r = request("POST", "/v1/doctor", body="{}")
    assert r.status == 405


def test_http_doctor_port_closed(calloutd, dns_server):
    calloutd()
    r = request("GET", f"/v1/doctor?host={testnet.DEAD_IP}")
    assert r.status == 200
    assert levels(r.json)["connect"] == "fail"
