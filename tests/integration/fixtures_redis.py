"""pytest plugin: a private redis-server for the cache tests.

redis-server runs in the foreground on 127.0.0.1:testnet.REDIS_PORT from a
temporary directory, with no persistence (--save '' --appendonly no), so
a restart comes back empty.  Tests may kill it and start it again on the
same port.

Fixture: redis_server (session scope) -> RedisServer with .port, .cli(*args)
(runs redis-cli, returns its stdout), .kill() (SIGKILL), .start() (again,
same port), .pause() / .resume() (SIGSTOP / SIGCONT: a server that stops
answering), .flush() (FLUSHALL), .log().
"""
import os
import signal
import socket
import subprocess
import time

import pytest

import testnet

REDIS_SERVER = os.environ.get("CALLOUT_TEST_REDIS_SERVER", "/usr/bin/redis-server")
REDIS_CLI = os.environ.get("CALLOUT_TEST_REDIS_CLI", "/usr/bin/redis-cli")
ADDR = "127.0.0.1"


def _port_in_use(addr, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((addr, port))
    except OSError:
        return True
    finally:
        s.close()
    return False


class RedisServer:
    def __init__(self, port, workdir):
        self.addr = ADDR
        self.port = port
        self.workdir = workdir
        self.proc = None

    def log(self):
        try:
            with open(os.path.join(self.workdir, "redis.log"), encoding="utf-8",
                      errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def cli(self, *args, timeout=10):
        """redis-cli ARGS against this server; its stdout."""
        cmd = [REDIS_CLI, "-h", self.addr, "-p", str(self.port), *[str(a) for a in args]]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout).stdout

    def ping(self):
        try:
            return self.cli("ping", timeout=2).strip() == "PONG"
        except subprocess.TimeoutExpired:
            return False

    def start(self):
        """Start (again) on the same port; returns when it answers PING."""
        if self.proc is not None and self.proc.poll() is None:
            return
        cmd = [REDIS_SERVER, "--bind", self.addr, "--port", str(self.port),
               "--save", "", "--appendonly", "no", "--dir", self.workdir,
               "--daemonize", "no", "--logfile", os.path.join(self.workdir, "redis.log")]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, cwd=self.workdir)
        deadline = time.monotonic() + 15
        while not self.ping():
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}:\n"
                                   f"{self.log()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server does not answer on port {self.port}:\n"
                                   f"{self.log()}")
            time.sleep(0.05)

    def kill(self):
        """SIGKILL: the server vanishes mid-conversation."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def pause(self):
        """SIGSTOP: connections stay open, nothing is answered."""
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.resume()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def flush(self):
        """Forget everything (and make sure it is running)."""
        self.start()
        assert self.cli("FLUSHALL").strip() == "OK"

    def __repr__(self):
        return f"RedisServer({self.addr}:{self.port})"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    if not os.access(REDIS_SERVER, os.X_OK) or not os.access(REDIS_CLI, os.X_OK):
        pytest.skip(f"{REDIS_SERVER} or {REDIS_CLI} not installed")
    port = testnet.REDIS_PORT
    if _port_in_use(ADDR, port):
        pytest.fail(f"{ADDR}:{port} is already in use: a stale redis-server? "
                    "(set CALLOUT_TEST_REDIS_PORT to use another port)")
    server = RedisServer(port, str(tmp_path_factory.mktemp("redis")))
    try:
        try:
            server.start()
        except RuntimeError as e:
            pytest.fail(str(e))
        yield server
    finally:
        server.stop()
