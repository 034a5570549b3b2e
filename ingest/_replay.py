"""Replaying a historical feed into the raw topic."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Any

from kafka import KafkaProducer

from ingest._errors import IngestError
from ingest._item import NewsItem
from ingest._timestamps import HEARTBEAT_KEY, heartbeat_value

__all__ = ["ReplayError", "ReplayStats", "replay_items", "record_key"]


class ReplayError(IngestError):
    """The broker refused some of the replayed records."""


def record_key(item: NewsItem) -> bytes:
    """Kafka key of an item: its primary ticker, else its source.

    Keying by ticker keeps each ticker's items on one partition, so one
    consumer owns a ticker's windows.
    """
    return (item.primary_ticker or item.source).encode("utf-8")


@dataclass
class ReplayStats:
    """What a replay sent: ``sent`` items and ``heartbeats`` heartbeat records in ``seconds`` wall time."""

    sent: int = 0
    seconds: float = 0.0
    heartbeats: int = 0


def replay_items(
    items: Iterable[NewsItem],
    producer: KafkaProducer,
    topic: str,
    speed: float | None = None,
    on_sent: Callable[[int], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    heartbeat_every_ms: int | None = None,
    partitions: Collection[int] = (),
) -> ReplayStats:
    """Produce items to ``topic`` keyed by ticker, record timestamp = published_at.

    A raw topic finsentry created (LogAppendTime) replaces that timestamp by
    the broker's append time, the items' ingestion time (``ingest.check_event_time``).

    Args:
        items: items in event-time order (``read_feed`` sorts them).
        producer: a kafka-python producer with bytes keys/values.
        topic: the raw topic.
        speed: ``None`` = as fast as possible; otherwise a speed factor
            (``60`` = one hour of feed time per minute of wall time).
        on_sent: called with the running count after each item (progress bars).
        sleep: injectable for tests.
        heartbeat_every_ms: when set (> 0), before the first item at or past
            each multiple of this much *feed* time, and after the last item,
            write a heartbeat record (``ingest.HEARTBEAT_KEY``) carrying that
            item's event time into every partition in ``partitions``: the
            watermark then advances with the feed, whatever the speed.
        partitions: the topic's partitions (e.g. ``producer.partitions_for(topic)``).

    Returns:
        ReplayStats after ``producer.flush()``.

    Raises:
        ValueError: ``speed`` or ``heartbeat_every_ms`` is not positive.
        ReplayError: the broker refused records (e.g. a timestamp outside the
            topic's limits); the message gives the count and the first error.
    """
    if speed is not None and speed <= 0:
        raise ValueError(f"speed must be > 0, got {speed}")
    if heartbeat_every_ms is not None and heartbeat_every_ms <= 0:
        raise ValueError(f"heartbeat_every_ms must be > 0, got {heartbeat_every_ms}")
    beat_every = heartbeat_every_ms if partitions else None
    stats = ReplayStats()
    futures: list[Any] = []  # kafka-python FutureRecordMetadata, checked after the flush
    start_wall = time.monotonic()
    first_ms: int | None = None
    next_beat_ms: int | None = None
    last_ms: int | None = None
    for item in items:
        if speed is not None:
            first_ms = item.published_ms if first_ms is None else first_ms
            due = (item.published_ms - first_ms) / 1000.0 / speed
            delay = due - (time.monotonic() - start_wall)
            if delay > 0:
                sleep(delay)
        if beat_every is not None and (next_beat_ms is None or item.published_ms >= next_beat_ms):
            _heartbeat(producer, topic, partitions, item.published_ms, stats)
            next_beat_ms = item.published_ms - item.published_ms % beat_every + beat_every
        futures.append(producer.send(topic, key=record_key(item), value=item.to_json(),
                                     timestamp_ms=item.published_ms))
        last_ms = item.published_ms
        stats.sent += 1
        if on_sent is not None:
            on_sent(stats.sent)
    if beat_every is not None and last_ms is not None:
        _heartbeat(producer, topic, partitions, last_ms, stats)
    producer.flush()
    failed = [f for f in futures if getattr(f, "failed", lambda: False)()]
    if failed:
        raise ReplayError(f"the broker refused {len(failed)} of {len(futures)} records for {topic}: "
                          f"{failed[0].exception!r}")
    stats.seconds = time.monotonic() - start_wall
    return stats


def _heartbeat(producer: KafkaProducer, topic: str, partitions: Collection[int], event_ms: int, stats: ReplayStats) -> None:
    value = heartbeat_value(event_ms)
    for partition in sorted(partitions):
        producer.send(topic, key=HEARTBEAT_KEY, value=value, partition=partition, timestamp_ms=event_ms)
        stats.heartbeats += 1
