"""`callout cache`, end to end: list, get, delete, purge and stats on a cache
that `callout check --cache ...` filled against the test network (NSD,
Postfix, fake SMTP servers), on LMDB and on Redis; and the errors.

The cache is filled with one entry of every kind:

    alice@postfix.test                    address   valid      (7d)
    bob@postfix.test from checker@...     address   valid      (7d)
    nobody@postfix.test                   address   invalid    (3h)
    carol@fake1.test                      address   unknown    catch_all (3h)
    @postfix.test catch_all no            (3h: the random local part was refused)
    @fake1.test catch_all yes             (7d: it was accepted)
    @fake2.test blocks_us                 (3h: 550 5.7.1 at RCPT, blaming our host,
                                           for dave and eve in one session)
    @fake3.test null_sender               (7d: MAIL FROM:<> refused)
    @nope.test no_mail                    (3h: NXDOMAIN)
    @nullmx.test no_mail                  (3h: null MX)
    @[127.0.0.21] unreachable             (5m: connection refused)

CALLOUT_NOW moves the clock of both commands ("+SECONDS").
"""
import json
import os
import re
import socket
import struct
import subprocess
import time
import uuid
import zlib

import pytest

import conftest
import fixtures_redis
import testnet

HELO = "verifier.test"
SENDER = "checker@verifier.test"
MINUTE = 60
HOUR = 3600
DAY = 86400

JSON_KEYS = ["kind", "domain", "address", "sender", "verdict", "reason", "stage", "code",
             "enhanced", "text", "mx", "ip", "catch_all", "tls", "probed", "expires", "age",
             "expired"]

ACCEPT_ALL = """
on RCPT
    send 250 2.1.5 Ok
"""

BLOCKS_US = """
on RCPT
    send 550 5.7.1 Client host rejected: Access denied
"""

REFUSES_NULL_SENDER = """
on MAIL FROM:<>
    send 550 5.7.1 <>: null sender not accepted
on RCPT
    send 503 5.5.1 Error: need MAIL command
"""

# (subject as `list` shows it, kind, domain, address, sender, verdict, reason, TTL)
EXPECTED = [
    ("alice@postfix.test", "address", "postfix.test", "alice@postfix.test", "",
     "valid", "accepted", 7 * DAY),
    (f"bob@postfix.test from {SENDER}", "address", "postfix.test", "bob@postfix.test", SENDER,
     "valid", "accepted", 7 * DAY),
    ("nobody@postfix.test", "address", "postfix.test", "nobody@postfix.test", "",
     "invalid", "mailbox_unknown", 3 * HOUR),
    ("carol@fake1.test", "address", "fake1.test", "carol@fake1.test", "",
     "unknown", "catch_all", 3 * HOUR),
    ("@postfix.test catch_all no", "catch_all", "postfix.test", "", "",
     "invalid", "mailbox_unknown", 3 * HOUR),
    ("@fake1.test catch_all yes", "catch_all", "fake1.test", "", "",
     "unknown", "catch_all", 7 * DAY),
    ("@fake2.test blocks_us", "blocks_us", "fake2.test", "", "",
     "unknown", "policy_block", 3 * HOUR),
    ("@fake3.test null_sender refused", "null_sender", "fake3.test", "", "",
     "unknown", "null_sender_rejected", 7 * DAY),
    ("@nope.test no_mail", "no_mail", "nope.test", "", "",
     "invalid", "nxdomain", 3 * HOUR),
    ("@nullmx.test no_mail", "no_mail", "nullmx.test", "", "",
     "invalid", "null_mx", 3 * HOUR),
    (f"@[{testnet.DEAD_IP}] unreachable", "unreachable", f"[{testnet.DEAD_IP}]", "", "",
     "tempfail", "connect_failed", 5 * MINUTE),
]


def key_of(e):
    """What identifies an entry of `list --json`."""
    return (e["kind"], e["domain"], e["address"], e["sender"])


def expected_keys(pred=lambda x: True):
    return sorted((x[1], x[2], x[3], x[4]) for x in EXPECTED if pred(x))


# --------------------------------------------------------------------------
# running the commands

class Run:
    def __init__(self, proc):
        self.returncode = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr

    @property
    def lines(self):
        return self.stdout.splitlines()

    @property
    def json(self):
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]

    def __repr__(self):
        return f"rc={self.returncode}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}"


def run(args, env=None, timeout=60):
    proc = subprocess.run([conftest.binary("callout"), *args], capture_output=True, text=True,
                          timeout=timeout, env=dict(os.environ, **(env or {})))
    return Run(proc)


def cache_cmd(spec, *args, env=None):
    """callout cache --cache SPEC ARGS..."""
    return run(["cache", "--cache", spec, *args], env=env)


