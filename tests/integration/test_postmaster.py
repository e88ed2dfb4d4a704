"""The postmaster check (--postmaster, [engine] postmaster): RCPT
TO:<postmaster@DOMAIN> in the address's own transaction, its answer a fact
about the domain kept in the cache, never a part of the verdict; and
calloutd's [daemon] no_postmaster = tag.

The remote servers are the scriptable fake SMTP server, addressed by
literal ([127.0.0.4N]); calloutd's senders use fakeN.test, whose MX is
fake server N.  Scenario files (scenarios/postmaster_*.scn) pin the exact
transcripts of single verifications; here: the cache (LMDB, memory,
Redis), round trips, and calloutd.
"""
import json
import subprocess
import urllib.request

import pytest

import conftest
import testnet
from conftest import run_callout

EHLO = """\
on connect
    send 220 mx.fake.test ESMTP
on EHLO
    send 250-mx.fake.test
{pipelining}    send 250 ENHANCEDSTATUSCODES
on MAIL
    send 250 2.1.0 Ok
"""

TAIL = """\
on RCPT TO:<u-*>
    send 550 5.1.1 User unknown
on RCPT
    send 250 2.1.5 Ok
on QUIT
    send 221 2.0.0 Bye
    close
"""


def server_script(postmaster_rule="", pipelining=True):
    """A server that accepts v-* and refuses u-* as unknown; postmaster_rule
    (a whole "on RCPT TO:<postmaster@*>" block) says what postmaster gets,
    accepted when empty."""
    head = EHLO.format(pipelining="    send 250-PIPELINING\n" if pipelining else "")
    return head + postmaster_rule + TAIL


REFUSED = """\
on RCPT TO:<postmaster@*>
    send 550 5.1.1 <postmaster>: Recipient address rejected: User unknown
"""


def check(*args, cache="none", timeout=60):
    return run_callout("--port", str(testnet.SMTP_PORT), "--helo", "verifier.test",
                       "--cache", cache, "--postmaster", "--command-timeout", "2",
                       *args, timeout=timeout)


def one(run):
    assert run.returncode in (0, 1, 2, 3), run.stderr
    assert len(run.results) == 1, (run.stdout, run.stderr)
    return run.results[0]


def postmaster_rcpts(srv):
    """Per session, how many times it was asked for postmaster."""
    return [sum(1 for line in s.lines if line.upper().startswith("RCPT TO:<POSTMASTER@"))
            for s in srv.sessions_snapshot()]


def cache_list(spec, *args):
    r = subprocess.run([conftest.binary("callout"), "cache", "--cache", spec, "--json", "list",
                        *args], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]


@pytest.fixture
def lmdb(tmp_path):
    return f"lmdb:{tmp_path / 'cache.lmdb'}"


# --------------------------------------------------------------------------
# the fact: learned once, cached, reported


def test_accepted_is_cached_and_not_asked_again(fake_smtp, lmdb):
    """postmaster accepted: the result says so, the cache keeps the fact,
    and the next address of the domain is verified without asking
    postmaster again -- its result still reports the fact."""
    srv = fake_smtp(server_script())
    dom = f"[{srv.host}]"
    first = one(check(f"v-1@{dom}", cache=lmdb))
    assert (first["verdict"], first["reason"]) == ("valid", "accepted")
    assert first["postmaster"] == "accepted"
    srv.wait_idle()
    assert postmaster_rcpts(srv) == [1]

    [fact] = cache_list(lmdb, "--kind", "postmaster")
    assert (fact["domain"], fact["verdict"], fact["code"]) == (dom, "valid", 250)
    assert fact["expires"] - fact["probed"] == 7 * 86400  # domain_ttl

    second = one(check(f"u-2@{dom}", cache=lmdb))
    assert (second["verdict"], second["reason"]) == ("invalid", "mailbox_unknown")
    assert second["cached"] is False and second["postmaster"] == "accepted"
    srv.wait_idle()
    assert postmaster_rcpts(srv) == [1, 0], srv.transcripts()

    # an answer from the cache reports it as well
    again = one(check(f"v-1@{dom}", cache=lmdb))
    assert again["cached"] is True and again["postmaster"] == "accepted"
    assert srv.session_count == 2


