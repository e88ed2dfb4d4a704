"""calloutd's HTTP API and metrics, end to end: the daemon (fixture
`calloutd`) verifying against fake SMTP servers addressed by literal.

What a client relies on: the result objects of `callout check --json`, one
or a list in input order; JSON errors with the right status for every bad
request; the bearer token; keep-alive; a client that hangs up cancels its
verification without harm; a stopping daemon answers what it has.  And
what a scraper relies on: valid Prometheus text whose counters move as
verifications happen.  The contract: docs/http-api.md.
"""
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time

import pytest

import conftest
import testnet

HOST = testnet.CALLOUTD_IP
PORT = testnet.CALLOUTD_HTTP_PORT
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

# alice exists, slow exists after 3 s, tardy after 0.6 s, nobody else.
SCRIPT = """
on RCPT TO:<alice@*>
    send 250 2.1.5 Ok
on RCPT TO:<bob+*>
    send 250 2.1.5 Ok
on RCPT TO:<slow@*>
    delay 3
    send 250 2.1.5 Ok
on RCPT TO:<tardy@*>
    delay 0.6
    send 250 2.1.5 Ok
on RCPT
    send 550 5.1.1 <{*}>: Recipient address rejected: User unknown
"""

# The members of `callout check --json` for an answer not from the cache.
CLI_MEMBERS = ["address", "verdict", "reason", "stage", "code", "enhanced", "text", "mx", "ip",
               "ms", "catch_all", "tls", "cached", "from_fact"]


class Response:
    def __init__(self, resp):
        self.status = resp.status
        self.headers = {k.lower(): v for k, v in resp.getheaders()}
        self.body = resp.read()

    @property
    def json(self):
        assert self.headers.get("content-type") == "application/json", self.headers
        return json.loads(self.body)

    def __repr__(self):
        return f"<{self.status} {self.headers} {self.body[:300]!r}>"


def request(method, path, body=None, headers=None, conn=None, timeout=30):
    """One request (on conn, or a new connection); returns a Response."""
    own = conn is None
    if own:
        conn = http.client.HTTPConnection(HOST, PORT, timeout=timeout)
    try:
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
            headers = {"Content-Type": "application/json", **(headers or {})}
        conn.request(method, path, body=body, headers=headers or {})
        return Response(conn.getresponse())
    finally:
        if own:
            conn.close()


def verify_get(address, **kw):
    from urllib.parse import quote
    return request("GET", "/v1/verify?address=" + quote(address, safe="@"), **kw)


def verify_post(body, **kw):
    return request("POST", "/v1/verify", body=body, **kw)


def curl(*args, timeout=30):
    return subprocess.run(["curl", "-s", "-S", *args], capture_output=True, text=True,
                          timeout=timeout)


# ---- Prometheus text format, strictly ------------------------------------

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
_VALUE = r"-?(?:[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?|Inf)|\+Inf|NaN"
SAMPLE_RE = re.compile(rf"^({_NAME})(?:\{{((?:{_LABEL})(?:,{_LABEL})*)?\}})? ({_VALUE})$")
HELP_RE = re.compile(rf"^# HELP ({_NAME}) (\S.*)$")
TYPE_RE = re.compile(rf"^# TYPE ({_NAME}) (counter|gauge|histogram|summary|untyped)$")
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')


