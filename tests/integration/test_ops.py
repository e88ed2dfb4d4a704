"""calloutd in operation (issue #12, items 9-11): files and privileges,
secrets and Redis, health you can see.

Every test talks to the real daemon on loopback, with the suite's NSD and
redis-server.  Addresses under nx-*.test do not exist (NXDOMAIN from
NSD): a verification that needs DNS but no SMTP server.
"""
import json
import os
import pwd
import re
import shutil
import stat
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import pytest

import conftest
import fixtures_calloutd
import testnet

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop privileges")

PASSWORD = "s3cr%t:p@ss/w#rd"  # every character that needs %-encoding in a URL
PASSWORD_URL = "s3cr%25t%3Ap%40ss%2Fw%23rd"
ACL_USER = "callout-ops"


def nobody():
    return pwd.getpwnam("nobody")


def run_calloutd(*args, timeout=20):
    return subprocess.run([conftest.binary("calloutd"), *args], capture_output=True, text=True,
                          timeout=timeout)


def get(url, timeout=30):
    """(status, body) of a GET, errors included."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def healthz(d):
    """/healthz without its "limits" member (there with a Redis cache's
    shared limits: test_fleet.py checks it)."""
    status, body = get(d.http_url + "/healthz")
    assert status == 200, body
    h = json.loads(body)
    h.pop("limits", None)
    return h


def metrics(d):
    status, body = get(d.http_url + "/metrics")
    assert status == 200, body
    return body


def metric(text, series):
    """The value of one series (name{labels} exactly as rendered), or None."""
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return None


def verify(d, address):
    status, body = get(d.http_url + "/v1/verify?address=" + address)
    assert status == 200, body
    return json.loads(body)


def wait_for(fn, timeout=40, step=0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(step)
    return fn()


@pytest.fixture
def workdir():
    path = tempfile.mkdtemp(prefix="calloutd-ops-")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def write_conf(workdir, dns_server, sections=None, name="calloutd.conf"):
    """A config like the fixture's, for -t and for daemons started by hand."""
    d = fixtures_calloutd.Calloutd(workdir, dns_server.server)
    d.config_path = os.path.join(workdir, name)
    d.write_config("", sections)
    return d


@pytest.fixture
def acl_user(redis_server):
    redis_server.flush()
    out = redis_server.cli("ACL", "SETUSER", ACL_USER, "reset", "on", ">" + PASSWORD,
                           "~*", "+@all")
    assert out.strip() == "OK", out
    yield f"redis://{ACL_USER}:{PASSWORD_URL}@127.0.0.1:{testnet.REDIS_PORT}/"
    redis_server.start()
    redis_server.cli("ACL", "DELUSER", ACL_USER)


# ---- item 9: files and privileges ----------------------------------------------

@root_only
def test_state_dir_symlink_is_not_followed(workdir, dns_server):
    """A state_dir that is a symlink to somewhere else: calloutd refuses to
    start and leaves the target alone (not chowned to the daemon's user)."""
    target = os.path.join(workdir, "elsewhere")
    os.mkdir(target, 0o755)
    link = os.path.join(workdir, "state")
    os.symlink(target, link)
    d = write_conf(workdir, dns_server, {"daemon": {"user": "nobody", "state_dir": link}})

    r = run_calloutd("-t", "-c", d.config_path)
    assert r.returncode == 1
    assert f"state_dir {link}: a symbolic link" in r.stderr, r.stderr

    with pytest.raises(RuntimeError) as e:
        d.start()
    assert d.proc.wait(10) == 3
    assert "symbolic link is not followed" in str(e.value), str(e.value)
    st = os.stat(target)
    assert (st.st_uid, st.st_gid) == (0, 0)
    assert os.listdir(target) == []


@root_only
def test_cache_files_are_0640_and_state_dir_0750_owned_by_the_user(calloutd, dns_server):
    d = calloutd(sections={"daemon": {"user": "nobody"}})
    assert verify(d, "someone@nx-modes.test")["reason"] == "nxdomain"
    u = nobody()
    st = os.stat(d.state_dir)
    assert stat.S_IMODE(st.st_mode) == 0o750 and st.st_uid == u.pw_uid, oct(st.st_mode)
    for name in ("cache.lmdb", "cache.lmdb-lock"):
        st = os.stat(os.path.join(d.state_dir, name))
        assert stat.S_IMODE(st.st_mode) == 0o640, (name, oct(st.st_mode))
        assert (st.st_uid, st.st_gid) == (u.pw_uid, u.pw_gid), name


