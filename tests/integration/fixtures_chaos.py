"""pytest plugin: the chaotic SMTP server of the load tests
(tests/servers/chaos_smtp.py).

Fixture `chaos_smtp`: a factory.  chaos_smtp({ip: profile, ...}, seed=N,
args=[...]) starts one chaos_smtp.py process serving every ip on
testnet.SMTP_PORT (profile "normal", "chaos" or "chaos-banner", see
chaos_smtp.py; args: more options, e.g. ["--delay-long", "1"]) and returns
a ChaosServer; every server started is stopped at teardown.

ChaosServer:
  .status()               the status file: {"open", "accepted", "peak", "rcpts"}
  .wait_idle(quiet, timeout)  until no connection has been open for `quiet`
                          seconds (the client's probes are all over)
  .stop()                 SIGTERM: the log is complete afterwards
  .events()               the log, parsed: a list of tuples (see chaos_smtp.py)
  .rcpt_outcomes()        {address: set of what the server did about it}
  .sessions(ip)           connections accepted on ip, from the log

Starting it raises the soft RLIMIT_NOFILE of the test process to the hard
limit: the server, calloutd and the load client each hold thousands of
sockets, and children inherit the limit.
"""
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time

import pytest

import testnet

CHAOS_SMTP = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          "servers", "chaos_smtp.py")


def raise_fd_limit(want=16384):
    """Soft RLIMIT_NOFILE up to the hard limit; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, want)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class ChaosServer:
    def __init__(self, workdir, profiles, seed, args=()):
        self.workdir = workdir
        self.profiles = dict(profiles)
        self.seed = seed
        self.args = list(args)
        self.log_path = os.path.join(workdir, "chaos.log")
        self.status_path = os.path.join(workdir, "chaos.status")
        self.stderr_path = os.path.join(workdir, "chaos.stderr")
        self.proc = None

    def start(self, timeout=15):
        cmd = [sys.executable, CHAOS_SMTP, "--port", str(testnet.SMTP_PORT),
               "--log", self.log_path, "--status", self.status_path, "--seed", str(self.seed)]
        cmd += self.args + [f"{ip}={p}" for ip, p in self.profiles.items()]
        # stderr to a file: a pipe nobody reads would stop the server when full
        with open(self.stderr_path, "w") as err:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
        line = self.proc.stdout.readline()  # "ready", or EOF on an error
        if line.strip() != "ready":
            self.proc.wait(timeout)
            raise RuntimeError(f"chaos_smtp.py did not start: {self.stderr()}")
        return self

    def stderr(self):
        with open(self.stderr_path, errors="replace") as f:
            return f.read()

    def status(self):
        with open(self.status_path) as f:
            return json.load(f)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def wait_idle(self, quiet=1.0, timeout=60):
        """Wait until no connection has been open, and none accepted, for
        `quiet` s; False on timeout."""
        deadline = time.monotonic() + timeout
        since = last = None
        while time.monotonic() < deadline:
            st = self.status()
            seen = sum(st["accepted"].values())
            if st["open"] == 0 and seen == last:
                since = since or time.monotonic()
                if time.monotonic() - since >= quiet:
                    return True
            else:
                since = None
            last = seen
            time.sleep(0.1)
        return False

    def stop(self):
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode if self.proc else None

    def events(self):
        out = []
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            for line in f:
                out.append(tuple(line.rstrip("\n").split("\t")))
        return out

    def rcpt_outcomes(self, events=None):
        """{address (lower case): set of what the server did about it}."""
        res = {}
        for e in events if events is not None else self.events():
            if e[0] == "R":
                res.setdefault(e[3].lower(), set()).add(e[4])
        return res

    def sessions(self, ip, events=None):
        return sum(1 for e in (events if events is not None else self.events())
                   if e[0] == "A" and e[2] == ip)

    def peak_open(self, ip, events=None):
        """The most sessions the client held open at once on ip, from the
        log: a session counts from its accept to its QUIT (or its end).  The
        client frees a slot as it sends QUIT and may connect again at once;
        the server can see that connection before it reads the QUIT, so an
        end counts 10 ms early (never before its start)."""
        spans = {}
        for e in events if events is not None else self.events():
            if e[0] == "A" and e[2] == ip:
                spans[e[1]] = [float(e[5]), None]
            elif e[0] == "Q" and e[2] == ip and e[1] in spans and spans[e[1]][1] is None:
                spans[e[1]][1] = max(float(e[3]) - 0.01, spans[e[1]][0])
            elif e[0] == "E" and e[2] == ip and e[1] in spans and spans[e[1]][1] is None:
                spans[e[1]][1] = max(float(e[3]) - 0.01, spans[e[1]][0])
        # ends before starts at the same instant
        points = sorted([(a, 1) for a, _ in spans.values()] +
                        [(b, -1) for _, b in spans.values() if b is not None])
        n = peak = 0
        for _, step in points:
            n += step
            peak = max(peak, n)
        return peak


@pytest.fixture
def chaos_smtp():
    started = []
    raise_fd_limit()

    def start(profiles, seed=1, args=()):
        workdir = tempfile.mkdtemp(prefix="chaos-smtp-")
        srv = ChaosServer(workdir, profiles, seed, args)
        started.append(srv)
        return srv.start()

    yield start
    failed = []
    for srv in started:
        if srv.proc and srv.proc.poll() is not None and srv.proc.returncode != 0:
            failed.append(f"chaos_smtp.py exited with {srv.proc.returncode}: {srv.stderr()}")
        srv.stop()
        subprocess.run(["rm", "-rf", srv.workdir])
    if failed:
        pytest.fail("\n".join(failed))