class Metrics:
    """Parsed exposition: every rule of text format 0.0.4 that a scraper
    enforces, plus our own (names prefixed calloutd_ or process_, HELP and TYPE for
    every family, counters named *_total)."""

    def __init__(self, text):
        assert text.endswith("\n"), "the exposition ends with a newline"
        self.samples = {}   # (name, ((label, value), ...)) -> float
        self.types = {}
        helps = set()
        family = None       # the family whose samples come now
        done = set()        # families whose samples are over
        for n, line in enumerate(text.split("\n")[:-1], 1):
            where = f"line {n}: {line!r}"
            assert line, f"empty {where}"
            if line.startswith("#"):
                m = HELP_RE.match(line) or TYPE_RE.match(line)
                assert m, f"bad comment {where}"
                name = m.group(1)
                # process_*: the standard families of Prometheus clients
                assert name.startswith(("calloutd_", "process_")), where
                assert name not in done and name != family or line.startswith("# TYPE"), where
                if line.startswith("# HELP"):
                    assert name not in helps, f"HELP twice {where}"
                    helps.add(name)
                else:
                    assert name in helps, f"TYPE before HELP {where}"
                    assert name not in self.types, f"TYPE twice {where}"
                    self.types[name] = m.group(2)
                if family and family != name:
                    done.add(family)
                family = name
                continue
            m = SAMPLE_RE.match(line)
            assert m, f"bad sample {where}"
            name, labels, value = m.groups()
            base = name
            if name not in self.types:
                base = re.sub(r"_(bucket|sum|count)$", "", name)
                assert self.types.get(base) == "histogram", f"sample of no family {where}"
            assert base == family and base not in done, f"family interleaved {where}"
            if self.types[base] == "counter":
                assert name.endswith("_total"), where
            pairs = tuple(LABEL_RE.findall(labels or ""))
            assert len({k for k, _ in pairs}) == len(pairs), f"label twice {where}"
            key = (name, pairs)
            assert key not in self.samples, f"series twice {where}"
            v = float(value.replace("Inf", "inf"))
            if self.types[base] in ("counter", "histogram"):
                assert v >= 0, where
            self.samples[key] = v
        for name, t in self.types.items():
            if t == "histogram":
                self._check_histogram(name)

    def _check_histogram(self, name):
        series = {}
        for (n, pairs), v in self.samples.items():
            if n == name + "_bucket":
                rest = tuple(p for p in pairs if p[0] != "le")
                le = dict(pairs)["le"]
                series.setdefault(rest, []).append((float(le.replace("+Inf", "inf")), v))
        assert series, f"{name}: no buckets"
        for rest, buckets in series.items():
            les = [le for le, _ in buckets]
            assert les == sorted(les) and les[-1] == float("inf"), f"{name}{rest}: le order"
            counts = [c for _, c in buckets]
            assert counts == sorted(counts), f"{name}{rest}: buckets not cumulative"
            assert self.samples[(name + "_count", rest)] == counts[-1], f"{name}{rest}: count"
            assert (name + "_sum", rest) in self.samples, f"{name}{rest}: no sum"

    def get(self, name, **labels):
        """The value of the series with exactly these labels; 0 when absent."""
        want = set(labels.items())
        for (n, pairs), v in self.samples.items():
            if n == name and set(pairs) == want:
                return v
        return 0.0

    def bucket(self, name, le, **labels):
        return self.get(name + "_bucket", le=le, **labels)


def metrics(headers=None):
    r = request("GET", "/metrics", headers=headers)
    assert r.status == 200, r
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4"), r.headers
    return Metrics(r.body.decode())


def wait_for(pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


BUCKETS = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "30",
           "+Inf"]


def assert_in_bucket(before, after, ms, **labels):
    """One observation of ms more in after: counted from its bucket up,
    not below (the buckets are cumulative)."""
    name = "calloutd_verification_duration_seconds"
    for le in BUCKETS:
        grew = after.bucket(name, le, **labels) - before.bucket(name, le, **labels)
        inside = ms / 1000 <= float(le.replace("+Inf", "inf"))
        assert grew == (1 if inside else 0), (ms, le, grew)
    assert after.get(name + "_count", **labels) == before.get(name + "_count", **labels) + 1
    assert after.get(name + "_sum", **labels) == \
        pytest.approx(before.get(name + "_sum", **labels) + ms / 1000, abs=1e-6)


@pytest.fixture
def mx(fake_smtp):
    return fake_smtp(SCRIPT)


# ---- /v1/verify ------------------------------------------------------------


def test_get_answers_like_callout_check(calloutd, mx):
    calloutd()
    r = verify_get(f"alice@[{mx.host}]")
    assert r.status == 200, r
    res = r.json
    assert list(res) == CLI_MEMBERS
    assert res["address"] == f"alice@[{mx.host}]"
    assert (res["verdict"], res["reason"], res["stage"], res["code"]) == \
        ("valid", "accepted", "rcpt", 250)
    assert (res["enhanced"], res["ip"], res["cached"]) == ("2.1.5", mx.host, False)
    # The same members as the CLI's, for another address (a probe too).
    run = conftest.run_callout("--port", str(testnet.SMTP_PORT), "--helo", "verifier.test",
                               f"nobody@[{mx.host}]")
    cli = run.result
    api = verify_get(f"nobody@[{mx.host}]").json
    # the CLI adds one member of its own at the end: the input line
    assert list(cli)[-1] == "line" and cli["line"] == 1
    assert list(api) == list(cli)[:-1]
    for k in ("address", "verdict", "reason", "stage", "code", "enhanced", "text", "ip"):
        assert api[k] == cli[k], k


