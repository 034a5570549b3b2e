"""Reading a whole topic back (demo output, tests, tools)."""

from __future__ import annotations

import time
from pathlib import Path

from kafka import KafkaConsumer, TopicPartition

__all__ = ["read_topic", "dump_topic"]


def read_topic(bootstrap: str, topic: str, timeout_s: float = 30.0) -> list[tuple[int, int, bytes | None, bytes | None]]:
    """Every record of ``topic`` from the beginning up to the current log end.

    Uses no consumer group (nothing is committed).

    Returns:
        (partition, offset, key, value) tuples ordered by partition, offset.

    Raises:
        TimeoutError: the log end was not reached within ``timeout_s``.
    """
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return []
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        out: list[tuple[int, int, bytes | None, bytes | None]] = []
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < end[tp] for tp in tps):
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic}: log end not reached in {timeout_s} s")
            for records in consumer.poll(timeout_ms=500).values():
                out.extend((r.partition, r.offset, r.key, r.value) for r in records)
        return sorted(out, key=lambda r: (r[0], r[1]))
    finally:
        consumer.close()


def dump_topic(bootstrap: str, topic: str, path: Path) -> int:
    """Write every record value of ``topic`` as one line of ``path``; returns the count."""
    records = read_topic(bootstrap, topic)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        for _, _, _, value in records:
            fh.write((value or b"") + b"\n")
    return len(records)
