"""The data path, stage by stage: decode → score → window → detect.

:class:`Pipeline` holds the stages and is free of Kafka, so the daemon (live)
and replays in process run the very same code. The daemon (``daemon.py``)
adds the Kafka edges: poll, produce scored records and dead letters, deliver
alerts, commit.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from alerts import Alert, ThresholdDetector, TumblingWindows, WindowResult
from inference import ScoredItem, Scorer, Unscored
from ingest import DeadLetter, NewsItem, RecordLike, decode_record

__all__ = ["BatchOutput", "Pipeline"]


@dataclass
class BatchOutput:
    """What one micro-batch produced.

    Attributes:
        scored: (partition, scored item) in input order.
        dead: records that could not be decoded or scored, with reasons.
        late: scored items whose window had already closed (counted, not windowed).
    """

    scored: list[tuple[int, ScoredItem]] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    late: list[ScoredItem] = field(default_factory=list)


class Pipeline:
    """Stages of finsentry's data path, wired in order.

    Args:
        scorer: the loaded model.
        windows: event-time window state.
        detector: turns closed windows into alerts.
    """

    def __init__(self, scorer: Scorer, windows: TumblingWindows, detector: ThresholdDetector) -> None:
        self.scorer = scorer
        self.windows = windows
        self.detector = detector

    def process(self, records: Sequence[RecordLike]) -> BatchOutput:
        """Decode, score and window one micro-batch of raw-topic records."""
        out = BatchOutput()
        decoded: list[tuple[RecordLike, NewsItem]] = []
        for record in records:
            result = decode_record(record)
            if isinstance(result, DeadLetter):
                out.dead.append(result)
            else:
                decoded.append((record, result))
        results = self.scorer.score_items([item for _, item in decoded])
        for (record, _), result in zip(decoded, results):
            if isinstance(result, Unscored):
                out.dead.append(DeadLetter.of(record, result.reason, "no text left after cleaning title and body"))
                continue
            out.scored.append((record.partition, result))
            if not self.windows.add(record.partition, result):
                out.late.append(result)
        return out

    def close_windows(self, idle_partitions: Collection[int] = ()) -> tuple[list[WindowResult], list[Alert]]:
        """Advance the watermark, close due windows and run the detector on them."""
        closed = self.windows.advance(idle_partitions)
        alerts = [a for a in (self.detector.evaluate(w) for w in closed) if a is not None]
        return closed, alerts
