"""calloutd as a program: its command line, one log line per decision,
privileges, SIGHUP reload and SIGTERM under load.

Front-end behaviour lives in test_policy.py, test_milter.py and
test_http.py; this file is about the daemon around them.
"""
import json
import os
import pwd
import socket
import subprocess
import threading
import time
import urllib.request

import pytest

import conftest
import testnet

VALID = "alice@postfix.test"
INVALID = "nobody@postfix.test"
REJECT = (f"action=550 5.1.7 <{INVALID}>: Sender address rejected: undeliverable address "
          "(mailbox_unknown)")


def run_calloutd(*args, timeout=10):
    return subprocess.run([conftest.binary("calloutd"), *args], capture_output=True, text=True,
                          timeout=timeout)


def write(tmp_path, text):
    path = tmp_path / "calloutd.conf"
    path.write_text(text)
    return str(path)


# ---- the command line ---------------------------------------------------------

def test_check_config_valid(tmp_path):
    conf = write(tmp_path, f"[daemon]\nstate_dir = {tmp_path}\nmode = tag\n"
                           "[policy]\nlisten = inet:127.0.0.1:10999\n")
    r = run_calloutd("-t", "-c", conf)
    assert r.returncode == 0, r.stderr
    assert "configuration OK" in r.stdout
    assert "mode tag" in r.stdout and "policy inet:127.0.0.1:10999" in r.stdout


def test_check_config_invalid_names_file_and_line(tmp_path):
    conf = write(tmp_path, "[daemon]\nmode = enforce\nreply_within = forever\n")
    r = run_calloutd("-t", "-c", conf)
    assert r.returncode == 1
    assert f"{conf}:3" in r.stderr, r.stderr


ENGINE_LIMITS = ("[engine]\nmax_probes = 0\nmax_queued = 50\ndomain_sessions = 2\n"
                 "host_sessions = 0\ndomain_rate = 30\ndomain_burst = 5\nhost_rate = 0\n"
                 "host_burst = 1\nsession_rcpts = 1\nsession_idle = 0\n"
                 "backoff_failures = 5\nbackoff = 2m\nlimit_wait = no\n")


def test_check_config_engine_limits(tmp_path):
    conf = write(tmp_path, f"[daemon]\nstate_dir = {tmp_path}\n" + ENGINE_LIMITS)
    r = run_calloutd("-t", "-c", conf)
    assert r.returncode == 0, r.stderr
    for text in ("[engine] max_probes = 0 (no limit)", "[engine] max_queued = 50",
                 "[engine] domain_sessions = 2", "[engine] host_sessions = 0 (no limit)",
                 "[engine] domain_rate = 30", "[engine] domain_burst = 5",
                 "[engine] host_rate = 0 (no limit)", "[engine] host_burst = 1",
                 "[engine] limit_wait = no", "[engine] session_rcpts = 1",
                 "[engine] session_idle = 0", "[engine] backoff_failures = 5",
                 "[engine] backoff = 2m"):
        assert "\n  " + text + "\n" in r.stdout, (text, r.stdout)
    # the defaults are printed too, calloutd's where they differ
    r = run_calloutd("-t", "-c", write(tmp_path, f"[daemon]\nstate_dir = {tmp_path}\n"))
    assert r.returncode == 0, r.stderr
    for text in ("[engine] domain_rate = 60", "[engine] host_burst = 20",
                 "[engine] limit_wait = yes", "[engine] catch_all = yes",
                 "[cache] positive_ttl = 7d", "[cache] tempfail_ttl = 0"):
        assert "\n  " + text + "\n" in r.stdout, (text, r.stdout)


def test_check_config_engine_limit_error_names_file_and_line(tmp_path):
    conf = write(tmp_path, "[engine]\nlimit_wait = yes\n\ndomain_rate = 60/min\n")
    r = run_calloutd("-t", "-c", conf)
    assert r.returncode == 1
    assert r.stdout == ""
    assert (f"{conf}:4: [engine] domain_rate: expected a whole number from 0 (no limit) "
            "to 1000000, got '60/min'") in r.stderr, r.stderr
    conf = write(tmp_path, "[engine]\nsession_idle = 2m\n")
    r = run_calloutd("-t", "-c", conf)
    assert r.returncode == 1
    assert f"{conf}:2: [engine] session_idle: expected a duration from 0 to 1m" in r.stderr


def test_missing_config_file(tmp_path):
    r = run_calloutd("-t", "-c", str(tmp_path / "nope.conf"))
    assert r.returncode == 1
    assert "nope.conf" in r.stderr


