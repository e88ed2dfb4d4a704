"""The test network on loopback: who listens where.

Every server the integration tests start lives on 127.0.0.0/8 or ::1.
All SMTP servers of the tests listen on SMTP_PORT (callout is run with
--port SMTP_PORT), each on its own loopback address, so one DNS zone can
point MX records at many distinct "hosts".
"""
import os

DNS_ADDR = "127.0.0.1"
DNS_PORT = int(os.environ.get("CALLOUT_TEST_DNS_PORT", "10053"))
DNS_SERVER = f"{DNS_ADDR}:{DNS_PORT}"

SMTP_PORT = int(os.environ.get("CALLOUT_TEST_SMTP_PORT", "10025"))

REDIS_PORT = int(os.environ.get("CALLOUT_TEST_REDIS_PORT", "10379"))

# Real Postfix smtpd acting as a remote MX (IPv4 and IPv6).
POSTFIX_IP = "127.0.0.20"
POSTFIX_IP6 = "::1"
# A second private Postfix that greylists with postgrey
# (fixtures_postgrey.py): smtpd on GREYLIST_IP:SMTP_PORT, postgrey on
# 127.0.0.1:POSTGREY_PORT.
GREYLIST_IP = "127.0.0.24"
POSTGREY_PORT = int(os.environ.get("CALLOUT_TEST_POSTGREY_PORT", "10110"))
# Nothing ever listens here: connections are refused.
DEAD_IP = "127.0.0.21"
# Fake SMTP servers (tests/servers/fakesmtp.py) take addresses from here on.
FAKE_IP_BASE = "127.0.0."
FAKE_IP_FIRST = 30
# The chaotic SMTP server of the load tests (tests/servers/chaos_smtp.py):
# 127.0.0.(70+N) is the MX of chaosN.test (N = 0..9), VICTIM_IP the MX of
# victim.test (the amplification test).
CHAOS_IP_FIRST = 70
CHAOS_DOMAINS = 10
VICTIM_IP = "127.0.0.80"
VICTIM_DOMAIN = "victim.test"


# tests/servers/persona_smtp.py servers (test_truth.py, test_order.py): one real-world
# behaviour per address from 127.0.0.90 on, addressed by literal.
PERSONA_IP_FIRST = 90


def chaos_ip(n):
    return f"127.0.0.{CHAOS_IP_FIRST + n}"

# Domains Postfix accepts mail for; each has the users below.
POSTFIX_DOMAINS = [
    "postfix.test", "failover.test", "implicit.test", "cname.test",
    "cnamemx.test", "v6.test", "dual.test", "equal.test", "order.test",
]
POSTFIX_USERS = ["alice", "bob", "postmaster"]

# calloutd started by the suite (fixtures_calloutd.py): its sockets.
CALLOUTD_IP = "127.0.0.1"
CALLOUTD_POLICY_PORT = int(os.environ.get("CALLOUT_TEST_POLICY_PORT", "10040"))
CALLOUTD_MILTER_PORT = int(os.environ.get("CALLOUT_TEST_MILTER_PORT", "10041"))
CALLOUTD_HTTP_PORT = int(os.environ.get("CALLOUT_TEST_HTTP_PORT", "10080"))

# A second private Postfix, the *receiving* MTA (gateway) that asks calloutd
# (tests/integration/fixtures_gateway.py): smtpd on GATEWAY_IP:SMTP_PORT,
# local Maildir mailboxes for GATEWAY_DOMAIN (GATEWAY_USERS), relay for
# FORWARD_DOMAIN (recipients checked by call forward, then discarded).
GATEWAY_IP = "127.0.0.60"
GATEWAY_DOMAIN = "gateway.test"
GATEWAY_USERS = ["alice", "bob", "postmaster"]
FORWARD_DOMAIN = "forward.test"

# Real SOCKS5 proxies (Dante, tests/integration/fixtures_socks.py) on
# SOCKS_IP: one without authentication on SOCKS_PORT, one that wants a
# username and password (SOCKS_USER, SOCKS_PASSWORD) on SOCKS_PORT + 1.
SOCKS_IP = "127.0.0.1"
SOCKS_PORT = int(os.environ.get("CALLOUT_TEST_SOCKS_PORT", "10108"))
SOCKS_USER = "callout-socks-test"
SOCKS_PASSWORD = "s0cks-Pass"