@root_only
def test_cli_as_root_keeps_the_daemons_ownership(calloutd, dns_server):
    """root runs `callout` on the daemon's cache before the file exists: the
    files it makes belong to the daemon's user, who can still write them."""
    d = calloutd(sections={"daemon": {"user": "nobody"}})
    assert d.stop() == 0
    cache = os.path.join(d.state_dir, "cache.lmdb")
    for name in (cache, cache + "-lock"):
        os.unlink(name)
    r = conftest.run_callout("--cache", "lmdb:" + cache, "--dns-server", dns_server.server,
                             "someone@nx-cli.test")
    assert r.result["reason"] == "nxdomain", r.stdout + r.stderr
    u = nobody()
    for name in (cache, cache + "-lock"):
        st = os.stat(name)
        assert (st.st_uid, st.st_gid) == (u.pw_uid, u.pw_gid), name
        assert stat.S_IMODE(st.st_mode) == 0o640, oct(st.st_mode)
    # the daemon, as nobody, still writes its cache
    d.start()
    verify(d, "other@nx-cli2.test")
    assert "going on uncached" not in d.log_text()
    assert "read-only" not in d.log_text()


def test_unopenable_cache_is_loud(calloutd, workdir):
    """An LMDB file that is not LMDB: an error at start, /healthz degraded
    with the reason, calloutd_cache_up 0."""
    junk = os.path.join(workdir, "junk.lmdb")
    with open(junk, "wb") as f:
        f.write(b"this is not an LMDB file\n" * 1000)
    d = calloutd(sections={"cache": {"cache": "lmdb:" + junk}})
    assert d.wait_log("cannot be used"), d.log_text()
    line = [x for x in d.log_text().splitlines() if "cannot be used" in x][0]
    assert "junk.lmdb" in line and "degraded" in line, line
    h = healthz(d)
    assert h["status"] == "degraded" and h["cache"] == "failing", h
    assert any("junk.lmdb" in r for r in h["reasons"]), h
    text = metrics(d)
    assert metric(text, 'calloutd_cache_up{backend="lmdb"}') == 0
    assert metric(text, 'calloutd_cache_errors_total{backend="lmdb"}') >= 1


@root_only
def test_sighup_reloads_a_root_only_config(calloutd):
    """The config is 0600 root; the daemon runs as nobody.  An edit in place
    is reloaded; a replaced file is refused with a clear line, and the
    running configuration stays."""
    d = calloutd(sections={"daemon": {"user": "nobody"}})
    os.chmod(d.config_path, 0o600)
    assert not os.access(d.config_path, os.R_OK, effective_ids=False) or os.geteuid() == 0
    d.write_config(sections={"daemon": {"user": "nobody", "mode": "tag"}})  # in place
    d.hup()
    assert d.wait_log("(mode tag)"), d.log_text()

    # replaced (a new inode): the descriptor kept from the start is stale
    new = d.config_path + ".new"
    with open(new, "w") as f:
        f.write(open(d.config_path).read().replace("mode = tag", "mode = dry-run"))
    os.chmod(new, 0o600)
    os.rename(new, d.config_path)
    d.hup()
    assert d.wait_log("reload failed, keeping the running configuration"), d.log_text()
    line = [x for x in d.log_text().splitlines() if "reload failed" in x][-1]
    assert "replaced since the start" in line and "restart" in line, line
    assert "(mode dry-run)" not in d.log_text()
    assert healthz(d)["status"] == "ok"


def test_check_config_missing_user(workdir, dns_server):
    d = write_conf(workdir, dns_server, {"daemon": {"user": "no-such-user-here"}})
    r = run_calloutd("-t", "-c", d.config_path)
    assert r.returncode == 1
    assert "user no-such-user-here: no such user" in r.stderr, r.stderr
    assert "configuration OK" not in r.stdout


def test_check_config_unopenable_cache(workdir, dns_server):
    junk = os.path.join(workdir, "junk.lmdb")
    with open(junk, "wb") as f:
        f.write(b"garbage" * 1000)
    d = write_conf(workdir, dns_server, {"cache": {"cache": "lmdb:" + junk}})
    r = run_calloutd("-t", "-c", d.config_path)
    assert r.returncode == 1
    assert f"[cache] lmdb:{junk} cannot be used" in r.stderr, r.stderr


