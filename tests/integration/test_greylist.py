"""Greylisting re-checks (greylist_recheck): an address answered with a
greylisting 4xx is asked again after the configured delays, and the answer
goes to the cache, so the MTA's retry (calloutd) or the bulk run's output
(callout check) says valid or invalid instead of tempfail.

Against the scriptable fake SMTP server (greylisting the first session, or
every one) and against Debian's postgrey behind a private Postfix
(fixtures_postgrey.py).  Delays are seconds here; sessions are not kept
idle (--session-idle 0), so that each re-check is a new session, as it is
minutes later in life.
"""
import json
import os
import pty
import re
import select
import subprocess
import time
import urllib.request

import pytest

import conftest
import testnet

HELO = "verifier.test"
GREY = ("450 4.2.0 Recipient address rejected: Greylisted, see "
        "http://postgrey.schweikert.ch/help/fake.test.html")
# Greylists the first session's RCPTs, accepts later ones.
GREY_ONCE = f"""\
session 1 on RCPT
    send {GREY}
"""
GREY_ALWAYS = f"""\
on RCPT
    send {GREY}
"""
ACCEPT = """\
on RCPT TO:<bad*>
    send 550 5.1.1 no such user
"""


def check(*args, timeout=90, tty=False):
    cmd = [conftest.binary("callout"), "check", "--port", str(testnet.SMTP_PORT), "--helo",
           HELO, "--session-idle", "0", "--json", *args]
    t0 = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    r.seconds = time.monotonic() - t0
    r.results = [json.loads(line) for line in r.stdout.splitlines()]
    r.by_addr = {x["address"]: x for x in r.results}
    return r


def sessions(srv):
    """Sessions the fake server saw (each starts with its EHLO)."""
    return srv.log_text().count(f"EHLO {HELO}")


@pytest.mark.slow
def test_cli_prints_a_greylisted_address_once_rechecked(fake_smtp, tmp_path):
    once, always, ok = fake_smtp(GREY_ONCE), fake_smtp(GREY_ALWAYS), fake_smtp(ACCEPT)
    cache = f"lmdb:{tmp_path}/cache.lmdb"
    addrs = [f"alice@[{ok.host}]", f"grey@[{once.host}]", f"always@[{always.host}]",
             f"bad@[{ok.host}]"]
    r = check("--greylist-recheck", "1s,2s", "--cache", cache, *addrs)
    assert r.returncode == 1, r.stderr  # one invalid
    assert [x["address"] for x in r.results][2:] == addrs[1:3]  # the re-checked come last
    v = r.by_addr
    assert (v[addrs[0]]["verdict"], v[addrs[3]]["verdict"]) == ("valid", "invalid")
    # greylisted, then accepted at the first re-check
    assert (v[addrs[1]]["verdict"], v[addrs[1]]["code"]) == ("valid", 250)
    assert 1000 <= v[addrs[1]]["ms"] < 1000 + 60000
    # greylisted at every try: given up after the last delay
    assert (v[addrs[2]]["verdict"], v[addrs[2]]["reason"], v[addrs[2]]["code"]) == \
        ("tempfail", "greylisted", 450)
    assert v[addrs[2]]["ms"] >= 2000
    assert all("recheck_in" not in x for x in r.results)
    assert (sessions(once), sessions(always)) == (2, 3)
    assert r.seconds < 2 + 60

    # the cache kept the re-check's answer, and no tempfail
    again = check("--cache", cache, addrs[1], addrs[2])
    assert again.by_addr[addrs[1]]["verdict"] == "valid"
    assert again.by_addr[addrs[1]]["cached"] is True
    assert again.by_addr[addrs[2]]["cached"] is False
    assert (sessions(once), sessions(always)) == (2, 4)


def test_cli_default_prints_greylisting_at_once(fake_smtp):
    srv = fake_smtp(GREY_ONCE)
    r = check(f"alice@[{srv.host}]")
    assert r.returncode == 3
    assert (r.results[0]["reason"], "recheck_in" in r.results[0]) == ("greylisted", False)
    assert r.seconds < 5
    assert sessions(srv) == 1


def test_cli_recheck_cap(fake_smtp):
    """--greylist-recheck-max 1: the second greylisted address gets no
    re-check and is printed at once."""
    srv = fake_smtp(GREY_ALWAYS)
    r = check("--greylist-recheck", "1s", "--greylist-recheck-max", "1",
              f"a@[{srv.host}]", f"b@[{srv.host}]")
    assert [x["reason"] for x in r.results] == ["greylisted", "greylisted"]
    assert r.results[0]["ms"] < 1000 <= r.results[1]["ms"]
    assert sessions(srv) == 2  # both in one session, then one re-check