def now_env(offset):
    return {"CALLOUT_NOW": f"+{offset}"}


@pytest.fixture
def check(dns_server, postfix_mx):
    """callout check --json with the test network and a cache."""
    def do(spec, *args, env=None):
        r = run(["check", "--json", "--dns-server", dns_server.server,
                 "--port", str(testnet.SMTP_PORT), "--helo", HELO, "--cache", spec, *args],
                env=env)
        r.results = r.json
        return r
    return do


@pytest.fixture
def fill(check, fake_smtp):
    """fill(spec): one entry of every kind (EXPECTED); returns (t0, t1), the
    time span of the probes."""
    def do(spec):
        fake_smtp(ACCEPT_ALL, index=1)
        fake_smtp(BLOCKS_US, index=2)
        fake_smtp(REFUSES_NULL_SENDER, index=3)
        t0 = int(time.time())
        runs = [
            (check(spec, "--catch-all", "alice@postfix.test"), {"valid"}),
            (check(spec, "nobody@postfix.test"), {"invalid"}),
            (check(spec, "--sender", SENDER, "bob@postfix.test"), {"valid"}),
            (check(spec, "x@nope.test", "x@nullmx.test"), {"invalid"}),
            (check(spec, "--catch-all", "carol@fake1.test"), {"unknown"}),
            (check(spec, "dave@fake2.test", "eve@fake2.test"), {"unknown"}),
            (check(spec, "erin@fake3.test"), {"unknown"}),
            (check(spec, "--connect-timeout", "5", f"alice@[{testnet.DEAD_IP}]"), {"tempfail"}),
        ]
        t1 = int(time.time()) + 1
        for r, verdicts in runs:
            assert r.results, r
            assert {x["verdict"] for x in r.results} == verdicts, r
            assert not any(x["cached"] for x in r.results), r
            assert "cache" not in r.stderr, r  # no cache fault
        return t0, t1
    return do


@pytest.fixture
def lmdb(tmp_path):
    return f"lmdb:{tmp_path}/cache.lmdb"


@pytest.fixture
def filled(fill, lmdb):
    span = fill(lmdb)
    return lmdb, span


@pytest.fixture
def redis(redis_server):
    """A Redis spec with a prefix of its own, so that nothing else is touched."""
    prefix = f"clitest{uuid.uuid4().hex[:12]}:"
    spec = f"redis://127.0.0.1:{redis_server.port}/0?prefix={prefix}"
    yield spec, prefix
    keys = redis_server.cli("--scan", "--pattern", prefix + "*").splitlines()
    if keys:
        redis_server.cli("DEL", *keys)


def record_keys(redis_server, prefix):
    """The keys under prefix but the fleet's limits ("lim:", test_fleet.py)."""
    return [k for k in redis_server.cli("--scan", "--pattern", prefix + "*").splitlines()
            if not k.startswith(prefix + "lim:")]


def redis_set(redis_server, key, value: bytes):
    """SET key to binary value (redis-cli -x reads it from stdin)."""
    proc = subprocess.run([fixtures_redis.REDIS_CLI, "-h", "127.0.0.1", "-p",
                           str(redis_server.port), "-x", "SET", key],
                          input=value, capture_output=True, timeout=10)
    assert proc.stdout.strip() == b"OK", proc


def record(kind, verdict, reason, stage, code, probed, expires, domain, address=b"",
           sender=b"", enhanced=b"", text=b"", mx=b"", ip=b"", flags=0):
    """A cache record as src/lib/record.h encodes it (version 1)."""
    b = b"CO\x01" + bytes([kind, verdict, reason, stage, flags]) + struct.pack(">H", code)
    b += struct.pack(">qq", probed, expires)
    for s in (domain, address, sender, enhanced, text, mx, ip):
        s = s.encode() if isinstance(s, str) else s
        b += bytes([len(s)]) + s
    return b + struct.pack(">I", zlib.crc32(b))


# --------------------------------------------------------------------------
# list

