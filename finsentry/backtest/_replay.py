"""In-process replay: feed items through :class:`finsentry.pipeline.Pipeline` as Kafka-like records.

The items become plain records (partition 0, offsets in event-time order,
value = the NewsItem JSON the ``finsentry replay`` command produces, record
timestamp = the replay's start on the wall clock, stamped as LogAppendTime
like the raw topic finsentry creates: the reference of the future rule, which
a historical feed never meets), so the backtest decodes, scores, windows and
detects with the daemon's own code: ``Pipeline.process`` per micro-batch of
``batch.max_batch`` records, then ``Pipeline.close_windows``, as the daemon's
loop does. After the last batch the one partition is declared idle, which
closes every window the final watermark (last event time minus the allowed
lateness) has passed; windows past it stay open, as they would in the
daemon, and are counted in ``ReplayOutcome.open_windows``.

:func:`replay_scored` is the fast path for sweeps and re-runs over cached
scores: it skips decoding and scoring (already done, identically, by
:func:`replay_in_process`) and drives the same pipeline's windows exactly as
``Pipeline.process`` does (``windows.add_item(partition, item)``, late and
future-flagged items counted, the latter not windowed) and closes them with ``Pipeline.close_windows``, batch by batch.
A unit test holds it to producing the same alerts as the full path.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from alerts import Alert
from finsentry.pipeline import Pipeline
from inference import ScoredItem
from ingest import LOG_APPEND_TIME, DeadLetter, NewsItem, record_key

__all__ = ["FeedRecord", "ReplayOutcome", "alert_sort_key", "feed_records", "replay_in_process", "replay_scored"]


@dataclass(frozen=True, slots=True)
class FeedRecord:
    """A raw-topic record built from a feed item (fits ``ingest.RecordLike``).

    Attributes:
        topic, partition, offset: where the record "was" read (``backtest``, 0, running count).
        timestamp: ingestion (append) time, epoch ms UTC.
        key: primary ticker, else source (``ingest.record_key``).
        value: the NewsItem JSON (UTF-8).
        timestamp_type: ``ingest.LOG_APPEND_TIME``, as in the raw topic finsentry creates.
    """

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    timestamp_type: int = LOG_APPEND_TIME


def feed_records(items: Iterable[NewsItem], topic: str = "backtest", appended_ms: int | None = None) -> list[FeedRecord]:
    """One record per item, partition 0, offsets 0..n-1 in the given (event-time) order.

    Every record is stamped ``appended_ms`` (epoch ms UTC; default: now on the
    wall clock), its ingestion time, as a broker stamps the raw topic's records.
    """
    at = int(time.time() * 1000) if appended_ms is None else int(appended_ms)
    return [
        FeedRecord(topic, 0, offset, at, record_key(item), item.to_json())
        for offset, item in enumerate(items)
    ]


@dataclass
class ReplayOutcome:
    """What one replay through the pipeline produced.

    Attributes:
        scored: scored items in processing order.
        dead: records that could not be decoded or scored.
        late: items rejected by the windows as late.
        windows_closed: (key, window) pairs closed (``EventTimeWindows.closed_count``).
        alerts: alerts, ordered by :func:`alert_sort_key`.
        open_windows: windows still open at the end (never closed, as in the daemon).
    """

    scored: list[ScoredItem] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    late: int = 0
    windows_closed: int = 0
    alerts: list[Alert] = field(default_factory=list)
    open_windows: int = 0


def alert_sort_key(alert: Alert) -> tuple[object, ...]:
    """Deterministic alert order: window start, key type, key, rule, id."""
    return (alert.window_start, alert.key_type, alert.key, alert.rule, alert.alert_id)


def replay_in_process(
    records: Sequence[FeedRecord],
    pipeline: Pipeline,
    batch_size: int,
    on_batch: Callable[[int], None] | None = None,
) -> ReplayOutcome:
    """Run ``records`` through ``pipeline`` in micro-batches of ``batch_size``.

    Args:
        records: records of partition 0 in event-time order (:func:`feed_records`).
        pipeline: a fresh pipeline (``finsentry.daemon.build_pipeline``); its
            window state is consumed.
        batch_size: records per ``Pipeline.process`` call (the daemon's ``batch.max_batch``).
        on_batch: called with each batch's size (progress bars).

    Returns:
        The outcome; ``alerts`` sorted by :func:`alert_sort_key`.

    Raises:
        ValueError: ``batch_size < 1``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    out = ReplayOutcome()
    for start in range(0, len(records), batch_size):
        chunk = records[start:start + batch_size]
        batch = pipeline.process(chunk)
        out.scored.extend(s for _, s in batch.scored)
        out.dead.extend(batch.dead)
        out.late += len(batch.late)
        _close(pipeline, out, ())
        if on_batch is not None:
            on_batch(len(chunk))
    return _finish(pipeline, out)


def replay_scored(
    scored: Sequence[ScoredItem],
    pipeline: Pipeline,
    batch_size: int,
    on_batch: Callable[[int], None] | None = None,
) -> ReplayOutcome:
    """Window already-scored items (partition 0, in order) and run the detector, batch by batch.

    Args:
        scored: the scored items of an earlier replay (``ReplayOutcome.scored``), in its order.
        pipeline: a fresh pipeline; only its windows and ``close_windows`` are used.
        batch_size: items between two ``close_windows`` calls, like the records per batch.
        on_batch: called with each batch's size.

    Returns:
        The outcome (``scored`` is the input, ``dead`` empty).

    Raises:
        ValueError: ``batch_size < 1``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    out = ReplayOutcome(scored=list(scored))
    add_item = pipeline.windows.add_item
    for start in range(0, len(scored), batch_size):
        chunk = scored[start:start + batch_size]
        for item in chunk:
            if item.time_flag == "future" or add_item(0, item) is not None:  # as Pipeline._window
                out.late += 1
        _close(pipeline, out, ())
        if on_batch is not None:
            on_batch(len(chunk))
    return _finish(pipeline, out)


def _finish(pipeline: Pipeline, out: ReplayOutcome) -> ReplayOutcome:
    """End of the feed: close what the watermark allows with the partition idle, sort the alerts."""
    _close(pipeline, out, (0,))
    out.alerts.sort(key=alert_sort_key)
    out.open_windows = pipeline.windows.open_windows
    out.windows_closed = pipeline.windows.closed_count
    return out


def _close(pipeline: Pipeline, out: ReplayOutcome, idle: tuple[int, ...]) -> None:
    _, alerts = pipeline.close_windows(idle)
    out.alerts.extend(alerts)
