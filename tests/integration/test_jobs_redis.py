"""Bulk jobs kept in Redis and shared by a fleet: calloutd nodes (the
`fleet` fixture of test_fleet.py) on one redis-server, verifying lists
against the fake SMTP server of test_jobs.py.

What a client of a fleet relies on: any node takes a job and answers for
every job; a job runs on one node at a time, under a lease that another
node takes over when the owner dies or stops; every input line is
answered exactly once whoever ran it, and the counts match the results;
DELETE works from any node; while Redis is away the jobs API says so
(503, Retry-After) and the mail is still answered.  The contract:
docs/bulk.md ("Jobs in a fleet"), docs/http-api.md, docs/fleet.md.

The owner of a job is made certain: the second node is stopped while the
first one takes the job, then started again.
"""
import http.client
import http.server
import json
import os
import shutil
import signal
import threading
import time

import pytest

import testnet
from test_fleet import fleet  # noqa: F401  (the fixture: nodes on one Redis)
from test_http import request
from test_jobs import OPEN, mx  # noqa: F401  (the fake SMTP server's script and fixture)

PREFIX = "jr:"
# A job's verifications: no limit against our own fake server; a probe
# that a dead node claimed (single flight) is waited for 1 s, not 15.
ENGINE = dict(OPEN["engine"])
CACHE = {"wait": "1s"}
LEASE_S = 5


def start_fleet(fleet, n=2, inflight=4, **http_keys):  # noqa: F811
    return fleet(n, engine=ENGINE, cache=CACHE, redis_prefix=PREFIX,
                 http={"job_inflight": str(inflight), **http_keys})


def call(node, method, path, body=None, headers=None, timeout=30):
    conn = http.client.HTTPConnection(testnet.CALLOUTD_IP, node.http_port, timeout=timeout)
    try:
        return request(method, path, body=body, headers=headers, conn=conn)
    finally:
        conn.close()


def post_job(node, addrs):
    r = call(node, "POST", "/v1/jobs", body=addrs)
    assert r.status == 202, r
    return r.json["id"]


def get_job(node, job):
    r = call(node, "GET", f"/v1/jobs/{job}")
    assert r.status == 200, r
    return r.json


def wait_done(node, job, at_least, timeout=20):
    """The job's record once it has `at_least` results."""
    deadline = time.monotonic() + timeout
    while True:
        st = get_job(node, job)
        if st["done"] >= at_least:
            return st
        assert time.monotonic() < deadline, st
        time.sleep(0.05)


def wait_answering(node, job, timeout=10):
    """The jobs API answers for job again (Redis back)."""
    deadline = time.monotonic() + timeout
    while call(node, "GET", f"/v1/jobs/{job}").status != 200:
        assert time.monotonic() < deadline, f"job {job}: no answer {timeout} s after Redis came back"
        time.sleep(0.2)