def test_list_shows_every_entry_in_human_form(filled):
    spec, _ = filled
    r = cache_cmd(spec, "list")
    assert r.returncode == 0, r
    assert r.stderr == "", r
    lines = r.lines
    assert len(lines) == len(EXPECTED), r
    by_subject = {}
    for subject, *_rest in EXPECTED:
        match = [ln for ln in lines if ln.startswith(subject + " ")]
        assert len(match) == 1, (subject, r)
        by_subject[subject] = match[0]
    for ln in lines:
        assert "EXPIRED" not in ln and ln == ln.rstrip(), r
    assert re.fullmatch(r"alice@postfix\.test +valid accepted 250 2\.1\.5 +age \d+s +"
                        r"expires in (7d|6d23h) +\[mx\.postfix\.test 127\.0\.0\.20\]",
                        by_subject["alice@postfix.test"]), r
    assert re.fullmatch(r"nobody@postfix\.test +invalid mailbox_unknown 550 5\.1\.1 +age \d+s +"
                        r"expires in (3h|2h59m) +\[mx\.postfix\.test 127\.0\.0\.20\] +"
                        r'".*User unknown in virtual mailbox table"',
                        by_subject["nobody@postfix.test"]), r
    assert " valid accepted 250 " in by_subject[f"bob@postfix.test from {SENDER}"]
    assert "unknown catch_all " in by_subject["@fake1.test catch_all yes"]
    assert "a random local part was accepted" in by_subject["@fake1.test catch_all yes"]
    assert "[mx.fake1.test 127.0.0.31]" in by_subject["@fake1.test catch_all yes"]
    assert " unknown policy_block 550 5.7.1 " in by_subject["@fake2.test blocks_us"]
    assert '"Client host rejected: Access denied"' in by_subject["@fake2.test blocks_us"]
    assert " unknown null_sender_rejected 550 5.7.1 " in \
        by_subject["@fake3.test null_sender refused"]
    assert " invalid nxdomain " in by_subject["@nope.test no_mail"]
    assert " invalid null_mx " in by_subject["@nullmx.test no_mail"]
    assert re.search(r"tempfail connect_failed +age \d+s +expires in (5m|4m\d+s)",
                     by_subject[f"@[{testnet.DEAD_IP}] unreachable"]), r


def test_list_json_has_every_field(filled):
    spec, (t0, t1) = filled
    r = cache_cmd(spec, "list", "--json")
    assert r.returncode == 0, r
    entries = r.json
    assert sorted(key_of(e) for e in entries) == expected_keys()
    for e in entries:
        assert list(e) == JSON_KEYS, e
    by_key = {key_of(e): e for e in entries}
    for subject, kind, domain, address, sender, verdict, reason, ttl in EXPECTED:
        e = by_key[(kind, domain, address, sender)]
        assert (e["verdict"], e["reason"]) == (verdict, reason), e
        assert t0 <= e["probed"] <= t1, (e, t0, t1)
        assert e["expires"] - e["probed"] == ttl, (subject, e)
        assert 0 <= e["age"] <= t1 - e["probed"] + 1, e
        assert e["expired"] is False
        assert e["tls"] is False
        for k in ("code", "age", "probed", "expires"):
            assert isinstance(e[k], int), (k, e)
        for k in ("catch_all", "tls", "expired"):
            assert isinstance(e[k], bool), (k, e)
    alice = by_key[("address", "postfix.test", "alice@postfix.test", "")]
    assert alice["stage"] == "rcpt" and alice["code"] == 250 and alice["enhanced"] == "2.1.5"
    assert alice["mx"] == "mx.postfix.test" and alice["ip"] == testnet.POSTFIX_IP
    assert alice["catch_all"] is False
    nobody = by_key[("address", "postfix.test", "nobody@postfix.test", "")]
    assert nobody["code"] == 550 and nobody["enhanced"] == "5.1.1"
    assert "User unknown in virtual mailbox table" in nobody["text"]
    carol = by_key[("address", "fake1.test", "carol@fake1.test", "")]
    assert carol["catch_all"] is True
    assert by_key[("catch_all", "fake1.test", "", "")]["catch_all"] is True
    assert by_key[("catch_all", "postfix.test", "", "")]["catch_all"] is False
    assert by_key[("no_mail", "nope.test", "", "")]["stage"] == "dns"
    assert by_key[("null_sender", "fake3.test", "", "")]["stage"] == "mail"


def test_list_filters(filled):
    spec, _ = filled

    def keys(*args):
        r = cache_cmd(spec, "list", "--json", *args)
        assert r.returncode == 0, r
        return sorted(key_of(e) for e in r.json)

    assert keys("--verdict", "invalid") == expected_keys(lambda x: x[5] == "invalid")
    assert keys("--verdict", "valid,tempfail") == \
        expected_keys(lambda x: x[5] in ("valid", "tempfail"))
    assert keys("--verdict", "valid", "--verdict", "tempfail") == \
        keys("--verdict", "valid,tempfail")
    assert keys("--kind", "address") == expected_keys(lambda x: x[1] == "address")
    assert keys("--kind", "catch_all,no_mail") == \
        expected_keys(lambda x: x[1] in ("catch_all", "no_mail"))
    for kind in ("null_sender", "blocks_us", "unreachable"):
        assert keys("--kind", kind) == expected_keys(lambda x, k=kind: x[1] == k)
    assert keys("--kind", "address", "--verdict", "valid") == \
        expected_keys(lambda x: x[1] == "address" and x[5] == "valid")
    postfix = expected_keys(lambda x: x[2] == "postfix.test")
    assert len(postfix) == 4
    assert keys("--domain", "postfix.test") == postfix
    assert keys("--domain", "@postfix.test") == postfix
    assert keys("--domain", "POSTFIX.test") == postfix  # domains are case-insensitive
    assert keys("--domain", "fake1.test", "--kind", "catch_all") == \
        [("catch_all", "fake1.test", "", "")]
    assert keys("--domain", "elsewhere.test") == []
    assert keys("--expired") == []
    # options before the command, and after it
    before = cache_cmd(spec, "--json", "--kind", "address", "list")
    assert before.returncode == 0, before
    assert sorted(key_of(e) for e in before.json) == keys("--kind", "address")


