"""The Debian packages, as an administrator meets them (issue 16).

One test, in order, on this machine: build the four packages from a copy
of the tree (dpkg-buildpackage -us -uc -b), lint them (lintian), rate the
shipped unit (systemd-analyze security), install them with apt, start the
daemon as its unit would (systemd itself where it runs, else the unit's
ExecStartPre/ExecStart as its User=), verify addresses over the installed
policy socket and HTTP API and with the installed callout(1), then purge
and check that nothing is left behind.

It installs into the system, so it runs as root only, never twice (not in
the sanitizer pass) and never where a calloutd package is already
installed: an administrator's installation is not ours to purge.
"""
import json
import os
import pwd
import re
import shutil
import socket
import subprocess
import time
import urllib.request

import pytest

import conftest
import testnet
from conftest import ROOT
from policy_client import exchange

PACKAGES = ["libcallout0", "libcallout-dev", "callout", "calloutd"]
CONFIG = "/etc/callout/calloutd.conf"
UNIT = "/lib/systemd/system/calloutd.service"
POLICY = ("127.0.0.1", 10040)       # the shipped configuration's sockets
HTTP = "http://127.0.0.1:8025"
LEFT_BEHIND = ["/etc/callout", "/var/lib/callout", "/run/callout", "/usr/sbin/calloutd",
               "/usr/bin/callout", UNIT, "/usr/lib/sysusers.d/callout.conf",
               "/usr/lib/tmpfiles.d/callout.conf", "/usr/share/callout",
               "/usr/share/doc/callout", "/usr/include/callout",
               "/etc/systemd/system/multi-user.target.wants/calloutd.service"]

pytestmark = [
    pytest.mark.slow,  # builds the packages from a copy of the tree: minutes
    pytest.mark.skipif(os.geteuid() != 0, reason="installs packages: root only"),
    pytest.mark.skipif(bool(os.environ.get("CALLOUT_SANITIZED")),
                       reason="the packages are built from source, once"),
]


def run(cmd, cwd=None, timeout=600, check=True):
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if check:
        assert proc.returncode == 0, f"{cmd}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def installed(pkg):
    proc = run(["dpkg-query", "-W", "-f=${db:Status-Status}", pkg], check=False)
    return proc.returncode == 0 and proc.stdout.strip() not in ("", "not-installed",
                                                                 "config-files")


def systemd_runs():
    return os.path.isdir("/run/systemd/system")


def port_free(addr):
    with socket.socket() as s:
        return s.connect_ex(addr) != 0


def policy(attrs):
    req = {"request": "smtpd_access_policy", "protocol_state": "RCPT",
           "client_address": "192.0.2.10", "recipient": "someone@example.org"}
    req.update(attrs)
    return exchange(POLICY, req).strip()


def unit_command(key):
    """ExecStart= or ExecStartPre= of the installed unit, as argv."""
    for line in open(UNIT):
        if line.startswith(key + "="):
            return line.split("=", 1)[1].split()
    raise AssertionError(f"{key} not in {UNIT}")


