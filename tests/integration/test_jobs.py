"""calloutd's bulk jobs (POST /v1/jobs), end to end: the daemon (fixture
`calloutd`) verifying lists against a fake SMTP server addressed by
literal.

What a client relies on: a job id at once; progress and counts; every
input line answered exactly once, in JSON lines or CSV, page by page;
clear errors (413, 400, 415, 404); cancel and delete; a job that goes on
after the daemon restarts; a signed webhook, retried; and mail
transactions answered while a job runs.  The contract: docs/http-api.md,
docs/bulk.md.
"""
import csv
import hashlib
import hmac
import http.server
import io
import json
import os
import threading
import time

import pytest

from test_http import request, HOST, PORT  # noqa: F401  (the same client)

# bob+ exists, slow after 1 s, tardy after 0.3 s, nobody else.
SCRIPT = """
on RCPT TO:<bob+*>
    send 250 2.1.5 Ok
on RCPT TO:<slow*>
    delay 1
    send 250 2.1.5 Ok
on RCPT TO:<tardy*>
    delay 0.3
    send 250 2.1.5 Ok
on RCPT
    send 550 5.1.1 <{*}>: Recipient address rejected: User unknown
"""

# Many addresses of one domain: lift the limits that protect real servers.
OPEN = {"engine": {"domain_sessions": "0", "domain_rate": "0", "host_rate": "0",
                   "host_sessions": "0"}}
SECRET = "s3cret-for-tests"


@pytest.fixture
def mx(fake_smtp):
    return fake_smtp(SCRIPT)


def sections(**http):
    out = {k: dict(v) for k, v in OPEN.items()}
    out["http"] = {k: str(v) for k, v in http.items()}
    return out


def post_job(body, ctype="application/json", query="", headers=None):
    if isinstance(body, (list, dict)):
        body = json.dumps(body)
    return request("POST", "/v1/jobs" + query, body=body,
                   headers={"Content-Type": ctype, **(headers or {})})


def wait_state(job, states=("done",), timeout=30, headers=None):
    deadline = time.time() + timeout
    while True:
        r = request("GET", f"/v1/jobs/{job}", headers=headers)
        assert r.status == 200, r
        if r.json["state"] in states:
            return r.json
        assert time.time() < deadline, r.json
        time.sleep(0.1)


def all_results(job, fmt="json", limit=1000):
    out, offset = [], 0
    while True:
        r = request("GET", f"/v1/jobs/{job}/results?offset={offset}&limit={limit}&format={fmt}")
        assert r.status == 200, r
        if fmt == "json":
            out += [json.loads(x) for x in r.body.decode().splitlines()]
        else:
            rows = list(csv.reader(io.StringIO(r.body.decode())))
            assert rows[0][-12:] == ["address", "verdict", "reason", "code", "enhanced",
                                     "text", "mx", "ip", "cached", "from_fact", "ms", "line"]
            out += rows[1:]
        if "x-next-offset" not in r.headers:
            return out
        offset = int(r.headers["x-next-offset"])


# ---- submitting and reading -------------------------------------------------


def test_json_job_progress_counts_and_paged_results(calloutd, mx):
    calloutd(sections=sections())
    addrs = [f"bob+{i}@[{mx.host}]" for i in range(12)] + \
            [f"nobody{i}@[{mx.host}]" for i in range(8)] + ["not an address"]
    r = post_job(addrs)
    assert r.status == 202, r
    job = r.json["id"]
    assert len(job) == 32 and int(job, 16) >= 0
    assert r.headers["location"] == f"/v1/jobs/{job}"
    assert r.json["total"] == 21 and r.json["state"] in ("queued", "running")
    st = wait_state(job)
    assert (st["total"], st["done"]) == (21, 21)
    assert st["counts"] == {"valid": 12, "invalid": 9, "unknown": 0, "tempfail": 0}
    assert isinstance(st["finished"], int) and st["finished"] >= st["created"]
    # JSON lines, 5 a page, in input order, each line once, /v1/verify's members + line
    res = all_results(job, limit=5)
    assert [x["line"] for x in res] == list(range(1, 22))
    assert [x["address"] for x in res] == addrs
    assert res[0]["verdict"] == "valid" and res[12]["reason"] == "mailbox_unknown"
    assert res[20]["reason"] == "syntax"
    assert list(res[0])[-1] == "line"
    # CSV: callout check's columns
    rows = all_results(job, fmt="csv", limit=7)
    assert len(rows) == 21
    assert rows[0][:4] == [addrs[0], "valid", "accepted", "250"] and rows[0][-1] == "1"
    assert rows[12][1:3] == ["invalid", "mailbox_unknown"]
    # Accept: text/csv chooses CSV too
    r = request("GET", f"/v1/jobs/{job}/results?limit=1", headers={"Accept": "text/csv"})
    assert r.headers["content-type"].startswith("text/csv") and r.headers["x-next-offset"] == "1"
    # the list of jobs
    r = request("GET", "/v1/jobs")
    assert [j["id"] for j in r.json["jobs"]] == [job]


