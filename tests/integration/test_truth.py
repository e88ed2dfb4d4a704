"""Truth under sharing: facts about a domain come only from evidence about
the domain or the session, and a server that ends a session in the middle
of a batch loses no answer (issue 12, part A).

The servers are persona_smtp.py personas on their own loopback addresses,
addressed by literal, with the default LMDB cache in a temporary file.
"""
import time

import pytest

import testnet
from conftest import run_callout
from persona_smtp import PersonaServers, expected

IPS = {p: f"127.0.0.{testnet.PERSONA_IP_FIRST + i}" for i, p in
       enumerate(("accept", "policy", "blocked", "hangup", "busy", "stall"))}


@pytest.fixture(scope="module")
def personas():
    srv = PersonaServers({ip: p for p, ip in IPS.items()}, testnet.SMTP_PORT).start()
    yield srv
    srv.stop()


def addr(local, persona):
    return f"{local}@[{IPS[persona]}]"


def check(*args, cache, timeout=60):
    return run_callout("--port", str(testnet.SMTP_PORT), "--catch-all", "--cache",
                       f"lmdb:{cache}", *args, timeout=timeout)


@pytest.fixture
def cache(tmp_path):
    return str(tmp_path / "cache.lmdb")


def test_one_recipients_policy_reply_is_no_domain_fact(personas, cache):
    """Microsoft 365 answers an unknown recipient "550 5.4.1 Access denied":
    that address is unknown/policy_block, and a valid address of the same
    domain asked afterwards, with the cache on, is still valid."""
    first = check(addr("p-1", "policy"), cache=cache).result
    assert (first["verdict"], first["reason"]) == ("unknown", "policy_block")
    assert first["from_fact"] is False
    later = check(addr("v-1", "policy"), cache=cache).result
    assert (later["verdict"], later["reason"]) == ("valid", "accepted"), later
    assert later["cached"] is False
    # The refusal is remembered for that address only.
    again = check(addr("p-1", "policy"), cache=cache).result
    assert again["cached"] is True and again["from_fact"] is False
    assert "p-1@" in again["text"]


def test_same_block_of_us_for_several_recipients_is_a_fact(personas, cache):
    """A reply that blames our client host for the address and for the
    random catch-all probe in the same session is about the session: the
    domain blocks us.  The next address is answered from that fact, says
    so, and shows the fact's own evidence, not the first address's."""
    ip = IPS["blocked"]
    first = check(addr("u-1", "blocked"), cache=cache).result
    assert (first["verdict"], first["reason"]) == ("unknown", "policy_block")
    before = len(personas.sessions_of(ip))
    later = check(addr("v-2", "blocked"), cache=cache).result
    assert (later["verdict"], later["reason"]) == ("unknown", "policy_block")
    assert later["cached"] is True and later["from_fact"] is True
    assert later["fact"] == "blocks_us" and later["fact_stage"] == "rcpt"
    assert later["fact_learned"] > 0
    assert "u-1" not in later["text"] and "v-2" not in later["text"]
    assert len(personas.sessions_of(ip)) == before, "answered from the fact: no session"


def test_acceptance_clears_blocks_us(fake_smtp, cache):
    """The domain blocked us at MAIL once; a later acceptance of any of
    its recipients (here the background refresh of a valid address)
    clears the fact at once: the next unknown address is asked again."""
    srv = fake_smtp("""
session 2 on MAIL
    send 554 5.7.1 Client host [127.0.0.1] blocked using zen.spamhaus.org
on RCPT TO:<v-*>
    send 250 2.1.5 Ok
on RCPT
    send 550 5.1.1 No such user
""")
    dom = f"[{srv.host}]"
    run = lambda *a: check("--refresh", "1", *a, cache=cache)  # noqa: E731
    assert run(f"v-1@{dom}").result["verdict"] == "valid"
    blocked = run(f"u-1@{dom}").result
    assert (blocked["verdict"], blocked["reason"], blocked["stage"]) == \
        ("unknown", "policy_block", "mail")
    fact = run(f"u-2@{dom}").result
    assert fact["from_fact"] is True and fact["fact"] == "blocks_us"
    time.sleep(1.2)
    # v1 is served from the cache and re-probed: session 3 accepts it.
    refreshed = run(f"v-1@{dom}").result
    assert refreshed["verdict"] == "valid" and refreshed["cached"] is True
    after = run(f"u-2@{dom}").result
    assert (after["verdict"], after["reason"]) == ("invalid", "mailbox_unknown"), after
    assert after["from_fact"] is False


BATCH = ["v-1", "u-1", "v-2", "u-2", "v-3", "u-3", "v-4"]


@pytest.mark.parametrize("persona", ["hangup", "busy", "stall"])
def test_server_ending_a_batch_loses_nothing(personas, cache, persona):
    """A server that hangs up after a 550, answers 421 after two
    recipients, or falls silent after two: every address of a batch gets
    the answer it gets alone (no connection_lost, no timeout), and later
    sessions to that host carry no more than it answered."""
    ip = IPS[persona]
    addresses = [addr(l, persona) for l in BATCH]
    run = check("-c", "20", "--command-timeout", "1", "--domain-rate", "0",
                *addresses, cache=cache, timeout=120)
    got = {r["address"]: (r["verdict"], r["reason"]) for r in run.results}
    want = {a: expected(persona, a.split("@")[0]) for a in addresses}
    assert got == want, run.stdout
    sessions = personas.sessions_of(ip)
    # The first session carried the whole batch and was cut; what the
    # host answered is learnt: later sessions carry one address and the
    # catch-all probe (hangup), or the two RCPTs it answers.
    assert sessions[0]["ended"] != "quit"
    assert len(sessions) > 1
    assert all(len(s["rcpts"]) <= 2 for s in sessions[1:]), sessions