def test_help_and_usage_errors():
    r = run_calloutd("--help")
    assert r.returncode == 0
    for opt in ("--config", "--check-config", "--mode", "--stderr", "--debug", "--version"):
        assert opt in r.stdout
    assert run_calloutd("--bogus").returncode == 2
    assert run_calloutd("--mode", "maybe").returncode == 2
    assert run_calloutd("extra-argument").returncode == 2
    v = run_calloutd("--version")
    assert v.returncode == 0 and v.stdout.startswith("calloutd ")


def test_socket_in_use_fails_to_start(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        conf = write(tmp_path, f"[daemon]\nstate_dir = {tmp_path}/s\nlog = stderr\n"
                               f"[policy]\nlisten = inet:127.0.0.1:{port}\n[http]\nlisten = none\n")
        r = run_calloutd("-c", conf)
    assert r.returncode == 3
    assert str(port) in r.stderr


# ---- decisions and their log ----------------------------------------------------

def test_one_log_line_per_decision(calloutd, postfix_mx):
    d = calloutd()
    assert d.policy({"sender": INVALID, "client_address": "192.0.2.7",
                     "queue_id": "4XyZ1"}) == REJECT
    assert d.policy({"sender": ""}) == "action=DUNNO"
    assert d.wait_log("4XyZ1: policy")
    lines = [line for line in d.log_text().splitlines() if "4XyZ1: policy" in line]
    assert len(lines) == 1
    line = lines[0]
    for field in ("client=192.0.2.7", f"sender=<{INVALID}>", "checked=sender",
                  "verdict=invalid", "reason=mailbox_unknown", "smtp=550", "cached=no",
                  "action=reject", 'reply="550 5.1.7"'):
        assert field in line, line
    assert " ms=" in line
    assert d.wait_log('sender=<> recipient=<someone@gateway.test> action=pass skipped="null sender"')
    # the second time, from the cache
    assert d.policy({"sender": INVALID, "queue_id": "4XyZ2"}) == REJECT
    assert d.wait_log("4XyZ2: policy")
    assert "cached=yes" in [x for x in d.log_text().splitlines() if "4XyZ2" in x][0]


def test_dry_run_logs_what_it_would_do(calloutd, postfix_mx):
    d = calloutd(sections={"daemon": {"mode": "dry-run"}})
    assert d.policy({"sender": INVALID, "queue_id": "DRY1"}) == "action=DUNNO"
    assert d.wait_log("DRY1: policy")
    line = [x for x in d.log_text().splitlines() if "DRY1" in x][0]
    assert "action=pass would=reject mode=dry-run" in line, line


# ---- privileges -------------------------------------------------------------------

@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop privileges")
def test_drops_privileges_and_owns_its_state(calloutd, postfix_mx):
    d = calloutd(sections={"daemon": {"user": "nobody"}})
    status = open(f"/proc/{d.proc.pid}/status").read()
    uids = [line for line in status.splitlines() if line.startswith("Uid:")][0].split()[1:]
    nobody = pwd.getpwnam("nobody").pw_uid
    assert all(int(u) == nobody for u in uids), status
    # the engine and its cache were opened as that user: answers are stored
    assert d.policy({"sender": VALID}) == "action=DUNNO"
    assert d.policy({"sender": VALID, "queue_id": "PRIV2"}) == "action=DUNNO"
    assert d.wait_log("PRIV2: policy")
    assert "cached=yes" in [x for x in d.log_text().splitlines() if "PRIV2" in x][0]
    cache = os.path.join(d.state_dir, "cache.lmdb")
    assert os.stat(cache).st_uid == nobody
    assert "cache" not in " ".join(x for x in d.log_text().splitlines() if "warning" in x)


# ---- SIGHUP ---------------------------------------------------------------------

def test_sighup_reloads_decisions(calloutd, postfix_mx):
    d = calloutd()
    assert d.policy({"sender": INVALID}) == REJECT
    d.write_config(sections={"daemon": {"mode": "dry-run"}})
    d.hup()
    assert d.wait_log("configuration reloaded")
    assert d.policy({"sender": INVALID}) == "action=DUNNO"
    # a broken file is refused and the running configuration stays
    with open(d.config_path, "a") as f:
        f.write("[daemon]\nthis is not a key\n")
    d.hup()
    assert d.wait_log("reload failed")
    assert d.policy({"sender": INVALID}) == "action=DUNNO"
    assert d.proc.poll() is None


def test_sighup_engine_limits_need_a_restart(calloutd, postfix_mx):
    limits = {"domain_sessions": "0", "domain_rate": "0", "host_sessions": "0",
              "host_rate": "0", "limit_wait": "no"}
    d = calloutd(sections={"engine": limits})
    assert d.policy({"sender": INVALID}) == REJECT
    d.hup()  # the same file: nothing to restart for
    assert d.wait_log("configuration reloaded")
    assert "next restart" not in d.log_text()
    d.write_config(sections={"engine": {**limits, "domain_rate": "10"}})
    d.hup()
    assert d.wait_log("take effect at the next restart")
    assert d.policy({"sender": INVALID, "queue_id": "LIM1"}) == REJECT


def _ask_many(d, senders, results, errors):
    def one(i, sender):
        try:
            results[i] = d.policy({"sender": sender, "queue_id": f"Q{i}"}, timeout=60)
        except Exception as e:  # noqa: BLE001 - recorded and asserted on
            errors.append(repr(e))
    threads = [threading.Thread(target=one, args=(i, s)) for i, s in enumerate(senders)]
    for t in threads:
        t.start()
    return threads


# Slow once a session, at MAIL: the addresses of one domain share sessions.
SLOW_MX = """
on MAIL
    delay 1.5
    send 250 2.1.0 Ok
on RCPT
    send 250 2.1.5 Ok
"""


def test_sighup_under_load_loses_nothing(calloutd, fake_smtp, postfix_mx):
    fake_smtp(SLOW_MX, index=4)
    d = calloutd()
    senders = [f"user{i}@fake4.test" if i % 2 else INVALID for i in range(60)]
    results, errors = [None] * len(senders), []
    threads = _ask_many(d, senders, results, errors)
    time.sleep(0.5)
    d.write_config(sections={"verify": {"defer_ok": "yes"}})
    d.hup()
    for t in threads:
        t.join(60)
    assert not errors
    for sender, action in zip(senders, results):
        assert action == ("action=DUNNO" if "fake4" in sender else REJECT), (sender, action)
    assert d.wait_log("configuration reloaded")


def test_sigterm_answers_what_is_in_flight(calloutd, fake_smtp):
    fake_smtp(SLOW_MX, index=5)
    d = calloutd()
    senders = [f"user{i}@fake5.test" for i in range(40)]
    results, errors = [None] * len(senders), []
    threads = _ask_many(d, senders, results, errors)
    time.sleep(0.7)  # every request sent, every probe waiting on the slow MX
    d.proc.send_signal(15)
    for t in threads:
        t.join(30)
    assert not errors
    assert results == ["action=DUNNO"] * len(senders)
    assert d.proc.wait(15) == 0
    assert "stopped" in d.log_text()
    with pytest.raises(OSError):
        socket.create_connection(d.policy_addr, timeout=1).close()


def test_healthz_and_sigterm_exit_status(calloutd):
    d = calloutd()
    with urllib.request.urlopen(d.http_url + "/healthz", timeout=5) as r:
        assert json.load(r) == {"status": "ok"}
    assert d.stop() == 0


def test_more_sigterms_while_stopping_do_not_kill_it(calloutd):
    """An impatient operator (or init) sends SIGTERM again and again while
    calloutd stops: it still stops cleanly, status 0, never killed halfway
    through its teardown."""
    d = calloutd()
    d.proc.send_signal(15)
    while d.proc.poll() is None:
        try:
            d.proc.send_signal(15)
        except ProcessLookupError:
            break
        time.sleep(0.0005)
    assert d.proc.wait(15) == 0, d.log_text()
    assert "stopped" in d.log_text()


def test_debug_log_traces_each_probe(calloutd, postfix_mx):
    """At log_level debug the engine's steps are in the log; at info they
    are neither logged nor formatted."""
    d = calloutd()  # the suite's daemons log at debug
    assert d.policy({"sender": VALID}) == "action=DUNNO"
    assert d.wait_log(f"<{VALID}> next -> ")
    trace = [x for x in d.log_text().splitlines() if "debug: trace:" in x and VALID in x]
    assert any(" dns -> session: mx.postfix.test [127.0.0.20]:" in x for x in trace), trace
    assert any(" session -> next: valid/accepted 250" in x for x in trace), trace
    d.stop()
    d = calloutd(sections={"daemon": {"log_level": "info"}})
    assert d.policy({"sender": VALID.replace("alice", "bob")}) == "action=DUNNO"
    assert "trace:" not in d.log_text()