def wait_state(node, job, states=("done",), timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        st = get_job(node, job)
        if st["state"] in states:
            return st
        assert time.monotonic() < deadline, st
        time.sleep(0.1)


def all_results(node, job, limit=7):
    out, offset = [], 0
    while True:
        r = call(node, "GET", f"/v1/jobs/{job}/results?offset={offset}&limit={limit}")
        assert r.status == 200, r
        out += [json.loads(x) for x in r.body.decode().splitlines()]
        if "x-next-offset" not in r.headers:
            return out
        offset = int(r.headers["x-next-offset"])


def assert_exactly_once(node, job, addrs):
    """Every input line answered once, in order; the counts are the results'."""
    st = get_job(node, job)
    res = all_results(node, job)
    assert [x["line"] for x in res] == list(range(1, len(addrs) + 1))
    assert [x["address"] for x in res] == addrs
    counts = {v: 0 for v in ("valid", "invalid", "unknown", "tempfail")}
    for x in res:
        counts[x["verdict"]] += 1
    assert st["counts"] == counts, (st, counts)
    assert st["done"] == st["total"] == len(res) == len(addrs), st
    return res


def keys(redis, job):
    return sorted(redis.cli("KEYS", f"{PREFIX}jobs:{job}*").split())


def lease(redis, job):
    """The lease's value (which node runs the job), "" when there is none."""
    return redis.cli("GET", f"{PREFIX}jobs:{job}:lease").strip()


def wait_new_owner(redis, job, old, timeout):
    """Seconds until the lease names a node other than `old`."""
    start = time.monotonic()
    while True:
        now = lease(redis, job)
        if now and now != old:
            waited = time.monotonic() - start
            print(f"a new owner after {waited:.2f} s")
            return waited
        assert time.monotonic() - start < timeout, f"lease {now!r}, was {old!r}"
        time.sleep(0.05)


def owned_by_a(fleet, redis_server, mx, addrs, inflight=4, done=4):  # noqa: F811
    """Two nodes; the job posted on a and running there (b stopped until
    then); returns (a, b, job, a's lease value)."""
    a, b = start_fleet(fleet, 2, inflight)
    b.stop()
    job = post_job(a, addrs)
    wait_done(a, job, done)
    held = lease(redis_server, job)
    assert held, keys(redis_server, job)
    ttl = int(redis_server.cli("PTTL", f"{PREFIX}jobs:{job}:lease"))
    assert 0 < ttl <= LEASE_S * 1000, ttl
    b.start(timeout=15)
    return a, b, job, held


def tardy(mx, n, tag=""):  # noqa: F811
    return [f"tardy{tag}{i}@[{mx.host}]" for i in range(n)]


# ---- where the jobs are -------------------------------------------------------


def test_lmdb_without_redis(calloutd, mx):  # noqa: F811
    d = calloutd(sections={"engine": ENGINE})
    assert d.wait_log(f"jobs: stored in {d.state_dir}/jobs.lmdb"), d.log_text()


def test_any_node_answers_for_any_job(fleet, redis_server, mx):  # noqa: F811
    a, b = start_fleet(fleet)
    for d in (a, b):
        assert d.wait_log(f"jobs: stored in redis://127.0.0.1:{redis_server.port}/0"), \
            d.log_text()
    addrs = [f"bob+{i}@[{mx.host}]" for i in range(12)] + \
            [f"nobody{i}@[{mx.host}]" for i in range(8)] + ["not an address"]
    job = post_job(a, addrs)
    st = get_job(b, job)  # at once, from the node that did not take it
    assert st["id"] == job and st["total"] == 21, st
    st = wait_state(b, job)
    assert st["counts"] == {"valid": 12, "invalid": 9, "unknown": 0, "tempfail": 0}, st
    res = assert_exactly_once(b, job, addrs)
    assert res[0]["verdict"] == "valid" and res[12]["reason"] == "mailbox_unknown"
    assert res[20]["reason"] == "syntax"
    assert all_results(a, job) == res
    assert get_job(a, job) == get_job(b, job)
    # a job posted on b: both nodes list both
    job2 = post_job(b, [f"bob+x@[{mx.host}]"])
    wait_state(a, job2)
    for d in (a, b):
        r = call(d, "GET", "/v1/jobs")
        assert r.status == 200, r
        assert sorted(j["id"] for j in r.json["jobs"]) == sorted([job, job2])
    # the keys under the cache's prefix
    assert sorted(redis_server.cli("SMEMBERS", f"{PREFIX}jobs:ids").split()) == \
        sorted([job, job2])
    base = f"{PREFIX}jobs:{job}"
    assert redis_server.cli("TYPE", f"{base}:meta").strip() == "string"
    meta = json.loads(redis_server.cli("GET", f"{base}:meta"))
    assert meta["total"] == 21 and meta["done"] == 21, meta
    assert redis_server.cli("TYPE", f"{base}:in").strip() == "hash"
    assert int(redis_server.cli("HLEN", f"{base}:in")) >= 1
    # the addresses expire until the record is written, then are kept
    assert redis_server.cli("TTL", f"{base}:in").strip() == "-1"
    assert redis_server.cli("TYPE", f"{base}:out").strip() == "zset"
    assert int(redis_server.cli("ZCARD", f"{base}:out")) == 21
    out = redis_server.cli("ZRANGE", f"{base}:out", "0", "-1", "WITHSCORES").splitlines()
    members, scores = out[0::2], out[1::2]
    assert [int(float(s)) for s in scores] == list(range(21))
    # each member is "INDEX RESULT"
    assert [m.split(" ", 1)[0] for m in members] == [str(i) for i in range(21)]
    assert [json.loads(m.split(" ", 1)[1])["line"] for m in members] == list(range(1, 22))
    # a finished job deleted from the node that did not take it
    r = call(a, "DELETE", f"/v1/jobs/{job2}")
    assert (r.status, r.json) == (200, {"id": job2, "state": "deleted"}), r
    for d in (a, b):
        assert call(d, "GET", f"/v1/jobs/{job2}").status == 404


def test_max_jobs_counts_the_fleet(fleet, redis_server, mx):  # noqa: F811
    a, b = start_fleet(fleet, max_jobs=2)
    post_job(a, [f"bob+m1@[{mx.host}]"])
    post_job(b, [f"bob+m2@[{mx.host}]"])
    time.sleep(1.2)  # each node looks at the fleet's jobs every second
    for d in (a, b):
        r = call(d, "POST", "/v1/jobs", body=[f"bob+m3@[{mx.host}]"])
        assert (r.status, r.json["error"]) == (503, "busy"), r


def test_redis_user_and_password(fleet, redis_server, mx):  # noqa: F811
    """The jobs' connection authenticates as the cache's does; the log
    names the server, never the password."""
    password = "jobs-Secret-42"
    assert redis_server.cli("ACL", "SETUSER", "jrtest", "on", f">{password}", "~*", "&*",
                            "+@all").strip() == "OK"
    try:
        spec = (f"redis://jrtest:{password}@127.0.0.1:{redis_server.port}/0"
                f"?prefix={PREFIX}")
        (d,) = fleet(1, engine=ENGINE, cache={**CACHE, "cache": spec})
        assert d.wait_log("jobs: stored in redis://"), d.log_text()
        job = post_job(d, [f"bob+pw@[{mx.host}]"])
        assert wait_state(d, job, timeout=10)["counts"]["valid"] == 1
        line = [x for x in d.log_text().splitlines() if "jobs: stored in" in x][0]
        assert f"127.0.0.1:{redis_server.port}/0" in line, line
        assert password not in d.log_text()
        clients = [x for x in redis_server.cli("CLIENT", "LIST").splitlines()
                   if x.startswith("id=") and "cmd=client" not in x]
        assert clients and all(" user=jrtest " in x for x in clients), clients
    finally:
        redis_server.cli("ACL", "DELUSER", "jrtest")


@pytest.mark.parametrize("how", ["sigterm", pytest.param("sigkill", marks=pytest.mark.slow)])
def test_a_node_alone_restarted_resumes_from_redis(fleet, redis_server, mx, how):  # noqa: F811
    """Its state directory emptied of any jobs.lmdb: the job comes from
    Redis.  After kill -9 its old lease must expire first."""
    (d,) = start_fleet(fleet, 1)
    addrs = tardy(mx, 24)
    job = post_job(d, addrs)
    wait_done(d, job, 4)
    if how == "sigterm":
        assert d.stop() == 0
    else:
        d.kill()
    lmdb = os.path.join(d.state_dir, "jobs.lmdb")
    if os.path.isdir(lmdb):
        shutil.rmtree(lmdb)
    elif os.path.exists(lmdb):
        os.remove(lmdb)
    before = len(d.log_text())
    d.start(timeout=15)
    st0 = get_job(d, job)
    assert (4 if how == "sigterm" else 0) <= st0["done"] < 24, st0
    wait_state(d, job, timeout=30)
    assert "resumed at" in d.log_text()[before:], d.log_text()[before:]
    assert_exactly_once(d, job, addrs)


# ---- the lease: one node at a time, taken over -------------------------------


@pytest.mark.slow
def test_killed_owner_taken_over_exactly_once(fleet, redis_server, mx):  # noqa: F811
    addrs = tardy(mx, 48)
    a, b, job, held = owned_by_a(fleet, redis_server, mx, addrs, done=8)
    assert get_job(b, job)["state"] == "running"
    assert lease(redis_server, job) == held, "b took a job a holds"
    a.kill()
    waited = wait_new_owner(redis_server, job, held, timeout=15)
    assert waited <= LEASE_S + 2.5, f"b took the job over {waited:.1f} s after the kill"
    wait_state(b, job, timeout=40)
    assert_exactly_once(b, job, addrs)


@pytest.mark.slow
def test_sigterm_hands_the_job_over(fleet, redis_server, mx):  # noqa: F811
    addrs = tardy(mx, 48)
    a, b, job, held = owned_by_a(fleet, redis_server, mx, addrs, done=8)
    assert a.stop() == 0
    assert lease(redis_server, job) != held, "a stopped and kept its lease"
    waited = wait_new_owner(redis_server, job, held, timeout=10)
    assert waited <= 2.5, f"b took the job over {waited:.1f} s after a stopped"
    wait_state(b, job, timeout=40)
    assert_exactly_once(b, job, addrs)


@pytest.mark.slow
def test_a_node_paused_past_its_lease_writes_nothing_more(fleet, redis_server, mx):  # noqa: F811
    """SIGSTOP of the owner for longer than its lease: b takes the job
    over; a, woken, finds its lease gone and leaves the job (its
    verifications answered meanwhile are not written)."""
    addrs = tardy(mx, 48)
    a, b, job, held = owned_by_a(fleet, redis_server, mx, addrs, done=8)
    before = len(a.log_text())
    a.proc.send_signal(signal.SIGSTOP)
    try:
        waited = wait_new_owner(redis_server, job, held, timeout=15)
        assert waited <= LEASE_S + 2.5, f"b took the job over {waited:.1f} s after a stopped"
    finally:
        a.proc.send_signal(signal.SIGCONT)
    # a left the job: at its first write, or at its first renewal
    deadline = time.monotonic() + 5
    while not any(x in a.log_text()[before:] for x in
                  ("a job's lease is another node's", "its lease was lost")):
        assert time.monotonic() < deadline, a.log_text()[before:]
        time.sleep(0.05)
    wait_state(b, job, timeout=40)
    assert_exactly_once(b, job, addrs)
    assert get_job(a, job) == get_job(b, job)


# ---- DELETE from any node ------------------------------------------------------


def test_delete_from_any_node(fleet, redis_server, mx):  # noqa: F811
    addrs = tardy(mx, 40)
    a, b, job, held = owned_by_a(fleet, redis_server, mx, addrs, inflight=2, done=2)
    # the owner is elsewhere: accepted, cancelled by the owner within a second
    r = call(b, "DELETE", f"/v1/jobs/{job}")
    assert r.status == 202, r
    assert r.json["id"] == job and r.json["total"] == 40, r.json
    assert redis_server.cli("EXISTS", f"{PREFIX}jobs:{job}:stop").strip() == "1"
    st = wait_state(b, job, ("cancelled",), timeout=2.5)
    assert 2 <= st["done"] < 40, st
    time.sleep(0.6)
    for d in (a, b):
        again = get_job(d, job)
        assert again["state"] == "cancelled" and again["done"] == st["done"], again
    res = all_results(b, job)
    assert len(res) == st["done"] and sum(st["counts"].values()) == st["done"]
    assert [x["line"] for x in res] == sorted(set(x["line"] for x in res))
    # ended: deleted for every node by any node, its keys gone
    r = call(b, "DELETE", f"/v1/jobs/{job}")
    assert (r.status, r.json) == (200, {"id": job, "state": "deleted"}), r
    for d in (a, b):
        assert call(d, "GET", f"/v1/jobs/{job}").status == 404
        assert call(d, "GET", f"/v1/jobs/{job}/results").status == 404
        assert call(d, "GET", "/v1/jobs").json == {"jobs": []}
    deadline = time.monotonic() + 5
    while keys(redis_server, job):
        assert time.monotonic() < deadline, keys(redis_server, job)
        time.sleep(0.1)
    assert redis_server.cli("SISMEMBER", f"{PREFIX}jobs:ids", job).strip() == "0"
    # on the owning node: 200, cancelled at once, as without Redis
    b.stop()
    job2 = post_job(a, tardy(mx, 40, "x"))
    wait_done(a, job2, 2)
    r = call(a, "DELETE", f"/v1/jobs/{job2}")
    assert (r.status, r.json["state"]) == (200, "cancelled"), r


# ---- Redis away ------------------------------------------------------------------


def answered_without_redis(d, mx, tag):  # noqa: F811
    """The jobs API says 503 (Retry-After: 5); /v1/verify and the policy
    service answer."""
    deadline = time.monotonic() + 5
    while True:
        t = time.monotonic()
        r = call(d, "GET", "/v1/jobs", timeout=10)
        assert time.monotonic() - t < 5, "GET /v1/jobs held while Redis is away"
        if r.status == 503:
            break
        assert r.status == 200 and time.monotonic() < deadline, r
        time.sleep(0.1)
    assert r.json["error"] == "unavailable" and r.headers["retry-after"] == "5", r
    r = call(d, "POST", "/v1/jobs", body=[f"bob+{tag}@[{mx.host}]"], timeout=10)
    assert (r.status, r.headers.get("retry-after")) == (503, "5"), r
    t = time.monotonic()
    assert d.verify(f"bob+v{tag}@[{mx.host}]", timeout=10)["verdict"] == "valid"
    action = d.policy({"sender": f"bob+p{tag}@[{mx.host}]", "client_address": "192.0.2.9"},
                      timeout=10)
    assert action.startswith("action="), action
    assert time.monotonic() - t < 6, "the mail waited for Redis"


def test_redis_gone_503_mail_still_answered(fleet, redis_server, mx):  # noqa: F811
    """Redis killed while a job runs: no persistence in the suite's
    server, it comes back empty and the job is lost, for good and
    whole (no key of it written again); the jobs API answers again."""
    (d,) = start_fleet(fleet, 1)
    job = post_job(d, tardy(mx, 40))
    wait_done(d, job, 4)
    redis_server.kill()
    try:
        answered_without_redis(d, mx, "k")
    finally:
        redis_server.start()
    deadline = time.monotonic() + 10
    while call(d, "GET", "/v1/jobs").status != 200:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    deadline = time.monotonic() + 3  # a tick of the node: its lease renewal finds none
    while call(d, "GET", f"/v1/jobs/{job}").status != 404:
        assert time.monotonic() < deadline, get_job(d, job)
        time.sleep(0.1)
    assert call(d, "GET", "/v1/jobs").json == {"jobs": []}
    assert redis_server.cli("KEYS", f"{PREFIX}jobs:*").split() == []
    job = post_job(d, [f"bob+after@[{mx.host}]"])
    assert wait_state(d, job, timeout=10)["counts"]["valid"] == 1


@pytest.mark.slow
def test_redis_paused_then_the_job_goes_on(fleet, redis_server, mx):  # noqa: F811
    """SIGSTOP for 3 s (less than a lease): 503 meanwhile, then the job
    finishes, every line once."""
    (d,) = start_fleet(fleet, 1)
    addrs = tardy(mx, 40)
    job = post_job(d, addrs)
    wait_done(d, job, 4)
    redis_server.pause()
    try:
        paused = time.monotonic()
        answered_without_redis(d, mx, "p")
        r = call(d, "GET", f"/v1/jobs/{job}", timeout=10)
        assert (r.status, r.headers.get("retry-after")) == (503, "5"), r
        time.sleep(max(0.0, 3 - (time.monotonic() - paused)))
    finally:
        redis_server.resume()
    wait_answering(d, job)
    wait_state(d, job, timeout=40)
    assert_exactly_once(d, job, addrs)


@pytest.mark.slow
def test_redis_restarted_from_its_snapshot_the_job_goes_on(fleet, redis_server, mx):  # noqa: F811
    """Redis with persistence (an RDB snapshot, SAVE): killed and started
    again, it holds the job as of the snapshot; the results written
    after it are lost and asked again, every line answered once."""
    (d,) = start_fleet(fleet, 1)
    addrs = tardy(mx, 40)
    job = post_job(d, addrs)
    wait_done(d, job, 4)
    dump = os.path.join(redis_server.workdir, "dump.rdb")
    try:
        assert redis_server.cli("SAVE").strip() == "OK"
        saved = int(json.loads(redis_server.cli("GET", f"{PREFIX}jobs:{job}:meta"))["done"])
        wait_done(d, job, saved + 4)  # results the snapshot does not hold
        redis_server.kill()
        redis_server.start()  # loads dump.rdb
    finally:
        if os.path.exists(dump):
            os.remove(dump)  # the next restarts come back empty, as the suite expects
    wait_answering(d, job)
    wait_state(d, job, timeout=40)
    assert_exactly_once(d, job, addrs)


class Refusing(http.server.BaseHTTPRequestHandler):
    """A webhook receiver that refuses every delivery (500)."""
    got = []

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        Refusing.got.append(self.headers["X-Callout-Job"])
        self.send_response(500)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *a):
        pass


