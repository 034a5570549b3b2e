"""Durable, signed webhook delivery against real HTTP servers on 127.0.0.1 (no Kafka, no mocks).

Every test runs the outbox + delivery workers on a temporary SQLite file
with a short retry schedule, and real receivers: ``WebhookSink``, a
scripted stdlib server, and a "black hole" that accepts connections and
never answers.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import jsonschema
import pytest
from prometheus_client import CollectorRegistry

from alerts import (
    Alert,
    DeliveryMetrics,
    DeliveryService,
    Endpoint,
    Evidence,
    Outbox,
    RetryPolicy,
    Signer,
    ThresholdDetector,
    Verifier,
    WebhookSink,
    WindowResult,
    generate_secret,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
AM_SCHEMA = json.loads((REPO_ROOT / "tests" / "unit" / "alertmanager_webhook_v4.schema.json").read_text())
START_MS = 1_704_186_000_000
HOUR_MS = 3_600_000
FAST = RetryPolicy((0, 0.05, 0.05, 0.05, 0.05), cap_s=5)

pytestmark = pytest.mark.timeout(60)


def _alert(key: str = "AAPL", start_ms: int = START_MS) -> Alert:
    window = WindowResult(
        key_type="ticker", key=key, start_ms=start_ms, end_ms=start_ms + HOUR_MS,
        n=6, n_negative=5, n_neutral=1, n_positive=0, neg_share=5 / 6, mean_score=-0.61,
        evidence=tuple(Evidence(item_id=f"i{i}", title=f"{key} falls {i}", p_negative=0.9) for i in range(3)),
        model_versions=("m1",),
    )
    alert = ThresholdDetector(5, 0.6).evaluate(window)
    assert alert is not None
    return alert


def _wait(predicate: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Scripted:
    """Answers POSTs from a script of (delay_s, status, headers) steps; the last step repeats."""

    def __init__(self, script: list[tuple[float, int, dict[str, str]]]) -> None:
        self.script = list(script)
        self.requests: list[tuple[float, dict[str, str], bytes]] = []
        lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["content-length"]))
                with lock:
                    outer.requests.append((time.monotonic(), {k.lower(): v for k, v in self.headers.items()}, body))
                    delay, status, headers = outer.script.pop(0) if len(outer.script) > 1 else outer.script[0]
                time.sleep(delay)
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("content-length", "0")
                    self.end_headers()
                except OSError:
                    pass

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> "_Scripted":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class _BlackHole:
    """Accepts TCP connections and never answers (until closed)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"
        self.accepted: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def __enter__(self) -> "_BlackHole":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()
        for conn in self.accepted:
            conn.close()


@pytest.fixture
def make_service(tmp_path: Path) -> Iterator[Callable[..., DeliveryService]]:
    """``make(endpoints, policy=FAST, path=tmp/outbox.sqlite) -> started DeliveryService`` (closed at teardown)."""
    started: list[DeliveryService] = []

    def make(endpoints: list[Endpoint], policy: RetryPolicy = FAST, path: Path | None = None) -> DeliveryService:
        metrics = DeliveryMetrics(CollectorRegistry())
        outbox = Outbox(path or tmp_path / "outbox.sqlite", endpoints)
        service = DeliveryService(outbox, policy, metrics, poll_s=0.1).start()
        started.append(service)
        return service

    yield make
    for service in started:
        service.close()


def _states(service: DeliveryService) -> dict[str, int]:
    return service.outbox.counts()


def test_500_three_times_then_200_is_delivered_once_with_one_id_and_body(
    make_service: Callable[..., DeliveryService],
) -> None:
    secret = generate_secret()
    alert = _alert()
    with _Scripted([(0, 500, {}), (0, 500, {}), (0, 500, {}), (0, 200, {})]) as server:
        service = make_service([Endpoint(server.url, name="flaky", secrets=(secret,))])
        service.outbox.put(alert)
        assert _wait(lambda: _states(service) == {"delivered": 1}, 10), _states(service)
        time.sleep(0.3)  # nothing more is sent once delivered
        requests = list(server.requests)
    assert len(requests) == 4
    assert {body for _, _, body in requests} == {alert.to_json()}
    assert {h["webhook-id"] for _, h, _ in requests} == {alert.alert_id}
    verifier = Verifier([secret])
    for _, headers, body in requests:
        verifier.verify(body, headers)  # each attempt freshly signed
    m = service.metrics
    assert m.value("finsentry_webhook_delivered_total", endpoint="flaky") == 1
    assert m.value("finsentry_webhook_retried_total", endpoint="flaky") == 3
    assert m.value("finsentry_webhook_failed_total", endpoint="flaky", reason="http_5xx") == 3
    assert m.value("finsentry_webhook_delivery_latency_seconds_count", endpoint="flaky") == 1
    (entry,) = service.outbox.entries()
    assert (entry.state, entry.attempts, entry.last_status) == ("delivered", 4, 200)


