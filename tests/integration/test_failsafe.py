"""Fail safe under allocation failure (issue 5): an allocation our own code
makes that fails must end in tempfail, an error exit or a pass -- never
in a wrong `invalid` or a reject, a crash or a hang.

tests/tools/failmalloc.so (LD_PRELOAD) makes the Nth allocation whose
caller is in libcallout, `callout` or `calloutd` return NULL (or every one
from the Nth on).  The tests first count the allocations of a normal run,
then fail each one in turn (a sample when there are many), against the
suite's real DNS server and Postfix:

  alice@postfix.test   exists: `valid`, or `tempfail`/an error, nothing else
  nobody@postfix.test  Postfix answers 550 5.1.1: `invalid` only with that
                       very answer as its evidence, else tempfail/an error

What a failure may look like (callout(1), EXIT STATUS): a result with
verdict tempfail that says "out of memory", or no result and a
"callout check: ... out of memory" message with exit status 3.  Exit
status 1 only when an address really is invalid.  A failure must not
leave a wrong answer in the cache either.

calloutd is armed once it is up (SIGUSR2), then every N is tried on one
running daemon, through the policy service, the HTTP API and the milter:
it never rejects alice, rejects nobody only on Postfix's 550, answers
within reply_within, does not die, and answers right again once memory
is back.  Its start and a SIGHUP reload are swept too.

Skipped under the sanitizers: ASan owns malloc and cannot be preloaded
after.
"""
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

import conftest
import fixtures_calloutd
import testnet

pytestmark = pytest.mark.skipif(os.environ.get("CALLOUT_SANITIZED") == "1",
                                reason="ASan replaces malloc: no LD_PRELOAD shim")

HELO = "verifier.test"
VALID = "alice@postfix.test"
INVALID = "nobody@postfix.test"
POSTFIX_550 = "User unknown in virtual mailbox table"

# Each sweep is bounded: past this many allocations, a random sample
# (seeded, so a failure names the N to reproduce) plus the first and last.
MAX_RUNS = 120
RUN_TIMEOUT = 20
# A normal run takes well under a second; a failure must not wait for a
# timeout to be noticed.
SLOW_RUN = 3.0

# A tempfail that an allocation failure caused says so, and so does an error.
OOM = re.compile(r"out of memory|Cannot allocate memory")
OOM_REASONS = ("internal", "dns_tempfail")

# What a failed assert(), glibc's heap checks or a sanitizer leave on stderr
# (a signal shows in the exit status).
CRASH_WORDS = re.compile(r"AddressSanitizer|LeakSanitizer|runtime error|Assertion .* failed|"
                         r"double free|corrupted|free\(\): |malloc\(\): ")


def shim():
    path = os.path.join(conftest.BUILD, "tests", "tools", "failmalloc.so")
    if not os.path.exists(path):
        pytest.fail(f"{path} not built")
    return path


def read_report(path):
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def report_count(text):
    m = re.findall(r"^count (\d+)$", text, re.M)
    assert m, f"no count in the failmalloc report:\n{text}"
    return int(m[-1])


def where(report):
    """The call sites that failed, as function and line (addr2line)."""
    out = []
    for obj, off in re.findall(r"^fail \d+ \S+ \d+ (\S+)\+(0x[0-9a-f]+)$", report, re.M):
        p = subprocess.run(["addr2line", "-f", "-i", "-C", "-e", obj, off],
                           capture_output=True, text=True)
        lines = p.stdout.split()
        out.append(f"{os.path.basename(obj)}+{off} " + " <- ".join(
            f"{lines[i]} {os.path.basename(lines[i + 1])}" for i in range(0, len(lines) - 1, 2)))
    return "; ".join(out)


def sample(total, seed):
    """Every N up to total, or a bounded sample of them."""
    if total <= MAX_RUNS:
        return list(range(1, total + 1))
    rng = random.Random(seed)
    picked = set(rng.sample(range(2, total), MAX_RUNS - 2)) | {1, total}
    return sorted(picked)


# --------------------------------------------------------------------------
# callout check