def test_get_keeps_plus_and_decodes_percent(calloutd, mx):
    calloutd()
    # "+" is a plus sign, not a space; %40 is "@".
    r = request("GET", f"/v1/verify?address=bob+news%40[{mx.host}]")
    assert r.json["address"] == f"bob+news@[{mx.host}]"
    assert r.json["verdict"] == "valid"
    # Other parameters are ignored.
    r = request("GET", f"/v1/verify?x=1&address=alice@[{mx.host}]&y")
    assert r.json["verdict"] == "valid"


def test_malformed_address_is_a_result_not_an_error(calloutd):
    calloutd()
    for addr in ["not an address", "", "a@@b"]:
        r = verify_get(addr)
        assert r.status == 200, r
        assert (r.json["verdict"], r.json["reason"]) == ("invalid", "syntax"), addr
        assert r.json["address"] == addr
    # well-formed but too long to ask: our limit, not an invalid address
    addr = "x" * 300 + "@example.org"
    r = verify_get(addr)
    assert r.status == 200, r
    assert (r.json["verdict"], r.json["reason"]) == ("tempfail", "local_limit")
    assert r.json["address"] == addr
    # Bytes that are not UTF-8 come back as U+FFFD, in valid JSON.
    r = request("GET", "/v1/verify?address=%ff%fe@example.org")
    assert r.json["address"] == "\ufffd\ufffd@example.org"


def test_post_one_and_a_list_in_input_order(calloutd, mx):
    calloutd()
    r = verify_post({"address": f"alice@[{mx.host}]"})
    assert r.status == 200, r
    assert list(r.json)[:1] == ["address"] and r.json["verdict"] == "valid"

    addrs = [f"tardy@[{mx.host}]", f"nobody@[{mx.host}]", "not an address",
             f"alice@[{mx.host}]", f"tardy@[{mx.host}]"]
    t0 = time.monotonic()
    r = verify_post({"addresses": addrs})
    took = time.monotonic() - t0
    assert r.status == 200, r
    results = r.json["results"]
    assert list(r.json) == ["results"]
    assert [x["address"] for x in results] == addrs
    assert [(x["verdict"], x["reason"]) for x in results] == [
        ("valid", "accepted"), ("invalid", "mailbox_unknown"), ("invalid", "syntax"),
        ("valid", "accepted"), ("valid", "accepted")]
    # run at the same time: two 0.6 s probes do not take 1.2 s
    assert took < 1.15, took

    r = verify_post({"addresses": []})
    assert (r.status, r.json) == (200, {"results": []})


def test_post_content_type_is_checked_leniently(calloutd, mx):
    calloutd()
    body = json.dumps({"address": f"alice@[{mx.host}]"})
    for ctype in [None, "application/json", "application/json; charset=utf-8", "text/plain",
                  "application/x-www-form-urlencoded", "application/vnd.calloutd+json"]:
        r = verify_post(body, headers={"Content-Type": ctype} if ctype else {})
        assert r.status == 200, (ctype, r)
    # what curl -d sends
    p = curl("-d", body, f"http://{HOST}:{PORT}/v1/verify")
    assert json.loads(p.stdout)["verdict"] == "valid", p
    for ctype in ["application/xml", "multipart/form-data; boundary=x"]:
        r = verify_post(body, headers={"Content-Type": ctype})
        assert r.status == 415 and r.json["error"] == "unsupported_media_type", r


@pytest.mark.parametrize("body,error", [
    ("{bad", "invalid_json"),
    ("", "invalid_request"),
    ('["a@b.example"]', "invalid_request"),
    ('"a@b.example"', "invalid_json"),
    ("{}", "invalid_request"),
    ('{"address": 5}', "invalid_request"),
    ('{"address": null}', "invalid_request"),
    ('{"address": "a@b.example", "addresses": []}', "invalid_request"),
    ('{"addresses": "a@b.example"}', "invalid_request"),
    ('{"addresses": ["a@b.example", 7]}', "invalid_request"),
    ('{"address": "a@b.example", "address": "c@d.example"}', "invalid_json"),
    ('{"address": "a\\u0000b@c.example"}', "invalid_json"),
    ('{"addresses": ["a@b.example", "b@b.example", "c@b.example", "d@b.example"]}',
     "too_many_addresses"),
])
def test_post_bad_requests(calloutd, body, error):
    calloutd(sections={"http": {"max_addresses": "3"}})
    r = verify_post(body)
    assert r.status == 400, r
    assert r.json["error"] == error
    assert isinstance(r.json["message"], str) and r.json["message"]
    assert list(r.json) == ["error", "message"]


