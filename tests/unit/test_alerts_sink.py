"""The built-in webhook receiver (finsentry webhook-sink), over real sockets on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from alerts import (
    Alert,
    Evidence,
    ThresholdDetector,
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


def _post(url: str, alert: Alert) -> int:
    """POST an alert the way finsentry's delivery does (same id header, canonical body)."""
    headers = {"webhook-id": alert.alert_id, "content-type": "application/json"}
    return httpx.post(url, content=alert.to_json(), headers=headers, timeout=2.0).status_code


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[WebhookSink]:
    with WebhookSink(out_path=tmp_path / "out" / "alerts.jsonl") as s:
        yield s


def test_sink_jsonl_duplicates_and_bad_requests(sink: WebhookSink, tmp_path: Path) -> None:
    a, b = _alert("AAPL"), _alert("MSFT")
    for alert in (a, b, a):
        assert _post(sink.url, alert) == 200
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
        assert _post(sink.url, alert) == 200
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
        assert _post(url, alert) == 200
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
