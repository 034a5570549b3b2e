"""Notification bodies: finsentry native JSON, Alertmanager webhook v4, Slack text.

A notification carries one *lead* alert and, when grouping folded repeats of
the same key family into it, the *suppressed* repeats (see ``group_key``).
Every renderer is a pure function of its arguments and emits canonical
UTF-8 JSON (sorted keys, compact), so re-rendering gives the same bytes.

- ``native``: the lead ``Alert`` JSON exactly (``Alert.to_json``); with
  repeats, two more keys: ``suppressed`` (their count) and
  ``suppressed_alert_ids``. Schema: ``docs/alert.schema.json``.
- ``alertmanager``: the body Prometheus Alertmanager POSTs to a
  ``webhook_config`` receiver (``version: "4"``), one entry in ``alerts[]``
  per alert of the group, so any Alertmanager webhook receiver accepts it.
- ``slack``: ``{"text": ...}``, accepted by Slack incoming webhooks (and
  Mattermost, Rocket.Chat and most chat bridges).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any

from ._alert import Alert
from ._endpoint import PayloadFormat

__all__ = ["ALERTNAME", "NOTICE_FORMATS", "group_key", "render", "render_notice"]

#: ``alertname`` label of Alertmanager-format alerts.
ALERTNAME = "FinsentryNegativeNewsSpike"
#: Alertmanager's "not ended" time.
_ZERO_TIME = "0001-01-01T00:00:00Z"
#: Most alerts listed in one Alertmanager body (the rest are counted in truncatedAlerts).
MAX_ALERTS = 100
#: Evidence headlines quoted in a Slack message.
SLACK_EVIDENCE = 3


def group_key(alert: Alert) -> str:
    """The key family of an alert: status, rule, key type and key.

    Alerts with the same group key that are queued within an endpoint's
    ``group_wait_s`` may be sent as one notification.
    """
    return f"{alert.status}|{alert.rule}|{alert.key_type}|{alert.key}"


def _canonical(doc: Any) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def _rfc3339(value: datetime) -> str:
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def render_native(alerts: Sequence[Alert], receiver: str = "", external_url: str = "") -> bytes:
    """Native body: the lead alert's JSON, plus ``suppressed`` counts when grouped."""
    lead, rest = alerts[0], alerts[1:]
    if not rest:
        return lead.to_json()
    doc = json.loads(lead.to_json())
    doc["suppressed"] = len(rest)
    doc["suppressed_alert_ids"] = [a.alert_id for a in rest]
    return _canonical(doc)


def _am_labels(alert: Alert) -> dict[str, str]:
    return {
        "alertname": ALERTNAME,
        "key_type": alert.key_type,
        "key": alert.key,
        "rule": alert.rule,
        "window_start": _rfc3339(alert.window_start),
    }


def _am_annotations(alert: Alert) -> dict[str, str]:
    share = f"{alert.neg_share:.0%}"
    return {
        "summary": f"Negative news spike for {alert.key_type} {alert.key}",
        "description": (
            f"{alert.n_negative} of {alert.n} items negative ({share}), mean score "
            f"{alert.mean_score:+.2f}, window {_rfc3339(alert.window_start)} to {_rfc3339(alert.window_end)}"
        ),
        "alert_id": alert.alert_id,
        "window_end": _rfc3339(alert.window_end),
        "n": str(alert.n),
        "n_negative": str(alert.n_negative),
        "neg_share": repr(alert.neg_share),
        "mean_score": repr(alert.mean_score),
        "evidence": "\n".join(e.title for e in alert.evidence[:SLACK_EVIDENCE]),
        "model_versions": ",".join(alert.model_versions),
    }


def _am_alert(alert: Alert, external_url: str) -> dict[str, Any]:
    return {
        "status": alert.status,
        "labels": _am_labels(alert),
        "annotations": _am_annotations(alert),
        "startsAt": _rfc3339(alert.window_start),
        "endsAt": _rfc3339(alert.window_end) if alert.status == "resolved" else _ZERO_TIME,
        "generatorURL": external_url,
        "fingerprint": alert.alert_id[:16],
    }


def _common(maps: Sequence[dict[str, str]]) -> dict[str, str]:
    first, rest = maps[0], maps[1:]
    return {k: v for k, v in first.items() if all(m.get(k) == v for m in rest)}


