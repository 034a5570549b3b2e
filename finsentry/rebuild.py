"""Rebuild the open windows of newly assigned partitions from the scored topic.

After a restart or a rebalance the window state of a partition is gone
(it lives in memory). The daemon's rebalance listener (:class:`OnAssigned`)
notes newly assigned partitions; right after that poll, before its records
are windowed (and before their scored records are written), the daemon
rebuilds them (not inside the listener: a second consumer opened within
another consumer's poll can stall it):

1. for each newly assigned partition ``p`` of the raw topic, read the
   group's committed offset and the event time ``T_p`` of the last committed
   raw record (``ingest.record_event_ms``, not its LogAppendTime; a
   partition the group never committed is skipped: it is consumed from its
   start anyway);
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
   restored items, so re-consumed items are not judged late, unless they
   fall only in windows decided through ``W_p`` (the heartbeat is at least
   ``W_p + allowed_lateness``): those were decided without them.

Windows that then close give the same alert ids as before the restart (same
key, window start, rule), and the outbox ignores an (alert_id, status) it
already holds, so nothing is sent twice. After a rebalance between daemons
(each with its own outbox), ``W_p`` keeps the new owner from closing a
window the old owner already closed; a ``kill -9`` between storing an alert
and committing can still let both send it once (see docs/operations.md).
Reading gives up after ``timeout_s`` (what was read is kept).

Then the detector's state (:func:`rebuild_detector`): its baselines and open
episodes are a function of the windows closed through ``W``, so they are
rebuilt by replaying the partitions' scored items from
``detector.state_rebuild_hours`` before ``W`` (:class:`DetectorReplay`) and
adopted for the keys the daemon has no state for. An episode that was
firing before the restart goes on: no second firing alert, and its resolved
message carries the same id. Limits: baselines start from the prior that
many hours back, and items that were late before the restart are not told
apart from on-time ones.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition

from alerts import EventTimeWindows, SpikeDetector, ThresholdDetector
from inference import ScoredItem
from ingest import record_event_ms

__all__ = ["DetectorRebuildStats", "DetectorReplay", "OnAssigned", "RebuildStats", "commit_metadata", "rebuild_detector",
           "rebuild_windows", "replays_by_point"]

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

        def restore(partition: int, item: ScoredItem) -> bool:
            windows.restore(partition, item, closed[partition])
            return True

        stats.restored, stats.timed_out = _read_scored(consumer, todo, deadline, restore)
    finally:
        consumer.close(autocommit=False)
    for partition, (ts, _) in committed.items():  # decided through W_p: an item only in windows by W_p is late
        decided = closed.get(partition, _NOTHING_CLOSED)
        windows.heartbeat(partition, ts if decided == _NOTHING_CLOSED else max(ts, decided + windows.allowed_lateness_ms))
    log.info("rebuilt windows of %d partitions from %s: %d items since %s%s", stats.partitions, scored_topic,
             stats.restored, stats.since_ms, " (timed out)" if stats.timed_out else "")
    return stats


@dataclass
class DetectorRebuildStats:
    """What a detector rebuild replayed: ``items`` from ``since_ms`` through ``through_ms`` (epoch ms UTC).

    ``baselines`` and ``episodes`` count the keys whose state was taken,
    ``unsent_episodes`` the replayed episodes left out because their firing
    message was never sent; ``skipped`` says why nothing was taken (None when it was).
    """

    items: int = 0
    since_ms: int | None = None
    through_ms: int | None = None
    baselines: int = 0
    episodes: int = 0
    unsent_episodes: int = 0
    skipped: str | None = None
    #: ticker -> the partition its replayed items came from (the daemon forgets a key when its partition goes)
    ticker_partitions: dict[str, int] = field(default_factory=dict)


class DetectorReplay:
    """The detector state at the point some partitions' windows were decided, rebuilt from their scored items.

    Feed it the partitions' scored items in each partition's log order
    (``add``), then ``finish``. It windows every item dated in
    ``[since_ms, through_ms)`` exactly as the daemon did
    (``EventTimeWindows.add_item``, in fresh windows of ``windows``' shape);
    a later item is not windowed but moves its partition's watermark as it
    did live, so that an item the daemon judged late is late here too. It
    then closes the windows ending at or before ``through_ms`` and runs a
    fresh detector of ``detector``'s configuration over them (its alerts are
    discarded: they were the committing daemon's to send). ``since_ms`` is
    ``through_ms - hours``, rounded down to a multiple of the window size (the
    start of a window the baseline learns from).

    Args:
        detector: the detector whose configuration is copied (``fresh()``).
        windows: the window operator whose size, hop, lateness and key types are copied.
        partitions: the partitions replayed.
        through_ms: the end (epoch ms UTC) through which their windows were decided.
        hours: how far back from ``through_ms`` to start, hours, > 0.
    """

    def __init__(self, detector: SpikeDetector | ThresholdDetector, windows: EventTimeWindows,
                 partitions: Collection[int], through_ms: int, hours: float) -> None:
        self._detector = detector.fresh()
        self._windows = EventTimeWindows(windows.size_ms, windows.allowed_lateness_ms, windows.hop_ms,
                                         windows.key_types)
        self._windows.assign_partitions(partitions)
        self._partitions = sorted(partitions)
        self.through_ms = through_ms
        since = max(0, through_ms - round(hours * 3_600_000))
        self.since_ms = since - since % windows.size_ms
        #: the partition each ticker's items came from (ticker keys follow their partition)
        self.ticker_partitions: dict[str, int] = {}

    def add(self, partition: int, item: ScoredItem) -> bool:
        """Window one on-time item of ``partition``; False when it is outside ``[since_ms, through_ms)``."""
        t = item.published_ms
        if t >= self.through_ms:
            self._windows.heartbeat(partition, t)  # its event time moved the partition's watermark live too
            return False
        if t < self.since_ms:
            return False
        self._windows.add_item(partition, item)
        for ticker in item.tickers:
            self.ticker_partitions[ticker] = partition
        return True

    def finish(self) -> SpikeDetector | ThresholdDetector:
        """Close the windows ending at or before ``through_ms`` and return the detector that saw them."""
        for p in self._partitions:
            self._windows.heartbeat(p, self.through_ms + self._windows.allowed_lateness_ms)
        closed = [w for w in self._windows.advance((), self._detector.window_interest()) if w.end_ms <= self.through_ms]
        self._detector.evaluate_windows(closed, self.through_ms, self._windows.hop_ms)
        return self._detector


def replays_by_point(detector: SpikeDetector | ThresholdDetector, windows: EventTimeWindows,
                     decided_through: dict[int, int], hours: float) -> dict[int, DetectorReplay]:
    """One ``DetectorReplay`` per decided-through point (epoch ms UTC), over the partitions decided through it."""
    points: dict[int, list[int]] = {}
    for p, through in decided_through.items():
        points.setdefault(through, []).append(p)
    return {through: DetectorReplay(detector, windows, parts, through, hours) for through, parts in points.items()}


def rebuild_detector(
    bootstrap: str,
    scored_topic: str,
    decided_through: dict[int, int],
    detector: SpikeDetector | ThresholdDetector,
    windows: EventTimeWindows,
    hours: float,
    timeout_s: float = 60.0,
    sent: Callable[[Collection[str]], Collection[str] | None] | None = None,
) -> DetectorRebuildStats:
    """Rebuild the detector's baselines and open episodes for newly assigned partitions.

    The detector's state is a function of the windows it has seen, and those
    are a function of the scored topic, so the state is rebuilt by replaying
    the scored topic: partitions ``decided_through`` are read from ``hours``
    before their decided-through point (``offsets_for_times``) to their end,
    and their on-time items (``time_flag`` None) go through one
    ``DetectorReplay`` per decided-through point (partitions inherited from
    different owners, or a re-commit, can have different points: each is
    replayed up to its own). ``detector`` then adopts the replayed baselines
    and open episodes for the keys it has no state for
    (``SpikeDetector.adopt``), the most recent point first: an episode that
    was firing before the restart goes on (no second firing alert; its
    resolved message keeps its id), and baselines do not fall back to the
    prior. An open episode whose firing message ``sent`` does not report as
    sent (the group's alert claims) is not adopted: it began before the
    replayed span, so the replay gave it an id nobody sent; the daemon then
    decides it afresh.

    Exact when the replay reaches back to the start of every key's history;
    otherwise each baseline starts from the prior ``hours`` back instead of
    from the key's whole history (an EWMA forgets: with the default half-life
    of 24 learnt windows, 48 hours of hourly windows leave the older history
    a weight of about 1/4). ``market`` and ``topic`` keys are rebuilt from
    the partitions of each point separately. Items late before the restart
    are not told apart from on-time ones (as in ``rebuild_windows``).

    Args:
        bootstrap: Kafka bootstrap servers.
        scored_topic: the scored topic (partition numbers equal the raw topic's).
        decided_through: per partition, the end (epoch ms UTC) through which
            its windows were decided (``RebuildStats.decided_through``).
        detector: the daemon's detector, which adopts the rebuilt state.
        windows: the daemon's window operator (its size, hop, lateness and key types are copied).
        hours: how far back to replay, hours, > 0.
        timeout_s: give up after this long; a replay that did not reach its end is not adopted.
        sent: given message ids, those the group sent (claimed); None from it means "unknown" (every
            episode is adopted). None: every episode is adopted.

    Returns:
        What was replayed and taken.

    Raises:
        kafka.errors.KafkaError: the broker could not be asked.
    """
    stats = DetectorRebuildStats()
    if not detector.stateful or not decided_through or hours <= 0:
        stats.skipped = "nothing to rebuild"
        return stats
    replays = replays_by_point(detector, windows, decided_through, hours)
    of_partition = {p: replays[through] for p, through in decided_through.items()}
    stats.since_ms = min(r.since_ms for r in replays.values())
    stats.through_ms = max(replays)
    deadline = time.monotonic() + timeout_s
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    try:
        todo = _seek_scored(consumer, scored_topic, {p: of_partition[p].since_ms for p in decided_through})
        stats.items, timed_out = _read_scored(consumer, todo, deadline, lambda p, item: of_partition[p].add(p, item))
    finally:
        consumer.close(autocommit=False)
    if timed_out:
        stats.skipped = f"replay of {scored_topic} not finished in {timeout_s:.0f} s"
        log.warning("detector rebuild skipped: %s", stats.skipped)
        return stats
    for through in sorted(replays, reverse=True):
        replayed = replays[through].finish()
        stats.unsent_episodes += _drop_unsent(replayed, sent)
        baselines, episodes = detector.adopt(replayed)  # type: ignore[arg-type]
        stats.baselines, stats.episodes = stats.baselines + baselines, stats.episodes + episodes
        stats.ticker_partitions.update(replays[through].ticker_partitions)
    log.info("rebuilt detector state from %d items of %s (%s to %s): %d baselines, %d open episodes "
             "(%d not adopted: never sent)", stats.items, scored_topic, stats.since_ms, stats.through_ms,
             stats.baselines, stats.episodes, stats.unsent_episodes)
    return stats


def _drop_unsent(replayed: SpikeDetector | ThresholdDetector,
                 sent: Callable[[Collection[str]], Collection[str] | None] | None) -> int:
    """Forget the replayed open episodes whose firing message the group never sent; returns how many."""
    if sent is None or not isinstance(replayed, SpikeDetector) or not replayed.lifecycle.open_count:
        return 0
    episodes = replayed.lifecycle.open_episodes
    known = sent([ep.alert.message_id for ep in episodes.values()])
    if known is None:
        return 0
    unsent = [key for key, ep in episodes.items() if ep.alert.message_id not in known]
    replayed.lifecycle.forget(unsent)
    return len(unsent)


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


def _read_scored(consumer: KafkaConsumer, todo: dict[TopicPartition, int], deadline: float,
                 take: Callable[[int, ScoredItem], bool]) -> tuple[int, bool]:
    """Read each partition up to its end offset, passing on-time items (``time_flag`` None) to ``take``.

    Returns:
        ``(items take accepted, timed out)``.
    """
    taken = 0
    while todo:
        if time.monotonic() > deadline:
            log.warning("reading the scored topic gave up before the end of %s", sorted(tp.partition for tp in todo))
            return taken, True
        for tp, records in consumer.poll(timeout_ms=500).items():
            for record in records:
                if record.offset >= todo.get(tp, -1):
                    continue
                item = ScoredItem.from_json(record.value)
                if item.time_flag is None and take(tp.partition, item):
                    taken += 1
        todo = {tp: end for tp, end in todo.items() if consumer.position(tp) < end}
    return taken, False


def _committed_points(consumer: KafkaConsumer, raw_topic: str,
                      partitions: list[int]) -> dict[int, tuple[int, str | None]]:
    """Per partition the group has committed: (event time ms of the last committed raw record, commit metadata)."""
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
                out[p] = (record_event_ms(records[0]), committed.metadata)
                break
    return out