@pytest.mark.slow
def test_post_options_are_honoured_or_refused_by_name(calloutd, mx):
    """A request's own options: "timeout" shortens its verification (never
    lengthens it beyond calloutd's); any other field is refused with 400
    naming it, never accepted and ignored."""
    calloutd(sections={"engine": {"timeout": "20s"}})
    addr = f"slow@[{mx.host}]"  # the server answers its RCPT after 3 s
    t0 = time.monotonic()
    r = verify_post(json.dumps({"address": addr, "timeout": "1s"}))
    took = time.monotonic() - t0
    assert r.status == 200, r
    assert (r.json["verdict"], r.json["reason"]) == ("tempfail", "timeout"), r.json
    assert took < 2.5, took
    r = verify_post(json.dumps({"addresses": [addr], "timeout": 10}))  # a number: seconds
    assert r.status == 200 and r.json["results"][0]["verdict"] == "valid", r.json
    for body, words in (({"timeout": "1m"}, ['"timeout": at most 20s', "[engine] timeout"]),
                        ({"timeout": "soon"}, ['"timeout": expected a duration']),
                        ({"timeout": [1]}, ['"timeout": expected a duration']),
                        ({"sender": "probe@example.org"},
                         ['"sender" is not open to requests here', "[http] request_options"]),
                        ({"port": 2525}, ['"port" is not open to requests here']),
                        ({"allow_private": True},
                         ['"allow_private" cannot be set per request', "[engine] allow_private"]),
                        ({"proxy": "socks5://127.0.0.1:1080"},
                         ['"proxy": expected the name of a [proxy NAME]', "(none)"]),
                        ({"bogus": 1}, ['unknown field "bogus"'])):
        r = verify_post(json.dumps({"address": addr, **body}))
        assert r.status == 400, (body, r)
        assert r.json["error"] == "invalid_option", r.json
        for w in words:
            assert w in r.json["message"], (w, r.json)


def test_get_bad_requests(calloutd):
    calloutd()
    for query, msg in [("", "missing"), ("?adress=a@b.example", "missing"),
                       ("?address=a@b.example&address=c@d.example", "more than once"),
                       ("?address=a%00b@c.example", "NUL")]:
        r = request("GET", "/v1/verify" + query)
        assert r.status == 400, r
        assert r.json["error"] == "invalid_request" and msg in r.json["message"]


def test_three_addresses_is_not_too_many_with_max_3(calloutd):
    calloutd(sections={"http": {"max_addresses": "3"}})
    r = verify_post({"addresses": ["a", "b", "c"]})
    assert r.status == 200 and len(r.json["results"]) == 3


def test_busy_when_max_inflight_is_reached(calloutd, mx):
    calloutd(sections={"daemon": {"max_inflight": "2"}})
    out = {}
    t = threading.Thread(target=lambda: out.update(r=verify_get(f"slow@[{mx.host}]")))
    t.start()
    assert wait_for(lambda: metrics().get("calloutd_verifications_in_flight") == 1)
    # room for one more, not for two
    r = verify_post({"addresses": [f"alice@[{mx.host}]", f"nobody@[{mx.host}]"]})
    assert r.status == 503, r
    assert r.json["error"] == "busy" and r.headers["retry-after"] == "1"
    assert verify_get(f"alice@[{mx.host}]").json["verdict"] == "valid"
    t.join(10)
    assert out["r"].json["verdict"] == "valid"
    r = verify_post({"addresses": [f"alice@[{mx.host}]", f"nobody@[{mx.host}]"]})
    assert r.status == 200, r


