"""Event-time windows per key (ticker, topic, market): tumbling and hopping.

Windows
    An item's event time is ``ScoredItem.published_ms`` (epoch ms UTC).
    Windows are ``size_ms`` long and start every ``hop_ms`` (``hop_ms ==
    size_ms``: tumbling; ``hop_ms < size_ms``: hopping, each item is in
    ``size_ms / hop_ms`` windows), aligned to the Unix epoch: the windows of
    ``t`` are ``[s, s + size_ms)`` for every multiple ``s`` of ``hop_ms`` with
    ``s <= t < s + size_ms``. An item joins the windows of each of its keys:
    ``ticker`` (each distinct ticker), ``topic`` (its topic, when it has one)
    and ``market`` (key ``"*"``: every item), as selected by ``key_types``.

Repeated stories
    Inside one window of one key, an item counts once per *story*: its
    ``story_key`` (the lower-cased words of its title; the item id when it has
    no title). The same headline from several sources, or re-sent, counts
    once (the first copy is kept); ``duplicate_count`` counts the others.

Watermark rule
    * Per partition: ``max event time seen on that partition -
      allowed_lateness_ms``. Heartbeats (``heartbeat``) advance a partition's
      max event time like an item does, without adding anything.
    * Operator watermark, computed by ``advance(idle_partitions)``: the
      minimum of the per-partition watermarks over the partitions seen that
      are not idle; when every partition seen is idle, the maximum of them
      (everything available was consumed). A partition declared with
      ``assign_partitions`` but not seen yet (and not idle) holds the
      watermark where it is. It never moves backwards, except once after
      ``revoke_partitions`` (a rebalance): it is then recomputed from the
      partitions that remain and those assigned next.
    * ``advance`` closes every window whose ``end_ms <= watermark`` and emits
      its result, ordered by ``(end_ms, key_type, key)``. A window is emitted
      once: items up to ``allowed_lateness_ms`` behind their partition's max
      are still counted because the watermark trails by that much.

Late items
    ``add_item`` rejects an item whose *last* window end is ``<=`` its own
    partition's watermark or ``<=`` the operator watermark and returns its
    lateness (ms the watermark is past the item's event time), counted in
    ``late_count``; the caller routes it to the late-events output. An item
    of a hopping window some of whose windows are closed joins the open ones
    (``partial_late_count``). Judging lateness against the item's own
    partition makes the output a function of the per-partition record order
    only, provided the partitions are declared up front with
    ``assign_partitions``.

Rebalances
    ``revoke_partitions`` drops partitions this operator no longer owns:
    their watermark, and their items in open windows (each window entry
    remembers its partition), so that only the new owner, which rebuilds them
    from the scored topic, counts them.

Cost
    Closing a window builds its counts only; its evidence (the most negative
    items) is ranked lazily (``alerts._result.LazyEvidence``) because the
    detector reads it only for the few windows that fire.

There is no wall clock anywhere in this module.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Collection, Iterable
from typing import TYPE_CHECKING

from ._result import LazyEvidence, WindowResult

if TYPE_CHECKING:  # typing only: importing ``inference`` loads ONNX Runtime
    from inference._scored import ScoredItem

__all__ = ["KEY_TYPES", "MARKET_KEY", "EventTimeWindows", "TumblingWindows", "story_key"]

#: The key types a window operator can group by.
KEY_TYPES: tuple[str, ...] = ("ticker", "topic", "market")
#: The one key of the ``market`` key type.
MARKET_KEY = "*"

_WORD = re.compile(r"\w+")


@functools.lru_cache(maxsize=1 << 17)
def _title_key(title: str) -> str:
    return " ".join(_WORD.findall(title.casefold()))


def story_key(item: ScoredItem) -> str:
    """The dedup key of a story: its title's lower-cased words joined by spaces, else ``"id:" + item_id``.

    Titles' keys are memoised (LRU, 131,072 titles): the pipeline's novelty
    check, the windows and every replay of a backtest sweep ask for the same
    titles again.
    """
    return _title_key(item.title) or "id:" + item.item_id


class EventTimeWindows:
    """Tumbling or hopping event-time windows per key, with a partition watermark.

    Not thread-safe: drive it from the consumer loop.

    Args:
        size_ms: window length in ms, > 0.
        allowed_lateness_ms: how far (ms) event time may go back on one
            partition and its items still be counted, >= 0.
        hop_ms: distance between window starts, ms; ``None`` = ``size_ms``
            (tumbling). Must divide ``size_ms``.
        key_types: which of ``KEY_TYPES`` to group by.

    Raises:
        ValueError: a size, hop or lateness out of range, or an unknown key type.
    """

    def __init__(
        self,
        size_ms: int,
        allowed_lateness_ms: int,
        hop_ms: int | None = None,
        key_types: Iterable[str] = ("ticker",),
    ) -> None:
        if size_ms <= 0:
            raise ValueError(f"size_ms must be > 0, got {size_ms}")
        if allowed_lateness_ms < 0:
            raise ValueError(f"allowed_lateness_ms must be >= 0, got {allowed_lateness_ms}")
        hop = size_ms if hop_ms is None else hop_ms
        if hop <= 0 or hop > size_ms or size_ms % hop:
            raise ValueError(f"hop_ms must be in (0, size_ms] and divide size_ms={size_ms}, got {hop_ms}")
        kinds = tuple(dict.fromkeys(key_types))
        unknown = [k for k in kinds if k not in KEY_TYPES]
        if unknown or not kinds:
            raise ValueError(f"key_types must be a non-empty subset of {KEY_TYPES}, got {key_types!r}")
        self._size_ms = int(size_ms)
        self._hop_ms = int(hop)
        self._lateness_ms = int(allowed_lateness_ms)
        self._kinds = kinds
        self._max_event_ms: dict[int, int] = {}
        self._assigned: set[int] = set()
        self._watermark_ms: int | None = None
        self._ticker_only = kinds == ("ticker",)
        # window end (ms) -> (key_type, key) -> story key -> (partition, first copy of the item)
        self._open: dict[int, dict[tuple[str, str], dict[str, tuple[int, ScoredItem]]]] = {}
        self._late_count = 0
        self._partial_late_count = 0
        self._duplicate_count = 0

    # -- properties ---------------------------------------------------------------

    @property
    def size_ms(self) -> int:
        """Window length, ms."""
        return self._size_ms

    @property
    def hop_ms(self) -> int:
        """Distance between consecutive window starts (and ends), ms."""
        return self._hop_ms

    @property
    def key_types(self) -> tuple[str, ...]:
        """The key types grouped by."""
        return self._kinds

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
    def oldest_open_start_ms(self) -> int | None:
        """Start (epoch ms UTC) of the oldest open window, None when none is open."""
        return min(self._open) - self._size_ms if self._open else None

    @property
    def late_count(self) -> int:
        """Items rejected as late since construction."""
        return self._late_count

    @property
    def partial_late_count(self) -> int:
        """Items of hopping windows that missed some (closed) windows but joined open ones."""
        return self._partial_late_count

    @property
    def duplicate_count(self) -> int:
        """(item, window, key) triples ignored because the story was already in that window."""
        return self._duplicate_count

    # -- input --------------------------------------------------------------------

    def assign_partitions(self, partitions: Collection[int]) -> None:
        """Declare partitions that will deliver items (e.g. the consumer's assignment).

        Until it delivers its first item or heartbeat, a declared partition
        that is not passed as idle to ``advance`` holds the watermark back.
        Declaring is cumulative; declaring a partition again is harmless.
        """
        self._assigned.update(partitions)

    def partition_watermark_ms(self, partition: int) -> int | None:
        """The watermark (epoch ms UTC) of one partition; None if it was never seen."""
        max_ms = self._max_event_ms.get(partition)
        return None if max_ms is None else max_ms - self._lateness_ms

    def window_of(self, event_ms: int) -> tuple[int, int]:
        """The ``(start_ms, end_ms)`` of the latest window holding ``event_ms`` (epoch ms UTC)."""
        start = event_ms - event_ms % self._hop_ms
        return start, start + self._size_ms

    def windows_of(self, event_ms: int) -> list[tuple[int, int]]:
        """Every ``(start_ms, end_ms)`` holding ``event_ms``, oldest first."""
        last_start, _ = self.window_of(event_ms)
        n = self._size_ms // self._hop_ms
        return [(s, s + self._size_ms) for s in range(last_start - (n - 1) * self._hop_ms, last_start + 1, self._hop_ms)]

    def heartbeat(self, partition: int, event_ms: int) -> None:
        """A heartbeat read from ``partition``: nothing older than ``event_ms`` is still to come on it.

        Advances the partition's max event time (never backwards) like an item would.
        """
        current = self._max_event_ms.get(partition)
        if current is None or event_ms > current:
            self._max_event_ms[partition] = int(event_ms)

    def _closed_through(self, partition: int) -> int | None:
        partition_wm = self.partition_watermark_ms(partition)
        marks = [m for m in (partition_wm, self._watermark_ms) if m is not None]
        return max(marks) if marks else None

    def lateness_ms(self, partition: int, event_ms: int) -> int:
        """How far (ms, >= 0) the watermark that applies to ``partition`` is past ``event_ms``."""
        closed = self._closed_through(partition)
        return 0 if closed is None else max(0, closed - event_ms)

    def _keys_of(self, item: ScoredItem) -> list[tuple[str, str]]:
        if self._ticker_only:
            tickers = item.tickers
            if len(tickers) == 1:
                return [("ticker", tickers[0])] if tickers[0] else []
            return [("ticker", t) for t in dict.fromkeys(tickers) if t]
        keys: list[tuple[str, str]] = []
        for kind in self._kinds:
            if kind == "ticker":
                keys.extend(("ticker", t) for t in dict.fromkeys(item.tickers) if t)
            elif kind == "topic":
                if item.topic:
                    keys.append(("topic", item.topic))
            else:
                keys.append(("market", MARKET_KEY))
        return keys

    def add_item(self, partition: int, item: ScoredItem, story: str | None = None) -> int | None:
        """Add one scored item read from ``partition``.

        The item's event time also advances the partition's watermark, even
        when the item has no key. ``story`` is the item's ``story_key`` when
        the caller has it already (the pipeline computes it for novelty);
        None computes it here.

        Returns:
            None when the item was taken (including duplicates and items
            without keys); its lateness in ms (>= 0) when it is late (counted
            in ``late_count``, not added).
        """
        event_ms = item.published_ms
        max_ms = self._max_event_ms.get(partition)
        closed = self._watermark_ms
        if max_ms is not None and (closed is None or max_ms - self._lateness_ms > closed):
            closed = max_ms - self._lateness_ms
        last_end = event_ms - event_ms % self._hop_ms + self._size_ms
        if closed is not None and last_end <= closed:
            self._late_count += 1
            return max(0, closed - event_ms)
        if max_ms is None or event_ms > max_ms:
            self._max_event_ms[partition] = event_ms
        keys = self._keys_of(item)
        if not keys:
            return None
        entry = (partition, item)
        if story is None:
            story = story_key(item)
        if self._hop_ms == self._size_ms:
            self._put(last_end, keys, story, entry)
            return None
        partial = False
        for end_ms in range(last_end - self._size_ms + self._hop_ms, last_end + 1, self._hop_ms):
            if closed is not None and end_ms <= closed:
                partial = True
            else:
                self._put(end_ms, keys, story, entry)
        self._partial_late_count += partial
        return None

    def _put(self, end_ms: int, keys: list[tuple[str, str]], story: str, entry: tuple[int, ScoredItem]) -> None:
        """Add ``entry`` (partition, item) under ``story`` to window ``end_ms`` of each key; first copy wins."""
        window = self._open.get(end_ms)
        if window is None:
            window = self._open[end_ms] = {}
        for key in keys:
            stories = window.get(key)
            if stories is None:
                window[key] = {story: entry}
            elif story in stories:
                self._duplicate_count += 1
            else:
                stories[story] = entry

    def restore(self, partition: int, item: ScoredItem, closed_through_ms: int) -> None:
        """Put back an item read again from the scored topic after a restart or rebalance.

        Unlike ``add_item`` there is no lateness check against the partition
        (restored items arrive after newer ones); the item joins only its
        windows that end after ``closed_through_ms`` (those ending earlier were
        decided before the restart) and after the operator watermark. It does
        not move the partition's watermark (the caller sets it with
        ``heartbeat`` from the last committed record). Repeated stories are deduplicated
        as usual, so an item both restored and re-consumed counts once.

        Args:
            partition: the partition the item belongs to.
            item: the scored item.
            closed_through_ms: windows ending at or before this (epoch ms UTC) are skipped.
        """
        floor = closed_through_ms if self._watermark_ms is None else max(closed_through_ms, self._watermark_ms)
        keys = self._keys_of(item)
        if not keys:
            return
        story = story_key(item)
        entry = (partition, item)
        for _, end_ms in self.windows_of(item.published_ms):
            if end_ms > floor:
                self._put(end_ms, keys, story, entry)

    def add(self, partition: int, item: ScoredItem) -> bool:
        """``add_item`` as a bool: False when the item is late, True otherwise."""
        return self.add_item(partition, item) is None

    def revoke_partitions(self, partitions: Collection[int]) -> None:
        """Forget partitions this operator no longer reads (a consumer-group rebalance took them away).

        Their watermark and declaration are dropped, and their items are
        removed from the open windows (each window entry remembers its
        partition; a window left empty is dropped): the partitions' new owner
        rebuilds those windows from the scored topic and is the only one to
        count them. The operator watermark is then recomputed by the next
        ``advance`` from the partitions that remain and those declared next
        (it may move back, once: a newly assigned partition can be behind);
        windows already closed stay closed. Call it after every rebalance,
        with the partitions actually lost (possibly none). Revoking a
        partition never seen is harmless.

        Limits: a story kept from a revoked partition whose duplicate from a
        kept partition was ignored leaves the window with it; ``market`` and
        ``topic`` windows mix partitions, so across daemons they are split.

        Args:
            partitions: partition numbers no longer assigned.
        """
        gone = set(partitions)
        for p in gone:
            self._max_event_ms.pop(p, None)
            self._assigned.discard(p)
        self._watermark_ms = None
        if not gone:
            return
        for end_ms in list(self._open):
            window = self._open[end_ms]
            for key in list(window):
                stories = window[key]
                kept = {s: e for s, e in stories.items() if e[0] not in gone}
                if not kept:
                    del window[key]
                elif len(kept) != len(stories):
                    window[key] = kept
            if not window:
                del self._open[end_ms]

    # -- output -------------------------------------------------------------------

    def advance(self, idle_partitions: Collection[int] = ()) -> list[WindowResult]:
        """Recompute the operator watermark and close the windows it passed.

        Args:
            idle_partitions: partitions with nothing left to read for now
                (e.g. the consumer is at their end offset); they do not hold
                the watermark back. Partitions neither seen nor declared are
                ignored.

        Returns:
            The results of the windows closed by this call, ordered by
            ``(end_ms, key_type, key)``; empty when none closed.
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
        due = [e for e in self._open if e <= watermark]
        if not due:
            return []
        due.sort()
        results: list[WindowResult] = []
        result = self._result
        for end_ms in due:
            keys = self._open.pop(end_ms)
            for key in sorted(keys):
                results.append(result(key, end_ms, keys[key]))
        return results

    def _result(self, key: tuple[str, str], end_ms: int, stories: dict[str, tuple[int, ScoredItem]]) -> WindowResult:
        if len(stories) == 1:  # the most common window on sparse feeds (tweets, ratings): no lists
            (entry,) = stories.values()
            return _single(key, end_ms - self._size_ms, end_ms, entry[1])
        items = [entry[1] for entry in stories.values()]
        n = len(items)
        labels = [it.label for it in items]
        n_negative = labels.count("negative")
        n_neutral = labels.count("neutral")
        versions = {it.model_version for it in items}
        return WindowResult(
            key[0],
            key[1],
            end_ms - self._size_ms,
            end_ms,
            n,
            n_negative,
            n_neutral,
            n - n_negative - n_neutral,
            n_negative / n,
            math.fsum([it.score for it in items]) / n,
            LazyEvidence(items),
            tuple(versions) if len(versions) == 1 else tuple(sorted(versions)),
        )


def _single(key: tuple[str, str], start_ms: int, end_ms: int, it: ScoredItem) -> WindowResult:
    """The result of a window holding one item (same values as the general case)."""
    label = it.label
    negative = 1 if label == "negative" else 0
    neutral = 1 if label == "neutral" else 0
    return WindowResult(
        key[0], key[1], start_ms, end_ms, 1, negative, neutral, 1 - negative - neutral, float(negative),
        math.fsum((it.score,)),
        LazyEvidence((it,)), (it.model_version,),
    )


class TumblingWindows(EventTimeWindows):
    """Tumbling windows (``hop_ms == size_ms``); by default keyed by ticker only.

    Args:
        size_ms: window length in ms, > 0.
        allowed_lateness_ms: allowed lateness per partition, ms, >= 0.
        key_types: which of ``KEY_TYPES`` to group by.

    Raises:
        ValueError: as ``EventTimeWindows``.
    """

    def __init__(self, size_ms: int, allowed_lateness_ms: int, key_types: Iterable[str] = ("ticker",)) -> None:
        super().__init__(size_ms, allowed_lateness_ms, hop_ms=None, key_types=key_types)