@root_only
def test_check_config_opens_the_cache_as_the_run_user(workdir, dns_server):
    """root could open it; nobody, whom start becomes, cannot."""
    state = os.path.join(workdir, "state")
    os.mkdir(state, 0o700)
    d = write_conf(workdir, dns_server, {"daemon": {"user": "nobody"}})
    open(os.path.join(state, "cache.lmdb"), "wb").close()
    r = run_calloutd("-t", "-c", d.config_path)
    assert r.returncode == 1
    assert "cannot be used by user nobody" in r.stderr, r.stderr
    assert "Permission denied" in r.stderr, r.stderr


# ---- item 10: secrets and Redis --------------------------------------------------

def assert_no_password(text):
    for secret in (PASSWORD, PASSWORD_URL, "s3cr"):
        assert secret not in text, text


def test_check_config_wrong_redis_password(workdir, dns_server, acl_user):
    wrong = acl_user.replace(PASSWORD_URL, "wr%40ngpass")
    d = write_conf(workdir, dns_server, {"cache": {"cache": wrong}})
    r = run_calloutd("-t", "-c", d.config_path)
    assert r.returncode == 1
    assert "WRONGPASS" in r.stderr, r.stderr
    assert "wr@ngpass" not in r.stderr + r.stdout and "wr%40ngpass" not in r.stderr
    assert f"redis://{ACL_USER}:***@127.0.0.1" in r.stderr, r.stderr


def test_redis_acl_user_with_percent_encoded_password(calloutd, workdir, dns_server,
                                                      redis_server, acl_user):
    """ACL SETUSER user with a password full of URL characters: -t passes,
    the daemon stores its answers in Redis, and the password is in
    neither -t's output, the log nor /metrics."""
    conf = write_conf(workdir, dns_server, {"cache": {"cache": acl_user}}, name="t.conf")
    r = run_calloutd("-t", "-c", conf.config_path)
    assert r.returncode == 0, r.stderr
    assert f"cache redis://{ACL_USER}:***@127.0.0.1:{testnet.REDIS_PORT}/" in r.stdout
    assert_no_password(r.stdout + r.stderr)

    d = calloutd(sections={"cache": {"cache": acl_user}})
    assert verify(d, "someone@nx-acl.test")["reason"] == "nxdomain"
    assert wait_for(lambda: redis_server.cli("--user", ACL_USER, "--pass", PASSWORD,
                                             "--no-auth-warning", "KEYS", "callout:*").strip())
    assert verify(d, "someone@nx-acl.test")["cached"] is True
    assert healthz(d) == {"status": "ok"}
    assert_no_password(d.log_text())
    assert_no_password(metrics(d))
    assert "calloutd_cache_up{backend=\"redis\"} 1" in metrics(d)


def test_rediss_is_refused_clearly(workdir, dns_server):
    d = write_conf(workdir, dns_server,
                   {"cache": {"cache": f"rediss://:{PASSWORD_URL}@127.0.0.1:6380/"}})
    r = run_calloutd("-t", "-c", d.config_path)
    assert r.returncode == 1
    assert "rediss:// (Redis over TLS) is not supported" in r.stderr, r.stderr
    assert_no_password(r.stderr)


