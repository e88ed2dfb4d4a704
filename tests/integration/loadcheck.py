"""What the load tests check on every answer, and how they watch calloutd.

The rule (consistency with what the server actually did, from the chaos
server's log):

  reject  only for an address the server answered 550 (5.1.1 user unknown)
  accept  only for an address the server answered 250
  defer   always allowed (the server tarpitted, reset, greylisted, garbled,
          was slow, DNS was down, or a limit held the probe back)

Anything else -- no answer, a connection dropped by calloutd, an action
Postfix does not know -- is a failure.
"""
import os
import time
import urllib.request

import testnet
from policy_client import classify


def senders(tag, n, domains, rng, ok_share=0.5):
    """n unique senders spread over domains, about ok_share of them "ok-"
    (the chaos server accepts those) and the rest "no-" (550 5.1.1)."""
    out = []
    for i in range(n):
        kind = "ok" if rng.random() < ok_share else "no"
        out.append(f"{kind}-{tag}{i}-{rng.randrange(1 << 30):x}@{domains[i % len(domains)]}")
    return out


def chaos_domains():
    return [f"chaos{n}.test" for n in range(testnet.CHAOS_DOMAINS)]


def check(answers, outcomes):
    """Classify every answer; returns (counts, violations).

    counts: {"accept": n, "reject": n, "defer": n}; violations: a list of
    readable lines, one per answer that breaks the rule or is missing."""
    counts = {"accept": 0, "reject": 0, "defer": 0}
    bad = []
    for a in answers:
        if a.error or a.action is None:
            bad.append(f"{a.sender}: no answer ({a.error})")
            continue
        kind = classify(a.action)
        did = outcomes.get(a.sender.lower(), set())
        if kind == "reject" and "550" not in did:
            bad.append(f"{a.sender}: {a.action!r} but the server did {sorted(did)}")
        elif kind == "accept" and "250" not in did:
            bad.append(f"{a.sender}: {a.action!r} but the server did {sorted(did)}")
        elif kind == "other":
            bad.append(f"{a.sender}: unexpected answer {a.action!r}")
        if kind in counts:
            counts[kind] += 1
    return counts, bad


def by_domain(answers):
    out = {}
    for a in answers:
        d = out.setdefault(a.sender.rsplit("@", 1)[1], {"accept": 0, "reject": 0, "defer": 0})
        k = classify(a.action)
        if k in d:
            d[k] += 1
    return out


def proc_status(pid):
    """VmRSS, RssAnon, RssFile ... of /proc/PID/status, in KiB."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if v.strip().endswith("kB"):
                out[k] = int(v.split()[0])
    return out


def cpu_seconds(pid=None):
    """User + system CPU time of a process (default: this one), in seconds."""
    if pid is None:
        t = os.times()
        return t.user + t.system
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def metric(daemon, name):
    with urllib.request.urlopen(daemon.http_url + "/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
    return None


def wait_daemon_idle(daemon, server, quiet=1.0, timeout=60):
    """No request in flight in calloutd and no connection at the server for
    `quiet` s: every probe, including those that went on into the cache
    after reply_within, is over."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = deadline - time.monotonic()
        if server.wait_idle(quiet, timeout=left) and not metric(
                daemon, "calloutd_verifications_in_flight"):
            return True
        time.sleep(0.2)
    return False