def test_ndjson_csv_and_text_bodies(calloutd, mx):
    calloutd(sections=sections())
    nd = (f'"bob+a@[{mx.host}]"\n\n{{"address": "nobody@[{mx.host}]"}}\r\n'
          f'"bob+b@[{mx.host}]"\n')
    r = post_job(nd, "application/x-ndjson", query="?timeout=5s")
    assert r.status == 202, r
    res = all_results(wait_state(r.json["id"])["id"])
    assert [(x["line"], x["verdict"]) for x in res] == [(1, "valid"), (3, "invalid"),
                                                          (4, "valid")]
    text = ('name,"e mail",note\n"Smith, John",bob+c@[H],"two\nlines"\nJane,nobody2@[H],\n'
            .replace("H", mx.host))
    r = post_job(text, "text/csv", query="?column=e%20mail")
    assert r.status == 202, r
    res = all_results(wait_state(r.json["id"])["id"])
    assert [(x["line"], x["address"], x["verdict"]) for x in res] == \
        [(2, f"bob+c@[{mx.host}]", "valid"), (4, f"nobody2@[{mx.host}]", "invalid")]
    # without ?column: the usual names, here "email"
    r = post_job(f"id,email\n1,bob+d@[{mx.host}]\n", "text/csv")
    res = all_results(wait_state(r.json["id"])["id"])
    assert [(x["line"], x["verdict"]) for x in res] == [(2, "valid")]
    r = post_job(f"  bob+e@[{mx.host}]  \n\nnobody3@[{mx.host}]", "text/plain")
    res = all_results(wait_state(r.json["id"])["id"])
    assert [(x["line"], x["verdict"]) for x in res] == [(1, "valid"), (3, "invalid")]


def test_errors(calloutd, mx):
    calloutd(sections=sections(max_job_addresses=3, max_job_body=2048, max_jobs=2))
    a = f"bob+1@[{mx.host}]"
    r = post_job([a] * 4)
    assert (r.status, r.json["error"]) == (413, "too_many_addresses"), r
    assert "max_job_addresses" in r.json["message"]
    r = post_job("\n".join([a] * 200), "text/plain")
    assert (r.status, r.json["error"]) == (413, "body_too_large"), r
    assert "max_job_body" in r.json["message"]
    assert post_job("[1,").json["error"] == "invalid_json"
    r = post_job([a, 7])
    assert (r.status, r.json["message"]) == (400, "addresses[1] is not a string")
    r = post_job(f'"{a}"\n[1]\n', "application/x-ndjson")
    assert r.status == 400 and r.json["message"].startswith("line 2:"), r
    r = post_job('a,b\n"x', "text/csv")
    assert r.status == 400 and "line 2" in r.json["message"], r
    r = post_job("a,b\n1,2\n", "text/csv", query="?column=mail")
    assert r.status == 400 and "no column" in r.json["message"], r
    assert post_job([]).json["message"] == "the body holds no address"
    r = post_job({"address": a})
    assert r.status == 400 and '"addresses"' in r.json["message"], r
    assert post_job("", "text/plain").status == 400
    assert post_job("<x/>", "application/xml").status == 415
    r = post_job({"addresses": [a], "sender": "x@y"})
    assert (r.status, r.json["error"]) == (400, "invalid_option"), r
    r = post_job({"addresses": [a], "webhook": "http://127.0.0.1:9/"})
    assert r.status == 400 and "[http] webhooks" in r.json["message"], r
    assert request("GET", "/v1/jobs/" + "0" * 32).status == 404
    assert request("GET", "/v1/jobs/nope").status == 404
    assert request("PUT", "/v1/jobs").status == 405
    assert post_job([a]).status == 202 and post_job([a]).status == 202
    r = post_job([a])
    assert (r.status, r.json["error"]) == (503, "busy") and "max_jobs" in r.json["message"]
    job = request("GET", "/v1/jobs").json["jobs"][0]["id"]
    r = request("GET", f"/v1/jobs/{job}/results?limit=0")
    assert r.status == 400
    assert request("POST", f"/v1/jobs/{job}/results").status == 405