def test_refused_is_a_fact_and_the_verdict_stands(fake_smtp, lmdb):
    """550 5.1.1 for postmaster: the fact no_postmaster (kind postmaster,
    verdict invalid, for domain_negative_ttl), and the address keeps the
    verdict of its own reply, valid with its own code and text."""
    srv = fake_smtp(server_script(REFUSED))
    dom = f"[{srv.host}]"
    res = one(check(f"v-1@{dom}", cache=lmdb))
    assert (res["verdict"], res["reason"], res["code"], res["enhanced"], res["text"]) == \
        ("valid", "accepted", 250, "2.1.5", "Ok")
    assert res["postmaster"] == "refused"
    assert res["from_fact"] is False

    [fact] = cache_list(lmdb, "--kind", "postmaster")
    assert (fact["verdict"], fact["reason"], fact["code"], fact["enhanced"]) == \
        ("invalid", "mailbox_unknown", 550, "5.1.1")
    assert fact["expires"] - fact["probed"] == 3 * 3600  # domain_negative_ttl
    assert "v-1" not in fact["text"]
    # the address's record is its own answer
    [rec] = cache_list(lmdb, "--kind", "address")
    assert (rec["address"], rec["verdict"]) == (f"v-1@{dom}", "valid")

    # the next address: its own verdict, the fact beside it, no postmaster RCPT
    res = one(check(f"v-2@{dom}", cache=lmdb))
    assert (res["verdict"], res["postmaster"]) == ("valid", "refused")
    srv.wait_idle()
    assert postmaster_rcpts(srv) == [1, 0]

    # the human output says it among the notes
    run = subprocess.run([conftest.binary("callout"), "check", "--port", str(testnet.SMTP_PORT),
                          "--cache", lmdb, f"v-2@{dom}"], capture_output=True, text=True,
                         timeout=30)
    assert "(postmaster refused, cached " in run.stdout, run.stdout


@pytest.mark.parametrize("what", ["450", "421", "timeout", "policy"])
def test_no_answer_teaches_nothing(fake_smtp, lmdb, what):
    """450, 421 (and a hang-up), no reply, a block of us: no postmaster
    fact, the address's verdict is what its own reply says, and the next
    verification asks postmaster again."""
    rule = {
        "450": "    send 450 4.2.0 Greylisted, try again later\n",
        "421": "    send 421 4.7.0 mx.fake.test closing connection\n    close\n",
        "timeout": "    delay 30\n    send 250 2.1.5 Ok\n",
        "policy": "    send 550 5.7.1 Client host [127.0.0.1] blocked using zen.spamhaus.org\n",
    }[what]
    srv = fake_smtp(server_script("on RCPT TO:<postmaster@*>\n" + rule))
    dom = f"[{srv.host}]"
    for n, (addr, verdict) in enumerate((("v-1", "valid"), ("u-1", "invalid")), 1):
        res = one(check(f"{addr}@{dom}", cache=lmdb))
        assert res["verdict"] == verdict, res
        assert res["stage"] == "rcpt" and res["code"] in (250, 550), res
        assert "postmaster" not in res, res
        assert cache_list(lmdb, "--kind", "postmaster") == []
        srv.wait_idle(5)
        assert postmaster_rcpts(srv) == [1] * n, srv.transcripts()


def test_memory_cache_one_run(fake_smtp):
    """In one run with the memory cache, addresses verified one after the
    other (no session reuse) ask postmaster once."""
    srv = fake_smtp(server_script(REFUSED))
    dom = f"[{srv.host}]"
    run = check("-c", "1", "--session-rcpts", "1", "--session-idle", "0",
                f"v-1@{dom}", f"u-2@{dom}", f"v-3@{dom}", cache="memory")
    got = [(r["verdict"], r.get("postmaster")) for r in run.results]
    assert got == [("valid", "refused"), ("invalid", "refused"), ("valid", "refused")], \
        run.stdout
    srv.wait_idle()
    assert postmaster_rcpts(srv) == [1, 0, 0], srv.transcripts()