def test_cli_bad_values_are_usage_errors():
    for bad in ["15m,5m", "5m,", "0", "1.5s", "x"]:
        r = check("--greylist-recheck", bad, "a@example.test")
        assert r.returncode == 2, (bad, r.stderr)
        assert "--greylist-recheck" in r.stderr and "increasing" in r.stderr


@pytest.mark.slow
def test_cli_progress_line_counts_pending_rechecks(fake_smtp):
    srv = fake_smtp(GREY_ONCE)
    master, slave = pty.openpty()
    cmd = [conftest.binary("callout"), "check", "--port", str(testnet.SMTP_PORT), "--helo",
           HELO, "--session-idle", "0", "--greylist-recheck", "2s", f"alice@[{srv.host}]"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=slave, text=True)
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        elif proc.poll() is not None:
            break
    os.close(master)
    out, _ = proc.communicate(timeout=30)
    assert "1 pending recheck" in seen.decode(errors="replace"), seen
    assert "valid (accepted)" in out
    assert proc.returncode == 0


# ---- calloutd -------------------------------------------------------------------

def http_json(path):
    url = f"http://{testnet.CALLOUTD_IP}:{testnet.CALLOUTD_HTTP_PORT}{path}"
    with urllib.request.urlopen(url, timeout=30) as resp:
        return json.loads(resp.read())


def verify(address):
    return http_json("/v1/verify?address=" + urllib.request.quote(address, safe="@[]"))


def metric(name, **labels):
    url = f"http://{testnet.CALLOUTD_IP}:{testnet.CALLOUTD_HTTP_PORT}/metrics"
    with urllib.request.urlopen(url, timeout=30) as resp:
        text = resp.read().decode()
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pat = re.escape(name) + (r"\{" + re.escape(want) + r"\}" if want else "") + r" (\d+)$"
    m = re.search(pat, text, re.M)
    assert m, (name, labels, text)
    return int(m.group(1))


def wait_metric(value, name, timeout=60, **labels):
    deadline = time.monotonic() + timeout
    while metric(name, **labels) != value:
        assert time.monotonic() < deadline, (name, labels, value, metric(name, **labels))
        time.sleep(0.2)


def test_calloutd_answers_the_retry_from_the_recheck(calloutd, fake_smtp):
    srv = fake_smtp(GREY_ONCE)
    d = calloutd(sections={"engine": {"greylist_recheck": "1s,2s", "session_idle": "0",
                                      "catch_all": "no"}})
    addr = f"alice@[{srv.host}]"
    t0 = time.monotonic()
    # the MTA's first try: deferred, a re-check scheduled
    assert d.policy({"sender": addr}).startswith("action=450 "), d.log_text()
    assert metric("calloutd_greylist_rechecks_pending") == 1
    wait_metric(1, "calloutd_greylist_rechecks_total", outcome="valid")
    assert time.monotonic() - t0 < 1 + 60
    # the MTA's retry: from the cache
    assert d.policy({"sender": addr}) == "action=DUNNO"
    again = verify(addr)
    assert (again["verdict"], again["cached"], "recheck_in" in again) == ("valid", True, False)
    assert metric("calloutd_greylist_rechecks_scheduled_total") == 1
    assert metric("calloutd_greylist_rechecks_pending") == 0
    assert sessions(srv) == 2  # the first try and the re-check


@pytest.mark.slow
def test_calloutd_recheck_is_not_answered_by_a_cached_tempfail(calloutd, fake_smtp):
    """With tempfail_ttl the greylisting is cached: the retries before the
    re-check are answered from it (saying when the re-check comes); the
    re-check itself asks the server and replaces it."""
    srv = fake_smtp(GREY_ONCE)
    calloutd(sections={"engine": {"greylist_recheck": "2s", "session_idle": "0",
                                  "catch_all": "no"},
                       "cache": {"tempfail_ttl": "1h"}})
    addr = f"alice@[{srv.host}]"
    first = verify(addr)
    assert (first["reason"], first["cached"], first["recheck_in"]) == ("greylisted", False, 2)
    second = verify(addr)
    assert (second["reason"], second["cached"]) == ("greylisted", True)
    assert second["recheck_in"] in (1, 2)
    wait_metric(1, "calloutd_greylist_rechecks_total", outcome="valid")
    third = verify(addr)
    assert (third["verdict"], third["cached"], "recheck_in" in third) == ("valid", True, False)
    assert sessions(srv) == 2


