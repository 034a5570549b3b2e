"""The ScoredItem record: one NewsItem after the model has scored it.

It is the value of a record on the scored topic (``news.scored``) and the
input of the alerts stage.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

__all__ = ["ScoredItem", "SENTIMENT_LABELS"]

#: Sentiment label order of every finsentry model's ``sentiment_logits``.
SENTIMENT_LABELS: tuple[str, str, str] = ("negative", "neutral", "positive")


class ScoredItem(BaseModel):
    """Model output for one news item.

    Attributes:
        item_id: the NewsItem id (idempotency key).
        source: the NewsItem source.
        published_at: event time, tz-aware UTC.
        tickers: the item's tickers, primary first (may be empty).
        title: the headline, kept so that alerts can quote their evidence.
        p_negative, p_neutral, p_positive: softmax probabilities, sum to 1.
        label: argmax of the three, one of ``SENTIMENT_LABELS``.
        score: ``p_positive - p_negative`` in [-1, 1].
        topic: argmax topic label, ``None`` when the model has no topic head.
        topic_p: probability of ``topic`` (0 when there is none).
        truncated: True when the text was cut to the model's max length.
        model_version: version of the model folder that scored the item.
        ticker_sources: where each ticker came from, parallel to ``tickers``:
            ``feed``, ``cashtag`` or ``alias`` (empty: not recorded).
        novel: False when the same story (``alerts.story_key``) was already
            scored within the novelty horizon (see ``finsentry.pipeline``).
        time_flag: ``"future"`` when the event time is not trusted (see
            ``ingest.check_event_time``), else None.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    item_id: str
    source: str
    published_at: datetime
    tickers: tuple[str, ...] = ()
    title: str = ""
    p_negative: float
    p_neutral: float
    p_positive: float
    label: str
    score: float
    topic: str | None = None
    topic_p: float = 0.0
    truncated: bool = False
    model_version: str
    ticker_sources: tuple[str, ...] = ()
    novel: bool = True
    time_flag: str | None = None

    @field_validator("published_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("published_at must be timezone-aware")
        return value.astimezone(timezone.utc)

    @functools.cached_property
    def published_ms(self) -> int:
        """Event time in integer ms since the Unix epoch (UTC); computed once per item (the windows,
        the time checks and the scored record's timestamp all read it)."""
        return int(self.published_at.timestamp() * 1000)

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> "ScoredItem":
        """``BaseModel.model_copy``; a copy with a new ``published_at`` computes its ``published_ms`` again."""
        copy = super().model_copy(update=update, deep=deep)
        if update and "published_at" in update:
            copy.__dict__.pop("published_ms", None)
        return copy

    def to_json(self) -> bytes:
        """UTF-8 JSON bytes (the scored-topic record value)."""
        return self.model_dump_json().encode("utf-8")

    @classmethod
    def from_json(cls, raw: bytes | str) -> "ScoredItem":
        """Decode a scored-topic record value.

        Raises:
            pydantic.ValidationError: when the value is not a valid ScoredItem.
        """
        return cls.model_validate_json(raw)