def test_a_receiver_that_never_answers_does_not_block_a_healthy_one(
    make_service: Callable[..., DeliveryService], tmp_path: Path
) -> None:
    alerts = [_alert(f"T{i}") for i in range(20)]
    with _BlackHole() as hole, WebhookSink() as sink:
        service = make_service([
            Endpoint(hole.url, name="hole", read_timeout_s=30),
            Endpoint(sink.url, name="healthy"),
        ])
        t0 = time.monotonic()
        put_s = []
        for alert in alerts:
            t = time.monotonic()
            service.outbox.put(alert)
            put_s.append(time.monotonic() - t)
        # bounds well under the hole's 30 s read timeout (a healthy endpoint or a put waiting on the hole would
        # take >= 30 s), loose enough for a loaded 2-core box
        assert _wait(lambda: len(sink.received) == 20, 20), len(sink.received)
        elapsed = time.monotonic() - t0
        assert hole.accepted, "the black hole should have been tried"
        assert max(put_s) < 10  # the producer side (the daemon's poll loop) is never held up by the hole
        assert elapsed < 20
    assert sorted(h["webhook-id"] for h, _ in sink.received) == sorted(a.alert_id for a in alerts)
    pending = [e for e in service.outbox.entries() if e.endpoint == "hole"]
    assert len(pending) == 20 and all(e.state == "pending" for e in pending)


def test_outage_then_restart_delivers_everything_exactly_once(
    make_service: Callable[..., DeliveryService], tmp_path: Path
) -> None:
    port = _free_port()
    url = f"http://127.0.0.1:{port}/alerts"
    endpoint = Endpoint(url, name="down", connect_timeout_s=0.5)
    policy = RetryPolicy((0, 0.1, 0.2, 3600), cap_s=3600)  # 3 quick attempts, then an hour
    alerts = [_alert(f"T{i}") for i in range(30)]
    messages = alerts + [a.resolved() for a in alerts[:10]]

    first = make_service([endpoint], policy)
    for message in messages:
        first.outbox.put(message)
    assert _wait(lambda: all(e.attempts >= 3 for e in first.outbox.entries()), 10)
    assert first.outbox.counts() == {"pending": 40}  # nothing lost, nothing dead
    first.close()

    with WebhookSink(port=port) as sink:
        t0 = time.monotonic()
        second = make_service([endpoint], policy)  # the restart: new outbox + workers, same file
        assert _wait(lambda: len(sink.received) >= 40, 10), len(sink.received)
        took = time.monotonic() - t0
        assert _wait(lambda: second.outbox.counts() == {"delivered": 40}, 5), second.outbox.counts()
        second.close()
        third = make_service([endpoint], policy)  # and once more: delivered ones are never sent again
        time.sleep(0.5)
        third.close()
        received = list(sink.received)
    assert len(received) == 40 and sink.duplicates == 0
    assert {h["webhook-id"] for h, _ in received} == {m.message_id for m in messages}
    assert {(b["alert_id"], b["status"]) for _, b in received} == {(m.alert_id, m.status) for m in messages}
    assert took < 10


def test_receiver_back_after_an_outage_gets_the_backed_off_alerts_at_once_in_order(
    make_service: Callable[..., DeliveryService],
) -> None:
    """Deliveries waiting out a long backoff go as soon as one delivery to the endpoint succeeds."""
    port = _free_port()
    endpoint = Endpoint(f"http://127.0.0.1:{port}/alerts", name="back", connect_timeout_s=0.5)
    policy = RetryPolicy((0, 0.1, 3600), cap_s=3600, jitter=False)  # 2 quick attempts, then an hour
    early = [_alert(f"T{i}") for i in range(10)]
    service = make_service([endpoint], policy)
    for alert in early:
        service.outbox.put(alert)
    assert _wait(lambda: all(e.attempts >= 2 for e in service.outbox.entries()), 10)
    assert service.outbox.due_count(endpoint.id) == 0  # all waiting out the hour
    with WebhookSink(port=port) as sink:
        t0 = time.monotonic()
        late = _alert("LATE")
        service.outbox.put(late)  # the first delivery after the receiver's return succeeds...
        assert _wait(lambda: len(sink.received) >= 11, 10), len(sink.received)  # ...and the rest follow
        took = time.monotonic() - t0
        assert _wait(lambda: service.outbox.counts() == {"delivered": 11}, 5), service.outbox.counts()
        time.sleep(0.3)
        received = [h["webhook-id"] for h, _ in sink.received]
    assert sink.duplicates == 0 and len(received) == 11
    assert received == [late.message_id] + [a.message_id for a in early]  # then oldest first
    assert took < 10  # not the hour of the schedule


