"""`callout check` in bulk: CSV in and out, --format, line numbers,
--ordered, the progress line on a terminal, the summary, SIGINT, --output
and --resume after kill -9, and bad input.

Against the suite's Postfix (postfix.test through NSD) and the scriptable
fake SMTP server (addressed by literal), all on loopback.
"""
import csv
import io
import json
import os
import pty
import select
import signal
import subprocess
import threading
import time

import pytest

import conftest
import testnet

HELO = "verifier.test"
# The limits that protect real servers would serialise the fake server's
# sessions; these tests want one session per address, all at once.
NO_LIMITS = ["--domain-sessions", "0", "--host-sessions", "0", "--domain-rate", "0",
             "--host-rate", "0", "--max-probes", "0", "--session-rcpts", "1"]
OUR_COLUMNS = ["address", "verdict", "reason", "code", "enhanced", "text", "mx", "ip",
               "cached", "from_fact", "ms", "line"]

# Addresses "slow*" are answered after a delay, "bad*" refused, others accepted.
SCRIPT = """\
on connect
    send 220 fake.test ESMTP
on EHLO
    send 250-fake.test
    send 250 PIPELINING
on MAIL
    send 250 2.1.0 Ok
on RCPT TO:<slow*>
    delay {delay}
    send 250 2.1.5 Ok
on RCPT TO:<bad*>
    send 550 5.1.1 no such user
on RCPT
    send 250 2.1.5 Ok
on QUIT
    send 221 2.0.0 Bye
    close
"""


def callout_cmd(*args):
    return [conftest.binary("callout"), "check", "--port", str(testnet.SMTP_PORT),
            "--helo", HELO, *args]


def run(*args, input=None, timeout=60):
    return subprocess.run(callout_cmd(*args), capture_output=True, text=True, input=input,
                          timeout=timeout, stdin=None if input is not None else subprocess.DEVNULL)


def json_lines(text):
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def csv_rows(text):
    return list(csv.DictReader(io.StringIO(text)))


@pytest.fixture
def fake(fake_smtp):
    """A fake server: slow* after delay s, bad* unknown, the rest accepted."""
    def start(delay=2):
        return fake_smtp(SCRIPT.format(delay=delay))
    return start


@pytest.fixture
def pf(dns_server, postfix_mx):
    return ["--dns-server", dns_server.server]


# --------------------------------------------------------------------------
# CSV in and out

QUOTED_CSV = (
    'name,email,note\r\n'
    '"Smith, John",alice@postfix.test,"said ""hi""\r\nand left"\r\n'
    'Nobody,nobody@postfix.test,plain\r\n'
    '"Bob ""the"" Builder","bob@postfix.test","a,b,c"\r\n'
)


def test_csv_in_csv_out_keeps_columns(pf, tmp_path):
    src = tmp_path / "in.csv"
    src.write_bytes(QUOTED_CSV.encode())
    r = run(*pf, "--csv", "-f", str(src), "--format", "csv")
    assert r.returncode == 1, r.stderr
    assert r.stdout.splitlines()[0] == "name,email,note," + ",".join(OUR_COLUMNS)
    rows = {row["email"]: row for row in csv_rows(r.stdout)}
    assert set(rows) == {"alice@postfix.test", "nobody@postfix.test", "bob@postfix.test"}
    alice = rows["alice@postfix.test"]
    # the other columns come back as they were: commas, quotes, a line break
    assert alice["name"] == "Smith, John"
    assert alice["note"] == 'said "hi"\nand left'  # text mode reads CRLF as LF
    raw = subprocess.run(callout_cmd(*pf, "--csv", "-f", str(src), "--format", "csv"),
                         capture_output=True, timeout=60).stdout
    assert b'"said ""hi""\r\nand left"' in raw  # the bytes as they were
    assert alice["verdict"] == "valid" and alice["line"] == "2"
    assert alice["address"] == "alice@postfix.test" and alice["code"] == "250"
    assert rows["nobody@postfix.test"]["verdict"] == "invalid"
    assert rows["nobody@postfix.test"]["reason"] == "mailbox_unknown"
    assert rows["nobody@postfix.test"]["line"] == "4"  # the record after a 2-line one
    assert rows["bob@postfix.test"]["name"] == 'Bob "the" Builder'
    assert rows["bob@postfix.test"]["note"] == "a,b,c"
    assert rows["bob@postfix.test"]["line"] == "5"
    for row in rows.values():
        assert row["cached"] == "false" and row["from_fact"] == "false"
        assert int(row["ms"]) >= 0


