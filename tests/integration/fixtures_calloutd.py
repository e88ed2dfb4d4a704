"""pytest plugin: calloutd, started by the suite.

Fixture `calloutd`: a factory.  calloutd(config="", sections=None, env=None,
nofile=None) (env: variables added to the daemon's environment; nofile: its
RLIMIT_NOFILE, as `ulimit -n` would set it) writes a
configuration -- a base that points the daemon at the suite's DNS server
and SMTP port, keeps its state (LMDB cache) in a temporary directory, logs
to stderr and listens on loopback (policy inet:127.0.0.1:10040, HTTP
127.0.0.1:10080, milter inet:10041@127.0.0.1) -- then starts build/calloutd
in the foreground and waits until /healthz answers.

  sections  {"engine": {"catch_all": "no"}, ...}: keys merged into the base
            (a value None removes the base's key)
  config    raw text appended, for [domain NAME] sections

The returned Calloutd has .policy_addr, .http_url, .milter_spec,
.state_dir, .config_path, .proc, .log_text(), .hup(), .stop() (SIGTERM,
waits, returns the exit status), .kill(), .write_config(...) (rewrite the
file, e.g. before .hup()), and .policy(attrs) (one policy request on a new
connection; returns the action line).  Every daemon is stopped at
teardown; a daemon that crashed fails the test.
"""
import os
import resource
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request

import pytest

import conftest
import policy_client
import testnet

BASE = {
    "daemon": {"log": "stderr", "log_level": "debug", "reply_within": "10s"},
    "engine": {"helo": "verifier.test", "timeout": "20s", "connect_timeout": "5s",
               "command_timeout": "5s", "dns_timeout": "2s", "allow_private": "yes"},
    "cache": {},
    "policy": {"listen": f"inet:{testnet.CALLOUTD_IP}:{testnet.CALLOUTD_POLICY_PORT}"},
    "http": {"listen": f"inet:{testnet.CALLOUTD_IP}:{testnet.CALLOUTD_HTTP_PORT}"},
    "milter": {"listen": f"inet:{testnet.CALLOUTD_MILTER_PORT}@{testnet.CALLOUTD_IP}"},
}


def render(sections, extra=""):
    out = []
    for name, keys in sections.items():
        out.append(f"[{name}]")
        out += [f"{k} = {v}" for k, v in keys.items() if v is not None]
        out.append("")
    return "\n".join(out) + "\n" + extra


class Calloutd:
    def __init__(self, workdir, dns):
        self.workdir = workdir
        self.state_dir = os.path.join(workdir, "state")
        self.config_path = os.path.join(workdir, "calloutd.conf")
        self.dns = dns
        self.proc = None
        self._log = []
        self._lock = threading.Lock()
        self.policy_addr = (testnet.CALLOUTD_IP, testnet.CALLOUTD_POLICY_PORT)
        self.http_url = f"http://{testnet.CALLOUTD_IP}:{testnet.CALLOUTD_HTTP_PORT}"
        self.milter_spec = f"inet:{testnet.CALLOUTD_MILTER_PORT}@{testnet.CALLOUTD_IP}"

    def write_config(self, config="", sections=None):
        merged = {k: dict(v) for k, v in BASE.items()}
        merged["daemon"]["state_dir"] = self.state_dir
        merged["engine"]["port"] = str(testnet.SMTP_PORT)
        if self.dns:
            merged["engine"]["dns_servers"] = self.dns
        for name, keys in (sections or {}).items():
            merged.setdefault(name, {}).update(keys)
        with open(self.config_path, "w") as f:
            f.write(render(merged, config))

    def start(self, timeout=10, env=None, nofile=None):
        def limit():
            if nofile:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
        self.proc = subprocess.Popen([conftest.binary("calloutd"), "-c", self.config_path],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True, errors="replace", preexec_fn=limit,
                                     env=dict(os.environ, **env) if env else None)
        threading.Thread(target=self._read_log, daemon=True).start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                time.sleep(0.2)
                raise RuntimeError(f"calloutd exited with {self.proc.returncode}:\n"
                                   + self.log_text())
            try:
                with urllib.request.urlopen(self.http_url + "/healthz", timeout=1):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("calloutd did not answer /healthz:\n" + self.log_text())

    def _read_log(self):
        for line in self.proc.stderr:
            with self._lock:
                self._log.append(line)

    def log_text(self):
        with self._lock:
            return "".join(self._log)

    def wait_log(self, text, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log_text():
                return True
            time.sleep(0.05)
        return False

    def hup(self):
        self.proc.send_signal(signal.SIGHUP)

    def stop(self, timeout=30):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise
        return self.proc.returncode

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def policy(self, attrs, timeout=30):
        """One request; returns the reply's action line, e.g. 'action=DUNNO'."""
        req = {"request": "smtpd_access_policy", "protocol_state": "RCPT",
               "protocol_name": "ESMTP", "client_address": "192.0.2.10",
               "client_name": "client.example", "helo_name": "client.example",
               "sender": "", "recipient": "someone@gateway.test", "instance": "1.2.3"}
        req.update(attrs)
        return policy_client.exchange(self.policy_addr, req, timeout).strip()


@pytest.fixture
def calloutd(dns_server):
    started = []
    workdir = tempfile.mkdtemp(prefix="calloutd-")
    os.chmod(workdir, 0o755)  # a daemon that drops privileges still reaches its state

    def start(config="", sections=None, dns=True, timeout=10, env=None, nofile=None):
        d = Calloutd(workdir, dns_server.server if dns else None)
        d.write_config(config, sections)
        started.append(d)
        return d.start(timeout, env, nofile)

    yield start
    crashed = []
    for d in started:
        if d.proc and d.proc.poll() is None:
            try:
                d.stop()
            except subprocess.TimeoutExpired:
                crashed.append(f"calloutd did not stop on SIGTERM:\n{d.log_text()}")
        if d.proc and d.proc.returncode not in (0, None) and d.proc.returncode != -9:
            crashed.append(f"calloutd exited with {d.proc.returncode}:\n{d.log_text()}")
    subprocess.run(["rm", "-rf", workdir])
    if crashed:
        pytest.fail("\n".join(crashed))