class Cli:
    """callout check of a valid and an invalid address of domain, given as
    arguments or (from_file) in a file."""

    def __init__(self, dns, tmp, domain="postfix.test", from_file=False):
        self.dns = dns
        self.tmp = tmp
        self.valid, self.invalid = f"alice@{domain}", f"nobody@{domain}"
        self.addresses = [self.valid, self.invalid]
        if from_file:
            path = os.path.join(tmp, "addresses")
            with open(path, "w") as f:
                f.write(f"# from a file\n{self.valid}\n\n{self.invalid}\n")
            self.addresses = ["-f", path]

    def run(self, args, nth=0, mode="once"):
        report = os.path.join(self.tmp, "failmalloc.report")
        if os.path.exists(report):
            os.unlink(report)
        env = dict(os.environ, LD_PRELOAD=shim(), FAILMALLOC_NTH=str(nth),
                   FAILMALLOC_MODE=mode, FAILMALLOC_REPORT=report)
        cmd = [conftest.binary("callout"), "check", "--json", "--dns-server", self.dns,
               "--port", str(testnet.SMTP_PORT), "--helo", HELO, *args, *self.addresses]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=RUN_TIMEOUT,
                                  env=env)
        except subprocess.TimeoutExpired as e:
            pytest.fail(f"N={nth} {mode}: callout check hung ({RUN_TIMEOUT} s): {e.stderr!r}")
        return proc, read_report(report)


# Faults found in engine.c and session.c (being rewritten; reported to
# their owner): a sweep that meets only these ends xfail, naming them.
# About one result:
KNOWN = []
# About a whole run (stderr):
KNOWN_RUN = []


def known_fault(r, table=KNOWN):
    for why, match in table:
        if match(r):
            return why
    return None


class Verdict:
    """What a user may rely on after an allocation failed."""

    def __init__(self, valid, invalid):
        self.valid, self.invalid = valid, invalid
        self.problems = []   # (N, what, context)
        self.known = set()
        self.known_hits = []

    def judge(self, proc, report, nth, mode):
        """Check one run; returns its verdicts by address."""
        ctx = (f"N={nth} {mode} failed at [{where(report)}]\n"
               f"  stdout: {proc.stdout.strip()}\n  stderr: {proc.stderr.strip()}")
        bad = []
        if proc.returncode < 0:
            bad.append(f"killed by signal {-proc.returncode}")
        if CRASH_WORDS.search(proc.stderr):
            bad.append("crash or sanitizer output")
        why = known_fault(proc.stderr, KNOWN_RUN)
        if why and not bad:
            self.known.add(why)
            self.known_hits.append((nth, "run"))
            return {}
        results = {}
        for line in proc.stdout.splitlines():
            try:
                r = json.loads(line)
            except ValueError:
                bad.append("output is not JSON lines")
                continue
            if r.get("address") not in (self.valid, self.invalid) or r["address"] in results:
                bad.append("a result for an address not asked about, or twice")
                continue
            results[r["address"]] = r
        for addr, r in results.items():
            why = known_fault(r)
            if why:
                self.known.add(why)
                self.known_hits.append((nth, addr))
                continue
            if r["verdict"] == "tempfail":
                if not (OOM.search(r["text"]) and r["reason"] in OOM_REASONS):
                    bad.append(f"{addr}: tempfail without saying out of memory")
            elif addr == self.valid and r["verdict"] != "valid":
                bad.append(f"{addr} is valid, got {r['verdict']}")
            elif addr == self.invalid and r["verdict"] == "invalid":
                # only on Postfix's own answer
                if (r["code"], r["enhanced"], r["stage"], r["reason"]) != \
                        (550, "5.1.1", "rcpt", "mailbox_unknown") or POSTFIX_550 not in r["text"]:
                    bad.append(f"{addr}: invalid without Postfix's 550 as evidence")
            elif addr == self.invalid:
                bad.append(f"{addr}: {r['verdict']}, expected invalid or tempfail")
        # the documented exit status, and a word when results are missing
        if proc.returncode >= 0:
            want = 1 if any(r["verdict"] == "invalid" for r in results.values()) else 3
            if proc.returncode != want:
                bad.append(f"exit status {proc.returncode}, expected {want}")
        said = [ln for ln in proc.stderr.splitlines() if ln.startswith("callout check: ")]
        if len(results) < 2 and not any(OOM.search(ln) for ln in said):
            bad.append("a result is missing and stderr does not say it is out of memory")
        for line in proc.stderr.splitlines():
            if not line.startswith("callout"):
                bad.append(f"unexpected stderr line {line!r}")
        self.problems += [(nth, b, ctx) for b in bad]
        return {a: r["verdict"] for a, r in results.items()}

    def conclude(self):
        if self.problems:
            pytest.fail(f"{len(self.problems)} problems:\n" + "\n".join(
                f"N={n}: {b}\n  {ctx}" for n, b, ctx in self.problems[:20]))
        if self.known:
            pytest.xfail("; ".join(sorted(self.known)))