@pytest.mark.parametrize("column", ["email", "EMail", "2"])
def test_column_by_name_and_number(pf, tmp_path, column):
    src = tmp_path / "in.csv"
    src.write_text("id,email,x\n7,alice@postfix.test,a\n8,nobody@postfix.test,b\n")
    r = run(*pf, "--column", column, "-f", str(src), "--json")
    res = {x["address"]: x for x in json_lines(r.stdout)}
    assert set(res) == {"alice@postfix.test", "nobody@postfix.test"}, r.stdout + r.stderr
    assert res["alice@postfix.test"]["line"] == 2 and res["nobody@postfix.test"]["line"] == 3


def test_header_detection_and_no_header(pf, tmp_path):
    src = tmp_path / "in.csv"
    # no header: the first record holds an '@', so it is data
    src.write_text("alice@postfix.test,first\nnobody@postfix.test,second\n")
    r = run(*pf, "--csv", "-f", str(src), "--format", "csv")
    rows = csv_rows(r.stdout)
    assert list(rows[0])[:2] == ["column1", "column2"]
    assert sorted(row["line"] for row in rows) == ["1", "2"]
    # --no-header with a column number; --header makes the first record a header
    src.write_text("a,alice@postfix.test\nb,nobody@postfix.test\n")
    r = run(*pf, "--column", "2", "--no-header", "-f", str(src), "--json")
    assert sorted(x["line"] for x in json_lines(r.stdout)) == [1, 2]
    r = run(*pf, "--column", "2", "--header", "-f", str(src), "--json")
    assert [x["address"] for x in json_lines(r.stdout)] == ["nobody@postfix.test"]