def test_metrics_show_the_limits_at_work(calloutd, mx):
    """One session at a time to the domain: while slow@ holds it, the next
    address waits, and /metrics says so."""
    calloutd(sections={"engine": {"domain_sessions": "1", "session_rcpts": "1"}})
    out = {}
    threads = [threading.Thread(target=lambda k=k, a=a: out.update({k: verify_get(a)}))
               for k, a in enumerate([f"slow@[{mx.host}]", f"alice@[{mx.host}]"])]
    threads[0].start()
    assert wait_for(lambda: metrics().get("calloutd_engine_sessions") == 1)
    threads[1].start()
    assert wait_for(lambda: metrics().get("calloutd_engine_waiting") == 1), metrics().samples
    m = metrics()
    assert m.get("calloutd_engine_probing") == 2
    assert m.get("calloutd_engine_sessions") == 1
    assert m.get("calloutd_engine_hosts_backing_off") == 0
    for t in threads:
        t.join(15)
    assert [out[k].json["verdict"] for k in (0, 1)] == ["valid", "valid"]
    assert metrics().get("calloutd_engine_waiting") == 0


def test_body_too_large(calloutd):
    calloutd()
    big = json.dumps({"address": "x" * (64 * 1024)})
    r = verify_post(big)
    assert r.status == 413, r
    assert r.json["error"] == "body_too_large"
    # just under the limit is read (and the address is too long to ask)
    body = json.dumps({"address": "x" * (64 * 1024 - 20)})
    assert len(body) <= 64 * 1024
    r = verify_post(body)
    assert r.status == 200 and r.json["reason"] == "local_limit", r
    # far over it: the HTTP layer refuses, and the daemon lives on
    r = verify_post("x" * (2 * 1024 * 1024))
    assert r.status == 413
    assert request("GET", "/healthz").status == 200


def test_not_found_and_method_not_allowed(calloutd):
    calloutd()
    for path in ["/", "/v1", "/v1/", "/v1/verify/", "/v2/verify", "/v1/nothing", "/metricsx"]:
        r = request("GET", path)
        assert r.status == 404, (path, r)
        assert r.json["error"] == "not_found"
    for method, path, allow in [("DELETE", "/v1/verify", "GET, POST"),
                                ("PUT", "/v1/verify", "GET, POST"),
                                ("HEAD", "/v1/verify", "GET, POST"),
                                ("POST", "/healthz", "GET, HEAD"),
                                ("OPTIONS", "/metrics", "GET, HEAD"),
                                ("PATCH", "/metrics", "GET, HEAD")]:
        r = request(method, path)
        assert r.status == 405, (method, path, r)
        assert r.headers["allow"] == allow
        if method != "HEAD":
            assert r.json["error"] == "method_not_allowed"
        else:
            assert r.body == b""


# ---- the token ----------------------------------------------------------------

TOKEN = "t0k3n-2f1c0e6b9d7a4c38"


def test_token(calloutd, mx):
    calloutd(sections={"http": {"token": TOKEN}})
    path = f"/v1/verify?address=alice@[{mx.host}]"
    good = {"Authorization": f"Bearer {TOKEN}"}
    for headers, invalid in [({}, False),
                             ({"Authorization": "Bearer wrong"}, True),
                             ({"Authorization": f"Bearer {TOKEN}x"}, True),
                             ({"Authorization": f"Bearer {TOKEN[:-1]}"}, True),
                             ({"Authorization": f"Basic {TOKEN}"}, False),
                             ({"Authorization": f"Bearer {TOKEN} {TOKEN}"}, True),
                             ({"Authorization": "Bearer"}, False)]:
        for method, p, body in [("GET", path, None), ("POST", "/v1/verify", {"address": "a"}),
                                ("GET", "/v1/nothing", None), ("GET", "/metrics", None)]:
            r = request(method, p, body=body, headers=headers)
            assert r.status == 401, (headers, p, r)
            assert r.json["error"] == "unauthorized"
            challenge = r.headers["www-authenticate"]
            assert challenge.startswith("Bearer realm=\"calloutd\"")
            assert ('error="invalid_token"' in challenge) == invalid, (headers, challenge)
    r = request("GET", path, headers=good)
    assert r.status == 200 and r.json["verdict"] == "valid"
    # the scheme name is case-insensitive
    r = request("GET", path, headers={"Authorization": f"bearer {TOKEN}"})
    assert r.status == 200
    r = verify_post({"addresses": [f"alice@[{mx.host}]"]}, headers=good)
    assert r.status == 200 and r.json["results"][0]["verdict"] == "valid"
    # with the token: a 404 is a 404
    assert request("GET", "/v1/nothing", headers=good).status == 404
    assert metrics(headers=good).get("calloutd_verifications_in_flight") == 0
    # /healthz is always open
    r = request("GET", "/healthz")
    assert (r.status, r.json) == (200, {"status": "ok"})