def sweep(cli, args, seed, cache_of=None, after_check=False, mode="once", label=""):
    """Count the allocations of a normal run, then fail each in turn.

    cache_of(n) gives the cache options of run n (its own cache);
    after_check: run once more on that cache without failures, which must
    give the truth (a failure must not leave a wrong answer behind)."""
    v = Verdict(cli.valid, cli.invalid)
    setup = cache_of(0) if cache_of else []
    proc, report = cli.run(args + setup)
    normal = v.judge(proc, report, 0, "none")
    assert not v.problems and normal == {cli.valid: "valid", cli.invalid: "invalid"}, \
        (v.problems, proc.stdout, proc.stderr)
    total = report_count(report)
    assert total > 10, report
    runs = sample(total, seed)
    start = time.monotonic()
    affected = slowest = slowest_n = 0
    for n in runs:
        extra = cache_of(n) if cache_of else []
        t0 = time.monotonic()
        proc, report = cli.run(args + extra, nth=n, mode=mode)
        took = time.monotonic() - t0
        if took > slowest:
            slowest, slowest_n = took, n
        if took > SLOW_RUN:
            v.problems.append((n, f"took {took:.1f} s", where(report)))
        if v.judge(proc, report, n, mode) != normal:
            affected += 1
        if after_check:
            before, known = len(v.problems), len(v.known_hits)
            proc, report = cli.run(args + extra)
            got = v.judge(proc, report, n, "normal run after")
            if len(v.problems) == before and len(v.known_hits) == known and got != normal:
                v.problems.append((n, "the cache was left wrong", proc.stdout))
    print(f"\n{label}: {total} allocations, {len(runs)} runs, {affected} changed the "
          f"outcome, slowest {slowest:.2f} s (N={slowest_n}), {time.monotonic() - start:.1f} s in all")
    assert affected > 0, "no failure showed: is the shim failing anything?"
    v.conclude()


@pytest.fixture
def cli(dns_server, postfix_mx, tmp_path):
    return Cli(dns_server.server, str(tmp_path))


def test_callout_check_implicit_mx_from_file(dns_server, postfix_mx, tmp_path):
    # a domain without MX (its A record is the mail host), addresses read from a file
    cli = Cli(dns_server.server, str(tmp_path), domain="implicit.test", from_file=True)
    sweep(cli, ["--no-cache"], seed=8, label="callout check -f FILE, implicit MX")


def test_callout_check_route(cli):
    # call forward: the host named by --route, not the MX
    sweep(cli, ["--no-cache", "--route", f"postfix.test={testnet.POSTFIX_IP}"], seed=9,
          label="callout check --route")


@pytest.mark.parametrize("mode", ["once", "after"])
def test_callout_check_no_cache(cli, mode):
    # pipelined, one session for both addresses, the transcript kept
    sweep(cli, ["--no-cache", "-t"], seed=1, mode=mode,
          label=f"callout check --no-cache -t ({mode})")


