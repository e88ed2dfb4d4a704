"""The cache, end to end: `callout check --cache ...` against the fake SMTP
server, counting the sessions the server saw.

What a user relies on: an answer is not asked for twice (across runs, a
kill -9, processes sharing Redis), identical verifications in flight share
one probe, domain facts spare probes, refresh and expiry follow the clock,
and a broken cache never changes a verdict.
"""
import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

import conftest
import testnet
from conftest import CalloutRun

import json

NOBODY = 65534

# An hour and a day in seconds, for CALLOUT_NOW offsets.
HOUR = 3600
DAY = 86400


def check(cache, *args, env=None, timeout=60, user=None):
    """callout check --json against fake servers (by literal), with a cache."""
    cmd = [conftest.binary("callout"), "check", "--json", "--port", str(testnet.SMTP_PORT),
           "--helo", "verifier.test", "--cache", cache, *args]
    if user:
        cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", "--", *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, **(env or {})))
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    return CalloutRun(proc, results)


def by_address(run):
    return {r["address"]: r for r in run.results}


def fault_lines(run):
    return [line for line in run.stderr.splitlines() if "cache" in line]


ACCEPT_ALL = """
on RCPT
    send 250 2.1.5 Ok
"""

# alice exists, nobody else does.
ALICE_ONLY = """
on RCPT TO:<alice@*>
    send 250 2.1.5 Ok
on RCPT
    send 550 5.1.1 <{*}>: Recipient address rejected: User unknown
"""


@pytest.fixture
def lmdb(tmp_path):
    return f"lmdb:{tmp_path}/cache.lmdb"


