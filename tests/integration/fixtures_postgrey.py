"""Real greylisting: Debian's postgrey behind a private Postfix (pytest plugin).

  postgrey        /usr/sbin/postgrey on 127.0.0.1:POSTGREY_PORT (env
                  CALLOUT_TEST_POSTGREY_PORT, default 10110), --delay=2,
                  its database in a temporary directory, no whitelists, no
                  auto-whitelisting: the first RCPT of a (client, sender,
                  recipient) triplet gets "450 4.2.0 ... Greylisted", a
                  retry 2 s later passes.  Started in the foreground as a
                  child of the test run; the package's own service (port
                  10023) is never started or used.
  Postfix         a PostfixMX (fixtures_postfix.py) on GREYLIST_IP
                  (127.0.0.24):SMTP_PORT, same users and domains, whose
                  smtpd_recipient_restrictions ask postgrey
                  (check_policy_service), the way a site greylists.

Fixture `greylisted_mx` (session scope): the running Postfix, with
.postgrey (the Postgrey: .port, .delay, .log()).  Skipped when postgrey is
not installed (scripts/install-deps installs it).
"""
import os
import pwd
import socket
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import testnet  # noqa: E402
from fixtures_postfix import PostfixMX, run_instance  # noqa: E402

POSTGREY = os.environ.get("CALLOUT_TEST_POSTGREY", "/usr/sbin/postgrey")
POSTGREY_PORT = testnet.POSTGREY_PORT
GREYLIST_IP = testnet.GREYLIST_IP
DELAY = 2


def _listening(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class Postgrey:
    def __init__(self, base_dir, port=POSTGREY_PORT, delay=DELAY):
        self.dir = base_dir
        self.port = port
        self.delay = delay
        self.log_path = os.path.join(base_dir, "postgrey.log")
        self.proc = None

    def start(self, timeout=20):
        if _listening(self.port):
            raise RuntimeError(f"something already listens on 127.0.0.1:{self.port}")
        db = os.path.join(self.dir, "db")
        os.makedirs(db, exist_ok=True)
        empty = os.path.join(self.dir, "empty")
        open(empty, "w").close()
        pw = pwd.getpwnam("postgrey")
        os.chown(db, pw.pw_uid, pw.pw_gid)
        os.chmod(self.dir, 0o755)
        self.proc = subprocess.Popen(
            [POSTGREY, f"--inet=127.0.0.1:{self.port}", f"--delay={self.delay}",
             f"--dbdir={db}", "--user=postgrey", "--group=postgrey",
             "--auto-whitelist-clients=0", f"--whitelist-clients={empty}",
             f"--whitelist-recipients={empty}", "--hostname=postgrey.test"],
            stdin=subprocess.DEVNULL, stdout=open(self.log_path, "w"),
            stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not _listening(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"postgrey did not start:\n{self.log()}")
            time.sleep(0.1)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""


class GreylistedMX(PostfixMX):
    """The suite's Postfix, greylisting with postgrey at RCPT."""

    def __init__(self, base_dir):
        super().__init__(base_dir, ip=GREYLIST_IP, ip6="")
        self.postgrey = Postgrey(base_dir)

    def write_config(self):
        super().write_config()
        path = os.path.join(self.config_dir, "main.cf")
        with open(path) as f:
            text = f.read()
        text = text.replace(
            "smtpd_recipient_restrictions =\n",
            "smtpd_recipient_restrictions = reject_unlisted_recipient,\n"
            f"    check_policy_service inet:127.0.0.1:{self.postgrey.port}\n", 1)
        with open(path, "w") as f:
            f.write(text)

    def start(self, timeout=30):
        self.postgrey.start()
        super().start(timeout)

    def stop(self):
        super().stop()
        self.postgrey.stop()


@pytest.fixture(scope="session")
def greylisted_mx():
    if not os.path.exists(POSTGREY):
        pytest.skip(f"{POSTGREY} not installed (scripts/install-deps)")
    yield from run_instance(GreylistedMX, "callout-postgrey-", "Postfix with postgrey")