def test_callout_check_tls_catch_all(cli):
    # STARTTLS, the random local part, one address after the other
    sweep(cli, ["--no-cache", "--tls", "--catch-all", "--no-pipelining", "-c", "1"], seed=2,
          label="callout check --tls --catch-all --no-pipelining -c 1")


def test_callout_check_lmdb(cli, tmp_path):
    # probes written to a new LMDB file
    def cache_of(n):
        return ["--cache", f"lmdb:{tmp_path}/cache-{n}.lmdb"]
    sweep(cli, [], seed=3, cache_of=cache_of, after_check=True,
          label="callout check --cache lmdb (written)")


def test_callout_check_lmdb_answers(cli, tmp_path):
    # both answers read from an LMDB file a normal run filled
    filled = tmp_path / "filled.lmdb"
    proc, _ = cli.run(["--cache", f"lmdb:{filled}"])
    assert proc.returncode == 1, proc.stderr

    def cache_of(n):
        copy = tmp_path / f"cache-{n}.lmdb"
        shutil.copyfile(filled, copy)
        return ["--cache", f"lmdb:{copy}"]
    sweep(cli, [], seed=4, cache_of=cache_of, after_check=True,
          label="callout check --cache lmdb (read)")


def test_callout_check_redis(cli, redis_server):
    # probes written to Redis, each run under its own prefix
    def cache_of(n):
        return ["--cache", f"redis://127.0.0.1:{redis_server.port}/0?prefix=failsafe{n}:"]
    sweep(cli, [], seed=5, cache_of=cache_of, after_check=True,
          label="callout check --cache redis")


def test_callout_check_memory_cache(cli):
    # the in-process cache (one context): written, then read by the same run
    sweep(cli, ["--cache", "memory", "-c", "1"], seed=6,
          label="callout check --cache memory -c 1")


@pytest.mark.parametrize("command", [["get", VALID], ["list"]])
def test_callout_cache_command(cli, tmp_path, command):
    # `callout cache` on a filled LMDB file: the answer, or exit 3 and why
    filled = tmp_path / "filled.lmdb"
    proc, _ = cli.run(["--cache", f"lmdb:{filled}"])
    assert proc.returncode == 1, proc.stderr
    report = str(tmp_path / "failmalloc.report")

    def run(n):
        if os.path.exists(report):
            os.unlink(report)
        env = dict(os.environ, LD_PRELOAD=shim(), FAILMALLOC_NTH=str(n),
                   FAILMALLOC_REPORT=report)
        p = subprocess.run([conftest.binary("callout"), "cache", "--cache", f"lmdb:{filled}",
                            "--json", *command], capture_output=True, text=True,
                           timeout=RUN_TIMEOUT, env=env)
        return p, read_report(report)

    normal, rep = run(0)
    assert normal.returncode == 0 and normal.stdout, normal.stderr
    total = report_count(rep)
    problems, known = [], set()
    for n in sample(total, seed=7):
        p, rep = run(n)
        ctx = f"N={n} [{where(rep)}] exit {p.returncode}\n  {p.stdout}\n  {p.stderr}"
        why = known_fault(p.stderr, KNOWN_RUN)
        if why:
            known.add(why)
        elif p.returncode < 0 or CRASH_WORDS.search(p.stderr):
            problems.append(f"crashed: {ctx}")
        elif p.returncode == 0:
            if p.stdout != normal.stdout:
                problems.append(f"exit 0 with other output: {ctx}")
        elif p.returncode != 3 or not OOM.search(p.stderr):
            problems.append(f"expected the answer, or exit 3 and out of memory: {ctx}")
    print(f"\ncallout cache {command[0]}: {total} allocations")
    assert not problems, "\n".join(problems[:10])
    if known:
        pytest.xfail("; ".join(sorted(known)))


# --------------------------------------------------------------------------
# calloutd: fail after start-up, every front end

MILTERTEST = "/usr/bin/miltertest"
MILTER_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "milter", "failsafe.lua")
# Loopback clients are skipped by default: skip a network nobody uses.
DAEMON_SECTIONS = {"verify": {"skip_networks": "198.51.100.0/24"},
                   "daemon": {"reply_within": "3s"},
                   # a hundred batches in a row to one domain: the rate
                   # that protects real servers would pace them
                   "engine": {"domain_rate": "0", "host_rate": "0"}}