def test_list_marks_expired_entries_by_the_clock(filled):
    spec, _ = filled
    # ten minutes later only the unreachable fact (5 minutes) has expired
    r = cache_cmd(spec, "list", env=now_env(10 * MINUTE))
    assert r.returncode == 0, r
    expired = [ln for ln in r.lines if "EXPIRED" in ln]
    assert len(expired) == 1, r
    assert re.match(rf"@\[{re.escape(testnet.DEAD_IP)}\] unreachable +tempfail connect_failed +"
                    r"age (10m|10m\d+s) +EXPIRED (5m|5m\d+s) ago", expired[0]), r
    assert all("expires in" in ln for ln in r.lines if ln not in expired)

    r = cache_cmd(spec, "list", "--expired", "--json", env=now_env(10 * MINUTE))
    assert [key_of(e) for e in r.json] == [("unreachable", f"[{testnet.DEAD_IP}]", "", "")]
    e = r.json[0]
    assert e["expired"] is True and 10 * MINUTE <= e["age"] <= 10 * MINUTE + 60, e

    # four hours later the three-hour entries too
    r = cache_cmd(spec, "list", "--json", "--expired", env=now_env(4 * HOUR))
    assert sorted(key_of(e) for e in r.json) == expected_keys(lambda x: x[7] <= 3 * HOUR)
    # ten days later everything
    r = cache_cmd(spec, "list", "--json", env=now_env(10 * DAY))
    assert len(r.json) == len(EXPECTED) and all(e["expired"] for e in r.json), r
    r = cache_cmd(spec, "list", env=now_env(10 * DAY))
    assert all(" EXPIRED " in ln for ln in r.lines), r


def test_default_cache_comes_from_callout_cache(filled):
    spec, _ = filled
    r = run(["cache", "list", "--json"], env={"CALLOUT_CACHE": spec})
    assert r.returncode == 0, r
    assert len(r.json) == len(EXPECTED)


# --------------------------------------------------------------------------
# get

def test_get_shows_the_records_of_an_address_and_its_domain_facts(filled):
    spec, _ = filled
    r = cache_cmd(spec, "get", "alice@postfix.test")
    assert r.returncode == 0, r
    assert len(r.lines) == 2, r
    assert r.lines[0].startswith("alice@postfix.test ") or r.lines[1].startswith(
        "alice@postfix.test "), r
    assert any(ln.startswith("@postfix.test catch_all no ") for ln in r.lines), r

    r = cache_cmd(spec, "get", "--json", "alice@POSTFIX.TEST")  # the domain is normalised
    assert r.returncode == 0, r
    assert sorted(key_of(e) for e in r.json) == [
        ("address", "postfix.test", "alice@postfix.test", ""),
        ("catch_all", "postfix.test", "", "")]
    assert list(r.json[0]) == JSON_KEYS

    # one record per sender
    r = cache_cmd(spec, "--json", "get", "bob@postfix.test")
    assert sorted(key_of(e) for e in r.json) == [
        ("address", "postfix.test", "bob@postfix.test", SENDER),
        ("catch_all", "postfix.test", "", "")]

    # only the facts of the domain: still something cached about it
    r = cache_cmd(spec, "get", "--json", "ghost@fake2.test")
    assert r.returncode == 0, r
    assert [key_of(e) for e in r.json] == [("blocks_us", "fake2.test", "", "")]


def test_get_nothing_cached_exits_1(filled):
    spec, _ = filled
    r = cache_cmd(spec, "get", "ghost@elsewhere.test")
    assert r.returncode == 1, r
    assert r.stdout == "ghost@elsewhere.test: nothing cached\n", r
    r = cache_cmd(spec, "get", "--json", "ghost@elsewhere.test")
    assert r.returncode == 1, r
    assert r.stdout == "", r
    # a local part is not a prefix: "alic" is not "alice" (the domain's fact remains)
    r = cache_cmd(spec, "get", "--json", "alic@postfix.test")
    assert r.returncode == 0, r
    assert [key_of(e) for e in r.json] == [("catch_all", "postfix.test", "", "")], r


