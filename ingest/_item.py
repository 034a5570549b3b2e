"""The NewsItem record: the unit that flows through finsentry.

A NewsItem is one piece of news (an article, a wire headline, a tweet) as it
travels on the raw topic. Its JSON form is the value of a Kafka record;
``published_at`` is its *event time* and is always a timezone-aware UTC
datetime.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ingest._errors import DecodeError

__all__ = ["NewsItem", "make_item_id"]


def make_item_id(source: str, published_at: datetime, title: str) -> str:
    """Derive a stable item id for feeds that carry none.

    The id is the first 20 hex digits of SHA-256 over
    ``source | published_at (ISO 8601 UTC) | title``, so replaying the same
    feed twice yields the same ids (the id is the item's idempotency key).

    >>> from datetime import datetime, timezone
    >>> make_item_id("cnbc", datetime(2020, 7, 17, 23, 51, tzinfo=timezone.utc), "Stocks rally")
    '51cf6ce903e4d9f4ea95'
    """
    stamp = published_at.astimezone(timezone.utc).isoformat()
    digest = hashlib.sha256(f"{source}|{stamp}|{title}".encode()).hexdigest()
    return digest[:20]


class NewsItem(BaseModel):
    """One news item.

    Attributes:
        id: idempotency key of the item (unique per item, stable across replays).
        source: where it came from (``benzinga``, ``cnbc``, ``reuters``, ...).
        published_at: event time, timezone-aware, normalised to UTC. A naive
            datetime is rejected rather than guessed.
        title: headline text (may be empty when ``body`` is not).
        body: article text or preview, ``""`` when the feed has none.
        url: link to the item, if known.
        tickers: upper-case ticker symbols the item is about, primary first.
        ingested_at: when the item was fetched (aware UTC), if the producer
            knows; the reference of the future-timestamp rule
            (``ingest.check_event_time``).

    Raises:
        pydantic.ValidationError: on construction with bad fields.
    """

    model_config = ConfigDict(frozen=True, extra="ignore", str_strip_whitespace=True)

    id: str = Field(min_length=1, max_length=256)
    source: str = Field(min_length=1, max_length=128)
    published_at: datetime
    title: str = Field(default="", max_length=10_000)
    body: str = Field(default="", max_length=200_000)
    url: str | None = Field(default=None, max_length=4096)
    tickers: tuple[str, ...] = ()
    ingested_at: datetime | None = None

    @field_validator("published_at", "ingested_at")
    @classmethod
    def _aware_utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
            raise ValueError("times must carry a timezone offset (naive times are not guessed as UTC)")
        return value.astimezone(timezone.utc)

    @field_validator("tickers", mode="before")
    @classmethod
    def _upper_tickers(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [value]
        if isinstance(value, (list, tuple)):
            out: list[str] = []
            for t in value:
                if not isinstance(t, str):
                    raise ValueError("tickers must be strings")
                t = t.strip().upper()
                if t and t not in out:
                    out.append(t)
            return tuple(out)
        return value

    @property
    def primary_ticker(self) -> str | None:
        """The first ticker, or ``None`` when the item names none."""
        return self.tickers[0] if self.tickers else None

    @property
    def published_ms(self) -> int:
        """Event time as integer milliseconds since the Unix epoch (UTC)."""
        return int(self.published_at.timestamp() * 1000)

    def to_json(self) -> bytes:
        """Encode as UTF-8 JSON bytes (the Kafka record value)."""
        return self.model_dump_json().encode("utf-8")

    @classmethod
    def from_json(cls, raw: bytes | str | None) -> "NewsItem":
        """Decode and validate a Kafka record value.

        Raises:
            DecodeError: with a short machine-readable ``reason``
                (``not_utf8``, ``not_json``, ``not_object``, ``invalid``) and
                a human-readable ``detail``.
        """
        if raw is None:
            raise DecodeError("empty", "record has no value")
        if isinstance(raw, bytes):
            try:
                raw = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DecodeError("not_utf8", str(exc)) from None
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise DecodeError("not_json", str(exc)) from None
        except RecursionError:  # e.g. "[" * 100000: a poison pill that would crash every restart
            raise DecodeError("not_json", "JSON nested too deeply") from None
        if not isinstance(obj, dict):
            raise DecodeError("not_object", f"expected a JSON object, got {type(obj).__name__}")
        try:
            return cls.model_validate(obj)
        except ValidationError as exc:
            parts = [f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors()]
            raise DecodeError("invalid", "; ".join(parts)[:2000]) from None
