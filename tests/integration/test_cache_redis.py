"""The Redis cache backend (src/lib/cache_redis.c) against a real redis-server.

Driven through tests/tools/co-cache-probe, which runs cache commands (put,
get, claim, release, scan, ...) and prints one JSON object per result; its
stderr carries the faults the cache reports ("fault: ...") and recoveries
("recovered: ...").  Either all commands are given as arguments, or the
probe reads them from stdin one by one (Probe below) so a test can kill or
pause Redis between two commands.
"""
import json
import os
import queue
import shutil
import signal
import subprocess
import threading
import time

import pytest

import testnet
from conftest import binary

PROBE = "tests/tools/co-cache-probe"
KEY = "a:t.test:bob"


def spec(redis, prefix="t:", db=0, password=None, port=None):
    auth = f":{password}@" if password else ""
    return f"redis://{auth}127.0.0.1:{port or redis.port}/{db}?prefix={prefix}"


class Run:
    def __init__(self, proc, elapsed):
        self.returncode = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.elapsed = elapsed
        self.results = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]

    def op(self, name):
        return [r for r in self.results if r["op"] == name]


def faults(stderr):
    return [line for line in stderr.splitlines() if line.startswith("fault:")]


def recoveries(stderr):
    return [line for line in stderr.splitlines() if line.startswith("recovered:")]


def probe(cache_spec, *commands, opts=(), timeout=30, valgrind=False):
    """Run the probe with all commands as arguments."""
    cmd = [binary(PROBE), *opts, cache_spec, *commands]
    if valgrind:
        cmd = ["valgrind", "-q", "--leak-check=full", "--show-leak-kinds=all",
               "--errors-for-leak-kinds=all", "--error-exitcode=99"] + cmd
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    return Run(proc, time.monotonic() - start)


class Probe:
    """The probe reading commands from stdin: one command, one answer."""

    def __init__(self, cache_spec, tmp_path, name="probe"):
        self.errpath = tmp_path / f"{name}.stderr"
        self._err = open(self.errpath, "w")
        self.proc = subprocess.Popen([binary(PROBE), cache_spec], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self._err, text=True,
                                     bufsize=1)
        self._lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def do(self, command, timeout=15):
        """Send one command; return (its first result, seconds it took)."""
        start = time.monotonic()
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"no answer to {command!r} in {timeout} s")
        if line is None:
            pytest.fail(f"probe exited ({self.proc.wait()}) on {command!r}:\n{self.stderr()}")
        return json.loads(line), time.monotonic() - start

    def stderr(self):
        if not self._err.closed:
            self._err.flush()
        return self.errpath.read_text()

    def close(self, timeout=10):
        self.proc.stdin.close()
        rc = self.proc.wait(timeout=timeout)
        self._err.close()
        return rc

    def kill(self):
        self.proc.kill()
        self.proc.wait(timeout=10)
        self._err.close()


@pytest.fixture
def redis(redis_server):
    redis_server.flush()
    yield redis_server
    redis_server.resume()  # in case a test paused it and failed
    redis_server.start()   # ... or killed it


# ---- records ----------------------------------------------------------------

def test_round_trip(redis):
    sender_key = "a:t.test:carol\tsender@example.test"
    run = probe(spec(redis), f"put {KEY} valid 600", f"put c:t.test invalid 600",
                f"put {sender_key} tempfail 600", f"get {KEY} a:t.test:nobody c:t.test",
                f"get {sender_key}")
    assert run.returncode == 0, run.stderr
    assert [r["rc"] for r in run.op("put")] == [0, 0, 0]
    bob, nobody, domain, carol = run.op("get")
    assert bob["found"] is True
    rec = bob["record"]
    assert (rec["kind"], rec["verdict"], rec["domain"], rec["address"], rec["sender"]) == \
        ("address", "valid", "t.test", "bob", "")
    assert rec["expires"] - rec["probed"] == 600
    assert nobody["found"] is False
    assert (domain["record"]["kind"], domain["record"]["verdict"]) == ("catch_all", "invalid")
    assert carol["key"] == sender_key
    assert (carol["record"]["address"], carol["record"]["sender"]) == \
        ("carol", "sender@example.test")
    assert faults(run.stderr) == []
    # Another program reads what this one wrote.
    again = probe(spec(redis), f"get {KEY}")
    assert again.results[0]["found"] is True
    assert again.results[0]["record"]["verdict"] == "valid"


def test_forget(redis):
    """forget deletes a key as an asynchronous write, in order with the
    writes before it (how an acceptance clears "blocks us")."""
    run = probe(spec(redis), "put b:t.test unknown 600", "forget b:t.test", "get b:t.test",
                "forget b:t.test")
    assert run.returncode == 0, run.stderr
    assert [r["rc"] for r in run.op("forget")] == [0, 0]
    assert run.op("get")[0]["found"] is False
    assert faults(run.stderr) == []