def test_get_marks_expired_entries(filled):
    spec, _ = filled
    r = cache_cmd(spec, "get", "nobody@postfix.test", env=now_env(4 * HOUR))
    assert r.returncode == 0, r
    assert len(r.lines) == 2 and all(" EXPIRED " in ln for ln in r.lines), r


def test_get_bad_address_is_a_usage_error(filled):
    spec, _ = filled
    for bad in ("alice", "alice@", "@postfix.test", "a b@postfix.test"):
        r = cache_cmd(spec, "get", bad)
        assert r.returncode == 2, (bad, r)
        assert r.stderr.startswith("callout cache: invalid address"), r
        assert "Try 'callout cache --help'" in r.stderr


# --------------------------------------------------------------------------
# delete

def test_delete_address(filled, check):
    spec, _ = filled
    r = cache_cmd(spec, "delete", "alice@postfix.test")
    assert (r.returncode, r.stdout) == (0, "1 entry deleted\n"), r
    r = cache_cmd(spec, "get", "--json", "alice@postfix.test")
    assert [key_of(e) for e in r.json] == [("catch_all", "postfix.test", "", "")], r
    r = cache_cmd(spec, "--json", "delete", "alice@postfix.test")
    assert (r.returncode, r.json) == (0, [{"deleted": 0}]), r
    # every sender of an address
    r = cache_cmd(spec, "delete", "--json", "bob@postfix.test")
    assert r.json == [{"deleted": 1}], r
    r = cache_cmd(spec, "list", "--json")
    assert sorted(key_of(e) for e in r.json) == expected_keys(
        lambda x: x[3] not in ("alice@postfix.test", "bob@postfix.test"))
    # what check then does: probe again, and store again
    r1 = check(spec, "alice@postfix.test")
    r2 = check(spec, "alice@postfix.test")
    assert r1.results[0]["cached"] is False and r1.results[0]["verdict"] == "valid"
    assert r2.results[0]["cached"] is True and r2.results[0]["verdict"] == "valid"


def test_delete_domain(filled):
    spec, _ = filled
    r = cache_cmd(spec, "delete", "@postfix.test")
    assert (r.returncode, r.stdout) == (0, "4 entries deleted\n"), r
    r = cache_cmd(spec, "list", "--json")
    assert sorted(key_of(e) for e in r.json) == expected_keys(lambda x: x[2] != "postfix.test")
    r = cache_cmd(spec, "list", "--domain", "postfix.test")
    assert (r.returncode, r.stdout) == (0, ""), r
    # facts only
    r = cache_cmd(spec, "delete", "--json", "@NOPE.test")
    assert r.json == [{"deleted": 1}], r
    r = cache_cmd(spec, "delete", "@nope.test")
    assert r.stdout == "0 entries deleted\n", r


def test_delete_needs_an_address_or_a_domain(filled):
    spec, _ = filled
    for bad in ("postfix.test", "@", "@bad..test", "alice"):
        r = cache_cmd(spec, "delete", bad)
        assert r.returncode == 2, (bad, r)
        assert "expected an address local@domain or @domain" in r.stderr, r
    r = cache_cmd(spec, "delete")
    assert r.returncode == 2 and "'delete' needs an argument" in r.stderr, r
    r = cache_cmd(spec, "delete", "a@postfix.test", "b@postfix.test")
    assert r.returncode == 2 and "unexpected argument 'b@postfix.test'" in r.stderr, r
    r = cache_cmd(spec, "list", "--json")
    assert len(r.json) == len(EXPECTED)  # nothing was deleted


# --------------------------------------------------------------------------
# purge and stats

def test_purge_deletes_what_expired(filled):
    spec, _ = filled
    r = cache_cmd(spec, "purge")
    assert (r.returncode, r.stdout) == (0, "0 entries purged\n"), r
    r = cache_cmd(spec, "purge", "--json", env=now_env(10 * MINUTE))
    assert (r.returncode, r.json) == (0, [{"purged": 1}]), r
    r = cache_cmd(spec, "list", "--json")
    assert sorted(key_of(e) for e in r.json) == expected_keys(lambda x: x[1] != "unreachable")
    # what list calls expired is what purge deletes
    later = now_env(4 * HOUR)
    expired = cache_cmd(spec, "list", "--expired", "--json", env=later).json
    r = cache_cmd(spec, "purge", env=later)
    assert r.stdout == f"{len(expired)} entries purged\n", r
    assert len(expired) == sum(1 for x in EXPECTED if 5 * MINUTE < x[7] <= 3 * HOUR)
    assert cache_cmd(spec, "list", "--expired", "--json", env=later).json == []
    r = cache_cmd(spec, "purge", env=now_env(10 * DAY))
    assert r.stdout == f"{sum(1 for x in EXPECTED if x[7] > 3 * HOUR)} entries purged\n", r
    r = cache_cmd(spec, "list")
    assert (r.returncode, r.stdout) == (0, ""), r


