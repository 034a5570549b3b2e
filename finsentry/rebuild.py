"""Rebuild the open windows of newly assigned partitions from the scored topic.

After a restart or a rebalance the window state of a partition is gone
(it lives in memory). The daemon's rebalance listener (:class:`OnAssigned`)
notes newly assigned partitions; right after that poll, before its records
are windowed (and before their scored records are written), the daemon
rebuilds them (not inside the listener: a second consumer opened within
another consumer's poll can stall it):

1. for each newly assigned partition ``p`` of the raw topic, read the
   group's committed offset and the timestamp ``T_p`` of the last committed
   raw record (a partition the group never committed is skipped: it is
   consumed from its start anyway);
2. ``W = min_p T_p - allowed_lateness``: every window ending at or before
   ``W`` was decided before the restart (its alert, if any, is in the outbox);
3. seek partition ``p`` of the scored topic (the daemon writes each scored
   record to the partition number of its raw record; both topics have
   ``kafka.partitions`` partitions) by timestamp
   (``KafkaConsumer.offsets_for_times``) to ``S``, the start of the oldest
   window still open at ``W`` (``S = W - W % hop + hop - size``); a
   partition with no record at or after ``S`` (``offsets_for_times`` gives
   None) is skipped;
4. read up to the end offsets taken at the start and ``restore`` each item
   into its windows that end after ``W`` (items of the batch that was
   processed but not committed are restored too, and counted once when they
   are consumed again: stories are deduplicated per window); then the
   partition's watermark is set from ``T_p`` (a heartbeat), not from the
   restored items, so re-consumed items are not judged late.

Windows that then close give the same alert ids as before the restart (same
key, window start, rule), and the outbox ignores an (alert_id, status) it
already holds, so nothing is sent twice. Limits: the detector's baselines and
open episodes are rebuilt only from the windows re-read (an episode that
began before ``S`` may get a new id once), and items that were late before
the restart are not told apart from on-time ones.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass

from collections.abc import Callable

from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition

from alerts import EventTimeWindows
from inference import ScoredItem

__all__ = ["OnAssigned", "RebuildStats", "rebuild_windows"]

log = logging.getLogger(__name__)


class OnAssigned(ConsumerRebalanceListener):
    """A rebalance listener that calls ``callback(partition numbers)`` on each assignment.

    kafka-python calls it inside ``poll`` after the group join and before any
    record of the new assignment is returned.
    """

    def __init__(self, callback: Callable[[set[int]], None]) -> None:
        self._callback = callback

    def on_partitions_revoked(self, revoked: Collection[TopicPartition]) -> None:
        """Nothing to do: the windows of revoked partitions are simply not fed any more."""

    def on_partitions_assigned(self, assigned: Collection[TopicPartition]) -> None:
        """Call the callback with the assigned partition numbers."""
        self._callback({tp.partition for tp in assigned})


@dataclass
class RebuildStats:
    """What a rebuild read: ``restored`` items from ``partitions``, from ``since_ms`` (None: nothing to read)."""

    restored: int = 0
    partitions: int = 0
    since_ms: int | None = None
    closed_through_ms: int | None = None


def rebuild_windows(
    bootstrap: str,
    scored_topic: str,
    partitions: Collection[int],
    windows: EventTimeWindows,
    raw_topic: str,
    group_id: str,
    timeout_s: float = 30.0,
) -> RebuildStats:
    """Restore the open windows of ``partitions`` from ``scored_topic`` into ``windows``.

    Args:
        bootstrap: Kafka bootstrap servers.
        scored_topic: the scored topic.
        partitions: partition numbers to rebuild.
        windows: the window operator to restore into.
        raw_topic: the raw topic, whose committed offsets (of ``group_id``) mark what was processed.
        group_id: the daemon's consumer group.
        timeout_s: give up reading after this long (what was read is kept).

    Returns:
        What was restored.

    Raises:
        kafka.errors.KafkaError: the broker could not be asked.
    """
    stats = RebuildStats()
    if not partitions:
        return stats
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group_id, enable_auto_commit=False,
                             consumer_timeout_ms=int(timeout_s * 1000))
    try:
        committed_ts = _committed_timestamps(consumer, raw_topic, sorted(partitions))
        if not committed_ts:
            return stats
        closed_through = min(committed_ts.values()) - windows.allowed_lateness_ms
        since = closed_through - closed_through % windows.hop_ms + windows.hop_ms - windows.size_ms
        stats.since_ms, stats.closed_through_ms = since, closed_through
        tps = [TopicPartition(scored_topic, p) for p in committed_ts]
        consumer.assign(tps)
        ends = consumer.end_offsets(tps)
        found = consumer.offsets_for_times({tp: since for tp in tps})
        todo = {}
        for tp, hit in found.items():
            if hit is None or hit.offset >= ends[tp]:  # no record at or after `since` on this partition
                continue
            consumer.seek(tp, hit.offset)
            todo[tp] = ends[tp]
        consumer.assign(list(todo))
        for tp in todo:
            consumer.seek(tp, found[tp].offset)
        stats.partitions = len(todo)
        while todo:
            batch = consumer.poll(timeout_ms=1000)
            for tp, records in batch.items():
                for record in records:
                    if record.offset >= todo.get(tp, -1):
                        continue
                    item = ScoredItem.from_json(record.value)
                    if item.time_flag is None:
                        windows.restore(tp.partition, item, closed_through)
                        stats.restored += 1
            todo = {tp: end for tp, end in todo.items() if consumer.position(tp) < end}
            if not batch and todo and not consumer.assignment():
                break
    finally:
        consumer.close(autocommit=False)
    for partition, ts in committed_ts.items():
        windows.heartbeat(partition, ts)
    log.info("rebuilt windows of %d partitions from %s: %d items since %s", stats.partitions, scored_topic,
             stats.restored, stats.since_ms)
    return stats


def _committed_timestamps(consumer: KafkaConsumer, raw_topic: str, partitions: list[int]) -> dict[int, int]:
    """Timestamp (ms) of the last committed raw record of each partition the group has committed."""
    out: dict[int, int] = {}
    for p in partitions:
        tp = TopicPartition(raw_topic, p)
        offset = consumer.committed(tp)
        if not offset:
            continue
        consumer.assign([tp])
        consumer.seek(tp, offset - 1)
        for _ in range(10):
            records = consumer.poll(timeout_ms=1000).get(tp, [])
            if records:
                out[p] = records[0].timestamp
                break
    return out
