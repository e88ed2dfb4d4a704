"""The documentation as a user meets it: man pages that lint clean, and
the Exim ACL of docs/exim.md applied to a real reply of calloutd."""
import glob
import os
import re
import shutil
import pytest

from conftest import ROOT
from policy_client import exchange

MAN_PAGES = sorted(glob.glob(os.path.join(ROOT, "docs", "*.[158]")))


@pytest.mark.parametrize("page", [os.path.basename(p) for p in MAN_PAGES])
def test_man_page_lints_clean(page):
    """mandoc -Tlint (every level, style included) finds nothing."""
    mandoc = shutil.which("mandoc")
    if not mandoc:
        pytest.skip("mandoc is not installed (scripts/install-deps installs it)")
    import subprocess
    proc = subprocess.run([mandoc, "-Tlint", os.path.join(ROOT, "docs", page)],
                          capture_output=True, text=True)
    assert proc.stdout + proc.stderr == "", proc.stdout + proc.stderr
    assert proc.returncode == 0


def exim_acl_regex(verb):
    """The pattern of the `sg` in the ACL line `VERB ... message = ...`."""
    text = open(os.path.join(ROOT, "docs", "exim.md")).read()
    m = re.search(r"^  %s\s+condition[^\n]*\n\s+message\s+=\s+\$\{sg\{\$acl_m_callout\}"
                  r"\{\\N(.*?)\\N\}\{\}\}" % verb, text, re.M)
    assert m, f"no {verb} rule in docs/exim.md"
    return m.group(1)


def raw_policy_reply(d, attrs):
    req = {"request": "smtpd_access_policy", "protocol_state": "RCPT",
           "client_address": "192.0.2.10", "sender": "", "recipient": "x@gateway.test"}
    req.update(attrs)
    return exchange(d.policy_addr, req)


def test_exim_acl_gives_a_one_line_reply(calloutd):
    """Exim's readsocket hands the ACL the whole reply, empty line
    included; the documented `sg` leaves exactly the reply text, one line,
    for a reject and for a defer."""
    d = calloutd()
    reply = raw_policy_reply(d, {"sender": "nobody@nope.test"})  # NXDOMAIN: reject
    assert reply.startswith("action=550 ") and reply.endswith("\n\n")
    message = re.sub(exim_acl_regex("deny"), "", reply)
    assert "\n" not in message and message.startswith("5.1.7 <nobody@nope.test>"), repr(message)
    reply = raw_policy_reply(d, {"sender": "nobody@servfail.test"})  # SERVFAIL: defer
    assert reply.startswith("action=450 ")
    message = re.sub(exim_acl_regex("defer"), "", reply)
    assert "\n" not in message and message.startswith("4.1.7 "), repr(message)


def test_architecture_lists_the_probe_states_of_the_code():
    """docs/architecture.md's table of probe states is probe.c's name
    table, in its order."""
    code = open(os.path.join(ROOT, "src", "lib", "probe.c")).read()
    table = re.search(r"probe_state_names\[PROBE_STATES\] = \{(.*?)\};", code, re.S).group(1)
    names = re.findall(r'\[PROBE_\w+\] = "(\w+)"', table)
    enum = re.search(r"typedef enum probe_state \{(.*?)\} probe_state;", code, re.S).group(1)
    order = [m.lower() for m in re.findall(r"PROBE_(\w+),", enum) if m != "STATES"]
    assert names == order and len(names) >= 5, (names, order)
    doc = open(os.path.join(ROOT, "docs", "architecture.md")).read()
    rows = re.findall(r"^\| (\w+) \| ", doc, re.M)
    assert [r for r in rows if r != "state"] == names