def test_stats_counts(filled):
    spec, _ = filled
    r = cache_cmd(spec, "stats", "--json")
    assert r.returncode == 0, r
    [s] = r.json
    assert s["backend"] == "lmdb"
    assert s["total"] == s["entries"] == len(EXPECTED)
    assert s["expired"] == 0 and s["damaged"] == 0
    assert s["kinds"] == {"address": 4, "catch_all": 2, "null_sender": 1, "no_mail": 2,
                          "blocks_us": 1, "unreachable": 1, "postmaster": 0}
    assert s["verdicts"] == {"valid": 2, "invalid": 1, "unknown": 1, "tempfail": 0}
    assert 0 < s["bytes_used"] <= s["bytes_limit"]
    assert s["bytes_limit"] == 1 << 30

    r = cache_cmd(spec, "stats", env=now_env(4 * HOUR))
    assert r.returncode == 0, r
    text = r.stdout
    assert re.search(r"^backend +lmdb$", text, re.M), text
    expired = sum(1 for x in EXPECTED if x[7] <= 3 * HOUR)
    assert re.search(rf"^entries +{len(EXPECTED)} \({expired} expired, 0 damaged\)$", text,
                     re.M), text
    assert re.search(r"^  address +4 \(valid 2, invalid 1, unknown 1, tempfail 0\)$", text,
                     re.M), text
    for kind, n in (("catch_all", 2), ("null_sender", 1), ("no_mail", 2), ("blocks_us", 1),
                    ("unreachable", 1)):
        assert re.search(rf"^  {kind} +{n}$", text, re.M), text
    assert re.search(r"^size +\S+ \S+ used of 1 GiB \(\d+\.\d%\)$", text, re.M), text


# --------------------------------------------------------------------------
# damaged records (LMDB): skipped with a note, counted, purged

def damage_lmdb(path, needle):
    """Change one byte inside every stored copy of needle: the record's
    checksum no longer matches (LMDB itself keeps no checksums)."""
    with open(path, "r+b") as f:
        data = bytearray(f.read())
        hits = 0
        i = data.find(needle)
        while i >= 0:
            data[i] ^= 0x20
            hits += 1
            i = data.find(needle, i + 1)
        assert hits, needle
        f.seek(0)
        f.write(data)


def test_damaged_records(filled):
    spec, _ = filled
    damage_lmdb(spec[len("lmdb:"):], b"User unknown in virtual mailbox table")
    r = cache_cmd(spec, "list", "--json")
    assert r.returncode == 0, r
    assert sorted(key_of(e) for e in r.json) == expected_keys(
        lambda x: x[3] != "nobody@postfix.test")
    assert r.stderr == ("callout cache: note: 1 damaged record skipped "
                        "('callout cache purge' deletes them)\n"), r
    r = cache_cmd(spec, "stats", "--json")
    [s] = r.json
    assert (s["total"], s["entries"], s["damaged"]) == (len(EXPECTED), len(EXPECTED) - 1, 1)
    assert s["verdicts"]["invalid"] == 0
    r = cache_cmd(spec, "purge")
    assert r.stdout == "1 entry purged\n", r
    r = cache_cmd(spec, "list")
    assert r.stderr == "" and len(r.lines) == len(EXPECTED) - 1, r


# --------------------------------------------------------------------------
# errors

def test_junk_file_is_not_a_cache(tmp_path):
    junk = tmp_path / "junk.lmdb"
    junk.write_bytes(os.urandom(64 * 1024))
    before = junk.read_bytes()
    for cmd in (["list"], ["get", "a@b.test"], ["delete", "@b.test"], ["purge"], ["stats"]):
        r = cache_cmd(f"lmdb:{junk}", *cmd)
        assert r.returncode == 3, (cmd, r)
        assert r.stdout == "", r
        assert r.stderr.startswith(f"callout cache: cannot open cache lmdb:{junk}: "), r
        assert r.stderr.count("\n") == 1, r
    assert junk.read_bytes() == before  # never written to


def test_missing_file_is_an_error_and_is_not_created(tmp_path):
    path = tmp_path / "nothing-here.lmdb"
    r = cache_cmd(f"lmdb:{path}", "list")
    assert r.returncode == 3, r
    assert r.stderr.startswith(f"callout cache: cannot open cache lmdb:{path}: "), r
    assert not path.exists()
    assert not (tmp_path / "nothing-here.lmdb-lock").exists()