def test_shared_session_asks_once(fake_smtp):
    """Addresses of one domain sharing a session: one postmaster RCPT for
    them all, after theirs, in the same pipelined group; each result
    carries the answer."""
    srv = fake_smtp(server_script())
    dom = f"[{srv.host}]"
    run = check("--session-idle", "2s", f"v-1@{dom}", f"u-2@{dom}", f"v-3@{dom}",
                cache="none")
    assert [r["postmaster"] for r in run.results] == ["accepted"] * 3, run.stdout
    srv.wait_idle()
    assert sum(postmaster_rcpts(srv)) == 1, srv.transcripts()
    for t in srv.transcripts():
        rcpts = [line.lstrip("+ ") for line in t if "RCPT" in line]
        if any("postmaster@" in r for r in rcpts):
            assert "postmaster@" in rcpts[-1], t


def test_redis_cache(fake_smtp, redis_server):
    """The fact in Redis, as in LMDB: the second address does not ask."""
    redis_server.flush()
    spec = f"redis://{redis_server.addr}:{redis_server.port}/0?prefix=pm:"
    srv = fake_smtp(server_script(REFUSED))
    dom = f"[{srv.host}]"
    assert one(check(f"v-1@{dom}", cache=spec))["postmaster"] == "refused"
    assert redis_server.cli("EXISTS", f"pm:p:{dom}").strip() == "1"
    res = one(check(f"u-2@{dom}", cache=spec))
    assert (res["verdict"], res["postmaster"]) == ("invalid", "refused")
    srv.wait_idle()
    assert postmaster_rcpts(srv) == [1, 0]


def test_off_by_default(fake_smtp, lmdb):
    """Without --postmaster nothing is asked; a fact another run learned is
    still reported."""
    srv = fake_smtp(server_script(REFUSED))
    dom = f"[{srv.host}]"
    plain = lambda a: one(run_callout("--port", str(testnet.SMTP_PORT), "--cache", lmdb, a))  # noqa: E731
    assert "postmaster" not in plain(f"v-1@{dom}")
    assert one(check(f"v-2@{dom}", cache=lmdb))["postmaster"] == "refused"
    assert plain(f"v-3@{dom}")["postmaster"] == "refused"
    srv.wait_idle()
    assert postmaster_rcpts(srv) == [0, 1, 0]


def test_verifying_postmaster_itself(fake_smtp, lmdb):
    """postmaster@DOMAIN verified with --postmaster: one RCPT, its own
    answer is the fact."""
    srv = fake_smtp(server_script(REFUSED))
    dom = f"[{srv.host}]"
    res = one(check(f"postmaster@{dom}", cache=lmdb))
    assert (res["verdict"], res["postmaster"]) == ("invalid", "refused")
    srv.wait_idle()
    assert postmaster_rcpts(srv) == [1]
    [fact] = cache_list(lmdb, "--kind", "postmaster")
    assert fact["verdict"] == "invalid"


def test_real_postfix(callout, dns_server, postfix_mx):
    """A real Postfix (smtpd, which accepts postmaster as RFC 5321 asks):
    the unknown address stays invalid, postmaster is accepted, both RCPTs
    in one transaction."""
    run = callout("--dns-server", dns_server.server, "--port", str(testnet.SMTP_PORT),
                  "--helo", "verifier.test", "--postmaster", "--transcript",
                  "nobody@postfix.test")
    r = one(run)
    assert (r["verdict"], r["reason"], r["code"]) == ("invalid", "mailbox_unknown", 550), r
    assert r["postmaster"] == "accepted"
    rcpts = [line for line in r["transcript"].splitlines() if line.startswith("C: RCPT")]
    assert rcpts == ["C: RCPT TO:<nobody@postfix.test>", "C: RCPT TO:<postmaster@postfix.test>"]


# --------------------------------------------------------------------------
# round trips