@pytest.mark.slow
def test_delete_while_the_owner_retries_the_webhook(fleet, redis_server, mx):  # noqa: F811
    """A job that ended holds its lease while its webhook is retried (1,
    4, 16 s): a DELETE from another node still deletes it for every node,
    and the owner sends no more."""
    srv = http.server.HTTPServer(("127.0.0.1", 0), Refusing)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    Refusing.got = []
    try:
        a, b = start_fleet(fleet, webhooks="yes", webhook_allow_private="yes")
        b.stop()
        r = call(a, "POST", "/v1/jobs", body={
            "addresses": [f"bob+w{i}@[{mx.host}]" for i in range(3)],
            "webhook": f"http://127.0.0.1:{srv.server_port}/hook"})
        assert r.status == 202, r
        job = r.json["id"]
        wait_state(a, job)
        deadline = time.monotonic() + 5
        while not Refusing.got:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        b.start(timeout=15)
        assert get_job(b, job)["webhook"] == "pending"
        r = call(b, "DELETE", f"/v1/jobs/{job}")
        assert (r.status, r.json) == (200, {"id": job, "state": "deleted"}), r
        for d in (a, b):
            assert call(d, "GET", f"/v1/jobs/{job}").status == 404
        sent = len(Refusing.got)
        time.sleep(4.5)  # the second retry was due 4 s after the first
        assert len(Refusing.got) == sent, Refusing.got
    finally:
        srv.shutdown()