# An answer comes within reply_within (3 s), or it is a hang.
ANSWER_TIMEOUT = 8
# Domain sections: postfix.test through a route (call forward) instead of
# its MX, and one more that only costs the parser an allocation.
DAEMON_DOMAINS = f"""
[domain postfix.test]
route = {testnet.POSTFIX_IP}

[domain skipped.test]
action = skip
"""
DEFER = re.compile(r"^action=(DEFER_IF_PERMIT|DEFER|4\d\d)\b")
REJECT = re.compile(r"^action=(REJECT|5\d\d)\b")


class ArmedDaemon:
    """calloutd under failmalloc, armed by SIGUSR2 once it is up."""

    def __init__(self, calloutd, tmp, sections, config=""):
        self.control = os.path.join(tmp, "failmalloc.control")
        self.report = os.path.join(tmp, "failmalloc.report")
        self.seq = 0
        with open(self.control, "w") as f:
            f.write("0")
        self.d = calloutd(config, sections=sections, env={
            "LD_PRELOAD": shim(), "FAILMALLOC_ARM": "USR2",
            "FAILMALLOC_CONTROL": self.control, "FAILMALLOC_REPORT": self.report})

    def arm(self, n, mode="once"):
        """Fail the Nth allocation from now (0: none); returns how many were
        counted since the previous arm."""
        with open(self.control, "w") as f:
            f.write(f"{n} {mode}")
        self.seq += 1
        self.d.proc.send_signal(signal.SIGUSR2)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            m = re.search(rf"^arm {self.seq} \d+ \w+ previous=(\d+)$", read_report(self.report),
                          re.M)
            if m:
                return int(m.group(1))
            time.sleep(0.005)
        pytest.fail(f"calloutd did not take SIGUSR2:\n{self.d.log_text()}")

    def failures_since_arm(self):
        text = read_report(self.report)
        return text[text.rfind(f"arm {self.seq} "):]


def policy_ask(d, sender):
    try:
        return d.policy({"sender": sender, "recipient": "someone@gateway.test"},
                        timeout=ANSWER_TIMEOUT) or "closed"
    except socket.timeout:
        return "timeout"
    except OSError as e:
        return f"closed ({e.__class__.__name__})"


def http_verify(d, address):
    try:
        with urllib.request.urlopen(f"{d.http_url}/v1/verify?address={address}",
                                    timeout=ANSWER_TIMEOUT) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except socket.timeout:
        return "timeout", None
    except (OSError, http.client.HTTPException) as e:
        if isinstance(getattr(e, "reason", None), socket.timeout):
            return "timeout", None
        return "closed", str(e)


def milter_ask(d, sender):
    try:
        p = subprocess.run([MILTERTEST, "-s", MILTER_SCRIPT, "-D",
                            f"DIR={os.path.dirname(MILTER_SCRIPT)}", "-D",
                            f"SPEC={d.milter_spec}", "-D", "CLIENT=192.0.2.10", "-D",
                            f"SENDER=<{sender}>"],
                           capture_output=True, text=True, timeout=ANSWER_TIMEOUT)
    except subprocess.TimeoutExpired:
        return "timeout"
    return " ".join(p.stdout.split()) or f"no answer: {p.stderr.strip()}"


def http_list(d):
    body = json.dumps({"addresses": [VALID, INVALID]}).encode()
    req = urllib.request.Request(f"{d.http_url}/v1/verify", data=body,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=ANSWER_TIMEOUT) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except (OSError, http.client.HTTPException) as e:
        if isinstance(e, socket.timeout) or isinstance(getattr(e, "reason", None),
                                                       socket.timeout):
            return "timeout", None
        return "closed", str(e)