@pytest.fixture(scope="module")
def packages(tmp_path_factory):
    for tool in ("dpkg-buildpackage", "lintian", "apt-get", "dh"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} is not installed (scripts/install-deps installs it)")
    if not os.path.exists(os.path.join(ROOT, ".git")):
        pytest.skip("not a git checkout: the package is built from the tracked files")
    if installed("calloutd") or installed("callout"):
        pytest.skip("callout packages are installed already: not ours to purge")
    if not port_free(POLICY):
        pytest.skip("something listens on 127.0.0.1:10040 already")
    top = tmp_path_factory.mktemp("pkg")
    src = top / "callout"
    src.mkdir()
    files = run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT).stdout
    names = [f for f in files.split("\0") if f and os.path.isfile(os.path.join(ROOT, f))]
    for name in names:
        os.makedirs(src / os.path.dirname(name), exist_ok=True)
        shutil.copy2(os.path.join(ROOT, name), src / name)
    env = dict(os.environ, DEB_BUILD_OPTIONS="parallel=2")
    proc = subprocess.run(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=src, env=env,
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    debs = {p: str(next(top.glob(f"{p}_*.deb"))) for p in PACKAGES}
    yield top, debs
    # Whatever happened, leave the machine as it was.
    subprocess.run(["apt-get", "purge", "-y", "-qq", *PACKAGES], capture_output=True,
                   timeout=300)


def test_package_install_run_verify_purge(packages, postfix_mx):
    top, debs = packages

    # Lint: nothing, or only what debian/*lintian-overrides justifies.
    changes = str(next(top.glob("*.changes")))
    lint = run(["lintian", "--pedantic", "-I", changes], check=False)
    tags = [l for l in lint.stdout.splitlines() if re.match(r"^[EWIPX]: ", l)]
    assert tags == [], lint.stdout

    # The unit as shipped rates 2.0 or lower.
    unit_dir = top / "unit"
    run(["dpkg-deb", "-x", debs["calloutd"], str(unit_dir)])
    unit = unit_dir / UNIT.lstrip("/")
    if shutil.which("systemd-analyze"):
        sec = run(["systemd-analyze", "security", "--offline=yes", str(unit)], check=False)
        m = re.search(r"Overall exposure level for calloutd.service: ([\d.]+)", sec.stdout)
        assert m, sec.stdout + sec.stderr
        assert float(m.group(1)) <= 2.0, sec.stdout

    # A cache root made before the package (the README's quick start run as
    # root): the package gives it to calloutd's user, which can then open it.
    os.makedirs("/var/lib/callout", exist_ok=True)
    stale = "/var/lib/callout/cache.lmdb"
    run([conftest.binary("callout"), "check", "--cache", f"lmdb:{stale}", "a@@b.example"],
        check=False)  # invalid (syntax): exit 1, the cache made
    assert os.stat(stale).st_uid == 0

    # Install.
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    proc = subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends",
                           *debs.values()], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    user = pwd.getpwnam("callout")
    st = os.stat(CONFIG)
    assert oct(st.st_mode & 0o777) == "0o640" and st.st_uid == 0 and st.st_gid == user.pw_gid
    st = os.stat("/var/lib/callout")
    assert st.st_uid == user.pw_uid and oct(st.st_mode & 0o777) == "0o750"
    assert os.stat(stale).st_uid == user.pw_uid
    assert "mode = dry-run" in open(CONFIG).read().splitlines()
    assert os.path.exists("/usr/share/man/man8/calloutd.8.gz")

    # Start it as its unit would.
    daemon = None
    if systemd_runs():
        run(["systemctl", "restart", "calloutd"])
    else:
        runas = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups"]
        run(runas + unit_command("ExecStartPre"))
        daemon = subprocess.Popen(runas + unit_command("ExecStart") + ["-e"],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for _ in range(100):
            if not port_free(POLICY):
                break
            time.sleep(0.1)
        # A literal on loopback: not contacted by the shipped configuration.
        with urllib.request.urlopen(f"{HTTP}/v1/verify?address=postmaster@[127.0.0.20]",
                                    timeout=30) as r:
            res = json.load(r)
        assert (res["verdict"], res["reason"]) == ("unknown", "private_address"), res
        with urllib.request.urlopen(f"{HTTP}/healthz", timeout=30) as r:
            assert r.status == 200
        # Dry-run: an undeliverable sender passes, and the log says what
        # enforce would have done.
        assert policy({"sender": "a@@b.example"}) == "action=DUNNO"
        assert policy({"sender": "postmaster@[127.0.0.20]"}) == "action=DUNNO"
    finally:
        if daemon:
            daemon.terminate()
            out = daemon.communicate(timeout=30)[0]
            assert daemon.returncode == 0, out
            assert re.search(r"sender=<a@@b.example>.*would=reject.*mode=dry-run", out), out
        else:
            run(["systemctl", "stop", "calloutd"])

    # The installed command line and library verify against a real server.
    proc = run(["/usr/bin/callout", "check", "--json", "--no-cache", "--port",
                str(testnet.SMTP_PORT), f"alice@[{testnet.POSTFIX_IP}]"], check=False)
    res = json.loads(proc.stdout)
    assert (res["verdict"], res["reason"]) == ("valid", "accepted"), proc.stdout + proc.stderr
    assert proc.returncode == 0

    # Purge: nothing of ours is left (the system user stays, as Debian's
    # policy advises).
    proc = subprocess.run(["apt-get", "purge", "-y", "-qq", *PACKAGES], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [p for p in PACKAGES if installed(p)] == []
    assert [p for p in LEFT_BEHIND if os.path.lexists(p)] == []
