"""The documentation as a user meets it: man pages that lint clean, and
the Exim ACL of docs/exim.md applied to a real reply of calloutd."""
import glob
import os
import re
import shutil
import subprocess
import pytest

import conftest
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


def man_text(page):
    """A man page's source with the usual escapes undone, one .TP entry a
    paragraph."""
    with open(os.path.join(ROOT, "docs", page)) as f:
        text = f.read()
    text = text.replace("\\-", "-").replace("\\fR", "").replace("\\fP", "") \
        .replace("\\fB", "").replace("\\fI", "")
    return text


def man_entries(page):
    """{section: {key: paragraph}} of calloutd.conf(5)'s key = value entries."""
    entries, section = {}, None
    for chunk in re.split(r"\n(?=\.(?:TP|SH|SS)\b)", man_text(page)):
        m = re.match(r'\.SH "\[(\w+)', chunk)
        if m:
            section = m.group(1)
            continue
        m = re.match(r'\.TP\n\.BI? (\w+) " = "', chunk)
        if m and section:
            entries.setdefault(section, {})[m.group(1)] = chunk
    return entries


def words(paragraph):
    """The roff paragraph as plain words: macros dropped, quotes off."""
    out = []
    for line in paragraph.split("\n"):
        if line.startswith("."):
            line = re.sub(r"^\.\w+\s*", "", line)
        out.append(line.replace('"', ""))
    return " ".join(" ".join(out).split())


def table_options(tmp_path):
    """Every option of the option table with calloutd's default, as
    calloutd -t prints them (it prints the table)."""
    conf = tmp_path / "t.conf"
    conf.write_text(f"[daemon]\nstate_dir = {tmp_path}\n[cache]\ncache = memory\n")
    r = subprocess.run([conftest.binary("calloutd"), "-t", "-c", str(conf)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    opts = re.findall(r"^  \[(\w+)\] (\w+) = (.*)$", r.stdout, re.M)
    assert len(opts) > 30, r.stdout
    return opts


def test_config_man_page_documents_every_option_with_its_default(tmp_path):
    """calloutd.conf(5) and the option table agree: every key of the table
    is documented in its section, with the default calloutd uses."""
    entries = man_entries("calloutd.conf.5")
    for section, key, value in table_options(tmp_path):
        assert key in entries.get(section, {}), f"[{section}] {key} is not in calloutd.conf(5)"
        text = words(entries[section][key])
        if section == "cache" and key == "cache" or not value:
            continue  # strings: their default is described, not a value
        shown = value.replace(" (no limit)", "")
        assert re.search(r"Default: " + re.escape(shown) + r"\b", text), \
            f"[{section}] {key}: the table says {shown!r}; calloutd.conf(5) says: {text}"


def test_cli_man_page_documents_every_table_flag(tmp_path):
    """callout(1) names every flag --help lists (both come from the table
    for the engine and cache options)."""
    r = subprocess.run([conftest.binary("callout"), "check", "--help"], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0
    listed = re.sub(r"--\[no-\]([a-z-]+)", r"--\1 --no-\1", r.stdout)
    flags = set(re.findall(r"(?<![\w-])--([a-z][a-z-]+)", listed))
    page = man_text("callout.1")
    for flag in sorted(flags):
        if flag.startswith("no-") and f"--{flag[3:]}" in page:
            continue
        assert f"--{flag}" in page, f"--{flag} is in --help but not in callout(1)"
