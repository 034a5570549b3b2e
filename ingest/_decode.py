"""Decoding Kafka records into NewsItems, and dead letters for those that fail."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any, Protocol

from ingest._errors import DecodeError
from ingest._item import NewsItem

__all__ = ["DeadLetter", "MAX_DEAD_VALUE_BYTES", "RecordLike", "decode_record"]

#: Largest original value copied into a dead letter, bytes. Base64 makes it 4/3 larger, and the
#: producer refuses requests over 1 MiB (``max_request_size``): a near-1 MiB bad record copied whole
#: would fail every retry and stop the daemon. The full record stays in the raw topic (partition, offset).
MAX_DEAD_VALUE_BYTES = 512 * 1024
_MAX_DETAIL_CHARS = 2000


class RecordLike(Protocol):
    """What finsentry reads from a Kafka record (kafka-python's ConsumerRecord fits)."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True)
class DeadLetter:
    """A record that could not be turned into a scored item, with the reason.

    Attributes:
        reason: machine-readable cause (``not_json``, ``invalid``, ``empty_text``, ...).
        detail: human-readable explanation.
        topic, partition, offset: where the original record is.
        timestamp_ms: the original record's timestamp (ms since epoch, UTC).
        key, value: the original bytes (may be ``None``).
    """

    reason: str
    detail: str
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None

    def to_json(self) -> bytes:
        """JSON for the dead-letter topic; the original bytes travel as base64.

        A value over ``MAX_DEAD_VALUE_BYTES`` is cut to that size
        (``value_truncated`` true; ``value_size`` is the original size in bytes).
        """
        value = self.value if self.value is None else self.value[:MAX_DEAD_VALUE_BYTES]
        body: dict[str, Any] = {
            "reason": self.reason,
            "detail": self.detail[:_MAX_DETAIL_CHARS],
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "timestamp_ms": self.timestamp_ms,
            "key_b64": base64.b64encode(self.key).decode() if self.key is not None else None,
            "value_b64": base64.b64encode(value).decode() if value is not None else None,
            "value_size": len(self.value) if self.value is not None else None,
            "value_truncated": self.value is not None and len(self.value) > MAX_DEAD_VALUE_BYTES,
            "value_preview": (self.value or b"")[:500].decode("utf-8", errors="replace"),
        }
        return json.dumps(body, sort_keys=True).encode()

    @classmethod
    def of(cls, record: RecordLike, reason: str, detail: str) -> "DeadLetter":
        """The dead letter for ``record`` with ``reason`` and ``detail``."""
        return cls(
            reason=reason,
            detail=detail,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            timestamp_ms=record.timestamp,
            key=record.key,
            value=record.value,
        )


def decode_record(record: RecordLike) -> NewsItem | DeadLetter:
    """Decode one raw-topic record.

    Returns:
        the validated NewsItem, or a DeadLetter carrying the reason, the
        partition and the offset. Never raises for bad input.
    """
    try:
        return NewsItem.from_json(record.value)
    except DecodeError as exc:
        return DeadLetter.of(record, exc.reason, exc.detail)
