"""Webhook delivery and the built-in sink, over real sockets on 127.0.0.1 (no HTTP mocks)."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from alerts import (
    Alert,
    DeliveryResult,
    Evidence,
    ThresholdDetector,
    WebhookSender,
    WebhookSink,
    WindowResult,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
START_MS = 1_704_186_000_000


def _alert(key: str = "AAPL") -> Alert:
    window = WindowResult(
        key_type="ticker", key=key, start_ms=START_MS, end_ms=START_MS + 300_000,
        n=6, n_negative=5, n_neutral=1, n_positive=0, neg_share=5 / 6, mean_score=-0.61,
        evidence=tuple(Evidence(item_id=f"i{i}", title=f"{key} falls {i}", p_negative=0.9) for i in range(5)),
        model_versions=("m1",),
    )
    alert = ThresholdDetector(5, 0.6).evaluate(window)
    assert alert is not None
    return alert


class _Scripted:
    """A stdlib HTTP server answering POSTs from a script of (delay_s, status) steps."""

    def __init__(self, script: list[tuple[float, int]]) -> None:
        self.script = list(script)
        self.requests: list[tuple[dict[str, str], bytes]] = []
        lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["content-length"]))
                with lock:
                    outer.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                    delay, status = outer.script.pop(0) if len(outer.script) > 1 else outer.script[0]
                time.sleep(delay)
                try:
                    self.send_response(status)
                    self.send_header("content-length", "0")
                    self.end_headers()
                except OSError:  # the client gave up (timeout)
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
        self.thread.join()


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[WebhookSink]:
    with WebhookSink(out_path=tmp_path / "out" / "alerts.jsonl") as s:
        yield s


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sender_validates_arguments() -> None:
    for kwargs in [
        {"urls": ["ftp://x/y"]},
        {"urls": ["not a url"]},
        {"urls": "http://127.0.0.1/alerts"},
        {"urls": [], "timeout_s": 0},
        {"urls": [], "retries": -1},
        {"urls": [], "backoff_s": -0.1},
    ]:
        with pytest.raises(ValueError):
            WebhookSender(**kwargs)  # type: ignore[arg-type]


def test_delivery_to_sink(sink: WebhookSink) -> None:
    alert = _alert()
    with WebhookSender([sink.url], timeout_s=2.0) as sender:
        (result,) = sender.send(alert)
    assert result == DeliveryResult(sink.url, True, 1, 200, None)
    ((headers, payload),) = sink.received
    assert headers["webhook-id"] == alert.alert_id
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"].startswith("finsentry/")
    assert payload == json.loads(alert.to_json())
    assert Alert.model_validate(payload) == alert
    assert sink.duplicates == 0


def test_retries_then_success_with_identical_body(caplog: pytest.LogCaptureFixture) -> None:
    alert = _alert()
    with _Scripted([(0, 500), (0, 500), (0, 200)]) as server, WebhookSender(
        [server.url], timeout_s=2.0, retries=3, backoff_s=0.01
    ) as sender:
        with caplog.at_level(logging.WARNING, logger="alerts"):
            (result,) = sender.send(alert)
    assert result == DeliveryResult(server.url, True, 3, 200, None)
    assert len(server.requests) == 3
    bodies = {body for _, body in server.requests}
    assert bodies == {alert.to_json()}
    assert {h["webhook-id"] for h, _ in server.requests} == {alert.alert_id}
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 2


def test_gives_up_after_retries(caplog: pytest.LogCaptureFixture) -> None:
    with _Scripted([(0, 503)]) as server, WebhookSender(
        [server.url], timeout_s=2.0, retries=2, backoff_s=0.01
    ) as sender:
        with caplog.at_level(logging.WARNING, logger="alerts"):
            (result,) = sender.send(_alert())
    assert result == DeliveryResult(server.url, False, 3, 503, "HTTP 503")
    assert len(server.requests) == 3
    assert any(r.levelno == logging.ERROR for r in caplog.records)


def test_no_retry_on_400(sink: WebhookSink, caplog: pytest.LogCaptureFixture) -> None:
    with _Scripted([(0, 400)]) as server, WebhookSender(
        [server.url, sink.url], timeout_s=2.0, retries=3, backoff_s=0.01
    ) as sender:
        with caplog.at_level(logging.WARNING, logger="alerts"):
            bad, good = sender.send(_alert())
    assert bad == DeliveryResult(server.url, False, 1, 400, "HTTP 400")
    assert len(server.requests) == 1
    assert good.delivered and good.url == sink.url  # one URL failing does not stop the others
    assert [r.levelno for r in caplog.records] == [logging.ERROR]


def test_retries_on_timeout() -> None:
    alert = _alert()
    with _Scripted([(1.0, 200), (0, 200)]) as server, WebhookSender(
        [server.url], timeout_s=0.2, retries=1, backoff_s=0.01
    ) as sender:
        (result,) = sender.send(alert)
    assert result == DeliveryResult(server.url, True, 2, 200, None)
    assert [body for _, body in server.requests] == [alert.to_json()] * 2


def test_retries_on_connection_refused() -> None:
    url = f"http://127.0.0.1:{_free_port()}/alerts"
    with WebhookSender([url], timeout_s=1.0, retries=2, backoff_s=0.01) as sender:
        (result,) = sender.send(_alert())
    assert (result.delivered, result.attempts, result.status) == (False, 3, None)
    assert result.error is not None and "Connect" in result.error


def test_send_after_close_raises() -> None:
    sender = WebhookSender([])
    assert sender.send(_alert()) == []
    sender.close()
    sender.close()
    with pytest.raises(RuntimeError):
        sender.send(_alert())


def test_sink_jsonl_duplicates_and_bad_requests(sink: WebhookSink, tmp_path: Path) -> None:
    a, b = _alert("AAPL"), _alert("MSFT")
    with WebhookSender([sink.url], timeout_s=2.0) as sender:
        for alert in (a, b, a):
            assert sender.send(alert)[0].delivered
    with httpx.Client(timeout=2.0) as client:
        assert client.post(sink.url, content=b"{not json", headers={"webhook-id": "x"}).status_code == 400
        assert client.post(sink.url, content=b"\xff\xfe").status_code == 400
        assert client.post(sink.url.replace("/alerts", "/other"), content=b"{}").status_code == 404
        assert client.get(sink.url.replace("/alerts", "/healthz")).status_code == 200
    assert sink.duplicates == 1
    assert [p["key"] for _, p in sink.received] == ["AAPL", "MSFT", "AAPL"]
    lines = (tmp_path / "out" / "alerts.jsonl").read_bytes().splitlines()
    assert lines == [a.to_json(), b.to_json(), a.to_json()]  # canonical JSON, one per line


def test_sink_echo_and_lifecycle(capsys: pytest.CaptureFixture[str]) -> None:
    sink = WebhookSink(echo=True)
    with pytest.raises(RuntimeError):
        sink.url
    sink.start()
    try:
        with pytest.raises(RuntimeError):
            sink.start()
        alert = _alert()
        with WebhookSender([sink.url], timeout_s=2.0) as sender:
            sender.send(alert)
    finally:
        sink.stop()
        sink.stop()
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and alert.alert_id in out[0] and "AAPL" in out[0]


def test_serve_forever_stops_on_sigterm(tmp_path: Path) -> None:
    out_path = tmp_path / "alerts.jsonl"
    code = (
        "import sys; from pathlib import Path; from alerts import serve_forever; "
        "serve_forever('127.0.0.1', 0, Path(sys.argv[1]), echo=True)"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(out_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().strip()
        assert first.startswith("webhook sink listening on http://127.0.0.1:")
        url = first.rsplit(" ", 1)[1]
        alert = _alert()
        with WebhookSender([url], timeout_s=2.0) as sender:
            assert sender.send(alert)[0].delivered
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr
    assert alert.alert_id in stdout
    assert "1 received" in stderr
    assert out_path.read_bytes() == alert.to_json() + b"\n"