def test_token_needed(calloutd, mx):
    calloutd(sections=sections(token="tok123"))
    assert post_job([f"bob+1@[{mx.host}]"]).status == 401
    assert request("GET", "/v1/jobs").status == 401
    auth = {"Authorization": "Bearer tok123"}
    r = post_job([f"bob+1@[{mx.host}]"], headers=auth)
    assert r.status == 202
    wait_state(r.json["id"], headers=auth)


def test_cancel_then_delete(calloutd, mx):
    calloutd(sections=sections(job_inflight=2))
    r = post_job([f"slow{i}@[{mx.host}]" for i in range(40)])
    job = r.json["id"]
    deadline = time.time() + 10
    while request("GET", f"/v1/jobs/{job}").json["done"] < 2:
        assert time.time() < deadline
        time.sleep(0.1)
    r = request("DELETE", f"/v1/jobs/{job}")
    assert r.status == 200 and r.json["state"] == "cancelled", r
    done = r.json["done"]
    assert 0 < done < 40
    time.sleep(1.2)
    st = request("GET", f"/v1/jobs/{job}").json
    assert st["state"] == "cancelled" and st["done"] == done
    assert len(all_results(job)) == done
    r = request("DELETE", f"/v1/jobs/{job}")
    assert r.json == {"id": job, "state": "deleted"}
    assert request("GET", f"/v1/jobs/{job}").status == 404
    assert request("GET", "/v1/jobs").json == {"jobs": []}


def test_metrics(calloutd, mx):
    calloutd(sections=sections())
    job = post_job([f"bob+1@[{mx.host}]", f"nobody@[{mx.host}]"]).json["id"]
    wait_state(job)
    text = request("GET", "/metrics").body.decode()
    assert 'calloutd_jobs{state="done"} 1' in text
    assert 'calloutd_job_verifications_total{verdict="valid"} 1' in text
    assert 'calloutd_job_verifications_total{verdict="invalid"} 1' in text
    assert 'calloutd_http_responses_total{code="202"} 1' in text


# ---- restart, webhook, priority ----------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_job_survives_a_restart(calloutd, mx, how):
    """SIGTERM cancels what is in flight and writes what is done; SIGKILL
    loses what was not written yet (200 ms at most): either way every
    address is answered once, by one daemon or the other."""
    d = calloutd(sections=sections(job_inflight=4))
    addrs = [f"tardy{i}@[{mx.host}]" for i in range(40)]
    job = post_job(addrs).json["id"]
    deadline = time.time() + 20
    while request("GET", f"/v1/jobs/{job}").json["done"] < 8:
        assert time.time() < deadline
        time.sleep(0.1)
    if how == "sigterm":
        assert d.stop() == 0
    else:
        d.kill()
    d2 = calloutd(sections=sections(job_inflight=4))
    st0 = request("GET", f"/v1/jobs/{job}").json
    assert (8 if how == "sigterm" else 0) <= st0["done"] < 40, st0
    assert "resumed at" in d2.log_text()
    st = wait_state(job, timeout=30)
    assert (st["done"], st["counts"]["valid"]) == (40, 40)
    res = all_results(job, limit=7)
    assert [x["line"] for x in res] == list(range(1, 41))
    assert [x["address"] for x in res] == addrs


