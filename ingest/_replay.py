"""Replaying a historical feed into the raw topic."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from kafka import KafkaProducer

from ingest._item import NewsItem

__all__ = ["ReplayStats", "replay_items", "record_key"]


def record_key(item: NewsItem) -> bytes:
    """Kafka key of an item: its primary ticker, else its source.

    Keying by ticker keeps each ticker's items on one partition, so one
    consumer owns a ticker's windows.
    """
    return (item.primary_ticker or item.source).encode("utf-8")


@dataclass
class ReplayStats:
    """What a replay sent: ``sent`` records in ``seconds`` wall time."""

    sent: int = 0
    seconds: float = 0.0


def replay_items(
    items: Iterable[NewsItem],
    producer: KafkaProducer,
    topic: str,
    speed: float | None = None,
    on_sent: Callable[[int], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> ReplayStats:
    """Produce items to ``topic`` keyed by ticker, record timestamp = published_at.

    Args:
        items: items in event-time order (``read_feed`` sorts them).
        producer: a kafka-python producer with bytes keys/values.
        topic: the raw topic.
        speed: ``None`` = as fast as possible; otherwise a speed factor
            (``60`` = one hour of feed time per minute of wall time).
        on_sent: called with the running count after each item (progress bars).
        sleep: injectable for tests.

    Returns:
        ReplayStats after ``producer.flush()``.

    Raises:
        ValueError: ``speed`` is not positive.
        kafka.errors.KafkaError: the broker rejected a record.
    """
    if speed is not None and speed <= 0:
        raise ValueError(f"speed must be > 0, got {speed}")
    stats = ReplayStats()
    start_wall = time.monotonic()
    first_ms: int | None = None
    for item in items:
        if speed is not None:
            first_ms = item.published_ms if first_ms is None else first_ms
            due = (item.published_ms - first_ms) / 1000.0 / speed
            delay = due - (time.monotonic() - start_wall)
            if delay > 0:
                sleep(delay)
        producer.send(topic, key=record_key(item), value=item.to_json(), timestamp_ms=item.published_ms)
        stats.sent += 1
        if on_sent is not None:
            on_sent(stats.sent)
    producer.flush()
    stats.seconds = time.monotonic() - start_wall
    return stats