def test_bad_specs():
    r = run(["cache", "--cache", "bogus:thing", "list"])
    assert r.returncode == 2, r
    assert r.stderr.startswith("callout cache: cannot open cache bogus:thing: "), r
    r = run(["cache", "--cache", "none", "list"])
    assert r.returncode == 2, r
    assert "cannot open cache none:" in r.stderr
    r = run(["cache", "list"], env={"CALLOUT_CACHE": "none"})
    assert r.returncode == 2, r
    # a Redis spec that does not parse: the library calls it a cache that
    # cannot be opened (3); a usage error (2) would do as well
    r = run(["cache", "--cache", "redis://127.0.0.1:99999/0", "stats"])
    assert r.returncode in (2, 3) and "bad Redis port" in r.stderr, r


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_dead_redis_is_exit_3_and_hides_the_password():
    port = free_port()  # nothing listens there any more
    r = run(["cache", "--cache", f"redis://:hunter2secret@127.0.0.1:{port}/0", "stats"])
    assert r.returncode == 3, r
    assert r.stderr.startswith(
        f"callout cache: cannot open cache redis://:***@127.0.0.1:{port}/0: "), r
    assert "hunter2secret" not in r.stderr


@pytest.fixture
def empty_lmdb(lmdb):
    """An LMDB cache that exists and is empty (check opens, hence makes it;
    a syntax error is answered without a probe and not stored)."""
    r = run(["check", "--cache", lmdb, "not-an-address"])
    assert r.returncode == 1, r
    assert cache_cmd(lmdb, "list").returncode == 0
    return lmdb


def test_usage_errors(empty_lmdb):
    lmdb = empty_lmdb
    cases = [
        ([], "no command given"),
        (["frobnicate"], "unknown command 'frobnicate'"),
        (["list", "extra"], "unexpected argument 'extra': 'list' takes none"),
        (["get"], "'get' needs an argument: ADDRESS"),
        (["get", "a@b.test", "c@d.test"], "unexpected argument 'c@d.test'"),
        (["purge", "now"], "unexpected argument 'now'"),
        (["list", "--kind", "mailbox"], "invalid value 'mailbox' for --kind"),
        (["list", "--kind", "address,"], "invalid value 'address,' for --kind"),
        (["list", "--verdict", "maybe"], "invalid value 'maybe' for --verdict"),
        (["list", "--domain", "bad..test"], "invalid value 'bad..test' for --domain"),
        (["stats", "--expired"], "option '--expired' is for 'list' only"),
        (["get", "--domain", "x.test", "a@x.test"], "option '--domain' is for 'list' only"),
        (["list", "--bogus"], "unknown or ambiguous option '--bogus'"),
        (["list", "-x"], "unknown option '-x'"),
        (["list", "--json=yes"], "option '--json' takes no value"),
        (["list", "--kind"], "option '--kind' requires a value"),
    ]
    for args, message in cases:
        r = cache_cmd(lmdb, *args)
        assert r.returncode == 2, (args, r)
        assert r.stdout == "", (args, r)
        assert r.stderr.startswith("callout cache: " + message), (args, r)
        assert r.stderr.endswith("Try 'callout cache --help' for more information.\n"), (args, r)
    r = cache_cmd(lmdb, "list", env={"CALLOUT_NOW": "yesterday"})
    assert r.returncode == 2 and "invalid CALLOUT_NOW 'yesterday'" in r.stderr, r


def test_untrusted_arguments_are_escaped_in_messages(lmdb):
    # (the command is checked before the cache is opened)
    r = cache_cmd(lmdb, "fr\x1b[31mob\u202e")
    assert r.returncode == 2, r
    assert "\x1b" not in r.stderr and "\u202e" not in r.stderr, r
    assert "unknown command 'fr\\x1B[31mob\\u202E'" in r.stderr, r


def test_help():
    r = run(["cache", "--help"])
    assert r.returncode == 0 and r.stderr == "", r
    text = r.stdout
    assert text.startswith("Usage: callout cache [--cache SPEC] [--json] COMMAND [ARGS]\n")
    for word in ("list", "get ADDRESS", "delete ADDRESS", "delete @DOMAIN", "purge", "stats",
                 "--cache SPEC", "--json", "--domain DOMAIN", "--verdict V", "--kind K",
                 "--expired", "CALLOUT_NOW", "CALLOUT_CACHE", "Exit status"):
        assert word in text, word
    assert run(["help", "cache"]).stdout == text
    assert run(["cache", "list", "-h"]).stdout == text
    assert "cache" in run(["--help"]).stdout


# --------------------------------------------------------------------------
# Redis: the same flows on a shared cache