def in_flight(d):
    """The in-flight gauge of /metrics, or the HTTP status when it failed."""
    try:
        with urllib.request.urlopen(f"{d.http_url}/metrics", timeout=ANSWER_TIMEOUT) as r:
            m = re.search(r"^calloutd_verifications_in_flight (\d+)$", r.read().decode(), re.M)
            return int(m.group(1)) if m else "no gauge"
    except urllib.error.HTTPError as e:
        return f"HTTP {e.code}"
    except (OSError, http.client.HTTPException):
        return "timeout or closed"


def batch(d):
    """One request of each kind; what each got."""
    got = {
        "policy valid": policy_ask(d, VALID),
        "policy invalid": policy_ask(d, INVALID),
        "http valid": http_verify(d, VALID),
        "http invalid": http_verify(d, INVALID),
        "http list": http_list(d),
        "milter valid": milter_ask(d, VALID) if os.path.exists(MILTERTEST) else "skipped",
    }
    got["in flight"] = in_flight(d)
    return got


def normal_batch(got):
    return (got["policy valid"] == "action=DUNNO"
            and REJECT.match(got["policy invalid"]) is not None
            and got["http valid"][0] == 200 and got["http valid"][1]["verdict"] == "valid"
            and got["http invalid"][0] == 200 and got["http invalid"][1]["verdict"] == "invalid"
            and got["http list"][0] == 200
            and [r["verdict"] for r in got["http list"][1]["results"]] == ["valid", "invalid"]
            and got["in flight"] == 0
            and got["milter valid"] in ("connect continue HELO continue MAIL continue "
                                        "RCPT continue", "skipped"))


def judge_daemon(got, log):
    """What must hold for every answer, whatever failed."""
    bad = []
    decisions = [ln for ln in log.splitlines() if " checked=sender " in ln]
    for k, v in got.items():
        if v == "timeout" or (isinstance(v, tuple) and v[0] == "timeout"):
            bad.append(f"{k}: no answer within {ANSWER_TIMEOUT} s")
    if REJECT.match(got["policy valid"]):
        bad.append(f"policy rejected {VALID}: {got['policy valid']}")
    if REJECT.match(got["policy invalid"]) and not any(
            f"sender=<{INVALID}>" in ln and "verdict=invalid reason=mailbox_unknown smtp=550 "
            in ln and "action=reject" in ln for ln in decisions):
        bad.append(f"policy rejected {INVALID} without Postfix's 550: {got['policy invalid']}")
    for k in ("policy valid", "policy invalid"):
        v = got[k]
        if not (v == "action=DUNNO" or DEFER.match(v) or REJECT.match(v) or
                v.startswith("closed")):
            bad.append(f"{k}: unexpected reply {v!r}")
    http = [("http valid", VALID, got["http valid"]), ("http invalid", INVALID, got["http invalid"])]
    status, body = got["http list"]
    if status == 200:
        if [r.get("address") for r in body["results"]] != [VALID, INVALID]:
            bad.append(f"http list: results do not match the addresses: {body}")
        else:
            http += [("http list", VALID, (200, body["results"][0])),
                     ("http list", INVALID, (200, body["results"][1]))]
    else:
        http.append(("http list", None, (status, body)))
    for k, addr, (status, body) in http:
        if status == 200:
            r = body
            if r["verdict"] == "tempfail":
                if not (OOM.search(r["text"]) and r["reason"] in OOM_REASONS) \
                        and not known_fault(r):
                    bad.append(f"{k}: tempfail without saying out of memory: {r}")
            elif addr == VALID and r["verdict"] != "valid":
                bad.append(f"{k}: {r['verdict']} for a valid address: {r}")
            elif addr == INVALID and r["verdict"] == "invalid" and (
                    r["code"] != 550 or POSTFIX_550 not in r["text"]):
                bad.append(f"{k}: invalid without Postfix's 550: {r}")
            elif addr == INVALID and r["verdict"] not in ("invalid", "tempfail"):
                bad.append(f"{k}: {r['verdict']}: {r}")
        elif status not in (500, 503, "closed"):
            bad.append(f"{k}: HTTP {status} {body}")
    if got["in flight"] not in (0, "HTTP 500"):
        bad.append(f"/metrics: {got['in flight']} verifications in flight after every answer")
    m = got["milter valid"]
    if "reject" in m:
        bad.append(f"milter rejected {VALID}: {m}")
    if any(f"sender=<{VALID}>" in ln and "action=reject" in ln for ln in decisions):
        bad.append(f"a decision rejected {VALID}")
    # reply_within answers for a server that replies in milliseconds: a
    # verification that never called back
    if any("reason=timeout smtp=0" in ln for ln in decisions):
        bad.append("a verification never finished (answered by reply_within)")
    if CRASH_WORDS.search(log):
        bad.append("crash or sanitizer output in the log")
    return bad


