"""pytest plugin: real SOCKS5 proxies (Dante's danted) on loopback.

Two danted run in the foreground from a temporary directory, each with its
own configuration, pid file and log: one on SOCKS_IP:SOCKS_PORT that asks
no authentication, one on SOCKS_PORT + 1 that wants RFC 1929 username and
password.  Dante checks those against the system's accounts, so the
fixture adds a locked-down system user (testnet.SOCKS_USER, no home, no
shell) with testnet.SOCKS_PASSWORD, and removes it at the end.  Both
proxies only CONNECT, only from and to 127.0.0.0/8, and go out from
127.0.0.1.

Fixture: socks_proxies (session scope) -> SocksProxies with .open
("socks5://127.0.0.1:PORT"), .auth (with the credentials), .auth_wrong
(a wrong password), .log(name), .stop(name) / .start(name) (SIGTERM, then
again on the same port).  Skips when danted is missing or not root.
"""
import os
import shutil
import signal
import socket
import subprocess
import time

import pytest

import testnet

DANTED = os.environ.get("CALLOUT_TEST_DANTED", "/usr/sbin/danted")

CONF = """\
logoutput: {log}
internal: {ip} port = {port}
external: {ip}
clientmethod: none
socksmethod: {method}
user.privileged: root
user.unprivileged: nobody
client pass {{
    from: 127.0.0.0/8 to: 0.0.0.0/0
}}
socks pass {{
    from: 127.0.0.0/8 to: 127.0.0.0/8
    command: connect
    log: connect error
}}
"""


def _answers(port):
    try:
        socket.create_connection((testnet.SOCKS_IP, port), timeout=0.5).close()
        return True
    except OSError:
        return False


class SocksProxies:
    def __init__(self, workdir):
        self.workdir = workdir
        self.procs = {}
        self.ports = {"open": testnet.SOCKS_PORT, "auth": testnet.SOCKS_PORT + 1}
        ip = testnet.SOCKS_IP
        self.open = f"socks5://{ip}:{self.ports['open']}"
        self.auth = (f"socks5://{testnet.SOCKS_USER}:{testnet.SOCKS_PASSWORD}@"
                     f"{ip}:{self.ports['auth']}")
        self.auth_wrong = f"socks5://{testnet.SOCKS_USER}:wrong@{ip}:{self.ports['auth']}"
        self.no_credentials = f"socks5://{ip}:{self.ports['auth']}"

    def _path(self, name, ext):
        return os.path.join(self.workdir, f"{name}.{ext}")

    def log(self, name):
        try:
            with open(self._path(name, "log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def start(self, name):
        conf = self._path(name, "conf")
        with open(conf, "w") as f:
            f.write(CONF.format(log=self._path(name, "log"), ip=testnet.SOCKS_IP,
                                port=self.ports[name],
                                method="username" if name == "auth" else "none"))
        self.procs[name] = subprocess.Popen(
            [DANTED, "-f", conf, "-p", self._path(name, "pid"), "-N", "1"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        deadline = time.monotonic() + 10
        while not _answers(self.ports[name]):
            if self.procs[name].poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"danted ({name}) did not start:\n{self.log(name)}")
            time.sleep(0.05)

    def stop(self, name):
        proc = self.procs.pop(name, None)
        if proc and proc.poll() is None:
            # danted forks workers: end the whole group
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        deadline = time.monotonic() + 5
        while _answers(self.ports[name]) and time.monotonic() < deadline:
            time.sleep(0.05)


def _add_user():
    subprocess.run(["userdel", testnet.SOCKS_USER], capture_output=True)
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                    testnet.SOCKS_USER], check=True, capture_output=True)
    subprocess.run(["chpasswd"], input=f"{testnet.SOCKS_USER}:{testnet.SOCKS_PASSWORD}\n",
                   text=True, check=True, capture_output=True)


@pytest.fixture(scope="session")
def socks_proxies(tmp_path_factory):
    if not os.path.exists(DANTED):
        pytest.skip("danted (Debian's dante-server) is not installed")
    if os.geteuid() != 0:
        pytest.skip("the SOCKS tests run as root (a system account for the password)")
    workdir = str(tmp_path_factory.mktemp("socks"))
    _add_user()
    proxies = SocksProxies(workdir)
    try:
        proxies.start("open")
        proxies.start("auth")
        yield proxies
    finally:
        for name in list(proxies.procs):
            proxies.stop(name)
        subprocess.run(["userdel", testnet.SOCKS_USER], capture_output=True)
        shutil.rmtree(workdir, ignore_errors=True)
