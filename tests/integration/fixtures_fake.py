"""pytest plugin: the scriptable fake SMTP server (tests/servers/fakesmtp.py).

Fixtures:

  fake_smtp       a factory: fake_smtp(script) starts a FakeSMTPServer on a
                  free loopback address 127.0.0.40, .41, ... (port
                  testnet.SMTP_PORT) and returns it; every server it started
                  is stopped at teardown.
                  fake_smtp(script, index=N) listens on 127.0.0.(30+N)
                  instead: the MX host of the DNS zone fakeN.test (N = 0..9,
                  served by fixtures_dns); the placeholder {domain} is then
                  fakeN.test.
                  script: script text, a fakesmtp.Script or a
                  fakesmtp.Scenario.
  fake_tls_cert   (cert.pem, key.pem): a self-signed certificate made once
                  per test session with `openssl req`.

Every server carries its session log as text: server.log_text().
"""
import io
import threading

import pytest

import testnet
from fakesmtp import FakeSMTPServer, make_self_signed_cert

# Addresses for servers addressed by literal; 30..39 belong to fakeN.test.
LITERAL_FIRST = testnet.FAKE_IP_FIRST + 10
LITERAL_LAST = 254


class _Log(io.StringIO):
    """A log many session threads write to."""

    def __init__(self):
        super().__init__()
        self._lock = threading.Lock()

    def write(self, s):
        with self._lock:
            return super().write(s)


def _start(script, host, cert, key, subst):
    log = _Log()
    srv = FakeSMTPServer(script, host=host, port=testnet.SMTP_PORT, cert=cert, key=key,
                         log=log, subst=subst)
    srv.start()
    srv.log_text = log.getvalue
    return srv


@pytest.fixture(scope="session")
def fake_tls_cert(tmp_path_factory):
    return make_self_signed_cert(str(tmp_path_factory.mktemp("fake-tls")))


@pytest.fixture
def fake_smtp(fake_tls_cert):
    servers = []
    cert, key = fake_tls_cert

    def start(script, index=None, subst=None):
        subst = dict(subst or {})
        if index is not None:
            if not 0 <= index <= 9:
                raise ValueError("index: 0..9 (the zones fake0.test .. fake9.test)")
            host = f"{testnet.FAKE_IP_BASE}{testnet.FAKE_IP_FIRST + index}"
            subst.setdefault("domain", f"fake{index}.test")
            srv = _start(script, host, cert, key, subst)
        else:
            # The first free address: other servers (and other test runs on
            # this machine) may hold some.
            last_err = None
            for n in range(LITERAL_FIRST, LITERAL_LAST + 1):
                host = f"{testnet.FAKE_IP_BASE}{n}"
                try:
                    srv = _start(script, host, cert, key, {"domain": f"[{host}]", **subst})
                    break
                except OSError as e:
                    last_err = e
            else:
                raise RuntimeError(f"no free loopback address for a fake SMTP server: {last_err}")
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        srv.stop()