def test_calloutd_an_answer_before_the_recheck_ends_it(calloutd, fake_smtp):
    srv = fake_smtp(GREY_ONCE)
    calloutd(sections={"engine": {"greylist_recheck": "1m", "session_idle": "0",
                                  "catch_all": "no"}})
    addr = f"alice@[{srv.host}]"
    assert verify(addr)["recheck_in"] == 60
    assert verify(addr)["verdict"] == "valid"  # the server let it through sooner
    wait_metric(1, "calloutd_greylist_rechecks_total", timeout=10, outcome="valid")
    assert metric("calloutd_greylist_rechecks_pending") == 0
    assert sessions(srv) == 2  # no re-check was needed


@pytest.mark.slow
def test_calloutd_gives_up_and_caches_nothing(calloutd, fake_smtp):
    srv = fake_smtp(GREY_ALWAYS)
    calloutd(sections={"engine": {"greylist_recheck": "1s,2s", "session_idle": "0",
                                      "catch_all": "no"}})
    addr = f"alice@[{srv.host}]"
    assert verify(addr)["recheck_in"] == 1
    wait_metric(1, "calloutd_greylist_rechecks_total", outcome="tempfail")
    assert sessions(srv) == 3
    again = verify(addr)  # probed again: nothing was cached; a new re-check
    assert (again["verdict"], again["reason"], again["cached"]) == \
        ("tempfail", "greylisted", False)
    assert again["recheck_in"] == 1
    assert metric("calloutd_greylist_rechecks_scheduled_total") == 2
    for v in ("valid", "invalid", "unknown"):
        assert metric("calloutd_greylist_rechecks_total", outcome=v) == 0


def test_calloutd_stops_cleanly_with_rechecks_pending(calloutd, fake_smtp):
    """The default 5m,15m: pending when calloutd stops; freed without a
    leak (the sanitizer build's exit status says so)."""
    srv = fake_smtp(GREY_ALWAYS)
    d = calloutd(sections={"engine": {"greylist_recheck_max": "1", "catch_all": "no"}})
    assert verify(f"a@[{srv.host}]")["recheck_in"] == 300
    assert "recheck_in" not in verify(f"b@[{srv.host}]")  # past the cap
    assert metric("calloutd_greylist_rechecks_dropped_total") == 1
    assert metric("calloutd_greylist_rechecks_pending") == 1
    assert d.stop() == 0, d.log_text()


# ---- a real greylisting server: postgrey ----------------------------------------

@pytest.mark.slow
def test_postgrey_450_becomes_valid_with_the_cli(greylisted_mx, tmp_path):
    addr = f"bob@[{greylisted_mx.ip}]"
    delay = greylisted_mx.postgrey.delay
    offset = greylisted_mx.log_offset()
    r = check("--greylist-recheck", f"{delay + 1}s,{delay + 5}s", "--cache",
              f"lmdb:{tmp_path}/c.lmdb", addr)
    assert r.returncode == 0, (r.stdout, r.stderr)
    res = r.results[0]
    assert (res["verdict"], res["code"]) == ("valid", 250), res
    assert r.seconds < delay + 60
    log = greylisted_mx.log_since(offset)
    assert re.search(r"reject: RCPT from .*: 450 4\.2\.0 <bob@\[.*\]>: Recipient address "
                     r"rejected: Greylisted", log), log
    again = check("--cache", f"lmdb:{tmp_path}/c.lmdb", addr)
    assert (again.results[0]["verdict"], again.results[0]["cached"]) == ("valid", True)


@pytest.mark.slow
def test_postgrey_450_becomes_valid_in_calloutd(greylisted_mx, calloutd):
    addr = f"alice@[{greylisted_mx.ip}]"
    delay = greylisted_mx.postgrey.delay
    calloutd(sections={"engine": {"greylist_recheck": f"{delay + 1}s,{delay + 5}s",
                                  "session_idle": "0"}})
    t0 = time.monotonic()
    first = verify(addr)
    assert (first["verdict"], first["reason"], first["code"]) == \
        ("tempfail", "greylisted", 450), first
    assert "postgrey" in first["text"]
    wait_metric(1, "calloutd_greylist_rechecks_total", timeout=delay + 60, outcome="valid")
    assert time.monotonic() - t0 < delay + 60
    again = verify(addr)
    assert (again["verdict"], again["cached"]) == ("valid", True), again
