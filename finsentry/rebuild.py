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
2. ``W_p``, the point up to which the partition's windows were decided:
   the committing daemon writes its operator watermark into the commit's
   metadata (:func:`commit_metadata`; it closes windows and commits in the
   same loop turn, and re-commits when its watermark moves without new
   records), so every window ending at or before ``W_p`` was closed by it
   (its alert, if any, is in that daemon's outbox) and none after it; for
   commits without that metadata, ``W_p = min_p T_p - allowed_lateness``;
3. seek partition ``p`` of the scored topic (the daemon writes each scored
   record to the partition number of its raw record; both topics have
   ``kafka.partitions`` partitions) by timestamp
   (``KafkaConsumer.offsets_for_times``) to ``S``, the start of the oldest
   window still open at ``W_p`` (``S = W - W % hop + hop - size``); a
   partition with no record at or after ``S`` (``offsets_for_times`` gives
   None) is skipped;
4. read up to the end offsets taken at the start and ``restore`` each item
   into its windows that end after ``W_p`` (items of the batch that was
   processed but not committed are restored too, and counted once when they
   are consumed again: stories are deduplicated per window); then the
   partition's watermark is set from ``T_p`` (a heartbeat), not from the
   restored items, so re-consumed items are not judged late.

Windows that then close give the same alert ids as before the restart (same
key, window start, rule), and the outbox ignores an (alert_id, status) it
already holds, so nothing is sent twice. After a rebalance between daemons
(each with its own outbox), ``W_p`` keeps the new owner from closing a
window the old owner already closed; a ``kill -9`` between storing an alert
and committing can still let both send it once (see docs/operations.md).
Reading gives up after ``timeout_s`` (what was read is kept). Limits: the detector's baselines and
open episodes are rebuilt only from the windows re-read (an episode that
began before ``S`` may get a new id once), and items that were late before
the restart are not told apart from on-time ones.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition

from alerts import EventTimeWindows
from inference import ScoredItem

__all__ = ["OnAssigned", "RebuildStats", "commit_metadata", "rebuild_windows"]

log = logging.getLogger(__name__)


class OnAssigned(ConsumerRebalanceListener):
    """A rebalance listener that only notes what a rebalance changed; the daemon acts on it in its loop.

    kafka-python calls it inside ``poll`` (revoked before the group join,
    assigned after it and before any record of the new assignment is
    returned); opening consumers or touching the windows there could stall
    the poll, so it only calls back with partition numbers.

    Args:
        on_assigned: called with the assigned partition numbers (eager
            protocol: the whole new assignment).
        on_revoked: called with the revoked partition numbers (eager
            protocol: the whole old assignment, even those assigned again).
    """

    def __init__(self, on_assigned: Callable[[set[int]], None],
                 on_revoked: Callable[[set[int]], None] | None = None) -> None:
        self._on_assigned = on_assigned
        self._on_revoked = on_revoked

    def on_partitions_revoked(self, revoked: Collection[TopicPartition]) -> None:
        """Call ``on_revoked`` with the revoked partition numbers."""
        if self._on_revoked is not None:
            self._on_revoked({tp.partition for tp in revoked})

    def on_partitions_assigned(self, assigned: Collection[TopicPartition]) -> None:
        """Call ``on_assigned`` with the assigned partition numbers."""
        self._on_assigned({tp.partition for tp in assigned})


@dataclass
class RebuildStats:
    """What a rebuild read: ``restored`` items from ``partitions``, from ``since_ms`` (None: nothing to read).

    ``closed_through_ms`` is the lowest of the partitions' closed-through points.
    """

    restored: int = 0
    partitions: int = 0
    since_ms: int | None = None
    closed_through_ms: int | None = None
    timed_out: bool = False
    #: per partition, the end (ms) through which its windows were decided by the committer (from its metadata)
    decided_through: dict[int, int] = field(default_factory=dict)


#: Closed-through point of a partition whose committer had closed no window yet.
_NOTHING_CLOSED = -(2**62)


def commit_metadata(decided_through_ms: int | None) -> str:
    """The offset-commit metadata the daemon writes for a raw partition (JSON, ``{"watermark_ms": ...}``).

    Args:
        decided_through_ms: the end (epoch ms UTC) through which the
            partition's windows were decided (closed, alerts in the
            committing daemon's outbox) by the committer; None when it closed
            none. The partition's next owner rebuilds only the windows ending
            after it.
    """
    return json.dumps({"watermark_ms": decided_through_ms})


def _closed_through_from(metadata: str | None) -> tuple[bool, int | None]:
    """``(known, watermark)`` from a commit's metadata; ``known`` is False for commits without it."""
    try:
        doc = json.loads(metadata or "")
    except ValueError:
        return False, None
    if not isinstance(doc, dict) or "watermark_ms" not in doc:
        return False, None
    wm = doc["watermark_ms"]
    return (True, int(wm)) if isinstance(wm, int) else (True, None)


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
        timeout_s: give up reading after this long (what was read is kept; ``timed_out`` is set).

    Returns:
        What was restored.

    Raises:
        kafka.errors.KafkaError: the broker could not be asked.
    """
    stats = RebuildStats()
    if not partitions:
        return stats
    deadline = time.monotonic() + timeout_s
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group_id, enable_auto_commit=False)
    try:
        committed = _committed_points(consumer, raw_topic, sorted(partitions))
        if not committed:
            return stats
        closed = _closed_through(committed, windows.allowed_lateness_ms)
        since = {p: max(0, c - c % windows.hop_ms + windows.hop_ms - windows.size_ms) for p, c in closed.items()}
        stats.since_ms, stats.closed_through_ms = min(since.values()), min(closed.values())
        stats.decided_through = {p: c for p, c in closed.items() if c != _NOTHING_CLOSED}
        if stats.closed_through_ms == _NOTHING_CLOSED:
            stats.closed_through_ms = None
        todo = _seek_scored(consumer, scored_topic, since)
        stats.partitions = len(todo)
        stats.restored, stats.timed_out = _read_into(consumer, todo, windows, closed, deadline)
    finally:
        consumer.close(autocommit=False)
    for partition, (ts, _) in committed.items():
        windows.heartbeat(partition, ts)
    log.info("rebuilt windows of %d partitions from %s: %d items since %s%s", stats.partitions, scored_topic,
             stats.restored, stats.since_ms, " (timed out)" if stats.timed_out else "")
    return stats


def _closed_through(committed: dict[int, tuple[int, str | None]], lateness_ms: int) -> dict[int, int]:
    """Per partition, the end (ms) up to which its windows were decided by the committer.

    From the commit metadata (:func:`commit_metadata`) when present; for
    commits without it, ``min_p T_p - allowed_lateness`` (see the module docstring).
    """
    fallback = min(ts for ts, _ in committed.values()) - lateness_ms
    out: dict[int, int] = {}
    for p, (_, metadata) in committed.items():
        known, wm = _closed_through_from(metadata)
        out[p] = (wm if wm is not None else _NOTHING_CLOSED) if known else fallback
    return out


def _seek_scored(consumer: KafkaConsumer, scored_topic: str, since: dict[int, int]) -> dict[TopicPartition, int]:
    """Assign and seek the scored partitions to their ``since`` time; returns partition -> end offset to read to."""
    tps = [TopicPartition(scored_topic, p) for p in since]
    consumer.assign(tps)
    ends = consumer.end_offsets(tps)
    found = consumer.offsets_for_times({tp: since[tp.partition] for tp in tps})
    todo = {tp: ends[tp] for tp, hit in found.items() if hit is not None and hit.offset < ends[tp]}
    consumer.assign(list(todo))
    for tp in todo:
        consumer.seek(tp, found[tp].offset)
    return todo


def _read_into(consumer: KafkaConsumer, todo: dict[TopicPartition, int], windows: EventTimeWindows,
               closed: dict[int, int], deadline: float) -> tuple[int, bool]:
    """Read each partition up to its end offset, restoring on-time items; returns (restored, timed out)."""
    restored = 0
    while todo:
        if time.monotonic() > deadline:
            log.warning("window rebuild gave up before the end of %s", sorted(tp.partition for tp in todo))
            return restored, True
        for tp, records in consumer.poll(timeout_ms=500).items():
            for record in records:
                if record.offset >= todo.get(tp, -1):
                    continue
                item = ScoredItem.from_json(record.value)
                if item.time_flag is None:
                    windows.restore(tp.partition, item, closed[tp.partition])
                    restored += 1
        todo = {tp: end for tp, end in todo.items() if consumer.position(tp) < end}
    return restored, False


def _committed_points(consumer: KafkaConsumer, raw_topic: str,
                      partitions: list[int]) -> dict[int, tuple[int, str | None]]:
    """Per partition the group has committed: (timestamp ms of the last committed raw record, commit metadata)."""
    out: dict[int, tuple[int, str | None]] = {}
    for p in partitions:
        tp = TopicPartition(raw_topic, p)
        committed = consumer.committed(tp, metadata=True)
        if not committed or not committed.offset:
            continue
        consumer.assign([tp])
        consumer.seek(tp, committed.offset - 1)
        for _ in range(10):
            records = consumer.poll(timeout_ms=1000).get(tp, [])
            if records:
                out[p] = (records[0].timestamp, committed.metadata)
                break
    return out
