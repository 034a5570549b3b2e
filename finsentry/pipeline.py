"""The data path, stage by stage: decode → tickers → score → window → detect.

:class:`Pipeline` holds the stages and is free of Kafka, so the daemon (live)
and replays in process run the very same code. The daemon (``daemon.py``)
adds the Kafka edges: poll, produce scored records, late events and dead
letters, deliver alerts, commit.

Per record, in order:

1. a heartbeat record (``ingest.parse_heartbeat``) advances its partition's
   watermark and is not decoded;
2. ``ingest.decode_record`` → ``NewsItem`` or a dead letter;
3. an item without tickers gets them from cashtags and the alias table
   (``ingest.TickerExtractor``); the sources go into ``ticker_sources``;
4. the model scores it; ``novel`` is False when the same story
   (``alerts.story_key``) was scored in the previous ``novelty_horizon_ms``
   of event time (kept per pipeline: informational, it depends on the order
   partitions are read in; the window counts use their own per-window story
   dedup, which does not);
5. the event-time rule (``ingest.check_event_time``): a future-dated item is
   flagged (``time_flag="future"``), not windowed, and reported as a
   :class:`LateEvent` with reason ``future``. An item with no ingestion time
   to judge it by (``ingest.ingestion_ms`` is None: no ``ingested_at``, and a
   raw topic with CreateTime) is windowed unjudged, counted in
   :attr:`Pipeline.without_time_reference`, and the first one of each topic
   logs a warning;
6. ``windows.add_item``: a late item is reported as a :class:`LateEvent`
   with reason ``late`` and its lateness.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from alerts import (
    Alert,
    EventTimeWindows,
    EwmaBaseline,
    SpikeDetector,
    ThresholdDetector,
    WindowCounts,
    WindowResult,
    story_key,
)
from inference import ScoredItem, Scorer, Unscored
from ingest import (
    DeadLetter,
    NewsItem,
    RecordLike,
    TickerExtractor,
    check_event_time,
    decode_record,
    ingestion_ms,
    parse_heartbeat,
)

__all__ = ["BatchOutput", "LateEvent", "Pipeline", "build_detector", "build_windows"]

if TYPE_CHECKING:
    from finsentry.config import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LateEvent:
    """A scored item that was not windowed.

    Attributes:
        partition: the source partition.
        item: the scored item.
        reason: ``late`` (its windows had closed) or ``future`` (event time
            too far after its ingestion time).
        lateness_ms: for ``late``, how far (ms) the watermark was past its
            event time; for ``future``, how far (ms) its event time was past
            its ingestion time.
    """

    partition: int
    item: ScoredItem
    reason: str
    lateness_ms: int

    def to_json(self) -> bytes:
        """The late-events topic value: the scored item plus ``late_reason`` and ``lateness_ms``."""
        doc = self.item.model_dump(mode="json")
        doc.update(late_reason=self.reason, lateness_ms=self.lateness_ms, partition=self.partition)
        return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


@dataclass
class BatchOutput:
    """What one micro-batch produced.

    Attributes:
        scored: (partition, scored item) in input order.
        dead: records that could not be decoded or scored, with reasons.
        late: scored items that were not windowed (late or future-dated).
        late_events: the same, with reason and lateness (the late-events output).
        heartbeats: heartbeat records seen.
    """

    scored: list[tuple[int, ScoredItem]] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    late: list[ScoredItem] = field(default_factory=list)
    late_events: list[LateEvent] = field(default_factory=list)
    heartbeats: int = 0


class Pipeline:
    """Stages of finsentry's data path, wired in order.

    Args:
        scorer: the loaded model.
        windows: event-time window state (tumbling or hopping).
        detector: turns closed windows into alerts (``SpikeDetector`` or
            ``ThresholdDetector``).
        tickers: extracts tickers for items that carry none (None: cashtags only).
        max_future_ms: the future-timestamp bound, ms (see ``ingest.check_event_time``).
        novelty_horizon_ms: how far back (event time, ms) a story makes a repeat not novel.

    Attributes:
        without_time_reference: items windowed without an ingestion time to
            judge their ``published_at`` by (``ingest.ingestion_ms`` None), so
            a future-dated one among them was not caught (the daemon serves it
            as ``finsentry_items_without_time_reference_total``).
    """

    def __init__(
        self,
        scorer: Scorer,
        windows: EventTimeWindows,
        detector: SpikeDetector | ThresholdDetector,
        tickers: TickerExtractor | None = None,
        max_future_ms: int = 300_000,
        novelty_horizon_ms: int = 86_400_000,
    ) -> None:
        self.scorer = scorer
        self.windows = windows
        self.detector = detector
        self.tickers = tickers or TickerExtractor()
        self.max_future_ms = int(max_future_ms)
        self.novelty_horizon_ms = int(novelty_horizon_ms)
        self._stories: OrderedDict[str, int] = OrderedDict()  # story key -> event ms last seen
        self.without_time_reference = 0
        self._unreferenced_topics: set[str] = set()  # topics already warned about

    def process(self, records: Sequence[RecordLike]) -> BatchOutput:
        """Decode, score and window one micro-batch of raw-topic records (heartbeats included)."""
        out = BatchOutput()
        # in record order: (record, heartbeat ms) or (record, item, ticker sources); heartbeats are applied
        # between the items around them, after scoring, so a batch gives what one record at a time gives
        steps: list[tuple[RecordLike, int] | tuple[RecordLike, NewsItem, tuple[str, ...]]] = []
        for record in records:
            beat = parse_heartbeat(record.key, record.value)
            if beat is not None:
                steps.append((record, beat))
                continue
            result = decode_record(record)
            if isinstance(result, DeadLetter):
                out.dead.append(result)
            else:
                item, sources = self._with_tickers(result)
                steps.append((record, item, sources))
        items = [step[1] for step in steps if len(step) == 3]
        scores = iter(self.scorer.score_items(items))  # type: ignore[arg-type]
        for step in steps:
            if len(step) == 2:
                self.windows.heartbeat(step[0].partition, step[1])  # type: ignore[arg-type]
                out.heartbeats += 1
                continue
            record, item, sources = step  # type: ignore[misc]
            result = next(scores)
            if isinstance(result, Unscored):
                out.dead.append(DeadLetter.of(record, result.reason, "no text left after cleaning title and body"))
                continue
            story = story_key(result)
            self._window(record, item, self._annotate(result, sources, item, record, story), out, story)
        return out

    def _with_tickers(self, item: NewsItem) -> tuple[NewsItem, tuple[str, ...]]:
        tickers, sources = self.tickers.extract(f"{item.title}\n{item.body}", item.tickers)
        if tickers != item.tickers:
            item = item.model_copy(update={"tickers": tickers})
        return item, sources

    def _annotate(
        self, scored: ScoredItem, sources: tuple[str, ...], item: NewsItem, record: RecordLike, story: str
    ) -> ScoredItem:
        t = scored.published_ms
        last = self._stories.pop(story, None)
        novel = last is None or t - last > self.novelty_horizon_ms
        self._stories[story] = t if last is None else max(t, last)
        while self._stories and next(iter(self._stories.values())) < t - self.novelty_horizon_ms:
            self._stories.popitem(last=False)
        ingested = ingestion_ms(item, record)
        if ingested is None:
            self._no_time_reference(record)
        flag = check_event_time(t, ingested, self.max_future_ms)
        return scored.model_copy(update={"ticker_sources": sources, "novel": novel, "time_flag": flag})

    def _window(self, record: RecordLike, item: NewsItem, scored: ScoredItem, out: BatchOutput, story: str) -> None:
        out.scored.append((record.partition, scored))
        if scored.time_flag == "future":
            ingested = ingestion_ms(item, record) or 0
            out.late.append(scored)
            out.late_events.append(LateEvent(record.partition, scored, "future", scored.published_ms - ingested))
            return
        lateness = self.windows.add_item(record.partition, scored, story)
        if lateness is not None:
            out.late.append(scored)
            out.late_events.append(LateEvent(record.partition, scored, "late", lateness))

    def _no_time_reference(self, record: RecordLike) -> None:
        """Count an item that cannot be judged by the future rule; warn once per topic."""
        self.without_time_reference += 1
        if record.topic in self._unreferenced_topics:
            return
        self._unreferenced_topics.add(record.topic)
        log.warning(
            "topic %r: items have no ingestion time (record timestamps are CreateTime and NewsItem.ingested_at "
            "is not set), so future-dated items cannot be flagged and may move the watermark; create the topic "
            "with message.timestamp.type=LogAppendTime (finsentry does when it creates it) or have the producer "
            "set ingested_at. Counted in finsentry_items_without_time_reference_total; warned once per topic",
            record.topic, extra={"topic": record.topic},
        )

    def close_windows(
        self, idle_partitions: Collection[int] = ()
    ) -> tuple[list[WindowResult | WindowCounts], list[Alert]]:
        """Advance the watermark, close due windows and run the detector on them.

        Only the closed windows the detector can act on are built
        (``detector.window_interest()``; ``windows.closed_count`` counts them
        all): the alerts are those of every window.

        Returns:
            ``(closed windows given to the detector, alerts)``; alerts are
            firing and (from ``SpikeDetector``) resolved messages, in the
            order decided.
        """
        closed = self.windows.advance(idle_partitions, self.detector.window_interest())
        alerts = self.detector.evaluate_windows(closed, self.windows.watermark_ms, self.windows.hop_ms)
        return closed, alerts


def build_windows(settings: Settings) -> EventTimeWindows:
    """The window operator configured by ``settings.windows``.

    Raises:
        ValueError: an inconsistent size, hop or lateness.
    """
    w = settings.windows
    return EventTimeWindows(
        size_ms=round(w.size_minutes * 60_000),
        allowed_lateness_ms=round(w.allowed_lateness_minutes * 60_000),
        hop_ms=None if w.hop_minutes is None else round(w.hop_minutes * 60_000),
        key_types=w.key_types,
    )


def build_detector(settings: Settings) -> SpikeDetector | ThresholdDetector:
    """The detector configured by ``settings.detector`` (``kind``: ``spike`` or ``threshold``).

    Raises:
        ValueError: a threshold out of range or a rejected rule (``alerts.RuleError``).
    """
    d = settings.detector
    if d.kind == "threshold":
        return ThresholdDetector(d.min_negative, d.min_neg_share)
    baseline = EwmaBaseline(d.baseline_halflife_windows, d.prior_share, d.prior_windows)
    return SpikeDetector(d.min_negative, d.min_neg_share, d.alpha, d.resolve_share, d.resolve_p, baseline, d.rules)
