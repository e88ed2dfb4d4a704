"""Protection of the servers we ask: session reuse, limits per domain and
per MX address, and backoff from hosts that keep failing (issue 5).

Every test counts at the server what reached it: sessions, their overlap
in time, the commands of each session and whether they came pipelined.
"""
import json
import os
import subprocess
import threading
import time

import conftest
import testnet

ALICE_ONLY = """
on EHLO
    send 250-fake.test
    send 250 PIPELINING
on RCPT TO:<alice@*>
    send 250 2.1.5 Ok
on RCPT
    send 550 5.1.1 <{*}>: Recipient address rejected: User unknown
"""


def check(*args, timeout=60):
    cmd = [conftest.binary("callout"), "check", "--json", "--port", str(testnet.SMTP_PORT),
           "--helo", "verifier.test", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    return conftest.CalloutRun(proc, results)


def by_address(run):
    return {r["address"]: r for r in run.results}


def rcpts(transcript):
    return [line.lstrip("+ ").split(":", 1)[1] for line in transcript
            if line.lstrip("+ ").startswith("RCPT TO:")]


def settled(*servers, timeout=5):
    """Wait until every session has ended (the QUIT of an idle session
    goes out as the client exits)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(s.ended for srv in servers for s in srv.sessions_snapshot()):
            return
        time.sleep(0.02)


def session_spans(*servers):
    """(start, end) of each session as the client held it: until its QUIT."""
    spans = []
    for srv in servers:
        for s in srv.sessions_snapshot():
            quit_at = [t for kind, text, _g, t in s.entries if kind == "line" and text == "QUIT"]
            end = s.started + quit_at[0] if quit_at else (s.ended or time.monotonic())
            spans.append((s.started, end))
    return spans


def max_overlap(*servers):
    """The most sessions the client held open at once.  The server logs
    each session in its own thread: a QUIT and the next connection may be
    logged a few ms out of order, so an end counts 50 ms early (every
    session here lasts 0.4 s or more)."""
    settled(*servers)
    events = []
    for start, end in session_spans(*servers):
        events.append((start, 1))
        events.append((end - 0.05, -1))
    now = best = 0
    for _, step in sorted(events):
        now += step
        best = max(best, now)
    return best


# ---- session reuse --------------------------------------------------------

def test_addresses_of_one_domain_share_one_pipelined_session(fake_smtp):
    srv = fake_smtp(ALICE_ONLY)
    addrs = ["alice"] + [f"u{i}" for i in range(7)]
    run = check("-c", "8", *(f"{a}@[{srv.host}]" for a in addrs))
    res = by_address(run)
    assert res[f"alice@[{srv.host}]"]["verdict"] == "valid"
    for a in addrs[1:]:
        r = res[f"{a}@[{srv.host}]"]
        assert (r["verdict"], r["reason"], r["code"]) == ("invalid", "mailbox_unknown", 550)
    settled(srv)
    assert srv.session_count == 1
    (t,) = srv.transcripts()
    assert sorted(rcpts(t)) == sorted(f"<{a}@[{srv.host}]>" for a in addrs)
    # MAIL and every RCPT in one write: one round trip for all of them.
    mail = t.index("MAIL FROM:<>")
    assert all(line.startswith("+ RCPT TO:") for line in t[mail + 1:mail + 1 + len(addrs)]), t
    assert t[-1] == "QUIT"


def test_session_rcpts_bounds_what_one_session_carries(fake_smtp):
    srv = fake_smtp(ALICE_ONLY)
    addrs = [f"u{i}@[{srv.host}]" for i in range(25)]
    run = check("-c", "25", "--session-rcpts", "10", *addrs)
    assert [r["verdict"] for r in run.results] == ["invalid"] * 25
    per_session = [len(rcpts(t)) for t in srv.transcripts()]
    assert sum(per_session) == 25
    assert max(per_session) <= 10 and srv.session_count == 3, per_session


def test_next_address_reuses_the_idle_session_with_rset(fake_smtp):
    srv = fake_smtp(ALICE_ONLY)
    addrs = [f"alice@[{srv.host}]", f"bob@[{srv.host}]", f"carol@[{srv.host}]"]
    run = check("-c", "1", *addrs)
    assert [r["verdict"] for r in run.results] == ["valid", "invalid", "invalid"]
    settled(srv)
    assert srv.session_count == 1
    (t,) = srv.transcripts()
    # One round trip for each further address: RSET, MAIL and RCPT together.
    assert t == ["EHLO verifier.test", "MAIL FROM:<>", f"+ RCPT TO:<alice@[{srv.host}]>",
                 "RSET", "+ MAIL FROM:<>", f"+ RCPT TO:<bob@[{srv.host}]>",
                 "RSET", "+ MAIL FROM:<>", f"+ RCPT TO:<carol@[{srv.host}]>", "QUIT"], t


def test_session_rcpts_1_means_a_session_an_address(fake_smtp):
    srv = fake_smtp(ALICE_ONLY)
    run = check("-c", "3", "--session-rcpts", "1",
                *(f"u{i}@[{srv.host}]" for i in range(3)))
    assert [r["verdict"] for r in run.results] == ["invalid"] * 3
    assert srv.session_count == 3
    assert all(len(rcpts(t)) == 1 for t in srv.transcripts())


def test_too_many_recipients_sends_the_rest_to_another_session(fake_smtp):
    """Microsoft 365 style: one RCPT a session, 452 4.5.3 for the next.
    Every address still gets its own answer, and no session is wasted on a
    batch the server will not take once that is learnt."""
    srv = fake_smtp("""
on EHLO
    send 250-fake.test
    send 250 PIPELINING
once on RCPT
    send 550 5.1.1 User unknown
on RCPT
    send 452 4.5.3 Too many recipients
""")
    addrs = [f"u{i}@[{srv.host}]" for i in range(5)]
    run = check("-c", "5", *addrs)
    assert [(r["verdict"], r["reason"]) for r in run.results] == \
        [("invalid", "mailbox_unknown")] * 5, run.results
    per_session = [len(rcpts(t)) for t in srv.transcripts()]
    # The first session asked all five and got one answer; each later
    # session asks one address.
    assert per_session == [5, 1, 1, 1, 1], per_session


def test_first_rcpt_too_many_recipients_is_a_tempfail(fake_smtp):
    srv = fake_smtp("""
on RCPT
    send 452 4.5.3 Too many recipients
""")
    run = check("--session-rcpts", "1", f"alice@[{srv.host}]")
    r = run.result
    assert (r["verdict"], r["reason"]) == ("tempfail", "too_many_recipients")


def test_a_stuck_rcpt_never_makes_another_address_invalid(fake_smtp):
    """One RCPT the server never answers holds the batch behind it: the
    others become tempfail (timeout), never invalid."""
    srv = fake_smtp("""
on RCPT TO:<slow@*>
on RCPT
    send 250 2.1.5 Ok
""")
    run = check("-c", "3", "--command-timeout", "1",
                f"alice@[{srv.host}]", f"slow@[{srv.host}]", f"bob@[{srv.host}]")
    for r in run.results:
        assert r["verdict"] in ("valid", "tempfail"), r
    assert by_address(run)[f"slow@[{srv.host}]"]["verdict"] == "tempfail"


# ---- limits ---------------------------------------------------------------

SLOW_SESSION = """
on MAIL
    delay {delay}
    send 250 2.1.0 Ok
on RCPT
    send 250 2.1.5 Ok
"""


def test_domain_sessions_bounds_sessions_at_once(fake_smtp):
    srv = fake_smtp(SLOW_SESSION.format(delay=0.4))
    addrs = [f"u{i}@[{srv.host}]" for i in range(8)]
    run = check("-c", "8", "--session-rcpts", "1", "--domain-sessions", "2", *addrs)
    assert [r["verdict"] for r in run.results] == ["valid"] * 8
    assert srv.session_count == 8
    assert max_overlap(srv) == 2


def test_domain_rate_spaces_new_sessions(fake_smtp):
    """Token bucket: a burst of 10 at once, then one a second (60 a minute)."""
    srv = fake_smtp(ALICE_ONLY)
    addrs = [f"u{i}@[{srv.host}]" for i in range(12)]
    start = time.monotonic()
    run = check("-c", "12", "--session-rcpts", "1", "--domain-rate", "60", *addrs)
    assert [r["verdict"] for r in run.results] == ["invalid"] * 12
    starts = sorted(s.started for s in srv.sessions_snapshot())
    assert len(starts) == 12
    assert starts[9] - starts[0] < 0.9, "the burst goes at once"
    assert starts[10] - starts[0] >= 0.9 and starts[11] - starts[10] >= 0.9, starts
    assert time.monotonic() - start < 10


def test_no_limit_wait_answers_local_limit_at_once(fake_smtp):
    srv = fake_smtp(SLOW_SESSION.format(delay=1.5))
    addrs = [f"u{i}@[{srv.host}]" for i in range(3)]
    start = time.monotonic()
    run = check("-c", "3", "--session-rcpts", "1", "--domain-sessions", "1", "--no-limit-wait",
                *addrs)
    verdicts = sorted((r["verdict"], r["reason"]) for r in run.results)
    assert verdicts == [("tempfail", "local_limit")] * 2 + [("valid", "accepted")], verdicts
    limited = [r for r in run.results if r["reason"] == "local_limit"]
    assert all(r["ms"] < 1000 for r in limited), limited
    assert all("sessions to" in r["text"] for r in limited), limited
    assert srv.session_count == 1
    assert time.monotonic() - start < 5


def test_waiting_past_the_deadline_is_local_limit(fake_smtp):
    srv = fake_smtp(SLOW_SESSION.format(delay=2.5))
    addrs = [f"u{i}@[{srv.host}]" for i in range(2)]
    run = check("-c", "2", "--session-rcpts", "1", "--domain-sessions", "1", "--timeout", "2",
                *addrs)
    reasons = sorted(r["reason"] for r in run.results)
    # One times out at MAIL, the other never got a session.
    assert reasons == ["local_limit", "timeout"], run.results
    waited = [r for r in run.results if r["reason"] == "local_limit"][0]
    assert waited["verdict"] == "tempfail"
    assert "waiting for a free slot" in waited["text"]
    assert srv.session_count == 1


def test_max_probes_bounds_verifications_at_once(fake_smtp):
    # Two domains (two servers): neither domain limit is reached, the
    # global one is.
    a = fake_smtp(SLOW_SESSION.format(delay=0.5))
    b = fake_smtp(SLOW_SESSION.format(delay=0.5))
    addrs = [f"u{i}@[{srv.host}]" for i in range(3) for srv in (a, b)]
    run = check("-c", "6", "--session-rcpts", "1", "--max-probes", "2", *addrs)
    assert [r["verdict"] for r in run.results] == ["valid"] * 6
    assert max_overlap(a, b) == 2


# ---- backoff --------------------------------------------------------------

def test_backoff_after_refused_connections():
    dead = testnet.DEAD_IP
    addrs = [f"u{i}@[{dead}]" for i in range(5)]
    run = check("-c", "1", "--connect-timeout", "2", *addrs)
    reasons = [r["reason"] for r in run.results]
    assert reasons == ["connect_failed"] * 3 + ["local_limit"] * 2, run.results
    assert "backing off from 127.0.0.21 after 3 failures" in run.results[3]["text"]
    assert all(r["verdict"] == "tempfail" for r in run.results)


def test_backoff_after_421_then_one_trial(calloutd, fake_smtp):
    """421 at the banner, again and again: after 3 the host is left alone;
    after the backoff one session tries, and its failure doubles the wait."""
    srv = fake_smtp("""
on connect
    send 421 4.3.2 Service shutting down
    close
""", index=6)
    # No cache: the "unreachable" domain fact would answer before any limit.
    d = calloutd(sections={"engine": {"backoff": "1s", "backoff_failures": "3"},
                           "cache": {"cache": "none"}})

    def ask(i):
        return d.policy({"sender": f"user{i}@fake6.test"})

    for i in range(3):
        assert ask(i).startswith("action=450"), i
    assert srv.session_count == 3
    assert ask(3).startswith("action=450")
    assert srv.session_count == 3, "backing off: no session"
    assert d.wait_log("backing off from 127.0.0.36"), d.log_text()[-3000:]
    time.sleep(1.2)
    answers = [None] * 3
    threads = [threading.Thread(target=lambda k=k: answers.__setitem__(k, ask(10 + k)))
               for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert all(a.startswith("action=450") for a in answers), answers
    assert srv.session_count == 4, "one trial session after the backoff"
    time.sleep(1.2)
    assert ask(20).startswith("action=450")
    assert srv.session_count == 4, "the failed trial doubled the backoff"


def test_routes_are_exempt_from_backoff(fake_smtp, tmp_path):
    srv = fake_smtp("""
on connect
    send 421 4.3.2 Busy
    close
""")
    addrs = [f"u{i}@forward.test" for i in range(5)]
    run = check("-c", "1", "--route", f"forward.test={srv.host}", *addrs)
    assert [r["reason"] for r in run.results] == ["temp_reject"] * 5, run.results
    assert srv.session_count == 5


# ---- DNS ------------------------------------------------------------------

class CountingDnsProxy:
    """UDP between callout and the suite's DNS server, counting questions
    by (name, type)."""

    def __init__(self):
        import socket
        self.down = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.down.bind(("127.0.0.1", 0))
        self.up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.up.connect((testnet.DNS_ADDR, testnet.DNS_PORT))
        self.server = f"127.0.0.1:{self.down.getsockname()[1]}"
        self.counts, self.clients, self.stopping = {}, {}, False
        for loop in (self._from_clients, self._from_server):
            threading.Thread(target=loop, daemon=True).start()

    @staticmethod
    def question(msg):
        labels, i = [], 12
        while msg[i]:
            labels.append(msg[i + 1:i + 1 + msg[i]].decode().lower())
            i += 1 + msg[i]
        return ".".join(labels), int.from_bytes(msg[i + 1:i + 3], "big")

    def _from_clients(self):
        while not self.stopping:
            msg, addr = self.down.recvfrom(4096)
            q = self.question(msg)
            self.counts[q] = self.counts.get(q, 0) + 1
            self.clients[msg[:2]] = addr
            self.up.send(msg)

    def _from_server(self):
        while not self.stopping:
            msg = self.up.recv(4096)
            if msg[:2] in self.clients:
                self.down.sendto(msg, self.clients[msg[:2]])

    def mx_queries(self, domain):
        return self.counts.get((domain, 15), 0)


def test_probes_of_one_domain_share_one_mx_lookup(dns_server, fake_smtp):
    fake_smtp(ALICE_ONLY, index=7)
    proxy = CountingDnsProxy()
    addrs = [f"u{i}@fake7.test" for i in range(30)]
    run = check("-c", "30", "--dns-server", proxy.server, *addrs)
    assert [r["verdict"] for r in run.results] == ["invalid"] * 30, run.stderr
    assert proxy.mx_queries("fake7.test") == 1, proxy.counts
    # One after another, each asks (single flight, not a cache): the proxy
    # counts what it should.
    run = check("-c", "1", "--dns-server", proxy.server, *addrs[:3])
    assert [r["verdict"] for r in run.results] == ["invalid"] * 3
    assert proxy.mx_queries("fake7.test") == 4, proxy.counts
    proxy.stopping = True
