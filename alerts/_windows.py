"""Event-time tumbling windows per ticker.

Windows
    An item's event time is ``ScoredItem.published_ms`` (epoch ms UTC). Its
    window is ``[t - t % size_ms, t - t % size_ms + size_ms)``; the item is
    added to that window for each distinct ticker of the item (an item
    without tickers goes to no window). Inside a window the item id is the
    dedup key: the same item twice counts once (the first copy is kept).

Watermark rule
    * Per partition: ``max event time seen on that partition - allowed_lateness_ms``.
    * Operator watermark, computed by ``advance(idle_partitions)``: the
      minimum of the per-partition watermarks over the partitions seen that
      are not idle; when every partition seen is idle, the maximum of them
      (everything available was consumed). A partition declared with
      ``assign_partitions`` but not seen yet (and not idle) holds the
      watermark where it is. It never moves backwards.
    * ``advance`` closes every window whose ``end_ms <= watermark`` and emits
      its result, ordered by ``(end_ms, key)``.

Late items
    ``add`` rejects (returns False, counts in ``late_count``) an item whose
    window end is ``<=`` its own partition's watermark (late for its
    partition, even while other partitions keep the window open) or ``<=``
    the operator watermark (the window is closed). Judging lateness against
    the item's own partition makes the output a function of the
    per-partition record order only: replaying the same partitions gives
    identical results whatever the interleaving across partitions and
    whenever ``advance`` is called, provided the partitions are declared up
    front with ``assign_partitions``. Without that declaration a partition
    first seen after the watermark passed some of its items has those items
    judged late; and marking a partition idle lets the watermark pass it, so
    an item it delivers afterwards for a closed window is late. Both are by
    design and depend on timing.

There is no wall clock anywhere in this module.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import TYPE_CHECKING

from ._result import EVIDENCE_LIMIT, Evidence, WindowResult

if TYPE_CHECKING:  # typing only: importing ``inference`` loads ONNX Runtime
    from inference._scored import ScoredItem

__all__ = ["TumblingWindows"]

_KEY_TYPE = "ticker"


class TumblingWindows:
    """Tumbling event-time windows keyed by ticker, with a partition watermark.

    Not thread-safe: drive it from the consumer loop.

    Args:
        size_ms: window length in ms, > 0.
        allowed_lateness_ms: how far (ms) event time may go back on one
            partition and its items still be counted, >= 0.

    Raises:
        ValueError: when ``size_ms <= 0`` or ``allowed_lateness_ms < 0``.
    """

    def __init__(self, size_ms: int, allowed_lateness_ms: int) -> None:
        if size_ms <= 0:
            raise ValueError(f"size_ms must be > 0, got {size_ms}")
        if allowed_lateness_ms < 0:
            raise ValueError(f"allowed_lateness_ms must be >= 0, got {allowed_lateness_ms}")
        self._size_ms = int(size_ms)
        self._lateness_ms = int(allowed_lateness_ms)
        # partition -> max event time (ms) seen on it
        self._max_event_ms: dict[int, int] = {}
        # partitions declared by assign_partitions (seen or not)
        self._assigned: set[int] = set()
        self._watermark_ms: int | None = None
        # window end (ms) -> key -> item_id -> first copy of the item
        self._open: dict[int, dict[str, dict[str, ScoredItem]]] = {}
        self._late_count = 0
        self._duplicate_count = 0

    @property
    def size_ms(self) -> int:
        """Window length, ms."""
        return self._size_ms

    @property
    def allowed_lateness_ms(self) -> int:
        """Allowed lateness per partition, ms."""
        return self._lateness_ms

    @property
    def watermark_ms(self) -> int | None:
        """Operator watermark (epoch ms UTC) as of the last ``advance``; None before any."""
        return self._watermark_ms

    @property
    def open_windows(self) -> int:
        """Number of (key, window) pairs that hold items and are not closed yet."""
        return sum(len(keys) for keys in self._open.values())

    @property
    def late_count(self) -> int:
        """Items rejected by ``add`` as late since construction."""
        return self._late_count

    @property
    def duplicate_count(self) -> int:
        """(item, key) pairs ignored because the item id was already in that window."""
        return self._duplicate_count

    def assign_partitions(self, partitions: Collection[int]) -> None:
        """Declare partitions that will deliver items (e.g. the consumer's assignment).

        Until it delivers its first item, a declared partition that is not
        passed as idle to ``advance`` holds the watermark back, so that its
        items are not judged late because other partitions ran ahead.
        Declaring is cumulative; declaring a partition again is harmless.
        """
        self._assigned.update(partitions)

    def partition_watermark_ms(self, partition: int) -> int | None:
        """The watermark (epoch ms UTC) of one partition; None if it was never seen."""
        max_ms = self._max_event_ms.get(partition)
        return None if max_ms is None else max_ms - self._lateness_ms

    def window_of(self, event_ms: int) -> tuple[int, int]:
        """The ``(start_ms, end_ms)`` of the window holding ``event_ms`` (epoch ms UTC)."""
        start = event_ms - event_ms % self._size_ms
        return start, start + self._size_ms

    def add(self, partition: int, item: ScoredItem) -> bool:
        """Add one scored item read from ``partition``.

        The item's event time also advances the partition's watermark, even
        when the item has no ticker.

        Args:
            partition: the source partition (any int, e.g. the Kafka partition).
            item: the scored item.

        Returns:
            False when the item is late (counted in ``late_count``, not added),
            True otherwise (including duplicates and items without tickers).
        """
        event_ms = item.published_ms
        _, end_ms = self.window_of(event_ms)
        partition_wm = self.partition_watermark_ms(partition)
        if (partition_wm is not None and end_ms <= partition_wm) or (
            self._watermark_ms is not None and end_ms <= self._watermark_ms
        ):
            self._late_count += 1
            return False
        if partition_wm is None or event_ms > self._max_event_ms[partition]:
            self._max_event_ms[partition] = event_ms
        keys = self._open.get(end_ms)
        for ticker in dict.fromkeys(item.tickers):
            if not ticker:
                continue
            if keys is None:
                keys = self._open[end_ms] = {}
            items = keys.setdefault(ticker, {})
            if item.item_id in items:
                self._duplicate_count += 1
            else:
                items[item.item_id] = item
        return True

    def advance(self, idle_partitions: Collection[int] = ()) -> list[WindowResult]:
        """Recompute the operator watermark and close the windows it passed.

        Args:
            idle_partitions: partitions with nothing left to read for now
                (e.g. the consumer is at their end offset); they do not hold
                the watermark back. Partitions neither seen nor declared are
                ignored.

        Returns:
            The results of the windows closed by this call, ordered by
            ``(end_ms, key)``; empty when none closed.
        """
        idle = set(idle_partitions)
        waiting = any(p not in self._max_event_ms and p not in idle for p in self._assigned)
        if self._max_event_ms and not waiting:
            watermarks = {p: m - self._lateness_ms for p, m in self._max_event_ms.items()}
            active = [wm for p, wm in watermarks.items() if p not in idle]
            candidate = min(active) if active else max(watermarks.values())
            if self._watermark_ms is None or candidate > self._watermark_ms:
                self._watermark_ms = candidate
        watermark = self._watermark_ms
        if watermark is None:
            return []
        results: list[WindowResult] = []
        for end_ms in sorted(e for e in self._open if e <= watermark):
            keys = self._open.pop(end_ms)
            for key in sorted(keys):
                results.append(self._result(key, end_ms, keys[key].values()))
        return results

    def _result(self, key: str, end_ms: int, items: Collection[ScoredItem]) -> WindowResult:
        n = len(items)
        labels = [it.label for it in items]
        n_negative = labels.count("negative")
        ranked = sorted(items, key=lambda it: (-it.p_negative, it.item_id))
        return WindowResult(
            key_type=_KEY_TYPE,
            key=key,
            start_ms=end_ms - self._size_ms,
            end_ms=end_ms,
            n=n,
            n_negative=n_negative,
            n_neutral=labels.count("neutral"),
            n_positive=labels.count("positive"),
            neg_share=n_negative / n,
            mean_score=math.fsum(it.score for it in items) / n,
            evidence=tuple(
                Evidence(item_id=it.item_id, title=it.title, p_negative=it.p_negative)
                for it in ranked[:EVIDENCE_LIMIT]
            ),
            model_versions=tuple(sorted({it.model_version for it in items})),
        )
