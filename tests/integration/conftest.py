"""Shared pytest setup: where the binaries are, how to run callout.

Fixtures for the servers live in their own plugin modules, listed below.
"""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("CALLOUT_BUILD_DIR", os.path.join(ROOT, "build"))
# The test servers (fakesmtp.py, chaos_smtp.py, persona_smtp.py) are shared
# with bench/run and live in tests/servers/.
SERVERS = os.path.join(ROOT, "tests", "servers")

sys.path.insert(0, SERVERS)
sys.path.insert(0, os.path.dirname(__file__))

pytest_plugins = [
    "fixtures_dns",      # NSD serving the test zones
    "fixtures_postfix",  # a private Postfix instance as remote MX
    "fixtures_fake",     # the scriptable fake SMTP server
    "fixtures_redis",    # a private redis-server for the cache tests
    "fixtures_calloutd", # calloutd with a test configuration
    "fixtures_gateway",  # a private Postfix as the receiving MTA asking calloutd
    "fixtures_chaos",    # the chaotic SMTP server of the load tests
    "fixtures_socks",    # Dante SOCKS5 proxies
    "fixtures_postgrey", # postgrey greylisting for a private Postfix
]

# Tests that do not choose a cache get none: each verification is live, and
# nothing is written to the host's default cache.  Cache tests pass --cache.
os.environ["CALLOUT_CACHE"] = "none"
# Every "remote" server of the suite is on loopback, which callout does not
# contact unless allowed (test_private.py checks the default).
os.environ["CALLOUT_ALLOW_PRIVATE"] = "1"


def pytest_configure(config):
    # `slow`: more than about 4 s on a 2-core machine.  The full run (CI,
    # scripts/test) runs everything; the developer's run leaves them out:
    # pytest -m "not slow" tests/integration, or scripts/test --fast.
    config.addinivalue_line(
        "markers", "slow: takes more than about 4 s; left out of the fast run (-m 'not slow')")
    config.option.strict_markers = True  # a misspelt marker is an error, not a new marker

def binary(name):
    path = os.path.join(BUILD, name)
    if not os.path.exists(path):
        pytest.fail(f"{path} not built (set CALLOUT_BUILD_DIR or run meson compile)")
    return path


class CalloutRun:
    def __init__(self, proc, results):
        self.returncode = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.results = results

    @property
    def result(self):
        assert len(self.results) == 1, self.stdout
        return self.results[0]


def run_callout(*args, timeout=60, input=None):
    """Run `callout check --json ARGS...`; return parsed lines and status."""
    cmd = [binary("callout"), "check", "--json", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=input)
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    return CalloutRun(proc, results)


@pytest.fixture
def callout():
    return run_callout