# ---- /healthz ---------------------------------------------------------------------


def test_healthz(calloutd):
    calloutd()
    r = request("GET", "/healthz")
    assert (r.status, r.json) == (200, {"status": "ok"})
    r = request("HEAD", "/healthz")
    assert r.status == 200 and r.body == b""
    assert int(r.headers["content-length"]) == len(b'{"status":"ok"}\n')


# ---- connections ---------------------------------------------------------------------


def test_keep_alive(calloutd, mx):
    calloutd()
    base = f"http://{HOST}:{PORT}"
    # one -o per URL, in order
    p = curl("-g", "-w", "%{num_connects} %{http_code}\n", *["-o", "/dev/null"] * 3,
             f"{base}/v1/verify?address=alice@[{mx.host}]", f"{base}/healthz",
             f"{base}/metrics")
    assert p.returncode == 0, p.stderr
    assert p.stdout.split("\n") == ["1 200", "0 200", "0 200", ""], p.stdout
    # also after an error answer
    conn = http.client.HTTPConnection(HOST, PORT, timeout=10)
    assert request("GET", "/nothing", conn=conn).status == 404
    assert verify_post("{bad", conn=conn).status == 400
    sock = conn.sock
    assert request("GET", "/healthz", conn=conn).status == 200
    assert conn.sock is sock
    conn.close()


@pytest.mark.slow
def test_client_disconnect_cancels_the_verification(calloutd, mx):
    d = calloutd()
    before = metrics()
    # curl gives up after 1 s; the server answers after 3 s
    t0 = time.monotonic()
    p = curl("-m", "1", "-g", f"http://{HOST}:{PORT}/v1/verify?address=slow@[{mx.host}]")
    assert p.returncode == 28, p          # curl: operation timed out
    assert wait_for(lambda: "client went away" in d.log_text(), 2), d.log_text()
    m = metrics()
    assert time.monotonic() - t0 < 2.5    # before the server even answered
    assert m.get("calloutd_verifications_in_flight") == 0
    # cancelled: no result was counted
    assert m.get("calloutd_verifications_total", frontend="http", verdict="valid",
                 reason="accepted") == before.get("calloutd_verifications_total",
                                                  frontend="http", verdict="valid",
                                                  reason="accepted")

    # the same, from a raw socket that closes at once, with a second request
    # pipelined behind the first
    s = socket.create_connection((HOST, PORT))
    req = f"GET /v1/verify?address=slow@[{mx.host}] HTTP/1.1\r\nHost: x\r\n\r\n"
    s.sendall((req + "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").encode())
    time.sleep(0.3)
    s.close()
    # a half-close counts as a hang-up too
    s = socket.create_connection((HOST, PORT))
    s.sendall(req.encode())
    time.sleep(0.3)
    s.shutdown(socket.SHUT_WR)
    s.settimeout(5)
    assert s.recv(100) == b""             # dropped, no answer
    s.close()
    assert wait_for(lambda: d.log_text().count("client went away") >= 3, 2), d.log_text()
    assert metrics().get("calloutd_verifications_in_flight") == 0

    # the daemon is fine, and the probe finished into the cache
    mx.wait_idle(timeout=10)
    r = verify_get(f"slow@[{mx.host}]")
    assert r.status == 200 and r.json["verdict"] == "valid" and r.json["cached"], r
    assert d.proc.poll() is None


def test_stop_answers_requests_in_flight(calloutd, mx):
    d = calloutd()
    keep = http.client.HTTPConnection(HOST, PORT, timeout=10)
    assert request("GET", "/healthz", conn=keep).status == 200
    out = {}

    def slow():
        out["r"] = verify_get(f"slow@[{mx.host}]")

    t = threading.Thread(target=slow)
    t.start()
    assert wait_for(lambda: metrics().get("calloutd_verifications_in_flight") == 1)
    d.proc.send_signal(signal.SIGTERM)
    assert d.wait_log("stopping")
    time.sleep(0.2)
    # an open connection: told, and let go
    r = request("GET", "/healthz", conn=keep)
    assert (r.status, r.json) == (503, {"status": "stopping"})
    assert r.headers.get("connection") == "close"
    keep.close()
    # no new connections
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((HOST, PORT), timeout=2)
    t.join(10)
    r = out["r"]
    assert r.status == 200 and r.json["verdict"] == "valid", r
    assert d.stop() == 0


