"""bench/run works in its smoke mode and writes well-formed results."""
import glob
import json
import os
import subprocess

from conftest import BUILD, ROOT


def test_bench_quick(tmp_path):
    proc = subprocess.run([os.path.join(ROOT, "bench", "run"), "--quick", "--build", BUILD,
                           "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "verif/s" in proc.stdout
    files = glob.glob(str(tmp_path / "*.json"))
    assert len(files) == 1
    data = json.load(open(files[0]))
    assert data["machine"]["cores"] >= 1
    assert [r["concurrency"] for r in data["results"]] == [1, 100, 1000]
    for r in data["results"]:
        # every address went to smtp-sink, which accepts everything
        assert r["verdicts"] == {"valid": r["n"]}
        assert r["per_second"] > 0 and r["peak_rss_kib"] > 0
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