def test_redis_list_get_delete_purge_stats(fill, redis, redis_server):
    spec, prefix = redis
    t0, t1 = fill(spec)

    keys = record_keys(redis_server, prefix)
    assert len(keys) == len(EXPECTED), keys

    r = cache_cmd(spec, "list", "--json")
    assert r.returncode == 0, r
    assert sorted(key_of(e) for e in r.json) == expected_keys()
    for e in r.json:
        assert list(e) == JSON_KEYS and t0 <= e["probed"] <= t1, e
    r = cache_cmd(spec, "list")
    assert len(r.lines) == len(EXPECTED), r
    assert any(re.match(r"alice@postfix\.test +valid accepted 250 2\.1\.5 +age ", ln)
               for ln in r.lines), r

    r = cache_cmd(spec, "list", "--json", "--domain", "postfix.test", "--verdict", "valid")
    assert sorted(key_of(e) for e in r.json) == expected_keys(
        lambda x: x[2] == "postfix.test" and x[5] == "valid")

    r = cache_cmd(spec, "get", "--json", "bob@postfix.test")
    assert r.returncode == 0, r
    assert sorted(key_of(e) for e in r.json) == [
        ("address", "postfix.test", "bob@postfix.test", SENDER),
        ("catch_all", "postfix.test", "", "")]
    assert cache_cmd(spec, "get", "ghost@elsewhere.test").returncode == 1

    [s] = cache_cmd(spec, "stats", "--json").json
    assert s["backend"] == "redis"
    assert s["total"] == len(EXPECTED) and s["damaged"] == 0
    assert s["kinds"]["address"] == 4 and s["verdicts"]["valid"] == 2
    assert s["bytes_used"] > 0

    r = cache_cmd(spec, "delete", "alice@postfix.test")
    assert r.stdout == "1 entry deleted\n", r
    r = cache_cmd(spec, "delete", "@postfix.test")
    assert r.stdout == "3 entries deleted\n", r
    assert cache_cmd(spec, "list", "--domain", "postfix.test").stdout == ""
    left = len(EXPECTED) - 4
    assert len(record_keys(redis_server, prefix)) == left

    # Redis expires keys by the real clock; CALLOUT_NOW moves ours
    r = cache_cmd(spec, "list", "--expired", "--json", env=now_env(10 * DAY))
    assert len(r.json) == left, r
    r = cache_cmd(spec, "purge", env=now_env(10 * MINUTE))
    assert r.stdout == "1 entry purged\n", r
    r = cache_cmd(spec, "purge", "--json", env=now_env(10 * DAY))
    assert r.json == [{"purged": left - 1}], r
    assert record_keys(redis_server, prefix) == []
    [s] = cache_cmd(spec, "stats", "--json").json
    assert s["total"] == 0


def test_redis_damaged_and_hostile_records(redis, redis_server):
    spec, prefix = redis
    now = int(time.time())
    # not a record at all
    redis_set(redis_server, prefix + "a:evil.test:junk@evil.test", b"junk")
    # a well-formed record whose strings hold a right-to-left override,
    # a zero-width space, bytes that are not UTF-8, a backslash and quotes
    address = b"a\xe2\x80\xaeb\xff@evil.test"
    text = b'no \\ such \xe2\x80\x8b user \xc0\xaf "here"'
    redis_set(redis_server, prefix + "a:evil.test:" + "a\u202eb?@evil.test",
              record(1, 1, 5, 10, 550, now - 60, now + HOUR, "evil.test", address=address,
                     enhanced="5.1.1", text=text, mx="mx.evil.test", ip="192.0.2.1"))

    r = cache_cmd(spec, "list")
    assert r.returncode == 0, r
    assert r.stderr == ("callout cache: note: 1 damaged record skipped "
                        "('callout cache purge' deletes them)\n"), r
    [line] = r.lines
    assert line.startswith("a\\u202Eb\\xFF@evil.test "), line
    assert "invalid mailbox_unknown 550 5.1.1" in line
    assert line.endswith('[mx.evil.test 192.0.2.1]  "no \\\\ such \\u200B user \\xC0\\xAF '
                         '\\"here\\""'), line
    assert "\u202e" not in r.stdout and "\u200b" not in r.stdout

    r = run(["cache", "--cache", spec, "list", "--json"])
    raw = r.stdout
    assert raw.isascii(), raw
    [e] = r.json
    assert e["address"] == "a\u202eb\ufffd@evil.test"
    assert e["text"] == 'no \\ such \u200b user \ufffd\ufffd "here"'
    assert e["age"] >= 60 and e["expired"] is False

    [s] = cache_cmd(spec, "stats", "--json").json
    assert (s["total"], s["entries"], s["damaged"]) == (2, 1, 1)
    r = cache_cmd(spec, "purge")
    assert r.stdout == "1 entry purged\n", r
    r = cache_cmd(spec, "purge", env=now_env(2 * HOUR))
    assert r.stdout == "1 entry purged\n", r
