"""The Alert record: what a detector emits and the webhook delivers.

The body carries no wall-clock value: an alert rebuilt from the same window
and rule is byte-identical (``to_json``), and so is every delivery attempt.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone
from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator

from ._result import Evidence, WindowResult

__all__ = ["Alert", "AlertStatus", "alert_id_for", "message_id_for"]

#: The two states of an alert; each is delivered as its own message.
AlertStatus = Literal["firing", "resolved"]

#: Detector statistics that a body carries only when set.
_OPTIONAL_STATS = ("severity", "baseline_share", "p_value", "effect_size")

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def alert_id_for(key_type: str, key: str, start_ms: int, rule: str) -> str:
    """The deterministic idempotency key of an alert.

    Args:
        key_type: e.g. ``"ticker"``.
        key: e.g. ``"AAPL"``.
        start_ms: window start, epoch ms UTC.
        rule: the detector's rule string.

    Returns:
        The first 24 hex digits of ``sha256(f"{key_type}|{key}|{start_ms}|{rule}")``.
    """
    raw = f"{key_type}|{key}|{start_ms}|{rule}".encode("utf-8")
    return hashlib.sha256(raw).hexdigest()[:24]


def message_id_for(alert_id: str, status: AlertStatus) -> str:
    """The message id (``webhook-id`` header) of one status of one alert.

    A firing message's id is the alert id itself (what receivers already
    deduplicate on); a resolved message's id is ``f"{alert_id}-resolved"``.
    Alert ids are hex digits, so the two can never collide.

    Raises:
        ValueError: when ``status`` is not ``"firing"`` or ``"resolved"``.
    """
    if status == "firing":
        return alert_id
    if status == "resolved":
        return f"{alert_id}-resolved"
    raise ValueError(f"unknown alert status {status!r}")


def _ms_to_utc(ms: int) -> datetime:
    # Integer arithmetic: exact to the ms, unlike datetime.fromtimestamp(ms / 1000).
    return _EPOCH + timedelta(milliseconds=ms)


class Alert(BaseModel):
    """One firing alert for one window of one key.

    Attributes:
        alert_id: idempotency key, see ``alert_id_for``; also the
            ``webhook-id`` header of every delivery.
        status: ``"firing"``, or ``"resolved"`` for the notification that the
            condition is over (same ``alert_id``, see ``resolved``).
        rule: the rule that fired, e.g. ``"neg_count>=5&neg_share>=0.6"``.
        key_type, key: what the window is keyed by, e.g. ``"ticker"``, ``"AAPL"``.
        window_start: window start, inclusive, tz-aware UTC.
        window_end: window end, exclusive, tz-aware UTC.
        n, n_negative, neg_share, mean_score: see ``WindowResult``.
        evidence: the most negative items of the window.
        model_versions: model versions that scored the window's items, sorted.
        severity: ``info`` / ``warning`` / ``critical`` from the effect size
            (``SpikeDetector``; None from ``ThresholdDetector``).
        baseline_share: the key's baseline negative share when it fired.
        p_value: one-sided exact binomial p-value of the negative count.
        effect_size: Cohen's h of ``neg_share`` against the baseline.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    alert_id: str
    status: AlertStatus = "firing"
    rule: str
    key_type: str
    key: str
    window_start: datetime
    window_end: datetime
    n: int
    n_negative: int
    neg_share: float
    mean_score: float
    evidence: tuple[Evidence, ...] = ()
    model_versions: tuple[str, ...] = ()
    severity: Literal["info", "warning", "critical"] | None = None
    baseline_share: float | None = None
    p_value: float | None = None
    effect_size: float | None = None

    @field_validator("window_start", "window_end")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("window bounds must be timezone-aware")
        return value.astimezone(timezone.utc)

    @classmethod
    def from_window(cls, window: WindowResult, rule: str) -> "Alert":
        """Build the firing alert of ``window`` for ``rule``.

        The result depends only on its arguments (same window and rule, same
        alert, same bytes).
        """
        return cls(
            alert_id=alert_id_for(window.key_type, window.key, window.start_ms, rule),
            rule=rule,
            key_type=window.key_type,
            key=window.key,
            window_start=_ms_to_utc(window.start_ms),
            window_end=_ms_to_utc(window.end_ms),
            n=window.n,
            n_negative=window.n_negative,
            neg_share=window.neg_share,
            mean_score=window.mean_score,
            evidence=window.evidence,
            model_versions=window.model_versions,
        )

    @property
    def message_id(self) -> str:
        """The id of this (alert, status) message: see ``message_id_for``."""
        return message_id_for(self.alert_id, self.status)

    def resolved(self) -> "Alert":
        """The resolved notification of this alert: same fields, ``status="resolved"``."""
        return self.model_copy(update={"status": "resolved"})

    def to_json(self) -> bytes:
        """Canonical UTF-8 JSON: sorted keys, compact separators, no NaN.

        Raises:
            ValueError: when a float field is NaN or infinite.
        """
        doc = self.model_dump(mode="json")
        for name in _OPTIONAL_STATS:  # unset statistics are left out (bodies of ThresholdDetector unchanged)
            if doc.get(name) is None:
                doc.pop(name, None)
        return json.dumps(
            doc,
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=False,
        ).encode("utf-8")

    @classmethod
    def from_json(cls, raw: bytes | str) -> "Alert":
        """Decode an alert body.

        Raises:
            pydantic.ValidationError: when ``raw`` is not a valid Alert.
        """
        return cls.model_validate_json(raw)