def render_alertmanager(alerts: Sequence[Alert], receiver: str = "", external_url: str = "") -> bytes:
    """Alertmanager webhook v4 body for the group of ``alerts`` (lead first)."""
    lead = alerts[0]
    shown = alerts[:MAX_ALERTS]
    entries = [_am_alert(a, external_url) for a in shown]
    group_labels = {"alertname": ALERTNAME, "key": lead.key, "key_type": lead.key_type}
    group_key_text = "{}:{" + ", ".join(f'{k}="{v}"' for k, v in sorted(group_labels.items())) + "}"
    return _canonical({
        "version": "4",
        "groupKey": group_key_text,
        "truncatedAlerts": len(alerts) - len(shown),
        "status": "firing" if any(a.status == "firing" for a in alerts) else "resolved",
        "receiver": receiver,
        "groupLabels": group_labels,
        "commonLabels": _common([e["labels"] for e in entries]),
        "commonAnnotations": _common([e["annotations"] for e in entries]),
        "externalURL": external_url,
        "alerts": entries,
    })


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def render_slack(alerts: Sequence[Alert], receiver: str = "", external_url: str = "") -> bytes:
    """Slack incoming-webhook body ``{"text": ...}`` (mrkdwn, escaped)."""
    a = alerts[0]
    head = "RESOLVED" if a.status == "resolved" else "FIRING"
    start = a.window_start.strftime("%Y-%m-%d %H:%M")
    end = a.window_end.strftime("%H:%M" if a.window_end.date() == a.window_start.date() else "%Y-%m-%d %H:%M")
    lines = [
        f"*[{head}] Negative news spike: {a.key_type} {a.key}*",
        f"{a.n_negative} of {a.n} items negative ({a.neg_share:.0%}), mean score {a.mean_score:+.2f}, "
        f"window {start}-{end} UTC",
    ]
    lines += [f"• {e.title} (p_neg {e.p_negative:.2f})" for e in a.evidence[:SLACK_EVIDENCE]]
    if len(alerts) > 1:
        lines.append(f"(+{len(alerts) - 1} repeat(s) of this alert suppressed)")
    lines.append(f"rule `{a.rule}` · alert `{a.alert_id}`")
    return _canonical({"text": _slack_escape("\n".join(lines))})


_RENDERERS: dict[str, Callable[..., bytes]] = {
    "native": render_native,
    "alertmanager": render_alertmanager,
    "slack": render_slack,
}


def render(fmt: PayloadFormat, alerts: Sequence[Alert], receiver: str = "", external_url: str = "") -> bytes:
    """The body of one notification.

    Args:
        fmt: ``"native"``, ``"alertmanager"`` or ``"slack"``.
        alerts: the lead alert first, then the suppressed repeats (may be none).
        receiver: the endpoint's name (Alertmanager ``receiver``).
        external_url: Alertmanager ``externalURL`` and ``generatorURL``.

    Raises:
        ValueError: unknown format, no alert, or a NaN/infinite number.
    """
    if not alerts:
        raise ValueError("a notification needs at least one alert")
    try:
        renderer = _RENDERERS[fmt]
    except KeyError:
        raise ValueError(f"unknown payload format {fmt!r}") from None
    return renderer(alerts, receiver=receiver, external_url=external_url)


#: Formats that carry notices (non-alert messages such as the daily digest); Alertmanager bodies
#: describe alerts only, so an ``alertmanager`` endpoint is not sent notices.
NOTICE_FORMATS: tuple[str, ...] = ("native", "slack")


def render_notice(fmt: PayloadFormat, doc: bytes) -> bytes:
    """The body of a notice (a non-alert message, e.g. the daily digest) for one endpoint format.

    Args:
        fmt: ``"native"`` (the notice JSON itself, canonical) or ``"slack"``
            (``{"text": doc["text"]}``: a notice carries its own one-message summary).
        doc: the notice as JSON bytes (an object with a ``text`` key).

    Raises:
        ValueError: a format not in :data:`NOTICE_FORMATS`, or ``doc`` is not a JSON object.
    """
    parsed = json.loads(doc)
    if not isinstance(parsed, dict):
        raise ValueError("a notice is a JSON object")
    if fmt == "native":
        return _canonical(parsed)
    if fmt == "slack":
        return _canonical({"text": _slack_escape(str(parsed.get("text", "")))})
    raise ValueError(f"format {fmt!r} carries no notices (only {', '.join(NOTICE_FORMATS)})")
