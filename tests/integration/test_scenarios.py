"""Scenario tests: `callout check` against the scriptable fake SMTP server.

One test per scenarios/*.scn (format: scenarios/README.md): start the
server with the scenario's script, run callout, then check the verdict
fields, the exact client transcript of every session the server saw, and
that the run ended within the scenario's time bounds.
"""
import glob
import json
import os
import shlex
import time

import pytest

import testnet
from fakesmtp import format_sessions, load_scenario, match_line, match_transcript, substitute

HERE = os.path.dirname(os.path.abspath(__file__))
SCENARIOS = sorted(glob.glob(os.path.join(HERE, "scenarios", "*.scn")))


def _secs(x):
    return f"{x:g}"


def _expected_value(text):
    if text == "-":
        return "-"
    try:
        return json.loads(text)
    except ValueError:
        return text


def _same(expected, actual):
    if expected == "-":
        return actual in ("", 0, None)
    return expected == actual


def _transcript_diff(expected, actual, subst):
    out = []
    for i in range(max(len(expected), len(actual))):
        exp = expected[i] if i < len(expected) else None
        act = actual[i] if i < len(actual) else None
        out.append(f"  [session {i + 1}]")
        for j in range(max(len(exp or []), len(act or []))):
            e = exp[j] if exp is not None and j < len(exp) else "(none)"
            a = act[j] if act is not None and j < len(act) else "(none)"
            ok = exp is not None and act is not None and j < len(exp) and j < len(act) \
                and match_line(e, a, subst)
            out.append(f"  {'  ' if ok else '!!'} expected {e!r:45} got {a!r}")
    return "\n".join(out)


@pytest.mark.parametrize("path", SCENARIOS, ids=[os.path.basename(p)[:-4] for p in SCENARIOS])
def test_scenario(path, fake_smtp, callout):
    sc = load_scenario(path)
    srv = fake_smtp(sc)
    subst = {"ip": srv.host, "port": srv.port, **srv.subst}

    command_timeout = sc.option("command-timeout", 5.0, float)
    connect_timeout = sc.option("connect-timeout", 5.0, float)
    max_seconds = sc.option("max-seconds", command_timeout + 5.0, float)
    min_seconds = sc.option("min-seconds", 0.0, float)
    args = shlex.split(substitute(sc.command, subst))

    t0 = time.monotonic()
    run = callout("--transcript", "--port", str(testnet.SMTP_PORT),
                      "--command-timeout", _secs(command_timeout),
                      "--connect-timeout", _secs(connect_timeout),
                      *args, timeout=max_seconds + 30)
    elapsed = time.monotonic() - t0

    # The client is gone: let the server log the rest, then end it.
    srv.wait_idle(3.0)
    srv.stop()
    actual = srv.transcripts()

    problems = []
    res = run.results[0] if len(run.results) == 1 else None
    if res is None:
        problems.append(f"expected one JSON result line, got {len(run.results)}")
    else:
        for key, text in sc.result.items():
            want = _expected_value(text)
            if key not in res:
                problems.append(f"result has no key {key!r}")
            elif not _same(want, res[key]):
                problems.append(f"{key}: expected {want!r}, got {res[key]!r}")
    if sc.transcript is not None and not match_transcript(sc.transcript, actual, subst):
        problems.append(f"client transcript differs (expected {len(sc.transcript)} session(s), "
                        f"server saw {len(actual)}):\n" + _transcript_diff(sc.transcript, actual, subst))
    if elapsed > max_seconds:
        problems.append(f"took {elapsed:.2f} s, more than max-seconds {max_seconds:g}")
    if elapsed < min_seconds:
        problems.append(f"took {elapsed:.2f} s, less than min-seconds {min_seconds:g}")

    if problems:
        report = [f"scenario {sc.name}: {sc.description.splitlines()[0] if sc.description else ''}"]
        report += ["  - " + p for p in problems]
        report.append(f"command: callout check --json --transcript ... {' '.join(args)}")
        report.append(f"exit status {run.returncode}, {elapsed:.2f} s")
        if res is not None:
            shown = {k: v for k, v in res.items() if k != "transcript"}
            report.append("result: " + json.dumps(shown, ensure_ascii=False))
            if res.get("transcript"):
                report.append("client's own transcript:\n" + "\n".join(
                    "    " + l for l in res["transcript"].splitlines()))
        else:
            report.append("stdout: " + run.stdout)
        if run.stderr.strip():
            report.append("stderr: " + run.stderr.strip())
        report.append("server saw:\n" + format_sessions(actual))
        report.append("server log:\n" + srv.log_text())
        pytest.fail("\n".join(report), pytrace=False)