def test_damaged_values_are_not_found(redis):
    redis.cli("SET", "t:a:t.test:junk", "garbage")
    redis.cli("SET", "t:a:t.test:short", "CO\x01\x01")
    redis.cli("RPUSH", "t:a:t.test:list", "x")  # not even a string
    run = probe(spec(redis), f"put {KEY} valid 600",
                f"get a:t.test:junk a:t.test:short a:t.test:list {KEY}")
    assert run.returncode == 0, run.stderr
    assert [r["found"] for r in run.op("get")] == [False, False, False, True]
    # A record damaged after it was written (one octet changed) is not found either.
    assert redis.cli("--no-raw", "GET", f"t:{KEY}").startswith('"CO')
    redis.cli("SETRANGE", f"t:{KEY}", "12", "Z")
    assert probe(spec(redis), f"get {KEY}").results[0]["found"] is False


def test_key_prefix_and_database(redis):
    run = probe(spec(redis, prefix="fleet1:"), f"put {KEY} valid 600", f"put x:t.test invalid 60")
    assert run.returncode == 0, run.stderr
    assert sorted(redis.cli("KEYS", "*").split()) == ["fleet1:a:t.test:bob", "fleet1:x:t.test"]
    # Another prefix is another cache.
    assert probe(spec(redis, prefix="fleet2:"), f"get {KEY}").results[0]["found"] is False
    assert probe(spec(redis, prefix="fleet1:"), f"get {KEY}").results[0]["found"] is True
    # Another database too.
    run = probe(spec(redis, prefix="fleet1:", db=3), f"put {KEY} invalid 600", f"get {KEY}")
    assert run.op("get")[0]["record"]["verdict"] == "invalid"
    assert redis.cli("-n", "3", "KEYS", "*").split() == ["fleet1:a:t.test:bob"]
    assert probe(spec(redis, prefix="fleet1:"), f"get {KEY}").results[0]["record"]["verdict"] \
        == "valid"


def test_ttl_is_set(redis):
    run = probe(spec(redis), f"put {KEY} valid 600", "put c:t.test valid 5")
    assert run.returncode == 0, run.stderr
    assert 590 <= int(redis.cli("TTL", f"t:{KEY}")) <= 600
    assert 0 < int(redis.cli("TTL", "t:c:t.test")) <= 5


def test_password(redis):
    redis.cli("CONFIG", "SET", "requirepass", "s3cret")
    try:
        run = probe(spec(redis, password="s3cret"), f"put {KEY} valid 600", f"get {KEY}")
        assert run.op("get")[0]["found"] is True, run.stderr
        assert faults(run.stderr) == []
        run = probe(spec(redis, password="wrong"), f"get {KEY}", "sleep 300", f"get {KEY}",
                    timeout=10)
        assert [r["found"] for r in run.op("get")] == [False, False]
        assert len(faults(run.stderr)) == 1, run.stderr
        assert "WRONGPASS" in run.stderr or "invalid" in run.stderr, run.stderr
    finally:
        redis.cli("-a", "s3cret", "--no-auth-warning", "CONFIG", "SET", "requirepass", "")


# ---- single flight ----------------------------------------------------------