def daemon_sweep(calloutd, tmp, sections, seed, label, config=""):
    a = ArmedDaemon(calloutd, tmp, sections, config)
    d = a.d
    a.arm(0)
    assert normal_batch(batch(d)), d.log_text()   # warm: the cache, the milter threads
    a.arm(0)
    got = batch(d)
    total = a.arm(0)
    assert normal_batch(got), (got, d.log_text())
    assert total > 10, total
    problems, known = [], set()
    start = time.monotonic()
    affected = 0
    runs = [(n, "once") for n in sample(total, seed)] + \
        [(n, "after") for n in sorted({1, total // 2, total})]
    for n, mode in runs:
        mark = len(d.log_text())
        a.arm(n, mode)
        got = batch(d)
        failed_at = where(a.failures_since_arm())
        log = d.log_text()[mark:]
        if not normal_batch(got):
            affected += 1
        for b in judge_daemon(got, log):
            problems.append(f"N={n} {mode} [{failed_at}]: {b}\n  {got}")
        known |= {why for why, match in KNOWN for k in ("http valid", "http invalid")
                  if got[k][0] == 200 and match(got[k][1])}
        if got["http list"][0] == 200:
            known |= {why for why, match in KNOWN for r in got["http list"][1]["results"]
                      if match(r)}
        if d.proc.poll() is not None:
            problems.append(f"N={n} {mode} [{failed_at}]: calloutd died "
                            f"({d.proc.returncode})")
            break
        if mode == "after":
            # memory back: every answer is right again
            a.arm(0)
            got = batch(d)
            if not normal_batch(got):
                problems.append(f"N={n} after, then no failure: {got}")
    print(f"\n{label}: {total} allocations per batch, {len(runs)} batches, {affected} "
          f"changed an answer, {time.monotonic() - start:.1f} s")
    if d.proc.poll() is None:
        rc = d.stop()
        if rc != 0:
            problems.append(f"calloutd stopped with {rc}")
    if problems:
        pytest.fail(f"{len(problems)} problems:\n" + "\n".join(problems[:15])
                    + f"\n--- calloutd log (end):\n{d.log_text()[-3000:]}")
    assert affected > 0, "no failure showed"
    if known:
        pytest.xfail("; ".join(sorted(known)))


def test_calloutd_no_cache(calloutd, postfix_mx, tmp_path):
    sections = dict(DAEMON_SECTIONS, cache={"cache": "none"})
    daemon_sweep(calloutd, str(tmp_path), sections, seed=11, label="calloutd, cache none")


def test_calloutd_lmdb_route(calloutd, postfix_mx, tmp_path):
    # the answers come from the LMDB cache after the first batch
    daemon_sweep(calloutd, str(tmp_path), DAEMON_SECTIONS, seed=12, config=DAEMON_DOMAINS,
                 label="calloutd, lmdb, route")


def test_calloutd_reload(calloutd, postfix_mx, tmp_path):
    # SIGHUP reads the whole configuration again: a reload that runs out
    # of memory keeps the running one, and every answer stays right
    a = ArmedDaemon(calloutd, str(tmp_path), DAEMON_SECTIONS, DAEMON_DOMAINS)
    d = a.d
    assert normal_batch(batch(d))
    a.arm(0)
    d.hup()
    assert d.wait_log("configuration reloaded", timeout=5), d.log_text()
    total = a.arm(0)
    assert total > 0, total
    problems = []
    reloaded = kept = 0
    for n in sample(total, seed=13):
        mark = len(d.log_text())
        a.arm(n)
        d.hup()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not re.search(
                "configuration reloaded|reload failed", d.log_text()[mark:]):
            time.sleep(0.01)
        log = d.log_text()[mark:]
        failed_at = where(a.failures_since_arm())
        if "configuration reloaded" in log:
            reloaded += 1
        elif "reload failed, keeping the running configuration" in log:
            kept += 1
        else:
            problems.append(f"N={n} [{failed_at}]: the reload said nothing")
        a.arm(0)
        got = batch(d)
        if d.proc.poll() is not None:
            problems.append(f"N={n} [{failed_at}]: calloutd died ({d.proc.returncode})")
            break
        if not normal_batch(got):
            problems.append(f"N={n} [{failed_at}]: wrong answers after the reload: {got}")
    print(f"\ncalloutd reload: {total} allocations, {reloaded} reloaded, {kept} kept the "
          f"running configuration")
    assert not problems, "\n".join(problems[:15]) + f"\n--- log:\n{d.log_text()[-3000:]}"
    assert kept > 0
    assert d.stop() == 0


@pytest.mark.slow  # about 17 s: a daemon started once per allocation
def test_calloutd_start(dns_server, postfix_mx, tmp_path):
    # out of memory while starting: exit status 3 with a message (calloutd(8)),
    # or a daemon that works; never a crash, never a daemon that hangs
    def start(n, tag):
        workdir = tmp_path / f"d{tag}"
        workdir.mkdir()
        os.chmod(workdir, 0o755)
        report = str(workdir / "failmalloc.report")
        d = fixtures_calloutd.Calloutd(str(workdir), dns_server.server)
        d.write_config(DAEMON_DOMAINS, sections=DAEMON_SECTIONS)
        try:
            d.start(timeout=5, env={"LD_PRELOAD": shim(), "FAILMALLOC_NTH": str(n),
                                    "FAILMALLOC_REPORT": report})
            up = True
        except RuntimeError:
            up = False
        return d, up, report

    # every allocation of a start, a /healthz and a stop
    d, up, report = start(0, "count")
    assert up, d.log_text()
    assert d.stop() == 0
    total = report_count(read_report(report))
    problems = []
    started = refused = 0
    known = set()
    for n in sample(total, seed=14):
        d, up, report = start(n, n)
        failed_at = where(read_report(report))
        try:
            if up:
                started += 1
                v = policy_ask(d, VALID)
                # the Nth allocation may come only with the request (N past
                # the start): its connection closes, nothing worse
                late = not failed_at and where(read_report(report))
                if v != "action=DUNNO" and not DEFER.match(v) and \
                        not (late and v.startswith("closed")):
                    problems.append(f"N={n} [{failed_at}]: started, then {v!r} for {VALID}")
                rc = d.stop(timeout=10)
                if rc != 0:
                    problems.append(f"N={n} [{failed_at}]: stopped with {rc}")
            else:
                refused += 1
                d.proc.wait(5)
                rc = d.proc.returncode
                if rc != 3:
                    problems.append(f"N={n} [{failed_at}]: exit status {rc}, expected 3\n"
                                    f"{d.log_text()}")
                elif known_fault(d.log_text(), KNOWN_RUN):
                    known.add(known_fault(d.log_text(), KNOWN_RUN))
                elif not OOM.search(d.log_text()):
                    problems.append(f"N={n} [{failed_at}]: exit 3 without saying it is out "
                                    f"of memory\n{d.log_text()}")
        except subprocess.TimeoutExpired:
            problems.append(f"N={n} [{failed_at}]: hung")
        finally:
            d.kill()
        if CRASH_WORDS.search(d.log_text()):
            problems.append(f"N={n} [{failed_at}]: crash output\n{d.log_text()}")
    print(f"\ncalloutd start: {total} allocations, {started} started, {refused} refused")
    assert not problems, "\n".join(problems[:15])
    assert refused > 0
    if known:
        pytest.xfail("; ".join(sorted(known)))
