"""Event-time sanity and heartbeat records.

Timestamp rule (``check_event_time``)
    An item's ``published_at`` is *future* when it is more than
    ``max_future_ms`` after the item's ingestion time: ``NewsItem.ingested_at``
    when the producer set it, else the Kafka record timestamp when the topic
    stamps records at append (``timestamp_type == 1``, LogAppendTime). With
    neither, there is no reference and the item is not judged. A future item
    is scored and written to the scored topic with ``time_flag="future"``,
    but is not windowed and does not move the watermark; it goes to the
    late-events output. Unparseable and naive timestamps never get this far:
    ``NewsItem`` rejects them and the record is dead-lettered (``invalid``).

Heartbeats
    A heartbeat is a record in the raw topic with key ``HEARTBEAT_KEY`` and
    value ``{"heartbeat_ms": T}`` (epoch ms UTC): "this partition holds
    nothing more with event time before T". The replay writes one into every
    partition each ``heartbeat_every_ms`` of *feed* time, and ``finsentry
    heartbeat`` writes them on the wall clock for a live topic; the window
    operator treats T like an item's event time. Because heartbeats are in
    the log, replaying the log at any speed yields the same watermarks.
"""

from __future__ import annotations

import json

__all__ = ["HEARTBEAT_KEY", "check_event_time", "heartbeat_value", "parse_heartbeat"]

#: Kafka key of heartbeat records (a NUL-prefixed name no ticker or source can have).
HEARTBEAT_KEY: bytes = b"\x00finsentry-heartbeat"


def check_event_time(published_ms: int, ingested_ms: int | None, max_future_ms: int) -> str | None:
    """``"future"`` when ``published_ms`` is more than ``max_future_ms`` after ``ingested_ms``, else None.

    All arguments are epoch ms UTC (``max_future_ms`` a duration, >= 0);
    ``ingested_ms=None`` (no reference) gives None.
    """
    if ingested_ms is not None and published_ms - ingested_ms > max_future_ms:
        return "future"
    return None


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
