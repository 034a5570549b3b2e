"""Event-time sanity, ingestion times and heartbeat records.

Timestamp rule (``check_event_time``)
    An item's ``published_at`` is *future* when it is more than
    ``max_future_ms`` after the item's ingestion time (``ingestion_ms``):
    ``NewsItem.ingested_at`` when the producer set it, else the Kafka record
    timestamp when the topic stamps records at append (``timestamp_type ==
    1``, ``message.timestamp.type=LogAppendTime``). finsentry creates its raw
    topic with LogAppendTime (``finsentry.broker.create_topics``), so every
    record of it has a reference, whoever produced it. A future item is
    scored and written to the scored topic with ``time_flag="future"``, but
    is not windowed and does not move the watermark; it goes to the
    late-events output. With no reference (a raw topic created with
    CreateTime, by hand, and no ``ingested_at``) the item cannot be judged:
    it is windowed like any item, and the pipeline counts it
    (``Pipeline.without_time_reference``, metric
    ``finsentry_items_without_time_reference_total``) and logs one warning
    per topic. A replay of a historical feed never meets the rule (its
    published times are before its ingestion), so replays stay
    deterministic. Unparseable and naive timestamps never get this far:
    ``NewsItem`` rejects them and the record is dead-lettered (``invalid``).

Heartbeats
    A heartbeat is a record in the raw topic with key ``HEARTBEAT_KEY`` and
    value ``{"heartbeat_ms": T}`` (epoch ms UTC): "this partition holds
    nothing more with event time before T". The replay writes one into every
    partition each ``heartbeat_every_ms`` of *feed* time, and ``finsentry
    heartbeat`` writes them on the wall clock for a live topic; the window
    operator treats T like an item's event time. Because heartbeats are in
    the log, replaying the log at any speed yields the same watermarks.

Event time of a record (``record_event_ms``)
    The time a raw-topic record stands for when a point is taken from the log
    (``finsentry.rebuild``: the last committed record of a partition): a
    heartbeat's T; an item's ``published_at``, but never after its ingestion
    time when it has one; otherwise, and for a record that does not decode,
    the record timestamp (the append time with LogAppendTime; with CreateTime
    the producer's time, ``published_at`` for finsentry's producers).
"""

from __future__ import annotations

import json

from ingest._decode import DeadLetter, RecordLike, decode_record
from ingest._item import NewsItem

__all__ = [
    "HEARTBEAT_KEY",
    "LOG_APPEND_TIME",
    "check_event_time",
    "heartbeat_value",
    "ingestion_ms",
    "parse_heartbeat",
    "record_event_ms",
]

#: Kafka key of heartbeat records (a NUL-prefixed name no ticker or source can have).
HEARTBEAT_KEY: bytes = b"\x00finsentry-heartbeat"
#: A record's ``timestamp_type`` when the broker set its timestamp at append (``LogAppendTime``; 0 is CreateTime).
LOG_APPEND_TIME: int = 1


def check_event_time(published_ms: int, ingested_ms: int | None, max_future_ms: int) -> str | None:
    """``"future"`` when ``published_ms`` is more than ``max_future_ms`` after ``ingested_ms``, else None.

    All arguments are epoch ms UTC (``max_future_ms`` a duration, >= 0);
    ``ingested_ms=None`` (no reference) gives None.
    """
    if ingested_ms is not None and published_ms - ingested_ms > max_future_ms:
        return "future"
    return None


def ingestion_ms(item: NewsItem, record: RecordLike) -> int | None:
    """The reference of the future rule for ``item`` read from ``record``, epoch ms UTC, or None.

    ``item.ingested_at`` when set, else the record timestamp when the record
    was stamped at append (``timestamp_type == LOG_APPEND_TIME``), else None
    (a CreateTime record's timestamp is whatever its producer chose; finsentry's
    set it to ``published_at``, so it is no reference).
    """
    if item.ingested_at is not None:
        return int(item.ingested_at.timestamp() * 1000)
    if getattr(record, "timestamp_type", None) == LOG_APPEND_TIME:
        return int(record.timestamp)
    return None


def record_event_ms(record: RecordLike) -> int:
    """The event time (epoch ms UTC) a raw-topic record stands for; see the module docstring.

    A heartbeat gives its T. An item gives ``min(published_at, ingestion time)``
    when it has an ingestion time (``ingestion_ms``): a future-dated item
    stands for no time after its ingestion. Otherwise, and for a record that
    does not decode, the record timestamp: the append time (LogAppendTime),
    or the producer's time (CreateTime, ``published_at`` for finsentry's
    producers).
    """
    beat = parse_heartbeat(record.key, record.value)
    if beat is not None:
        return beat
    item = decode_record(record)
    if isinstance(item, DeadLetter):
        return int(record.timestamp)
    reference = ingestion_ms(item, record)
    return int(record.timestamp) if reference is None else min(item.published_ms, reference)


def heartbeat_value(event_ms: int) -> bytes:
    """The value of a heartbeat record for event time ``event_ms`` (epoch ms UTC)."""
    return json.dumps({"heartbeat_ms": int(event_ms)}).encode()


def parse_heartbeat(key: bytes | None, value: bytes | None) -> int | None:
    """The heartbeat time (epoch ms UTC) of a record, or None when it is not a heartbeat.

    A record with ``HEARTBEAT_KEY`` whose value is not ``{"heartbeat_ms": int}``
    is not a heartbeat (it is decoded, and dead-lettered, like any record).
    """
    if key != HEARTBEAT_KEY or value is None:
        return None
    try:
        doc = json.loads(value)
    except ValueError:
        return None
    ms = doc.get("heartbeat_ms") if isinstance(doc, dict) else None
    return ms if isinstance(ms, int) and not isinstance(ms, bool) else None