def test_sink_rejects_wrong_secret_and_stale_timestamps(make_service: Callable[..., DeliveryService]) -> None:
    secret = generate_secret()
    with WebhookSink(secrets=[secret], tolerance_s=60) as sink:
        wrong = make_service([Endpoint(sink.url, name="wrong", secrets=(generate_secret(),))])
        alert = _alert()
        wrong.outbox.put(alert)
        assert _wait(lambda: wrong.outbox.counts() == {"dead": 1}, 5)  # 401: a 4xx, not retried
        (dead,) = wrong.outbox.entries(dead_only=True)
        assert (dead.attempts, dead.last_status) == (1, 401)
        assert sink.rejected == 1 and sink.received == []

        body = alert.to_json()
        stale = Signer([secret]).headers(alert.alert_id, body, timestamp=int(time.time()) - 120)
        good = Signer([secret]).headers(alert.alert_id, body)
        with httpx.Client(timeout=5) as client:
            assert client.post(sink.url, content=body, headers=stale).status_code == 401
            assert client.post(sink.url, content=body).status_code == 401  # unsigned
            assert client.post(sink.url, content=body, headers=good).status_code == 200
        assert sink.rejected == 3 and len(sink.received) == 1

    with WebhookSink() as open_sink, httpx.Client(timeout=5) as client:  # no secret: unsigned accepted
        assert client.post(open_sink.url, content=body).status_code == 200


