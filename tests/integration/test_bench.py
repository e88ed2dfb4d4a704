"""bench/run works in its smoke mode and writes well-formed results."""
import glob
import json
import os
import subprocess

import pytest

from conftest import BUILD, ROOT

pytestmark = pytest.mark.slow  # bench/run --quick: about 30 s

SECTIONS = ["round trips", "throughput, uncached", "calloutd", "policy latency while",
            "memory:", "targets"]


def test_bench_quick(tmp_path):
    proc = subprocess.run([os.path.join(ROOT, "bench", "run"), "--quick", "--build", BUILD,
                           "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "verif/s" in proc.stdout
    for section in SECTIONS:
        assert section in proc.stdout, section
    files = glob.glob(str(tmp_path / "*.json"))
    assert len(files) == 1
    data = json.load(open(files[0]))
    for key in ("machine", "rtt", "results", "baseline", "daemon", "memory", "cache", "bulk",
                "jobs", "targets"):
        assert key in data, key
    assert data["machine"]["cores"] >= 1 and data["machine"]["kernel"]
    assert data["machine"]["commit"]

    # round trips: four rows with a new session each, then the next address
    # of a domain on a reused session
    rtt = data["rtt"]
    assert rtt["rtt_ms"] > 0 and 3.5 < rtt["floor_round_trips"] < 6
    measured, reuse = rtt["rows"][:4], rtt["rows"][4:]
    assert [(r["pipelining"], r["catch_all"]) for r in measured] == [
        (True, False), (True, True), (False, False), (False, True)]
    for r in rtt["rows"]:
        assert r["verdicts_ok"]
        assert r["ms"] > 0 and r["round_trips"] > 0 and r["relay_corrected"] > 0
        assert r["met"] == (r["relay_corrected"] <= r["target"])
    # fewer round trips with PIPELINING than without, more with the probe
    # when it is not pipelined; far fewer on a reused session
    assert measured[0]["round_trips"] < measured[2]["round_trips"] < measured[3]["round_trips"]
    assert len(reuse) == 1 and reuse[0]["reuse"] and reuse[0]["target"] == 1.2
    assert reuse[0]["round_trips"] < measured[0]["round_trips"] / 2

    # throughput: smtp-sink at every concurrency, then our fake server
    sink = [r for r in data["results"] if r["server"] == "smtp-sink"]
    assert [r["concurrency"] for r in sink] == [1, 100, 1000, 5000]
    assert [r["server"] for r in data["results"]][-2:] == ["smtp-sink, session reuse",
                                                          "fakesmtp.py"]
    for r in data["results"]:
        # every address went to a server that accepts everything
        assert r["verdicts"] == {"valid": r["n"]}
        assert r["per_second"] > 0 and r["peak_rss_kib"] > 0
    assert [b["concurrency"] for b in data["baseline"]] == [1, 100, 1000, 5000]
    for b in data["baseline"]:
        assert b["exit"] == 0 and b["per_second"] > 0

    # the daemon: uncached and cached, policy and HTTP, every backend
    kinds = {(d["kind"], d["frontend"], d["cache"], d["conns"]) for d in data["daemon"]}
    for want in [("uncached", "policy", "lmdb", 1000), ("uncached", "http GET", "lmdb", 1000),
                 ("cached", "policy", "lmdb", 1), ("cached", "policy", "lmdb", 100),
                 ("cached", "http GET", "lmdb", 100), ("cached", "policy", "redis", 100),
                 ("cached", "http GET", "redis", 100), ("uncached", "policy", "redis", 1000)]:
        assert want in kinds, want
    for d in data["daemon"]:
        assert d["ok"] and d["per_second"] > 0
        if d["frontend"] == "policy":
            assert d["actions"] == {"DUNNO": d["n"]} and d["errors"] == 0

    # policy latency, quiet and while the HTTP API is flooded
    assert [f["phase"] for f in data["flood"]] == ["quiet", "HTTP flood"]
    for f in data["flood"]:
        assert f["n"] > 100 and 0 < f["p50_ms"] <= f["p99_ms"] <= f["max_ms"]
    assert any(t["name"] == "policy p99 ms during an HTTP flood" for t in data["targets"])

    # memory: the tarpit held (nearly) every verification at once
    m = data["memory"]
    assert m["held_by_server"] >= 0.95 * m["in_flight_target"]
    assert m["peak_rss_kib"] > m["base_rss_kib"] > 0 and m["bytes_per_in_flight"] > 0
    assert m["met"] == (m["bytes_per_in_flight"] <= 16384)

    # the bulk list: every address valid, in input order with --ordered,
    # memory under the target
    bulk = data["bulk"]
    assert [b["ordered"] for b in bulk] == [False, True]
    for b in bulk:
        assert b["domains"] == 10000 and b["verdicts"] == {"valid": b["n"]}
        assert b["peak_rss_kib"] > 0 and b["per_second"] > 0 and b["exit"] == 0
        assert b["met"] == (b["peak_rss_kib"] < 300 * 1024)
    assert bulk[1]["in_order"]
    assert "bulk list" in proc.stdout

    # a bulk job over HTTP: every address answered, the policy probe's
    # latency beside it, and its target
    jobs = data["jobs"]
    # once with the jobs in LMDB, once in Redis (the fleet's store)
    assert [(j["store"], j["phase"]) for j in jobs] == [
        ("lmdb", "quiet"), ("lmdb", "job running"), ("redis", "quiet"), ("redis", "job running")]
    for j in (jobs[1], jobs[3]):
        assert j["state"] == "done" and j["counts"]["valid"] == j["addresses"], j
    assert all(j["n"] > 0 and j["p99_ms"] >= j["p50_ms"] for j in jobs)
    assert "policy latency while an HTTP bulk job runs" in proc.stdout
    assert len([t for t in data["targets"]
                if t["name"] == "policy p99 ms while a bulk job runs"]) == 2

    # the cache: LMDB and Redis lookups all answered from the cache, and
    # LMDB's size per entry
    modes = [(r["mode"], r["backend"]) for r in data["cache"]]
    assert modes == [("fill", "lmdb"), ("bulk", "lmdb"), ("lookup", "lmdb"),
                     ("fill", "redis"), ("lookup", "redis")]
    for r in data["cache"]:
        if r["mode"] == "lookup":
            assert r["cached"] == r["n"] and r["per_second"] > 0
        if r["mode"] == "bulk":
            assert 100 < r["bytes_per_entry"] < 2000

    # the summary: every target with a value and a consistent verdict
    names = [t["name"] for t in data["targets"]]
    assert any(n.startswith("round trips, next address") for n in names)
    for t in data["targets"]:
        assert t["value"] > 0, t
        target = t["target"]
        if target.startswith(">= "):
            assert t["met"] == (t["value"] >= float(target[3:])), t
        elif target.startswith("<= "):
            assert t["met"] == (t["value"] <= float(target[3:])), t
        else:
            assert target == "reported" and t["met"] is None