class Receiver(http.server.BaseHTTPRequestHandler):
    got = []
    fail_first = 1

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Receiver.got.append((dict(self.headers), body))
        code = 500 if len(Receiver.got) <= Receiver.fail_first else 200
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *a):
        pass


@pytest.mark.slow
def test_webhook_signed_and_retried(calloutd, mx):
    srv = http.server.HTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    Receiver.got = []
    try:
        calloutd(sections=sections(webhooks="yes", webhook_allow_private="yes",
                                   webhook_secret=SECRET))
        url = f"http://127.0.0.1:{srv.server_port}/hook?x=1"
        r = post_job({"addresses": [f"bob+1@[{mx.host}]", f"nobody@[{mx.host}]"],
                      "webhook": url})
        assert r.status == 202, r
        job = r.json["id"]
        assert r.json["webhook"] == "pending"
        deadline = time.time() + 15
        while len(Receiver.got) < 2:
            assert time.time() < deadline, Receiver.got
            time.sleep(0.1)
        for headers, body in Receiver.got:
            want = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
            assert headers["X-Callout-Signature"] == want
            assert headers["X-Callout-Job"] == job
            summary = json.loads(body)
            assert summary["id"] == job and summary["state"] == "done"
            assert summary["counts"]["valid"] == 1 and summary["counts"]["invalid"] == 1
        deadline = time.time() + 5
        while request("GET", f"/v1/jobs/{job}").json["webhook"] != "delivered":
            assert time.time() < deadline
            time.sleep(0.1)
    finally:
        srv.shutdown()


def test_webhook_host_name_resolved_when_sent(calloutd, mx, dns_server):
    """A host name is not resolved while the POST is answered (a blocking
    look-up would hold the mail); it is resolved through the engine's DNS
    servers when the webhook goes, and its address checked then: ns.test
    is 127.0.0.1, loopback, followed only with webhook_allow_private."""
    srv = http.server.HTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    Receiver.got = []
    Receiver.fail_first = 0
    try:
        url = f"http://ns.test:{srv.server_port}/hook"
        d = calloutd(sections=sections(webhooks="yes", webhook_secret=SECRET))
        r = post_job({"addresses": [f"bob+1@[{mx.host}]"], "webhook": url})
        assert r.status == 202, r
        job = r.json["id"]
        deadline = time.time() + 10
        while request("GET", f"/v1/jobs/{job}").json["webhook"] != "failed":
            assert time.time() < deadline, request("GET", f"/v1/jobs/{job}").json
            time.sleep(0.1)
        assert Receiver.got == []
        assert "resolves to private or loopback addresses only" in d.log_text()
        d.stop()

        calloutd(sections=sections(webhooks="yes", webhook_allow_private="yes",
                                   webhook_secret=SECRET))
        r = post_job({"addresses": [f"bob+1@[{mx.host}]"], "webhook": url})
        assert r.status == 202, r
        deadline = time.time() + 10
        while request("GET", f"/v1/jobs/{r.json['id']}").json["webhook"] != "delivered":
            assert time.time() < deadline
            time.sleep(0.1)
        assert len(Receiver.got) == 1
        assert Receiver.got[0][0]["Host"] == f"ns.test:{srv.server_port}"
        assert json.loads(Receiver.got[0][1])["id"] == r.json["id"]
    finally:
        Receiver.fail_first = 1
        srv.shutdown()


def test_webhook_private_target_refused(calloutd, mx):
    calloutd(sections=sections(webhooks="yes"))
    r = post_job({"addresses": [f"bob+1@[{mx.host}]"], "webhook": "http://127.0.0.1:9/"})
    assert r.status == 400 and "private or loopback" in r.json["message"], r
    r = post_job({"addresses": [f"bob+1@[{mx.host}]"], "webhook": "ftp://example.org/"})
    assert r.status == 400 and "http://HOST" in r.json["message"], r
    r = post_job({"addresses": [f"bob+1@[{mx.host}]"], "webhook": "http://a%20b/"})
    assert r.status == 400 and "webhook" in r.json["message"], r