def groups(transcript):
    """Client writes the server saw as separate groups (pipelining joins
    the lines marked '+ ')."""
    return sum(1 for line in transcript if not line.startswith(("+ ", "[")))


@pytest.mark.parametrize("pipelining", [True, False])
def test_round_trips(fake_smtp, pipelining):
    """With PIPELINING the postmaster RCPT rides in the group of MAIL and
    the address: the same round trips as without the check, one command
    more.  Without PIPELINING it costs one round trip."""
    srv = fake_smtp(server_script(pipelining=pipelining))
    dom = f"[{srv.host}]"
    base = run_callout("--port", str(testnet.SMTP_PORT), "--catch-all", f"v-1@{dom}")
    assert one(base)["verdict"] == "unknown"  # the server is a catch-all
    srv.wait_idle()
    more = check("--catch-all", f"v-2@{dom}")
    assert one(more)["postmaster"] == "accepted"
    srv.wait_idle()
    without, with_ = srv.transcripts()
    assert len(with_) == len(without) + 1, (without, with_)
    assert groups(with_) == groups(without) + (0 if pipelining else 1), (without, with_)


# --------------------------------------------------------------------------
# calloutd: [daemon] no_postmaster = tag


@pytest.mark.slow
def test_calloutd_tags_sender_domain_refusing_postmaster(calloutd, fake_smtp):
    """Over the policy socket: a sender whose domain refuses postmaster
    passes with the tag header (PREPEND X-Callout ... postmaster=refused);
    one that is invalid is still refused, for its own reply, untagged; a
    domain that accepts postmaster is not tagged."""
    srv = fake_smtp(server_script(REFUSED), index=3)
    fake_smtp(server_script(), index=4)
    d = calloutd(sections={
        "daemon": {"no_postmaster": "tag"},
        "engine": {"postmaster": "yes", "catch_all": "no"},
        "verify": {"skip_networks": "198.51.100.0/24"},
    })
    tag = "action=PREPEND X-Callout: verdict=valid; reason=accepted; postmaster=refused; " \
          "sender=v-1@fake3.test"
    assert d.policy({"sender": "v-1@fake3.test", "instance": "1.1"}) == tag
    # the fact is cached: the next sender of the domain is tagged too,
    # without another postmaster RCPT
    assert d.policy({"sender": "v-2@fake3.test", "instance": "1.2"}) == \
        tag.replace("v-1@", "v-2@")
    reply = d.policy({"sender": "u-1@fake3.test", "instance": "1.3"})
    assert reply.startswith("action=550 5.1.7 "), reply
    assert "postmaster" not in reply
    srv.wait_idle()
    assert sum(postmaster_rcpts(srv)) == 1, srv.transcripts()
    assert d.policy({"sender": "v-1@fake4.test", "instance": "1.4"}) == "action=DUNNO"
    # the log line says what it knows
    assert d.wait_log("postmaster=accepted ms=")
    line = [ln for ln in d.log_text().splitlines() if "sender=<v-1@fake3.test>" in ln]
    assert line and "postmaster=refused" in line[0] and "action=pass" in line[0], line


def test_http_api_reports_it(calloutd, fake_smtp):
    """GET /v1/verify: the member postmaster beside the verdict, from the
    session, then from the cache's fact."""
    fake_smtp(server_script(REFUSED), index=3)
    d = calloutd(sections={"engine": {"postmaster": "yes", "catch_all": "no"}})
    for local, verdict in (("v-1", "valid"), ("u-2", "invalid")):
        with urllib.request.urlopen(f"{d.http_url}/v1/verify?address={local}@fake3.test",
                                    timeout=30) as resp:
            r = json.load(resp)
        assert (r["verdict"], r["postmaster"]) == (verdict, "refused"), r


def test_calloutd_ignores_by_default(calloutd, fake_smtp):
    fake_smtp(server_script(REFUSED), index=3)
    d = calloutd(sections={
        "engine": {"postmaster": "yes", "catch_all": "no"},
        "verify": {"skip_networks": "198.51.100.0/24"},
    })
    assert d.policy({"sender": "v-1@fake3.test"}) == "action=DUNNO"