def test_stop_refuses_new_requests_on_open_connections(calloutd, mx):
    d = calloutd()
    keep = http.client.HTTPConnection(HOST, PORT, timeout=10)
    assert request("GET", "/healthz", conn=keep).status == 200
    t = threading.Thread(target=lambda: verify_get(f"slow@[{mx.host}]"))
    t.start()
    assert wait_for(lambda: metrics().get("calloutd_verifications_in_flight") == 1)
    d.proc.send_signal(signal.SIGTERM)
    assert d.wait_log("stopping")
    time.sleep(0.2)
    r = verify_get(f"alice@[{mx.host}]", conn=keep)
    assert r.status == 503 and r.json["error"] == "stopping", r
    keep.close()
    t.join(10)
    assert d.stop() == 0


# ---- /metrics ---------------------------------------------------------------------------


def test_metrics_format(calloutd, mx):
    calloutd()
    verify_get(f"alice@[{mx.host}]")
    m = metrics()
    types = m.types
    assert types["calloutd_verifications_total"] == "counter"
    assert types["calloutd_cache_lookups_total"] == "counter"
    assert types["calloutd_decisions_total"] == "counter"
    assert types["calloutd_dns_errors_total"] == "counter"
    assert types["calloutd_smtp_errors_total"] == "counter"
    assert types["calloutd_verification_duration_seconds"] == "histogram"
    assert types["calloutd_verifications_in_flight"] == "gauge"
    assert types["calloutd_start_time_seconds"] == "gauge"
    start = m.get("calloutd_start_time_seconds")
    assert time.time() - 120 < start <= time.time()
    les = sorted({dict(p)["le"] for (n, p) in m.samples
                  if n == "calloutd_verification_duration_seconds_bucket"},
                 key=lambda s: float(s.replace("+Inf", "inf")))
    assert les == BUCKETS
    for fe in ("policy", "milter"):
        for action in ("pass", "reject", "defer"):
            for check in ("verified", "skipped"):
                assert ("calloutd_decisions_total",
                        (("frontend", fe), ("action", action), ("check", check))) in m.samples
    # HEAD: headers only
    r = request("HEAD", "/metrics")
    assert r.status == 200 and r.body == b"" and int(r.headers["content-length"]) > 1000


def test_metrics_the_parser_is_strict():
    ok = ("# HELP calloutd_x_total X.\n# TYPE calloutd_x_total counter\n"
          'calloutd_x_total{a="1"} 3\n')
    Metrics(ok)
    for bad in [ok.rstrip("\n"),                                  # no final newline
                ok.replace("# HELP calloutd_x_total X.\n", ""),   # no HELP
                ok.replace(" 3\n", " three\n"),                   # not a number
                ok.replace('{a="1"}', "{a=1}"),                   # unquoted label
                ok + 'calloutd_x_total{a="1"} 4\n',               # series twice
                ok.replace("calloutd_x", "other_x"),              # not our prefix
                ok.replace("counter", "gauge").replace("_total", "") + "\n"]:  # empty line
        with pytest.raises(AssertionError):
            Metrics(bad)