def test_job_waits_while_mail_holds_half_of_max_inflight(calloutd, mx):
    """With max_inflight 2, one verification of a front end is half: the
    job starts nothing until it is answered, then runs (nothing else
    wakes it: it looks again every 100 ms)."""
    calloutd(sections={**sections(), "daemon": {"max_inflight": "2"}})
    out = {}
    t = threading.Thread(target=lambda: out.update(r=request(
        "GET", f"/v1/verify?address=slow@[{mx.host}]")))
    t.start()
    time.sleep(0.3)
    job = post_job([f"bob+{i}@[{mx.host}]" for i in range(3)]).json["id"]
    time.sleep(0.4)
    st = request("GET", f"/v1/jobs/{job}").json
    assert (st["state"], st["done"]) == ("queued", 0), st
    t.join()
    assert out["r"].json["verdict"] == "valid"
    assert wait_state(job, timeout=10)["done"] == 3


def test_policy_answered_while_a_job_runs(calloutd, mx, fake_smtp):
    # the mail's senders are of another domain than the job's (a job's
    # addresses share its domains' sessions, as any caller's would)
    other = fake_smtp(SCRIPT)
    d = calloutd(sections=sections(job_inflight=20))
    job = post_job([f"tardy{i}@[{mx.host}]" for i in range(300)]).json["id"]
    time.sleep(0.5)
    times = []
    for i in range(10):
        t = time.time()
        action = d.policy({"sender": f"bob+p{i}@[{other.host}]", "client_address": "192.0.2.9"})
        times.append(time.time() - t)
        assert action.startswith("action="), action
    assert request("GET", f"/v1/jobs/{job}").json["state"] == "running"
    # each a fresh callout of its own (no queue behind the job's)
    assert max(times) < 1.0, times
    request("DELETE", f"/v1/jobs/{job}")


@pytest.mark.slow
def test_finished_job_expires(calloutd, mx):
    calloutd(sections=sections(job_ttl="1s"))
    job = post_job([f"bob+1@[{mx.host}]"]).json["id"]
    wait_state(job)
    deadline = time.time() + 15  # expiry is looked at every 5 s
    while request("GET", f"/v1/jobs/{job}").status != 404:
        assert time.time() < deadline
        time.sleep(0.2)
    assert request("GET", "/v1/jobs").json == {"jobs": []}


def test_store_that_cannot_be_opened(calloutd, mx):
    """The daemon still serves; /v1/jobs says why it cannot."""
    d = calloutd(sections=sections())
    d.stop()
    os.rename(os.path.join(d.state_dir, "jobs.lmdb"), os.path.join(d.state_dir, "old"))
    os.mkdir(os.path.join(d.state_dir, "jobs.lmdb"))  # not an LMDB file
    d = calloutd(sections=sections())
    r = post_job([f"bob+1@[{mx.host}]"])
    assert (r.status, r.json["error"]) == (503, "unavailable"), r
    assert "jobs store" in d.log_text()
    assert request("GET", f"/v1/verify?address=bob%2B1@[{mx.host}]").json["verdict"] == "valid"


@pytest.mark.slow
def test_a_job_ends_when_its_greylist_rechecks_do(calloutd, fake_smtp):
    """Greylisted in the first session, accepted later: the job's results
    are the re-checks' answers (valid), not the greylisting's tempfail;
    meanwhile the job says how many wait, and it is not done."""
    from test_greylist import GREY_ONCE
    srv = fake_smtp(GREY_ONCE)
    engine = {**OPEN["engine"], "greylist_recheck": "2s,4s", "session_idle": "0",
              "catch_all": "no"}
    calloutd(sections={"engine": engine})
    addrs = [f"alice@[{srv.host}]", f"bob@[{srv.host}]"]
    r = post_job(addrs)
    assert r.status == 202, r
    job = r.json["id"]
    deadline, seen = time.time() + 10, None
    while time.time() < deadline and not seen:
        state = request("GET", f"/v1/jobs/{job}").json
        seen = state.get("pending_recheck")
        time.sleep(0.05)
    assert seen == 2 and state["state"] == "running", state
    final = wait_state(job, timeout=60)
    assert final["counts"]["valid"] == 2 and "pending_recheck" not in final, final
    assert sorted(x["verdict"] for x in all_results(job)) == ["valid", "valid"]
