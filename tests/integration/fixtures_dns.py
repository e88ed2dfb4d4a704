"""pytest plugin: a real NSD serving the test zones on testnet.DNS_SERVER.

The zones are in tests/integration/zones/ (README there lists every name).
NSD runs in the foreground (-d) from a private temporary directory: its own
config, zone list, xfrd state and pid file, no chroot, no privilege drop, no
remote control.  servfail.test is a secondary zone whose primary never
answers, so NSD answers SERVFAIL for every name in it.  Names outside test.
get REFUSED.

Fixture: dns_server (session scope) -> DnsServer with .server "127.0.0.1:10053",
.addr, .port, .workdir, .log(), .dig(), and for outage tests .kill() (SIGKILL
to NSD and its children: the server vanishes), .stop() (SIGTERM) and .start()
(again, same port and zones; returns when it answers).  A test that stops it
must start it again before it ends.
"""
import os
import shutil
import signal
import socket
import subprocess
import time

import pytest

import testnet

NSD = os.environ.get("CALLOUT_TEST_NSD", "/usr/sbin/nsd")
DIG = shutil.which("dig") or "/usr/bin/dig"
ZONES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "zones")

# An address where no DNS server ever answers zone transfers: servfail.test
# stays unloaded and NSD answers SERVFAIL.
DEAD_PRIMARY = "127.0.0.1@1"

NSD_CONF = """\
server:
    ip-address: {addr}@{port}
    port: {port}
    server-count: 1
    username: ""
    chroot: ""
    zonesdir: "{dir}"
    database: ""
    zonelistfile: "{dir}/zone.list"
    pidfile: "{dir}/nsd.pid"
    xfrdfile: "{dir}/xfrd.state"
    xfrdir: "{dir}"
    cookie-secret-file: "{dir}/cookiesecrets.txt"
    logfile: "{dir}/nsd.log"
    verbosity: 1
    hide-version: yes
    hide-identity: yes
    zonefiles-check: yes
    zonefiles-write: 0
    refuse-any: yes
    # no response rate limiting: the tests send hundreds of queries a second
    rrl-ratelimit: 0
    rrl-whitelist-ratelimit: 0

remote-control:
    control-enable: no

zone:
    name: "test."
    zonefile: "{dir}/test.zone"

zone:
    name: "0.0.127.in-addr.arpa."
    zonefile: "{dir}/reverse.zone"

zone:
    name: "servfail.test."
    request-xfr: {dead_primary} NOKEY
    allow-notify: 127.0.0.1 NOKEY
"""


class DnsServer:
    def __init__(self, addr, port, workdir, conf):
        self.addr = addr
        self.port = port
        self.server = f"{addr}:{port}"
        self.workdir = workdir
        self.conf = conf
        self.proc = None

    def start(self, timeout=15):
        """Start NSD (again); returns when it answers for postfix.test."""
        if self.proc is not None and self.proc.poll() is None:
            return
        stderr = open(os.path.join(self.workdir, "nsd.stderr"), "a")
        # Its own process group: NSD forks (xfrd, the server), and kill()
        # must take them all, or a child keeps answering on the port.
        self.proc = subprocess.Popen([NSD, "-d", "-c", self.conf], stdout=stderr,
                                     stderr=subprocess.STDOUT, cwd=self.workdir,
                                     start_new_session=True)
        stderr.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nsd exited with {self.proc.returncode}:\n{self.log()}")
            try:
                rcode, answers = dig(self.addr, self.port, "postfix.test", "MX")
            except subprocess.TimeoutExpired:
                rcode, answers = None, []
            if rcode == "NOERROR" and answers:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"nsd does not answer on {self.server}:\n{self.log()}")
            time.sleep(0.1)

    def kill(self):
        """SIGKILL to NSD and its children: queries are refused from now on."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=10)
        self._wait_port_free()

    def stop(self):
        if self.proc is not None:
            _stop(self.proc)
            self._wait_port_free()

    def _wait_port_free(self, timeout=10):
        # children die with the group, a moment after the parent
        deadline = time.monotonic() + timeout
        while _port_in_use(self.addr, self.port) and time.monotonic() < deadline:
            time.sleep(0.05)

    def log(self):
        path = os.path.join(self.workdir, "nsd.log")
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def dig(self, name, rtype="A"):
        """(rcode, answer lines) for name/rtype, asked straight from NSD."""
        return dig(self.addr, self.port, name, rtype)

    def __repr__(self):
        return f"DnsServer({self.server})"


def dig(addr, port, name, rtype="A", timeout=1):
    cmd = [DIG, f"@{addr}", "-p", str(port), "+norec", "+time=1", "+tries=1",
           "+noall", "+comments", "+answer", name, rtype]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 5).stdout
    rcode = None
    answers = []
    for line in out.splitlines():
        if "status:" in line:
            rcode = line.split("status:")[1].split(",")[0].strip()
        elif line and not line.startswith(";"):
            answers.append(line)
    return rcode, answers


def _port_in_use(addr, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind((addr, port))
    except OSError:
        return True
    finally:
        s.close()
    return False


def _stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="session")
def dns_server(tmp_path_factory):
    if not os.access(NSD, os.X_OK):
        pytest.skip(f"{NSD} not installed")
    addr, port = testnet.DNS_ADDR, testnet.DNS_PORT
    if _port_in_use(addr, port):
        pytest.fail(f"{addr}:{port} is already in use: a stale NSD? "
                    "(set CALLOUT_TEST_DNS_PORT to use another port)")

    workdir = str(tmp_path_factory.mktemp("nsd"))
    for zone in ("test.zone", "reverse.zone"):
        shutil.copy(os.path.join(ZONES_DIR, zone), os.path.join(workdir, zone))
    conf = os.path.join(workdir, "nsd.conf")
    with open(conf, "w", encoding="utf-8") as f:
        f.write(NSD_CONF.format(addr=addr, port=port, dir=workdir, dead_primary=DEAD_PRIMARY))

    check = subprocess.run(["/usr/sbin/nsd-checkconf", conf], capture_output=True, text=True)
    if check.returncode != 0:
        pytest.fail(f"nsd-checkconf {conf}: {check.stdout}{check.stderr}")

    server = DnsServer(addr, port, workdir, conf)
    try:
        try:
            server.start()
        except RuntimeError as e:
            pytest.fail(str(e))
        rcode, _ = dig(addr, port, "servfail.test", "MX")
        if rcode != "SERVFAIL":
            pytest.fail(f"servfail.test answers {rcode}, not SERVFAIL:\n{server.log()}")
        yield server
    finally:
        server.stop()