def test_webhook_sink_command_verifies_signatures(tmp_path: Path) -> None:
    secret = generate_secret()
    env = {**os.environ, "SINK_SECRET": secret,
           "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "finsentry", "webhook-sink", "--port", "0", "--secret-env", "SINK_SECRET",
         "--tolerance", "30", "--out", str(tmp_path / "a.jsonl")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip().rsplit(" ", 1)[1]
        body = _alert().to_json()
        with httpx.Client(timeout=5) as client:
            ok = client.post(url, content=body, headers=Signer([secret]).headers("m1", body))
            bad = client.post(url, content=body, headers=Signer([generate_secret()]).headers("m2", body))
            old = client.post(url, content=body, headers=Signer([secret]).headers("m3", body, int(time.time()) - 60))
        assert (ok.status_code, bad.status_code, old.status_code) == (200, 401, 401)
        proc.terminate()
        _, stderr = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "1 received" in stderr and "2 rejected" in stderr and secret not in stderr


def test_formats_and_grouping_over_http(make_service: Callable[..., DeliveryService]) -> None:
    repeats = [_alert("AAPL", START_MS + i * HOUR_MS) for i in range(3)]
    with WebhookSink() as am_sink, WebhookSink() as slack_sink, WebhookSink() as native_sink:
        service = make_service([
            Endpoint(am_sink.url, format="alertmanager", name="am", external_url="http://finsentry.local"),
            Endpoint(slack_sink.url, format="slack", name="slack"),
            Endpoint(native_sink.url, name="grouped", group_wait_s=0.4),
        ])
        for alert in repeats:
            service.outbox.put(alert)
        assert _wait(lambda: len(am_sink.received) == 3 and len(slack_sink.received) == 3
                     and len(native_sink.received) == 1, 5)
        time.sleep(0.5)
        assert len(native_sink.received) == 1  # the repeats were folded, not sent later
    for _, body in am_sink.received:
        jsonschema.Draft202012Validator(AM_SCHEMA).validate(body)
        assert body["externalURL"] == "http://finsentry.local"
    assert all(set(body) == {"text"} for _, body in slack_sink.received)
    ((headers, grouped),) = native_sink.received
    assert headers["webhook-id"] == repeats[0].alert_id
    assert grouped["suppressed"] == 2 and grouped["suppressed_alert_ids"] == [a.alert_id for a in repeats[1:]]
    assert _wait(lambda: service.outbox.counts() == {"delivered": 7, "grouped": 2}, 5), service.outbox.counts()


def test_410_disables_the_endpoint_and_says_so_in_log_and_metrics(
    make_service: Callable[..., DeliveryService], caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    with _Scripted([(0, 410, {})]) as gone, WebhookSink() as sink:
        with caplog.at_level(logging.WARNING, logger="alerts"):
            service = make_service([Endpoint(gone.url, name="gone"), Endpoint(sink.url, name="ok")])
            service.outbox.put(_alert("AAPL"))
            assert _wait(lambda: service.outbox.disabled_reason(Endpoint(gone.url).id) is not None, 5)
            service.outbox.put(_alert("MSFT"))
            assert _wait(lambda: len(sink.received) == 2, 5)
            assert _wait(lambda: [e.state for e in service.outbox.entries() if e.endpoint == "gone"]
                         == ["dead", "dead"], 5)
        assert len(gone.requests) == 1  # nothing is sent to a disabled endpoint
    m = service.metrics
    assert m.value("finsentry_webhook_endpoint_disabled", endpoint="gone") == 1
    assert m.value("finsentry_webhook_endpoint_disabled", endpoint="ok") == 0
    assert m.value("finsentry_webhook_failed_total", endpoint="gone", reason="http_410") == 1
    assert m.value("finsentry_webhook_dead_lettered_total", endpoint="gone") == 2
    assert any("410 Gone" in r.getMessage() and "DISABLED" in r.getMessage() and r.levelno == logging.ERROR
               for r in caplog.records)


def test_other_4xx_stop_429_retry_after_and_timeouts_retry(make_service: Callable[..., DeliveryService]) -> None:
    with _Scripted([(0, 404, {})]) as refusing, \
            _Scripted([(0, 429, {"Retry-After": "1"}), (0, 200, {})]) as throttling, \
            _Scripted([(1.0, 200, {}), (0, 200, {})]) as slow:
        service = make_service([
            Endpoint(refusing.url, name="refusing"),
            Endpoint(throttling.url, name="throttling"),
            Endpoint(slow.url, name="slow", read_timeout_s=0.3),
        ])
        service.outbox.put(_alert())
        assert _wait(lambda: len(throttling.requests) == 2 and len(slow.requests) == 2, 10)
        assert _wait(lambda: service.outbox.counts() == {"dead": 1, "delivered": 2}, 5), service.outbox.counts()
        time.sleep(0.2)
        assert len(refusing.requests) == 1
        (t1, _, _), (t2, _, _) = throttling.requests
        assert t2 - t1 >= 0.9  # Retry-After: 1 beats the 0.05 s schedule
    m = service.metrics
    assert m.value("finsentry_webhook_failed_total", endpoint="refusing", reason="http_4xx") == 1
    assert m.value("finsentry_webhook_failed_total", endpoint="throttling", reason="http_429") == 1
    assert m.value("finsentry_webhook_failed_total", endpoint="slow", reason="timeout") == 1
    (dead,) = service.outbox.entries(dead_only=True)
    assert dead.endpoint == "refusing" and dead.reason is not None and "not retried" in dead.reason


def test_last_attempt_goes_to_the_dead_letters_and_redeliver_sends_it(
    make_service: Callable[..., DeliveryService], tmp_path: Path
) -> None:
    with _Scripted([(0, 503, {}), (0, 503, {}), (0, 503, {}), (0, 200, {})]) as server:
        service = make_service([Endpoint(server.url, name="s")], RetryPolicy((0, 0.05, 0.05), cap_s=1))
        alert = _alert()
        service.outbox.put(alert)
        assert _wait(lambda: service.outbox.counts() == {"dead": 1}, 5)
        assert service.metrics.value("finsentry_webhook_dead_lettered_total", endpoint="s") == 1
        assert service.outbox.redeliver(alert.alert_id) == 1
        assert _wait(lambda: service.outbox.counts() == {"delivered": 1}, 5)
        bodies = {body for _, _, body in server.requests}
    assert len(server.requests) == 4 and bodies == {alert.to_json()}


def test_one_process_delivers_from_an_outbox_at_a_time(
    make_service: Callable[..., DeliveryService], tmp_path: Path
) -> None:
    make_service([Endpoint("http://127.0.0.1:9/x")])
    other = DeliveryService(Outbox(tmp_path / "outbox.sqlite", [Endpoint("http://127.0.0.1:9/x")]),
                            metrics=DeliveryMetrics(CollectorRegistry()))
    with pytest.raises(Exception, match="in use by another finsentry process"):
        other.start()
    other.close()


def test_endpoint_names_must_be_unique(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite", [Endpoint("http://127.0.0.1:9/a", name="x"),
                                             Endpoint("http://127.0.0.1:9/b", name="x")])
    with pytest.raises(ValueError, match="unique"):
        DeliveryService(outbox, metrics=DeliveryMetrics(CollectorRegistry()))
    outbox.close()