def test_second_run_is_answered_from_lmdb_even_after_kill_9(fake_smtp, lmdb):
    # Two domains (two servers): addresses of one domain would share a
    # session, and the stuck RCPT would hold the other's answer back.
    slow = fake_smtp("""
on RCPT
""")
    srv = fake_smtp("""
on RCPT
    send 250 2.1.5 Ok
""")
    ip = srv.host
    proc = subprocess.Popen(
        [conftest.binary("callout"), "check", "--json", "--port", str(testnet.SMTP_PORT),
         "--helo", "verifier.test", "--cache", lmdb, "--command-timeout", "30", "-c", "2",
         f"slow@[{slow.host}]", f"alice@[{ip}]"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert json.loads(line)["address"] == f"alice@[{ip}]"
        assert json.loads(line)["cached"] is False
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    sessions = srv.session_count
    assert sessions == 1

    run = check(lmdb, f"alice@[{ip}]")
    r = run.result
    assert (r["verdict"], r["reason"], r["cached"]) == ("valid", "accepted", True)
    assert 0 <= r["age"] < 60
    assert r["code"] == 250 and r["enhanced"] == "2.1.5"
    time.sleep(0.2)
    assert srv.session_count == sessions, "a cached answer must not make a session"


def test_hundred_concurrent_verifications_make_one_session(fake_smtp, lmdb, tmp_path):
    srv = fake_smtp("""
on RCPT
    delay 1
    send 250 2.1.5 Ok
""")
    addr = f"alice@[{srv.host}]"
    listing = tmp_path / "list"
    listing.write_text((addr + "\n") * 100)
    run = check(lmdb, "-c", "100", "-f", str(listing))
    assert len(run.results) == 100
    assert {r["verdict"] for r in run.results} == {"valid"}
    assert srv.session_count == 1


def test_memory_cache_shares_one_probe_too(fake_smtp, tmp_path):
    srv = fake_smtp("""
on RCPT
    delay 0.5
    send 250 2.1.5 Ok
""")
    listing = tmp_path / "list"
    listing.write_text(f"alice@[{srv.host}]\n" * 50)
    run = check("memory", "-c", "50", "-f", str(listing))
    assert [r["verdict"] for r in run.results] == ["valid"] * 50
    assert srv.session_count == 1


def test_no_cache_asks_every_time(fake_smtp, lmdb):
    srv = fake_smtp(ACCEPT_ALL)
    for _ in range(2):
        assert check(lmdb, "--no-cache", f"alice@[{srv.host}]").result["cached"] is False
    assert srv.session_count == 2
    # and wrote nothing: a normal run still probes
    assert check(lmdb, f"alice@[{srv.host}]").result["cached"] is False
    assert srv.session_count == 3


def test_invalid_is_cached_unless_no_negative_cache(fake_smtp, lmdb):
    srv = fake_smtp(ALICE_ONLY)
    bob = f"bob@[{srv.host}]"
    first = check(lmdb, "--no-negative-cache", bob).result
    second = check(lmdb, bob).result
    assert (first["verdict"], second["verdict"]) == ("invalid", "invalid")
    assert second["cached"] is False
    assert srv.session_count == 2
    third = check(lmdb, bob).result
    assert (third["verdict"], third["reason"], third["cached"]) == \
        ("invalid", "mailbox_unknown", True)
    assert srv.session_count == 2


def test_refresh_serves_the_old_answer_and_a_failed_refresh_keeps_it(fake_smtp, lmdb):
    srv = fake_smtp("""
session 2 on RCPT
    send 451 4.7.1 Greylisted, try again later
session 3 on RCPT
    send 550 5.1.1 User unknown
on RCPT
    send 250 2.1.5 Ok
""")
    addr = f"alice@[{srv.host}]"
    assert check(lmdb, addr).result["verdict"] == "valid"
    assert srv.session_count == 1

    # Within the refresh time: cached, no probe.
    r = check(lmdb, addr, env={"CALLOUT_NOW": f"+{HOUR}"}).result
    assert (r["verdict"], r["cached"]) == ("valid", True)
    assert srv.session_count == 1

    # Past it: the old answer at once, and a re-probe (greylisted: fails).
    later = {"CALLOUT_NOW": f"+{DAY + HOUR}"}
    r = check(lmdb, addr, env=later).result
    assert (r["verdict"], r["cached"]) == ("valid", True)
    assert r["age"] >= DAY + HOUR
    assert srv.session_count == 2

    # The failed re-probe did not replace the good entry; this run's
    # re-probe learns the mailbox is gone.
    r = check(lmdb, addr, env=later).result
    assert (r["verdict"], r["cached"]) == ("valid", True)
    assert srv.session_count == 3

    r = check(lmdb, addr, env=later).result
    assert (r["verdict"], r["reason"], r["cached"]) == ("invalid", "mailbox_unknown", True)
    assert srv.session_count == 3


def test_expired_entries_are_probed_again(fake_smtp, lmdb):
    srv = fake_smtp(ACCEPT_ALL)
    addr = f"alice@[{srv.host}]"
    check(lmdb, "--positive-ttl", "100", addr)
    # a few seconds of margin: the processes themselves take time
    assert check(lmdb, addr, env={"CALLOUT_NOW": "+95"}).result["cached"] is True
    r = check(lmdb, addr, env={"CALLOUT_NOW": "+101"}).result
    assert (r["verdict"], r["cached"]) == ("valid", False)
    assert srv.session_count == 2


def test_catch_all_domain_gets_one_random_probe_per_ttl(fake_smtp, lmdb):
    srv = fake_smtp(ACCEPT_ALL)
    addrs = [f"user{i}@[{srv.host}]" for i in range(10)]
    run = check(lmdb, "--catch-all", "-c", "1", *addrs)
    results = by_address(run)
    assert {(r["verdict"], r["reason"]) for r in results.values()} == {("unknown", "catch_all")}
    assert srv.session_count == 1
    random_rcpts = [line for line in srv.sessions_snapshot()[0].lines
                    if line.startswith("RCPT") and "user0@" not in line]
    assert len(random_rcpts) == 1

    # Without --catch-all too: what we know about the domain stands.
    r = check(lmdb, f"other@[{srv.host}]").result
    assert (r["verdict"], r["reason"], r["cached"]) == ("unknown", "catch_all", True)
    assert srv.session_count == 1

    # After the domain TTL, one new probe.
    run = check(lmdb, "--catch-all", "-c", "1", *addrs[:3], env={"CALLOUT_NOW": f"+{8 * DAY}"})
    assert [r["reason"] for r in run.results] == ["catch_all"] * 3
    assert srv.session_count == 2


def test_not_a_catch_all_spares_the_random_probe(fake_smtp, lmdb):
    srv = fake_smtp(ALICE_ONLY)
    ip = srv.host
    assert check(lmdb, "--catch-all", f"alice@[{ip}]").result["verdict"] == "valid"
    lines = srv.sessions_snapshot()[0].lines
    assert sum(line.startswith("RCPT") for line in lines) == 2
    # A second address of the domain: the domain is known not to be a
    # catch-all, so only its own RCPT.
    assert check(lmdb, "--catch-all", f"bob@[{ip}]").result["verdict"] == "invalid"
    lines = srv.sessions_snapshot()[1].lines
    assert [line for line in lines if line.startswith("RCPT")] == [f"RCPT TO:<bob@[{ip}]>"]


NO_NULL_SENDER = """
on MAIL FROM:<>
    send 550 5.7.1 Null sender not accepted here
on RCPT
    send 250 2.1.5 Ok
"""


def test_refusal_of_the_null_sender_is_remembered(fake_smtp, lmdb):
    srv = fake_smtp(NO_NULL_SENDER)
    ip = srv.host
    fallback = ["--fallback-sender", "probe@verifier.test"]
    assert check(lmdb, *fallback, f"alice@[{ip}]").result["verdict"] == "valid"
    first = srv.sessions_snapshot()[0].lines
    assert "MAIL FROM:<>" in first and "MAIL FROM:<probe@verifier.test>" in first

    # Another address of the domain: the fallback sender at once.
    assert check(lmdb, *fallback, f"bob@[{ip}]").result["verdict"] == "valid"
    second = srv.sessions_snapshot()[1].lines
    mails = [line for line in second if line.startswith("MAIL")]
    assert mails == ["MAIL FROM:<probe@verifier.test>"]

    # Without a fallback sender, the known refusal is the answer.
    r = check(lmdb, f"carol@[{ip}]").result
    assert (r["verdict"], r["reason"], r["cached"]) == ("unknown", "null_sender_rejected", True)
    assert srv.session_count == 2


def test_a_domain_that_blocks_us_is_left_alone(fake_smtp, lmdb):
    srv = fake_smtp("""
on connect
    send 554 5.7.1 Your IP is listed at bl.example; go away
""")
    ip = srv.host
    assert check(lmdb, f"alice@[{ip}]").result["reason"] == "policy_block"
    r = check(lmdb, f"bob@[{ip}]").result
    assert (r["verdict"], r["reason"], r["cached"]) == ("unknown", "policy_block", True)
    assert srv.session_count == 1
    r = check(lmdb, f"bob@[{ip}]", env={"CALLOUT_NOW": f"+{4 * HOUR}"}).result
    assert r["cached"] is False
    assert srv.session_count == 2


def test_nxdomain_is_a_domain_fact(dns_server, lmdb):
    args = ["--dns-server", dns_server.server]
    assert check(lmdb, *args, "a@nonexistent.test").result["reason"] == "nxdomain"
    r = check(lmdb, *args, "b@nonexistent.test").result
    assert (r["verdict"], r["reason"], r["cached"]) == ("invalid", "nxdomain", True)


def test_unreachable_domain_is_remembered_briefly(lmdb):
    dead = testnet.DEAD_IP
    args = ["--connect-timeout", "1"]
    first = check(lmdb, *args, f"a@[{dead}]").result
    assert (first["verdict"], first["reason"]) == ("tempfail", "connect_failed")
    r = check(lmdb, *args, f"b@[{dead}]").result
    assert (r["verdict"], r["reason"], r["cached"]) == ("tempfail", "connect_failed", True)
    r = check(lmdb, *args, f"b@[{dead}]", env={"CALLOUT_NOW": "+301"}).result
    assert r["cached"] is False


# ---- faults: never a crash, never a wrong verdict ----------------------------

def _fill(lmdb, srv, n=20):
    addrs = [f"u{i}@[{srv.host}]" for i in range(n)]
    check(lmdb, "-c", "5", *addrs, "alice@[" + srv.host + "]", "nobody@[" + srv.host + "]")


def _rcpts(srv):
    """RCPT commands the server received (addresses of one domain share
    sessions, so sessions do not count them)."""
    return sum(line.startswith("RCPT TO:<") and "@" in line
               for t in srv.transcripts() for line in t)


def _expect_live(run, srv_host, rcpts_before, srv):
    res = by_address(run)
    assert res[f"alice@[{srv_host}]"]["verdict"] == "valid"
    assert res[f"bob@[{srv_host}]"]["verdict"] == "invalid"
    assert all(r["cached"] is False for r in res.values())
    assert _rcpts(srv) == rcpts_before + 2


def test_junk_file_as_cache(fake_smtp, tmp_path):
    srv = fake_smtp(ALICE_ONLY)
    path = tmp_path / "cache.lmdb"
    junk = os.urandom(64 * 1024)
    path.write_bytes(junk)
    run = check(f"lmdb:{path}", f"alice@[{srv.host}]", f"bob@[{srv.host}]")
    assert run.returncode == 1  # bob invalid
    _expect_live(run, srv.host, 0, srv)
    assert len(fault_lines(run)) == 1, run.stderr
    assert path.read_bytes() == junk, "a file that is not ours must be left alone"


@pytest.mark.slow  # about 11 s
def test_truncated_cache_file(fake_smtp, tmp_path):
    srv = fake_smtp(ALICE_ONLY)
    path = tmp_path / "cache.lmdb"
    _fill(f"lmdb:{path}", srv, n=200)
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(size // 2)
    before = _rcpts(srv)
    run = check(f"lmdb:{path}", f"alice@[{srv.host}]", f"bob@[{srv.host}]")
    assert run.returncode == 1, run.stderr
    _expect_live(run, srv.host, before, srv)
    assert len(fault_lines(run)) == 1, run.stderr


def test_unusable_cache_directory(fake_smtp, tmp_path):
    srv = fake_smtp(ALICE_ONLY)
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    run = check(f"lmdb:{blocker}/sub/cache.lmdb", f"alice@[{srv.host}]", f"bob@[{srv.host}]")
    _expect_live(run, srv.host, 0, srv)
    assert len(fault_lines(run)) == 1, run.stderr


def test_read_only_cache_is_read_but_not_written(fake_smtp):
    srv = fake_smtp(ALICE_ONLY)
    # pytest's tmp_path is private to root: use a directory others can enter.
    d = tempfile.mkdtemp(prefix="callout-ro-")
    try:
        path = os.path.join(d, "cache.lmdb")
        check(f"lmdb:{path}", f"alice@[{srv.host}]")
        assert srv.session_count == 1
        # Owned by root, readable by all: `nobody` may read it, not write it.
        os.chmod(d, 0o755)
        for f in os.listdir(d):
            os.chmod(os.path.join(d, f), 0o644)
        run = check(f"lmdb:{path}", f"alice@[{srv.host}]", f"bob@[{srv.host}]",
                    user=str(NOBODY))
        res = by_address(run)
        alice, bob = res[f"alice@[{srv.host}]"], res[f"bob@[{srv.host}]"]
        assert (alice["verdict"], alice["cached"]) == ("valid", True)
        assert (bob["verdict"], bob["cached"]) == ("invalid", False)
        assert srv.session_count == 2
        assert len(fault_lines(run)) == 1, run.stderr
    finally:
        shutil.rmtree(d, ignore_errors=True)


# ---- Redis: a cache for a fleet -----------------------------------------------

def test_two_processes_sharing_redis_make_one_session(fake_smtp, redis_server):
    redis_server.flush()
    srv = fake_smtp("""
on RCPT
    delay 1
    send 250 2.1.5 Ok
""")
    spec = f"redis://127.0.0.1:{redis_server.port}/0?prefix=sf:"
    cmd = [conftest.binary("callout"), "check", "--json", "--port", str(testnet.SMTP_PORT),
           "--helo", "verifier.test", "--cache", spec, f"alice@[{srv.host}]"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=30) for p in procs]
    results = [json.loads(o[0]) for o in outs]
    assert [r["verdict"] for r in results] == ["valid", "valid"], outs
    assert srv.session_count == 1
    assert sorted(r["cached"] for r in results) == [False, True]


def test_redis_killed_mid_run_and_restarted(fake_smtp, redis_server):
    redis_server.flush()
    srv = fake_smtp("""
on RCPT
    delay 0.3
    send 250 2.1.5 Ok
""")
    spec = f"redis://127.0.0.1:{redis_server.port}/0?prefix=kill:"
    addrs = [f"u{i}@[{srv.host}]" for i in range(14)]
    proc = subprocess.Popen(
        [conftest.binary("callout"), "check", "--json", "--port", str(testnet.SMTP_PORT),
         "--helo", "verifier.test", "--cache", spec, "-c", "1", *addrs],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)
    redis_server.kill()
    time.sleep(0.8)
    redis_server.start()
    out, err = proc.communicate(timeout=60)
    results = [json.loads(line) for line in out.splitlines()]
    assert [r["verdict"] for r in results] == ["valid"] * 14
    assert _rcpts(srv) == 14
    # One after another, they reuse the idle session: 10 RCPTs, then 4.
    assert srv.session_count == 2
    assert "cache" in err
    # It reconnected by itself: the last answers are in Redis.
    last = f"kill:a:[{srv.host}]:u13@[{srv.host}]"
    assert redis_server.cli("EXISTS", last).strip() == "1"


def test_redis_down_at_start(fake_smtp):
    srv = fake_smtp(ALICE_ONLY)
    start = time.monotonic()
    run = check("redis://127.0.0.1:1/0", f"alice@[{srv.host}]", f"bob@[{srv.host}]")
    assert time.monotonic() - start < 10
    _expect_live(run, srv.host, 0, srv)
    assert len(fault_lines(run)) == 1, run.stderr