def test_bad_cache_spec_error_hides_the_password(workdir, dns_server):
    d = write_conf(workdir, dns_server, {"cache": {"cache": f"redis://:{PASSWORD_URL}@"}})
    r = run_calloutd("-t", "-c", d.config_path)
    assert r.returncode == 1
    assert "no Redis host" in r.stderr, r.stderr
    assert_no_password(r.stderr)
    # the command line's messages too
    for spec in (f"redis://:{PASSWORD_URL}@h:0", f"rediss://u:{PASSWORD_URL}@h",
                 f"redis://u:{PASSWORD_URL}@127.0.0.1:1/"):
        r = conftest.run_callout("--cache", spec, "someone@nx-cli-spec.test")
        assert r.stderr, r.stdout  # a usage error, or Redis unreachable: uncached
        assert_no_password(r.stderr + r.stdout)
        r = subprocess.run([conftest.binary("callout"), "cache", "list", "--cache", spec],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode in (2, 3) and "***" in r.stderr, r.stderr
        assert_no_password(r.stderr + r.stdout)


# ---- item 11: health you can see ----------------------------------------------------

def test_metrics_are_there_from_zero(calloutd):
    d = calloutd()
    text = metrics(d)
    zero = ['calloutd_verifications_total{frontend="policy",verdict="valid",reason="accepted"}',
            'calloutd_verifications_total{frontend="http",verdict="invalid",'
            'reason="mailbox_unknown"}',
            'calloutd_verifications_total{frontend="milter",verdict="tempfail",'
            'reason="dns_tempfail"}',
            'calloutd_cache_errors_total{backend="lmdb"}',
            'calloutd_http_responses_total{code="404"}',
            'calloutd_http_responses_total{code="503"}',
            'calloutd_http_responses_total{code="other"}']
    for series in zero:
        assert metric(text, series) == 0, series
    assert metric(text, 'calloutd_cache_up{backend="lmdb"}') == 1
    assert metric(text, "calloutd_dns_up") == 1
    fds = metric(text, "process_open_fds")
    assert 5 < fds < 200, fds
    # the scrape's own connection is open while it is counted
    assert fds - len(os.listdir(f"/proc/{d.proc.pid}/fd")) in (0, 1)
    assert metric(text, "process_max_fds") >= 1024
    rss = metric(text, "process_resident_memory_bytes")
    assert 1 << 20 < rss < 1 << 30, rss
    assert metric(text, "process_cpu_seconds_total") >= 0
    start = metric(text, "process_start_time_seconds")
    assert time.time() - 120 < start <= time.time()
    for family in ("process_open_fds", "calloutd_cache_up", "calloutd_http_responses_total"):
        assert f"# TYPE {family} " in text

    # responses are counted by status
    assert get(d.http_url + "/nowhere")[0] == 404
    text = metrics(d)
    assert metric(text, 'calloutd_http_responses_total{code="404"}') == 1
    assert metric(text, 'calloutd_http_responses_total{code="200"}') >= 2  # healthz, metrics


def test_healthz_degraded_while_redis_is_paused_or_killed(calloutd, redis_server):
    redis_server.flush()
    spec = f"redis://127.0.0.1:{testnet.REDIS_PORT}/"
    d = calloutd(sections={"cache": {"cache": spec}})
    verify(d, "a@nx-redis1.test")
    assert healthz(d) == {"status": "ok"}
    try:
        redis_server.pause()
        verify(d, "b@nx-redis2.test")  # answered uncached; the watchdog notices
        h = wait_for(lambda: healthz(d)["status"] == "degraded" and healthz(d), timeout=15)
        assert h and h["cache"] == "failing", h
        assert any(r.startswith("cache (redis): ") for r in h["reasons"]), h
        assert metric(metrics(d), 'calloutd_cache_up{backend="redis"}') == 0
    finally:
        redis_server.resume()
    assert wait_for(lambda: healthz(d)["status"] == "ok", timeout=40), healthz(d)
    assert metric(metrics(d), 'calloutd_cache_up{backend="redis"}') == 1

    redis_server.kill()
    try:
        h = wait_for(lambda: healthz(d)["status"] == "degraded" and healthz(d), timeout=15)
        assert h and h["cache"] == "failing", h
        assert metric(metrics(d), 'calloutd_cache_errors_total{backend="redis"}') >= 2
    finally:
        redis_server.start()
    assert wait_for(lambda: healthz(d)["status"] == "ok", timeout=40), healthz(d)


def test_healthz_degraded_while_dns_is_stopped(calloutd, dns_server):
    d = calloutd(sections={"cache": {"cache": "memory"}})
    assert verify(d, "a@nx-dns1.test")["reason"] == "nxdomain"
    assert healthz(d) == {"status": "ok"}
    dns_server.stop()
    try:
        assert verify(d, "b@nx-dns2.test")["reason"] == "dns_tempfail"
        h = healthz(d)
        assert h["status"] == "degraded" and h["dns"] == "failing", h
        assert any(r.startswith("dns: ") for r in h["reasons"]), h
        text = metrics(d)
        assert metric(text, "calloutd_dns_up") == 0
    finally:
        dns_server.start()
    assert verify(d, "c@nx-dns3.test")["reason"] == "nxdomain"
    assert healthz(d) == {"status": "ok"}
    assert metric(metrics(d), "calloutd_dns_up") == 1
