"""The future rule's reference without a broker: the event time a raw record stands for (the window
rebuild's T_p), the raw topic's LogAppendTime in ``create_topics``, and the no-reference counter metric."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest
from prometheus_client import generate_latest

from finsentry.broker import LOG_APPEND_TIME_CONFIGS, TOPIC_CONFIGS, create_topics
from finsentry.daemon import DaemonStats
from finsentry.ops import _metrics
from ingest import HEARTBEAT_KEY, LOG_APPEND_TIME, NewsItem, heartbeat_value, ingestion_ms, record_event_ms

T0 = datetime(2021, 6, 1, 12, 0, tzinfo=timezone.utc)
T0_MS = int(T0.timestamp() * 1000)
APPENDED_MS = T0_MS + 3_600_000  # ingested an hour after T0


@dataclass
class Rec:
    value: bytes | None
    timestamp: int = APPENDED_MS
    timestamp_type: int = LOG_APPEND_TIME
    key: bytes | None = None
    topic: str = "news.raw"
    partition: int = 0
    offset: int = 0


def _item(minutes: float, **extra: object) -> NewsItem:
    return NewsItem(id="i", source="t", published_at=T0 + timedelta(minutes=minutes), title="Acme", **extra)


def test_ingestion_time_is_ingested_at_else_the_append_time_else_none() -> None:
    assert ingestion_ms(_item(0, ingested_at=T0), Rec(None)) == T0_MS
    assert ingestion_ms(_item(0), Rec(None)) == APPENDED_MS
    assert ingestion_ms(_item(0), Rec(None, timestamp_type=0)) is None  # CreateTime: the producer's choice


def test_record_event_time_is_published_at_not_the_append_time() -> None:
    """A historical item replayed into a LogAppendTime topic stands for its published time, so a window
    rebuild after a restart does not set the partition's watermark to the wall clock."""
    assert record_event_ms(Rec(_item(0).to_json())) == T0_MS
    assert record_event_ms(Rec(heartbeat_value(T0_MS - 5), key=HEARTBEAT_KEY)) == T0_MS - 5


def test_record_event_time_of_a_future_item_is_its_ingestion_time() -> None:
    future = _item(80 * 365 * 24 * 60)
    assert record_event_ms(Rec(future.to_json())) == APPENDED_MS
    ingested = _item(80 * 365 * 24 * 60, ingested_at=T0)
    assert record_event_ms(Rec(ingested.to_json(), timestamp=future.published_ms, timestamp_type=0)) == T0_MS


def test_record_event_time_falls_back_to_the_record_timestamp() -> None:
    assert record_event_ms(Rec(b"not json")) == APPENDED_MS
    created = _item(0)
    assert record_event_ms(Rec(created.to_json(), timestamp=created.published_ms + 7, timestamp_type=0)) == (
        created.published_ms + 7)  # CreateTime without ingested_at: as before, the producer's timestamp


def test_create_topics_gives_log_append_time_only_to_the_topics_named() -> None:
    assert LOG_APPEND_TIME_CONFIGS == {"message.timestamp.type": "LogAppendTime"}
    assert "message.timestamp.type" not in TOPIC_CONFIGS  # the scored topic keeps CreateTime
    with pytest.raises(ValueError, match="log_append_time"):
        create_topics("127.0.0.1:1", {"news.raw": 1}, log_append_time={"news.raw2"})  # fails before any I/O


def test_the_no_reference_counter_is_served() -> None:
    source = _metrics.MetricSource(lambda: DaemonStats(alerts=deque()), lambda: 0, dict, lambda: ("v", "cpu", "/m"),
                                   without_time_reference=lambda: 3)
    body = generate_latest(_metrics.DaemonMetrics(source).registry).decode()
    assert "finsentry_items_without_time_reference_total 3.0" in body
    plain = _metrics.MetricSource(lambda: DaemonStats(), lambda: 0, dict, lambda: ("v", "cpu", "/m"))
    assert "finsentry_items_without_time_reference_total 0.0" in generate_latest(
        _metrics.DaemonMetrics(plain).registry).decode()
