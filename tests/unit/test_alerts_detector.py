"""Threshold detector and the Alert record: thresholds, id stability, canonical bytes."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone

import pytest

from alerts import Alert, Evidence, ThresholdDetector, WindowResult, alert_id_for

START_MS = 1_704_186_000_000  # 2024-01-02T09:00:00Z
SIZE_MS = 300_000


def _window(n: int, n_negative: int, key: str = "AAPL", start_ms: int = START_MS) -> WindowResult:
    n_neutral = n - n_negative
    return WindowResult(
        key_type="ticker",
        key=key,
        start_ms=start_ms,
        end_ms=start_ms + SIZE_MS,
        n=n,
        n_negative=n_negative,
        n_neutral=n_neutral,
        n_positive=0,
        neg_share=n_negative / n,
        mean_score=-0.75 * n_negative / n,
        evidence=tuple(
            Evidence(item_id=f"id{i}", title=f"Headline {i} — é", p_negative=0.9 - i / 100)
            for i in range(min(n_negative, 10))
        ),
        model_versions=("m2", "m3"),
    )


def test_detector_validates_thresholds() -> None:
    for bad in [(0, 0.5), (-1, 0.5), (2.5, 0.5), (3, -0.1), (3, 1.5)]:
        with pytest.raises(ValueError):
            ThresholdDetector(*bad)


def test_detector_rule_string() -> None:
    assert ThresholdDetector(5, 0.6).rule == "neg_count>=5&neg_share>=0.6"
    assert ThresholdDetector(3, 1).rule == "neg_count>=3&neg_share>=1.0"


@pytest.mark.parametrize(
    ("n", "n_negative", "fires"),
    [
        (5, 5, True),  # both thresholds met (share 1.0)
        (8, 5, True),  # share 0.625 >= 0.6
        (10, 6, True),  # share exactly 0.6: inclusive
        (6, 4, False),  # share 0.67 but count 4 < 5
        (9, 5, False),  # count 5 but share 0.556 < 0.6
        (1, 1, False),
    ],
)
def test_detector_thresholds(n: int, n_negative: int, fires: bool) -> None:
    detector = ThresholdDetector(min_negative=5, min_neg_share=0.6)
    alert = detector.evaluate(_window(n, n_negative))
    assert (alert is not None) is fires
    if alert is not None:
        assert alert.status == "firing"
        assert alert.rule == detector.rule
        assert (alert.n, alert.n_negative) == (n, n_negative)


def test_alert_fields_from_window() -> None:
    w = _window(8, 6)
    alert = ThresholdDetector(5, 0.6).evaluate(w)
    assert alert is not None
    assert (alert.key_type, alert.key) == ("ticker", "AAPL")
    assert alert.window_start == datetime(2024, 1, 2, 9, 0, tzinfo=timezone.utc)
    assert alert.window_end == datetime(2024, 1, 2, 9, 5, tzinfo=timezone.utc)
    assert alert.window_start.tzinfo is not None
    assert alert.neg_share == 0.75 and alert.mean_score == w.mean_score
    assert alert.evidence == w.evidence and len(alert.evidence) == 6
    assert alert.model_versions == ("m2", "m3")


def test_alert_id_is_stable_and_documented() -> None:
    detector = ThresholdDetector(5, 0.6)
    a1 = detector.evaluate(_window(8, 6))
    a2 = detector.evaluate(_window(9, 7))  # same window, more items: same alert
    assert a1 is not None and a2 is not None
    raw = f"ticker|AAPL|{START_MS}|neg_count>=5&neg_share>=0.6".encode()
    assert a1.alert_id == hashlib.sha256(raw).hexdigest()[:24] == a2.alert_id
    assert a1.alert_id == alert_id_for("ticker", "AAPL", START_MS, detector.rule)
    # any part of the key changes it
    other_ids = {
        detector.evaluate(_window(8, 6, key="MSFT")).alert_id,  # type: ignore[union-attr]
        detector.evaluate(_window(8, 6, start_ms=START_MS + SIZE_MS)).alert_id,  # type: ignore[union-attr]
        ThresholdDetector(4, 0.6).evaluate(_window(8, 6)).alert_id,  # type: ignore[union-attr]
    }
    assert a1.alert_id not in other_ids and len(other_ids) == 3


def test_alert_body_is_canonical_and_byte_identical() -> None:
    detector = ThresholdDetector(5, 0.6)
    body = detector.evaluate(_window(8, 6)).to_json()  # type: ignore[union-attr]
    assert detector.evaluate(_window(8, 6)).to_json() == body  # type: ignore[union-attr]
    text = body.decode("utf-8")
    assert "\n" not in text and ", " not in text and '": ' not in text
    parsed = json.loads(body)
    assert list(parsed) == sorted(parsed)
    assert list(parsed["evidence"][0]) == ["item_id", "p_negative", "title"]
    assert parsed["window_start"] == "2024-01-02T09:00:00Z"
    assert parsed["status"] == "firing"
    assert "é" in text  # UTF-8, not \u escapes
    # no wall-clock field: only the documented fields
    assert set(parsed) == {
        "alert_id", "status", "rule", "key_type", "key", "window_start", "window_end",
        "n", "n_negative", "neg_share", "mean_score", "evidence", "model_versions",
    }
    # round trip
    again = Alert.from_json(body)
    assert again.to_json() == body


def test_alert_rejects_naive_datetimes() -> None:
    alert = ThresholdDetector(5, 0.6).evaluate(_window(8, 6))
    assert alert is not None
    data = alert.model_dump()
    data["window_start"] = datetime(2024, 1, 2, 9, 0)
    with pytest.raises(ValueError):
        Alert(**data)