def test_metrics_move_with_verifications(calloutd, mx):
    calloutd()
    fe = {"frontend": "http"}
    hist = "calloutd_verification_duration_seconds"

    def valid(m):
        return m.get("calloutd_verifications_total", verdict="valid", reason="accepted", **fe)

    m0 = metrics()
    assert m0.get("calloutd_verifications_in_flight") == 0

    # a probe: valid, a cache miss, into the uncached histogram
    r = verify_get(f"alice@[{mx.host}]").json
    assert not r["cached"]
    m1 = metrics()
    assert valid(m1) == valid(m0) + 1
    assert m1.get("calloutd_cache_lookups_total", result="miss", **fe) == \
        m0.get("calloutd_cache_lookups_total", result="miss", **fe) + 1
    assert_in_bucket(m0, m1, r["ms"], cached="false", **fe)

    # the same again: from the cache, a hit, into the cached histogram at 0 ms
    r = verify_get(f"alice@[{mx.host}]").json
    assert r["cached"] and r["age"] >= 0
    m2 = metrics()
    assert valid(m2) == valid(m1) + 1
    assert m2.get("calloutd_cache_lookups_total", result="hit", **fe) == \
        m1.get("calloutd_cache_lookups_total", result="hit", **fe) + 1
    assert m2.get("calloutd_cache_lookups_total", result="miss", **fe) == \
        m1.get("calloutd_cache_lookups_total", result="miss", **fe)
    assert_in_bucket(m1, m2, r["ms"], cached="true", **fe)

    # 0.6 s at least: not in the buckets up to le="0.5"
    r = verify_get(f"tardy@[{mx.host}]").json
    assert r["ms"] >= 600, r
    m3 = metrics()
    assert m3.bucket(hist, "0.5", cached="false", **fe) == \
        m2.bucket(hist, "0.5", cached="false", **fe)
    assert_in_bucket(m2, m3, r["ms"], cached="false", **fe)

    # a list counts each address; a syntax error is no cache lookup
    verify_post({"addresses": [f"nobody@[{mx.host}]", "not an address"]})
    m4 = metrics()
    assert m4.get("calloutd_verifications_total", verdict="invalid", reason="mailbox_unknown",
                  **fe) == 1
    assert m4.get("calloutd_verifications_total", verdict="invalid", reason="syntax",
                  **fe) == 1
    lookups = sum(m4.get("calloutd_cache_lookups_total", result=x, **fe) for x in ("hit", "miss"))
    assert lookups == 4
    # nothing for the other front ends, no decisions by the API
    assert m4.get("calloutd_verifications_total", frontend="policy", verdict="valid",
                  reason="accepted") == 0
    assert all(v == 0 for (n, _), v in m4.samples.items() if n == "calloutd_decisions_total")


def test_metrics_dns_and_smtp_errors(calloutd, fake_smtp):
    calloutd()
    busy = fake_smtp("""
on connect
    send 421 4.3.2 mx.fake.test Service not available, closing transmission channel
    close
""")
    grey = fake_smtp("""
on RCPT
    send 451 4.7.1 Please try again later
""")
    fe = {"frontend": "http"}
    m0 = metrics()

    r = verify_get("alice@servfail.test").json
    assert (r["verdict"], r["reason"]) == ("tempfail", "dns_tempfail")
    r = verify_get(f"alice@[{busy.host}]").json
    assert (r["verdict"], r["reason"], r["stage"]) == ("tempfail", "temp_reject", "banner")
    r = verify_get(f"alice@[{grey.host}]").json
    assert (r["verdict"], r["reason"]) == ("tempfail", "greylisted")
    r = verify_get(f"alice@[{testnet.DEAD_IP}]").json
    assert (r["verdict"], r["reason"], r["stage"]) == \
        ("tempfail", "connect_failed", "connect")

    m1 = metrics()
    assert m1.get("calloutd_dns_errors_total", **fe) == m0.get("calloutd_dns_errors_total", **fe) + 1

    def smtp(m, stage):
        return m.get("calloutd_smtp_errors_total", stage=stage, **fe)

    assert smtp(m1, "banner") == smtp(m0, "banner") + 1
    assert smtp(m1, "connect") == smtp(m0, "connect") + 1
    assert smtp(m1, "rcpt") == smtp(m0, "rcpt")        # greylisting is no error
    assert m1.get("calloutd_verifications_total", verdict="tempfail", reason="greylisted",
                  **fe) == 1


def test_openapi_describes_the_answers(calloutd, mx):
    """docs/openapi.yaml: valid, and its Result schema matches real answers."""
    yaml = pytest.importorskip("yaml")
    with open(os.path.join(ROOT, "docs", "openapi.yaml")) as f:
        spec = yaml.safe_load(f)
    try:
        from openapi_spec_validator import validate_spec
        validate_spec(spec)
    except ImportError:
        pass
    result = spec["components"]["schemas"]["Result"]
    errors = spec["components"]["schemas"]["Error"]["properties"]["error"]["enum"]
    calloutd()
    for res in [verify_get(f"alice@[{mx.host}]").json, verify_get(f"alice@[{mx.host}]").json,
                verify_get("not an address").json]:
        assert set(result["required"]) <= set(res) <= set(result["properties"])
        for k in ("verdict", "reason", "stage"):
            assert res[k] in result["properties"][k]["enum"]
    for r in [verify_post("{bad"), request("GET", "/nothing"), request("DELETE", "/healthz"),
              verify_post({"address": "x" * 70000})]:
        assert r.json["error"] in errors