def test_csv_default_column_name(pf, tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("Name,E-Mail\nA,alice@postfix.test\n")
    r = run(*pf, "--csv", "-f", str(src), "--json")
    assert [x["address"] for x in json_lines(r.stdout)] == ["alice@postfix.test"], r.stderr


def test_column_name_missing_is_an_error(pf, tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("name,mail\nA,alice@postfix.test\n")
    r = run(*pf, "--column", "email", "-f", str(src))
    assert r.returncode == 2
    assert "no column named 'email'" in r.stderr
    assert r.stdout == ""


def test_list_input_csv_output_and_stdin(pf):
    r = run(*pf, "--format", "csv", "-f", "-", input="alice@postfix.test\n\nnobody@postfix.test\n")
    rows = csv_rows(r.stdout)
    assert list(rows[0]) == OUR_COLUMNS
    assert {(x["address"], x["line"]) for x in rows} == {("alice@postfix.test", "1"),
                                                          ("nobody@postfix.test", "3")}


def test_text_output_names_file_and_line(pf, tmp_path):
    src = tmp_path / "list.txt"
    src.write_text("# a comment\nalice@postfix.test\n")
    r = run(*pf, "-f", str(src))
    assert r.returncode == 0
    assert r.stdout.startswith(f"{src}:2: alice@postfix.test: valid"), r.stdout


# --------------------------------------------------------------------------
# order

def test_completion_order_with_line_numbers(fake):
    srv = fake(delay=2)
    addrs = [f"slow1@[{srv.host}]"] + [f"u{i}@[{srv.host}]" for i in range(2, 7)]
    r = run(*NO_LIMITS, "-c", "10", "--json", "-f", "-", input="\n".join(addrs) + "\n")
    res = json_lines(r.stdout)
    assert [x["address"] for x in res][-1] == addrs[0]  # the slow one came last
    assert {x["address"]: x["line"] for x in res} == {a: i + 1 for i, a in enumerate(addrs)}


def test_ordered_output(fake):
    srv = fake(delay=2)
    addrs = ([f"slow1@[{srv.host}]"] + [f"u{i}@[{srv.host}]" for i in range(2, 6)] +
             [f"bad6@[{srv.host}]", "not an address"])
    r = run(*NO_LIMITS, "-c", "10", "--json", "--ordered", "-f", "-",
            input="\n".join(addrs) + "\n")
    res = json_lines(r.stdout)
    assert [x["address"] for x in res] == addrs
    assert [x["line"] for x in res] == list(range(1, len(addrs) + 1))
    assert res[0]["ms"] >= 1500 and res[5]["verdict"] == "invalid"
    assert res[6]["reason"] == "syntax"


def test_ordered_csv_window_small_concurrency(fake):
    """-c 2 and far more addresses than that: still in input order."""
    srv = fake(delay=1)
    addrs = [f"slow1@[{srv.host}]"] + [f"u{i}@[{srv.host}]" for i in range(2, 41)]
    r = run(*NO_LIMITS, "-c", "2", "--format", "csv", "--ordered", "-f", "-",
            input="\n".join(addrs) + "\n")
    rows = csv_rows(r.stdout)
    assert [x["address"] for x in rows] == addrs
    assert [x["line"] for x in rows] == [str(i) for i in range(1, 41)]


# --------------------------------------------------------------------------
# the terminal: progress line and summary

def run_on_pty(args, input_text):
    """Run with standard error on a pseudo terminal; stdout a pipe."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(callout_cmd(*args), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=slave, text=True)
    os.close(slave)
    chunks = []

    def reader():
        while True:
            try:
                ready, _, _ = select.select([master], [], [], 0.2)
                if ready:
                    data = os.read(master, 4096)
                    if not data:
                        break
                    chunks.append(data)
                elif proc.poll() is not None:
                    # drain what is left
                    while select.select([master], [], [], 0.1)[0]:
                        data = os.read(master, 4096)
                        if not data:
                            break
                        chunks.append(data)
                    break
            except OSError:
                break

    t = threading.Thread(target=reader)
    t.start()
    out, _ = proc.communicate(input_text, timeout=60)
    t.join(10)
    os.close(master)
    return proc.returncode, out, b"".join(chunks).decode(errors="replace")


@pytest.mark.slow
def test_progress_on_a_terminal(fake):
    srv = fake(delay=1.5)
    addrs = [f"slow{i}@[{srv.host}]" for i in range(1, 5)] + [f"bad@[{srv.host}]"]
    # the per-domain limit (one session at a time) makes them wait
    rc, out, err = run_on_pty(["--domain-sessions", "1", "--session-rcpts", "1", "--json",
                               "-f", "-"], "\n".join(addrs) + "\n")
    assert rc == 1, err
    assert len(json_lines(out)) == 5
    assert "\r\x1b[K" in err                       # redrawn in place
    assert "waiting for per-domain/host limits" in err, err
    assert "valid 0 invalid 0" in err or "valid 0 invalid 1" in err, err
    # the summary, after the line was erased
    assert "5 verified in" in err
    assert "verdict" in err and "mailbox_unknown" in err
    # a few redraws a second, not one per event
    assert err.count("\r\x1b[K") < 6 * 4 * 10


def test_no_progress_when_not_a_terminal_or_asked(fake, pf):
    r = run(*pf, "--json", "alice@postfix.test")
    assert r.returncode == 0 and r.stderr == ""
    rc, out, err = run_on_pty([*pf, "--json", "--no-progress", "-f", "-"], "alice@postfix.test\n")
    assert rc == 0 and "\x1b[K" not in err and "verified in" not in err


def test_summary_on_request(pf):
    r = run(*pf, "--json", "--summary", "alice@postfix.test", "nobody@postfix.test")
    assert "2 verified in" in r.stderr
    assert "mailbox_unknown" in r.stderr and "accepted" in r.stderr


# --------------------------------------------------------------------------
# SIGINT

@pytest.mark.parametrize("ordered", [False, True])
def test_sigint_flushes_and_summarises(fake, ordered):
    srv = fake(delay=30)
    addrs = ([f"slow1@[{srv.host}]"] + [f"u{i}@[{srv.host}]" for i in range(2, 5)] +
             [f"slow5@[{srv.host}]"])
    proc = subprocess.Popen(callout_cmd(*NO_LIMITS, "--json", *(["--ordered"] if ordered else []),
                                        "-f", "-"),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    proc.stdin.write("\n".join(addrs) + "\n")
    proc.stdin.close()
    proc.stdin = None
    time.sleep(2)  # the fast ones are done, the slow ones wait 30 s
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    res = json_lines(out)
    # every finished result written, in input order with --ordered
    got = [x["address"] for x in res if x["address"].startswith("u")]
    assert (got if ordered else sorted(got)) == addrs[1:4]
    assert len(res) == 3
    assert all(x["verdict"] == "valid" for x in res)
    assert "interrupted by SIGINT: 2 verifications in flight cancelled" in err, err
    assert "3 verified in" in err and "accepted" in err


# --------------------------------------------------------------------------
# --output and --resume

def kill9_then_resume(srv, tmp_path, fmt, name):
    n = 40
    src = tmp_path / "list.txt"
    src.write_text("".join(f"slow{i}@[{srv.host}]\n" for i in range(1, n + 1)))
    out = tmp_path / name
    args = [*NO_LIMITS, "-c", "4", "--format", fmt, "-f", str(src), "--resume", str(out)]
    proc = subprocess.Popen(callout_cmd(*args), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if out.exists() and out.read_bytes().count(b"\n") >= 10:
            break
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    first = out.read_bytes()
    assert 10 <= first.count(b"\n") < n + 1
    # a half-written last line, as a kill in the middle of a write leaves it
    with open(out, "ab") as f:
        f.write(b'{"address":"slow9' if fmt == "json" else b"slow9@[127.0")
    r = subprocess.run(callout_cmd(*args), capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    assert "dropped an incomplete last line" in r.stderr
    data = out.read_text()
    assert data.startswith(first.decode())
    return n, data


def test_resume_after_kill9_json(fake, tmp_path):
    srv = fake(delay=0.3)
    n, data = kill9_then_resume(srv, tmp_path, "json", "out.json")
    lines = [x["line"] for x in json_lines(data)]
    assert sorted(lines) == list(range(1, n + 1))  # each exactly once


def test_resume_after_kill9_csv(fake, tmp_path):
    srv = fake(delay=0.3)
    n, data = kill9_then_resume(srv, tmp_path, "csv", "out.csv")
    assert data.count("address,verdict") == 1  # one header
    lines = [int(x["line"]) for x in csv_rows(data)]
    assert sorted(lines) == list(range(1, n + 1))


def test_resume_finished_file_does_nothing(pf, tmp_path):
    out = tmp_path / "r.json"
    r = run(*pf, "--resume", str(out), "alice@postfix.test", "nobody@postfix.test")
    assert r.returncode == 1 and len(json_lines(out.read_text())) == 2
    before = out.read_text()
    r = run(*pf, "--resume", str(out), "--summary", "alice@postfix.test", "nobody@postfix.test")
    # nothing asked again; the exit status still counts what the file holds
    assert r.returncode == 1, r.stderr
    assert out.read_text() == before
    assert "2 skipped" in r.stderr


def test_output_file_and_format_from_name(pf, tmp_path):
    out = tmp_path / "o.csv"
    r = run(*pf, "-o", str(out), "alice@postfix.test")
    assert r.returncode == 0 and r.stdout == ""
    assert csv_rows(out.read_text())[0]["verdict"] == "valid"


def test_resume_bad_files(pf, tmp_path):
    garbage = tmp_path / "g.json"
    garbage.write_text("hello\nworld\n")
    r = run(*pf, "--resume", str(garbage), "alice@postfix.test")
    assert r.returncode == 2 and "g.json:1: not JSON" in r.stderr
    assert garbage.read_text() == "hello\nworld\n"  # left alone
    r = run(*pf, "--resume", str(tmp_path), "alice@postfix.test")
    assert r.returncode == 2 and "cannot resume" in r.stderr
    other = tmp_path / "o.csv"
    other.write_text("a,b\n1,2\n")
    r = run(*pf, "--resume", str(other), "alice@postfix.test")
    assert r.returncode == 2 and "o.csv:1: too few columns: not a file written by" in r.stderr
    other.write_text(",".join(["x"] * 12) + "\n")
    r = run(*pf, "--resume", str(other), "alice@postfix.test")
    assert r.returncode == 2 and "the header does not end in our columns" in r.stderr
    for args in (["--resume", "x.json", "-o", "y"], ["--resume", "x.txt", "--format", "text"],
                 ["--resume", "x.json", "-f", "a", "-f", "b"]):
        r = run(*pf, *args, "alice@postfix.test")
        assert r.returncode == 2 and "Try" in r.stderr, args


# --------------------------------------------------------------------------
# bad input

def test_bad_csv_gives_per_record_results(pf, tmp_path):
    src = tmp_path / "bad.csv"
    src.write_bytes(b"email,x\n"
                    b"alice@postfix.test,ok\n"
                    b"\"nobody@postfix.test\"junk,1\n"        # text after a closing quote
                    b"nul\x00@postfix.test,2\n"                # a NUL byte
                    b"\"two\nlines@postfix.test\",3\n"          # a line break in the address
                    b"bob@postfix.test,4\r\n"                  # CRLF
                    b",5\n"                                    # no address
                    b"\"open quote@postfix.test,6\n")          # never closed
    r = run(*pf, "--csv", "-f", str(src), "--json")
    res = {x["line"]: x for x in json_lines(r.stdout)}
    assert res[2]["verdict"] == "valid" and res[7]["verdict"] == "valid"
    assert res[7]["address"] == "bob@postfix.test"
    assert "after a closing quote" in res[3]["text"]
    assert "NUL" in res[4]["text"]
    assert "line break" in res[5]["text"] and "lines 5-6" in res[5]["text"]
    assert "no address" in res[8]["text"]
    assert "not closed" in res[9]["text"]
    for line in (3, 4, 5, 8, 9):
        assert res[line]["verdict"] == "invalid" and res[line]["reason"] == "syntax"


def test_over_long_record_ends_the_file(pf, tmp_path):
    src = tmp_path / "long.csv"
    src.write_bytes(b"email\nalice@postfix.test\n\"" + b"x" * 70000 + b"\n")
    r = run(*pf, "--csv", "-f", str(src), "--json", timeout=30)
    assert [x["address"] for x in json_lines(r.stdout)] == ["alice@postfix.test"]
    assert "longer than 65536 bytes" in r.stderr and r.returncode == 3


def test_over_long_field_and_binary_list(pf, tmp_path):
    src = tmp_path / "in.csv"
    src.write_bytes(b"email\n" + b"a" * 2000 + b"@postfix.test\nalice@postfix.test\n")
    r = run(*pf, "--csv", "-f", str(src), "--json")
    res = {x["line"]: x for x in json_lines(r.stdout)}
    assert res[2]["reason"] == "local_limit" and res[3]["verdict"] == "valid"
    r = run(*pf, "--csv", "-f", "/dev/zero", "--json", timeout=30)
    # the first record (the columns) is read before any work: a usage error
    assert r.returncode == 2 and "error reading" in r.stderr
