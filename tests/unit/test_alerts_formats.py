"""Notification bodies: native (docs/alert.schema.json), Alertmanager v4 (schema kept here), Slack."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from alerts import Alert, Evidence, ThresholdDetector, WindowResult, group_key, message_id_for, render

REPO_ROOT = Path(__file__).resolve().parents[2]
NATIVE_SCHEMA = json.loads((REPO_ROOT / "docs" / "alert.schema.json").read_text())
AM_SCHEMA = json.loads((Path(__file__).parent / "alertmanager_webhook_v4.schema.json").read_text())
START_MS = 1_704_186_000_000
HOUR_MS = 3_600_000


def _alert(key: str = "AAPL", start_ms: int = START_MS, title: str = "falls") -> Alert:
    window = WindowResult(
        key_type="ticker", key=key, start_ms=start_ms, end_ms=start_ms + HOUR_MS,
        n=6, n_negative=5, n_neutral=1, n_positive=0, neg_share=5 / 6, mean_score=-0.61,
        evidence=tuple(Evidence(item_id=f"i{i}", title=f"{key} {title} {i}", p_negative=0.9) for i in range(5)),
        model_versions=("m1",),
    )
    alert = ThresholdDetector(5, 0.6).evaluate(window)
    assert alert is not None
    return alert


def _validate(doc: object, schema: dict) -> None:
    jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).validate(doc)


def test_resolved_keeps_the_alert_id_with_a_distinct_message_id() -> None:
    firing = _alert()
    resolved = firing.resolved()
    assert resolved.alert_id == firing.alert_id and resolved.status == "resolved"
    assert firing.message_id == firing.alert_id  # what receivers already deduplicate on
    assert resolved.message_id == f"{firing.alert_id}-resolved" == message_id_for(firing.alert_id, "resolved")
    assert Alert.from_json(resolved.to_json()) == resolved
    assert group_key(firing) != group_key(resolved)
    with pytest.raises(ValueError):
        message_id_for(firing.alert_id, "pending")  # type: ignore[arg-type]


def test_native_is_the_alert_json_and_matches_the_documented_schema() -> None:
    alert = _alert()
    body = render("native", [alert])
    assert body == alert.to_json()
    _validate(json.loads(body), NATIVE_SCHEMA)
    _validate(json.loads(render("native", [alert.resolved()])), NATIVE_SCHEMA)


def test_native_group_counts_the_suppressed_repeats() -> None:
    lead, r1, r2 = _alert(), _alert(start_ms=START_MS + HOUR_MS), _alert(start_ms=START_MS + 2 * HOUR_MS)
    doc = json.loads(render("native", [lead, r1, r2]))
    _validate(doc, NATIVE_SCHEMA)
    assert doc["alert_id"] == lead.alert_id
    assert doc["suppressed"] == 2 and doc["suppressed_alert_ids"] == [r1.alert_id, r2.alert_id]


def test_alertmanager_body_validates_against_the_v4_schema() -> None:
    alert = _alert()
    body = render("alertmanager", [alert], receiver="oncall", external_url="http://finsentry.local")
    doc = json.loads(body)
    _validate(doc, AM_SCHEMA)
    assert doc["version"] == "4" and doc["status"] == "firing" and doc["receiver"] == "oncall"
    assert doc["truncatedAlerts"] == 0
    (am,) = doc["alerts"]
    assert am["fingerprint"] == alert.alert_id[:16]
    assert am["labels"]["key"] == "AAPL" and am["labels"]["alertname"]
    assert am["startsAt"] == "2024-01-02T09:00:00Z" and am["endsAt"] == "0001-01-01T00:00:00Z"
    assert am["annotations"]["alert_id"] == alert.alert_id
    assert doc["commonLabels"] == am["labels"] and doc["groupLabels"]["key"] == "AAPL"
    assert doc["groupKey"] == '{}:{alertname="FinsentryNegativeNewsSpike", key="AAPL", key_type="ticker"}'
    resolved = json.loads(render("alertmanager", [alert.resolved()]))
    _validate(resolved, AM_SCHEMA)
    assert resolved["status"] == "resolved" and resolved["alerts"][0]["endsAt"] == "2024-01-02T10:00:00Z"


def test_alertmanager_group_lists_every_alert_and_keeps_only_common_labels() -> None:
    alerts = [_alert(start_ms=START_MS + i * HOUR_MS) for i in range(3)]
    doc = json.loads(render("alertmanager", alerts))
    _validate(doc, AM_SCHEMA)
    assert [a["annotations"]["alert_id"] for a in doc["alerts"]] == [a.alert_id for a in alerts]
    assert "window_start" not in doc["commonLabels"] and doc["commonLabels"]["key"] == "AAPL"
    assert len({a["fingerprint"] for a in doc["alerts"]}) == 3


def test_slack_text_is_escaped_and_mentions_suppressed_repeats() -> None:
    lead = _alert(title="<b>falls</b> & drops")
    doc = json.loads(render("slack", [lead, _alert(start_ms=START_MS + HOUR_MS)]))
    assert set(doc) == {"text"}
    text = doc["text"]
    assert "[FIRING]" in text and "ticker AAPL" in text and "5 of 6 items negative (83%)" in text
    assert "&lt;b&gt;falls&lt;/b&gt; &amp; drops" in text and "<b>" not in text
    assert "+1 repeat(s)" in text and lead.alert_id in text
    assert "[RESOLVED]" in json.loads(render("slack", [lead.resolved()]))["text"]


@pytest.mark.parametrize("fmt", ["native", "alertmanager", "slack"])
def test_rendering_is_deterministic_canonical_json(fmt: str) -> None:
    alerts = [_alert(), _alert(start_ms=START_MS + HOUR_MS)]
    first = render(fmt, alerts, receiver="r")  # type: ignore[arg-type]
    assert first == render(fmt, [a.model_copy() for a in alerts], receiver="r")  # type: ignore[arg-type]
    doc = json.loads(first)
    assert first == json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def test_render_errors() -> None:
    with pytest.raises(ValueError):
        render("native", [])
    with pytest.raises(ValueError):
        render("xml", [_alert()])  # type: ignore[arg-type]
