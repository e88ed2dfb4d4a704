"""Order independence, as a property (issue 12, item 3).

Hypothesis draws sets of addresses over servers with real-world
behaviours (persona_smtp.py: accepting, rejecting, refusing recipients by
policy one by one, catch-all, refusing <>, hanging up after a 550, 421
after two recipients, silent after two, greylisting, blocking us) and
checks that every address gets the same verdict and reason verified
alone, without a cache, as in one bulk run: shuffled, at several
concurrencies, with the limits lifted or strict, and with one LMDB cache
shared by every run of the test.  Only a tempfail from our own limits may
differ, and it must say so (local_limit).

CALLOUT_PROPERTY_EXAMPLES sets the number of examples (default 20).
"""
import os

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import testnet
from conftest import run_callout
from persona_smtp import PERSONAS, PersonaServers, expected

FIRST = testnet.PERSONA_IP_FIRST + 10
IPS = {p: f"127.0.0.{FIRST + i}" for i, p in enumerate(PERSONAS)}
EXAMPLES = int(os.environ.get("CALLOUT_PROPERTY_EXAMPLES", "20"))
COMMON = ("--catch-all", "--command-timeout", "1")


@pytest.fixture(scope="module")
def personas():
    srv = PersonaServers({ip: p for p, ip in IPS.items()}, testnet.SMTP_PORT).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("order") / "cache.lmdb")


_alone = {}


def alone(address):
    """The verdict of one address asked alone, with no cache (memoised:
    the servers answer every address the same way every time)."""
    if address not in _alone:
        run = run_callout("--port", str(testnet.SMTP_PORT), "--no-cache", *COMMON, address)
        r = run.result
        _alone[address] = (r["verdict"], r["reason"])
    return _alone[address]


address = st.builds(lambda persona, kind, n: f"{kind}-{n}@[{IPS[persona]}]",
                    st.sampled_from(PERSONAS), st.sampled_from("vpu"), st.integers(1, 5))


@settings(max_examples=EXAMPLES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(addresses=st.lists(address, min_size=1, max_size=24, unique=True),
       order=st.randoms(use_true_random=False),
       concurrency=st.sampled_from([1, 3, 50]),
       strict=st.booleans())
def test_verdict_does_not_depend_on_order_or_sharing(personas, shared_cache, addresses, order,
                                                     concurrency, strict):
    shuffled = list(addresses)
    order.shuffle(shuffled)
    limits = ("--no-limit-wait",) if strict else ("--domain-rate", "0", "--host-rate", "0")
    run = run_callout("--port", str(testnet.SMTP_PORT), *COMMON, "--cache", f"lmdb:{shared_cache}",
                      "-c", str(concurrency), *limits, "-f", "-", input="\n".join(shuffled) + "\n",
                      timeout=120)
    bulk = {r["address"]: r for r in run.results}
    assert sorted(bulk) == sorted(addresses), run.stderr
    for a in addresses:
        want = alone(a)
        persona = next(p for p, ip in IPS.items() if f"[{ip}]" in a)
        assert want == expected(persona, a.split("@")[0]), (a, want)
        got = (bulk[a]["verdict"], bulk[a]["reason"])
        if got == ("tempfail", "local_limit"):
            assert strict, f"{a}: local_limit with the limits lifted: {bulk[a]}"
            continue
        assert got == want, f"{a} alone {want}, in bulk {bulk[a]}"
