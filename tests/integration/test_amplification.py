"""Amplification (issue 5, item 9): senders forged on one domain must not
turn calloutd into a weapon against that domain's mail server.

10,000 policy requests, as fast as calloutd answers them, each with a new
random local part @victim.test (its MX: chaos_smtp.py on testnet.VICTIM_IP,
answering properly).  With domain_rate = 30 (new sessions a minute),
domain_burst = 5 and domain_sessions = 2, the server may see at most
burst + rate x elapsed minutes sessions at any moment, never more than 2 at
once, and at most session_rcpts RCPTs in one session.  The answers are
defers or the truth (loadcheck.check), never a reject without the server's
550.
"""
import asyncio
import random
import threading
import time

import pytest

import testnet
from loadcheck import check, senders, wait_daemon_idle
from policy_client import classify, run_async

REQUESTS = 10000
CONNS = 1000
RATE = 30      # domain_rate: new sessions a minute
BURST = 5      # domain_burst
SESSIONS = 2   # domain_sessions
RCPTS = 10     # session_rcpts
LIMITS = {"domain_rate": str(RATE), "domain_burst": str(BURST),
          "domain_sessions": str(SESSIONS), "session_rcpts": str(RCPTS)}

pytestmark = pytest.mark.slow  # about 20 s


def allowed(elapsed):
    """Sessions the token bucket lets through in `elapsed` seconds.  No
    margin: elapsed is measured from before the first request to after
    the count was taken (the status file is up to 0.1 s old), so it is
    never shorter than the daemon's own."""
    return BURST + RATE * elapsed / 60.0


def test_forged_senders_on_one_domain_make_few_sessions(calloutd, chaos_smtp):
    server = chaos_smtp({testnet.VICTIM_IP: "normal"}, seed=5)
    daemon = calloutd(sections={
        "daemon": {"reply_within": "1s", "log_level": "info"},
        "engine": {"timeout": "10s", "connect_timeout": "3s", "command_timeout": "3s",
                   **LIMITS},
        # the flood comes from one client address: lift the front end's
        # per-client cap, which is not what this test is about
        "policy": {"max_connections": str(2 * CONNS), "max_client_connections": str(2 * CONNS)},
    })
    forged = senders("f", REQUESTS, [testnet.VICTIM_DOMAIN], random.Random(5))

    # Sample the server's session count while the requests go in and
    # afterwards, while queued probes may still run.
    samples, stop = [], threading.Event()

    def watch(t0):
        while not stop.is_set():
            n = server.status()["accepted"][testnet.VICTIM_IP]
            samples.append((time.monotonic() - t0, n))
            time.sleep(0.2)

    t0 = time.monotonic()
    th = threading.Thread(target=watch, args=(t0,), daemon=True)
    th.start()
    answers = asyncio.run(run_async(daemon.policy_addr, forged, CONNS, timeout=60))
    secs = time.monotonic() - t0
    assert daemon.proc.poll() is None, daemon.log_text()[-3000:]
    idle = wait_daemon_idle(daemon, server, quiet=2.0, timeout=60)
    stop.set()
    th.join()
    final_elapsed = time.monotonic() - t0
    final = server.status()["accepted"][testnet.VICTIM_IP]

    server.stop()
    events = server.events()
    outcomes = server.rcpt_outcomes(events)
    counts, bad = check(answers, outcomes)
    sessions = server.sessions(testnet.VICTIM_IP, events)
    peak = server.peak_open(testnet.VICTIM_IP, events)
    per_session = {}
    for e in events:
        if e[0] == "R":
            per_session[e[1]] = per_session.get(e[1], 0) + 1
    print(f"\n{REQUESTS} forged senders in {secs:.1f} s: {counts}; sessions {sessions} "
          f"(bound at {final_elapsed:.1f} s: {allowed(final_elapsed):.1f}), at once {peak}, "
          f"RCPTs {sum(per_session.values())} (at most {max(per_session.values(), default=0)} "
          f"in a session)")

    assert not bad, f"{len(bad)} answers inconsistent with the server:\n" + "\n".join(bad[:30])
    assert secs < 60, "10,000 requests were not answered within a minute"
    assert idle, "probes to the victim still running a minute after the last answer"
    for elapsed, n in samples + [(final_elapsed, final)]:
        assert n <= allowed(elapsed), f"{n} sessions after {elapsed:.1f} s: bound {allowed(elapsed):.1f}"
    assert sessions == final
    assert peak <= SESSIONS
    assert max(per_session.values(), default=0) <= RCPTS
    # The sessions that were allowed did verify something.
    assert sessions >= 1 and counts["accept"] + counts["reject"] >= 1, counts
    assert all(classify(a.action) != "other" for a in answers)