def test_second_claim_is_answered_by_the_first(redis, tmp_path):
    first = Probe(spec(redis), tmp_path, "first")
    try:
        res, _ = first.do(f"claim {KEY} 5000 5000")
        assert res["result"] == "granted"
        assert redis.cli("EXISTS", f"t:f:{KEY}").strip() == "1"
        second = subprocess.Popen([binary(PROBE), spec(redis), f"claim {KEY} 5000 5000"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(0.5)  # the second one waits
        assert second.poll() is None
        first.do(f"put {KEY} valid 600")
        first.do(f"release {KEY}")
        out, err = second.communicate(timeout=10)
        res = json.loads(out)
        assert res["result"] == "answered", (out, err)
        assert res["record"]["verdict"] == "valid"
        assert 400 <= res["ms"] < 2500
        assert first.close() == 0
    finally:
        if first.proc.poll() is None:
            first.kill()
    # The holder released its marker.
    assert redis.cli("EXISTS", f"t:f:{KEY}").strip() == "0"


def test_claim_granted_when_the_holder_dies(redis, tmp_path):
    holder = Probe(spec(redis), tmp_path, "holder")
    res, _ = holder.do(f"claim {KEY} 1500 5000")
    assert res["result"] == "granted"
    holder.kill()  # never puts, never releases
    run = probe(spec(redis), f"claim {KEY} 1500 10000")
    res = run.results[0]
    # Granted once the marker expired (PX), long before the wait ends; the
    # new holder owns the marker now.
    assert res["result"] == "granted", run.stdout
    assert 800 <= res["ms"] < 4000, res
    assert redis.cli("EXISTS", f"t:f:{KEY}").strip() == "1"


def test_claim_granted_after_the_wait(redis, tmp_path):
    holder = Probe(spec(redis), tmp_path, "holder")
    try:
        assert holder.do(f"claim {KEY} 10000 5000")[0]["result"] == "granted"
        run = probe(spec(redis), f"claim {KEY} 10000 600")
        assert run.results[0]["result"] == "granted"
        assert 500 <= run.results[0]["ms"] < 2000
    finally:
        holder.kill()


def test_release_deletes_only_its_own_marker(redis, tmp_path):
    holder = Probe(spec(redis), tmp_path, "holder")
    try:
        assert holder.do(f"claim {KEY} 10000 5000")[0]["result"] == "granted"
        probe(spec(redis), f"release {KEY}")  # another process: not its marker
        assert redis.cli("EXISTS", f"t:f:{KEY}").strip() == "1"
        holder.do(f"release {KEY}")
        holder.do("sleep 100")
        assert redis.cli("EXISTS", f"t:f:{KEY}").strip() == "0"
    finally:
        holder.kill()


def test_cancelled_requests_never_call_back(redis):
    run = probe(spec(redis), f"put {KEY} valid 600", f"get-cancel {KEY}",
                "claim a:t.test:held 5000 5000",
                "claim-cancel a:t.test:held 5000 2000 200", "sleep 300")
    assert run.returncode == 0, run.stderr
    assert run.op("get-cancel")[0]["calls"] == 0
    granted, cancelled = run.op("claim")
    assert granted["result"] == "granted"
    assert cancelled["result"] == "cancelled" and cancelled["calls"] == 0


# ---- administration ---------------------------------------------------------

def test_scan_del_info(redis):
    redis.cli("SET", "s*:a:t.test:junk", "garbage")
    redis.cli("SET", "other:a:t.test:bob", "garbage")
    run = probe(spec(redis, prefix="s*:"), f"put {KEY} valid 600",
                "put a:t.test:carol invalid 600", "put a:u.test:dave valid 600",
                "put c:t.test valid 600", "claim a:t.test:bob 10000 0", "sleep 100")
    assert run.returncode == 0, run.stderr
    assert redis.cli("EXISTS", "s*:f:a:t.test:bob").strip() == "1"

    run = probe(spec(redis, prefix="s*:"), "scan a:t.test:", "scan", "scan a:t.*",
                "info", opts=["--admin"])
    assert run.returncode == 0, run.stderr
    scoped, everything, literal = run.op("scan")
    assert sorted((r["key"], r["damaged"]) for r in scoped["records"]) == [
        ("a:t.test:bob", False), ("a:t.test:carol", False), ("a:t.test:junk", True)]
    # Flight markers are not records; other prefixes are not ours.
    assert sorted(r["key"] for r in everything["records"]) == [
        "a:t.test:bob", "a:t.test:carol", "a:t.test:junk", "a:u.test:dave", "c:t.test"]
    assert literal["records"] == []  # '*' in a prefix is no wildcard
    info = run.op("info")[0]
    assert (info["rc"], info["backend"]) == (0, "redis")
    assert info["bytes_used"] > 0

    run = probe(spec(redis, prefix="s*:"), f"del {KEY} a:t.test:carol a:t.test:none",
                "get a:t.test:bob a:u.test:dave", opts=["--admin"])
    assert run.op("del")[0] == {"op": "del", "rc": 0, "deleted": 2}
    # Administration is synchronous: rc 1.
    assert [(r["rc"], r["found"]) for r in run.op("get")] == [(1, False), (1, True)]
    assert redis.cli("EXISTS", "other:a:t.test:bob").strip() == "1"


def test_admin_strict(redis):
    run = probe(spec(redis), f"put {KEY} valid 60", f"get {KEY}", opts=["--admin", "--strict"])
    assert [r["rc"] for r in run.results] == [0, 1]
    run = probe(spec(redis, port=1), "info", opts=["--admin", "--strict"], timeout=10)
    assert run.returncode == 1
    assert "redis://127.0.0.1:1" in run.stderr and "refused" in run.stderr, run.stderr


# ---- faults -----------------------------------------------------------------

def test_unreachable_at_start(redis):
    run = probe(spec(redis, port=1), f"get {KEY}", f"put {KEY} valid 60", f"claim {KEY} 100 100",
                "sleep 400", f"get {KEY}", timeout=10)
    assert run.returncode == 0, run.stderr
    assert run.elapsed < 3
    assert [r["found"] for r in run.op("get")] == [False, False]
    assert run.op("get")[1]["rc"] == -1  # uncached at once while the fault lasts
    assert run.op("put")[0]["rc"] == -1
    assert run.op("claim")[0]["result"] in ("failed", "granted")
    flt = faults(run.stderr)
    assert len(flt) == 1, run.stderr
    assert "cache redis://127.0.0.1:1:" in flt[0] and "going on uncached" in flt[0]


def test_redis_killed_mid_run_and_restarted(redis, tmp_path):
    p = Probe(spec(redis), tmp_path)
    try:
        assert p.do(f"put {KEY} valid 600")[0]["rc"] == 0
        assert p.do(f"get {KEY}")[0]["found"] is True
        redis.kill()
        res, took = p.do(f"get {KEY}")
        assert res["found"] is False and took < 1.5
        for _ in range(3):  # uncached at once, no new complaint
            res, took = p.do(f"get {KEY}")
            assert (res["rc"], res["found"]) == (-1, False) and took < 0.5
        assert p.do(f"put {KEY} valid 600")[0]["rc"] == -1
        assert p.do(f"claim {KEY} 1000 1000")[0]["result"] == "failed"
        p.do("sleep 1500")  # a few reconnections fail meanwhile
        assert len(faults(p.stderr())) == 1, p.stderr()

        redis.start()  # empty: no persistence
        res, took = p.do("await-ok 15000", timeout=30)
        assert res["ok"] is True, p.stderr()
        assert p.do(f"put {KEY} invalid 600")[0]["rc"] == 0
        res, _ = p.do(f"get {KEY}")
        assert res["found"] is True and res["record"]["verdict"] == "invalid"
        assert p.close() == 0
    finally:
        if p.proc.poll() is None:
            p.kill()
    err = p.stderr()
    assert len(faults(err)) == 1, err
    assert f"cache redis://127.0.0.1:{redis.port}:" in faults(err)[0]
    assert len(recoveries(err)) == 1, err


def test_redis_stops_answering(redis, tmp_path):
    """A server that keeps the connection but answers nothing is gone after ~2 s."""
    p = Probe(spec(redis), tmp_path)
    try:
        assert p.do(f"put {KEY} valid 600")[0]["rc"] == 0
        assert p.do(f"get {KEY}")[0]["found"] is True  # nothing left unanswered
        redis.pause()
        try:
            res, took = p.do(f"get {KEY}", timeout=10)
            assert res["found"] is False and res["timeout"] is False
            assert 1.5 < took < 4
            res, took = p.do(f"claim {KEY} 1000 1000")
            assert res["result"] == "failed" and took < 0.5
        finally:
            redis.resume()
        res, _ = p.do("await-ok 15000", timeout=30)
        assert res["ok"] is True
        res, _ = p.do(f"get {KEY}")
        assert res["found"] is True  # the server kept its data
        assert p.close() == 0
    finally:
        if p.proc.poll() is None:
            p.kill()
    err = p.stderr()
    assert len(faults(err)) == 1 and "no reply" in err, err


def test_pending_requests_end_when_the_connection_drops(redis, tmp_path):
    """Waiting claims are granted, the probe does not hang."""
    holder = Probe(spec(redis), tmp_path, "holder")
    try:
        assert holder.do(f"claim {KEY} 30000 30000")[0]["result"] == "granted"
        waiter = subprocess.Popen([binary(PROBE), spec(redis), f"claim {KEY} 30000 30000"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(0.5)
        redis.kill()
        out, err = waiter.communicate(timeout=10)
        res = json.loads(out)
        assert res["result"] == "granted" and res["ms"] < 2000, (out, err)
        assert len(faults(err)) == 1, err
    finally:
        holder.kill()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("valgrind") is None or os.environ.get("CALLOUT_SANITIZED"),
                    reason="valgrind not installed, or a sanitizer build (they do not mix)")
def test_no_leaks_under_valgrind(redis):
    run = probe(spec(redis), f"put {KEY} valid 600", f"get {KEY} a:t.test:none",
                f"get-cancel {KEY}", "claim a:t.test:v 5000 5000",
                "claim-cancel a:t.test:v 5000 3000 200", "claim a:t.test:v 5000 300",
                "release a:t.test:v", "scan", "info", "del a:t.test:v", valgrind=True,
                timeout=120)
    assert run.returncode == 0, run.stderr
    run = probe(spec(redis, port=1), f"get {KEY}", "sleep 300", f"get {KEY}", valgrind=True,
                timeout=120)
    assert run.returncode == 0, run.stderr
