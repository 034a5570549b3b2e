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

Panes
    Items are stored once per key, in the ``hop_ms``-long pane holding their
    event time (pane ``[p - hop_ms, p)``, named by its end ``p``); window ``[e - size_ms, e)`` is the union of its
    ``size_ms / hop_ms`` panes when it closes. A pane is dropped when its last
    window (ending ``p + size_ms - hop_ms``) has closed.

Repeated stories
    Inside one window of one key, an item counts once per *story*: its
    ``story_key`` (the lower-cased words of its title; the item id when it has
    no title). The same headline from several sources, or re-sent, counts
    once: the first copy to arrive among those in the window (later copies
    are kept aside, so if a rebalance revokes the first copy's partition the
    next surviving copy counts); ``duplicate_count`` counts the later copies
    per pane and key.

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
    Inserting an item costs one dict insert per key whatever the hop.
    ``advance(idle, interest)`` builds results only for the windows a
    detector can act on (``WindowInterest``: may fire, key with an open
    episode, baseline learning) and counts the others in ``closed_count``;
    a result's evidence (the most negative items) is ranked lazily
    (``alerts._result.LazyEvidence``) because the detector reads it only for
    the few windows that fire.

There is no wall clock anywhere in this module.
"""

from __future__ import annotations

import functools
import math
import operator
import re
from collections.abc import Collection, Iterable, Sequence
from typing import TYPE_CHECKING

from ._result import LazyEvidence, WindowCounts, WindowInterest, WindowResult
from ._slide import SlidingCounts

if TYPE_CHECKING:  # typing only: importing ``inference`` loads ONNX Runtime
    from inference._scored import ScoredItem

__all__ = ["KEY_TYPES", "MARKET_KEY", "EventTimeWindows", "TumblingWindows", "story_key"]

#: The key types a window operator can group by.
KEY_TYPES: tuple[str, ...] = ("ticker", "topic", "market")
#: The one key of the ``market`` key type.
MARKET_KEY = "*"

_WORD = re.compile(r"\w+")
_LABEL, _SCORE, _VERSION = operator.attrgetter("label"), operator.attrgetter("score"), operator.attrgetter("model_version")


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


#: A window entry: ``(partition, item, seq, min_end_ms, story)``; ``seq`` orders arrivals (first copy of
#: a story wins), ``min_end_ms`` is the end of the first window the item may join (later for an item
#: some of whose windows had closed when it arrived).
_Entry = tuple[int, "ScoredItem", int, int, str]
_Key = tuple[str, str]


class EventTimeWindows:
    """Tumbling or hopping event-time windows per key, with a partition watermark.

    Items are kept in *panes*, ``hop_ms`` long (Li et al. 2005, "No pane, no
    gain: efficient evaluation of sliding-window aggregates over data
    streams", SIGMOD Record 34(1)): an item is stored once per key, in the
    pane holding its event time, and a hopping window is the union of its
    ``size_ms / hop_ms`` panes when it closes. With ``hop_ms == size_ms`` a
    pane is a window.

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
        self._span_ms = self._size_ms - self._hop_ms  # a pane's end -> the end of its last window
        self._lateness_ms = int(allowed_lateness_ms)
        self._kinds = kinds
        self._max_event_ms: dict[int, int] = {}
        self._assigned: set[int] = set()
        self._watermark_ms: int | None = None
        self._ticker_only = kinds == ("ticker",)
        self._one_key: dict[str, tuple[_Key, ...]] = {}  # ticker -> (("ticker", ticker),), see _keys_of
        # pane end (ms) -> key -> story -> the story's first copy in the pane
        self._panes: dict[int, dict[_Key, dict[str, _Entry]]] = {}
        # pane end (ms) -> key -> later copies of the pane's stories (kept for rebalances and partial lateness)
        self._copies: dict[int, dict[_Key, list[_Entry]]] = {}
        self._pane_negatives: dict[int, dict[_Key, int]] = {}  # pane end -> key -> negative entries (copies too)
        self._partial_panes: set[int] = set()  # panes holding an entry that misses some of their windows
        # hopping only: (key, story) -> how many panes hold it, and pane end -> keys that got a story there
        # while another pane of the key held it (a window of theirs may hold a story twice: merged exactly)
        self._story_panes: dict[tuple[_Key, str], int] = {}
        self._cross: dict[int, set[_Key]] = {}
        self._slide = SlidingCounts(self._hop_ms, 1)  # keys / negatives over the panes of the window closing
        self._seq = 0
        self._frontier_ms: int | None = None  # every window ending at or before this was closed once
        self._closed_seq: dict[int, int] = {}  # window end -> last entry seq it was closed with
        self._reopened: set[int] = set()  # window ends <= frontier with entries added since (a rebalance)
        self._closed_count = 0
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
        """Number of (key, window) pairs that hold items and are not closed yet (O(pane-key pairs))."""
        spans: dict[_Key, list[tuple[int, int]]] = {}
        for pane_end, key, first in self._pane_keys():
            spans.setdefault(key, []).append((first, pane_end + self._span_ms))
        hop, f = self._hop_ms, self._frontier_ms
        floor = None if f is None else f - f % hop + hop  # the first end not closed yet
        total = 0
        for key_spans in spans.values():  # merge each key's runs of window ends on the hop grid
            run: list[int] | None = None
            for a, b in sorted(key_spans):
                a = a if floor is None else max(a, floor)
                if a > b:
                    continue
                if run is not None and a <= run[1] + hop:
                    run[1] = max(run[1], b)
                    continue
                if run is not None:
                    total += (run[1] - run[0]) // hop + 1
                run = [a, b]
            if run is not None:
                total += (run[1] - run[0]) // hop + 1
        return total + sum(len(self._reopened_keys(end)) for end in self._reopened)

    def _reopened_keys(self, end_ms: int) -> set[_Key]:
        """Keys with entries added to window ``end_ms`` since it was closed (after a rebalance)."""
        since = self._closed_seq.get(end_ms, 0)
        keys: set[_Key] = set()
        for pane_end in range(end_ms - self._span_ms, end_ms + 1, self._hop_ms):
            for key, stories in self._panes.get(pane_end, {}).items():
                copies = self._copies.get(pane_end, {}).get(key, ())
                if any(e[2] > since and e[3] <= end_ms for e in (*stories.values(), *copies)):
                    keys.add(key)
        return keys

    @property
    def oldest_open_start_ms(self) -> int | None:
        """Start (epoch ms UTC) of the oldest open window, None when none is open."""
        oldest: int | None = None
        for pane_end, _, first in self._pane_keys():
            for end in self._open_ends(first, pane_end + self._span_ms):
                oldest = end if oldest is None else min(oldest, end)
                break
        for end in self._reopened:
            if (oldest is None or end < oldest) and self._reopened_keys(end):
                oldest = end
        return None if oldest is None else oldest - self._size_ms

    def _pane_keys(self) -> Iterable[tuple[int, _Key, int]]:
        """``(pane end, key, end of the first window an entry of it may join)`` for every key of every pane."""
        for pane_end, pane in self._panes.items():
            if pane_end not in self._partial_panes:  # every entry may join every window of the pane
                yield from ((pane_end, key, pane_end) for key in pane)
                continue
            copies = self._copies.get(pane_end, {})
            for key, stories in pane.items():
                entries = [*stories.values(), *copies.get(key, ())]
                yield pane_end, key, max(pane_end, min(e[3] for e in entries))

    def _open_ends(self, first_ms: int, last_ms: int) -> Iterable[int]:
        """Window ends in ``[first_ms, last_ms]`` never closed yet (ascending)."""
        f = self._frontier_ms
        return (e for e in range(first_ms, last_ms + 1, self._hop_ms) if f is None or e > f)

    @property
    def closed_count(self) -> int:
        """(key, window) pairs closed since construction, whether ``advance`` returned them or not."""
        return self._closed_count

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
        """Copies of a story ignored because their key's pane already held it.

        A pane is a window for tumbling windows; for hopping windows a copy
        repeating a story of another pane is also counted once per window,
        but is not added here.
        """
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

    def _keys_of(self, item: ScoredItem) -> Sequence[_Key]:
        if self._ticker_only:
            tickers = item.tickers
            if len(tickers) == 1:  # the common case: one shared tuple per ticker, no allocation per item
                keys = self._one_key.get(tickers[0])
                if keys is None:
                    keys = self._one_key[tickers[0]] = (("ticker", tickers[0]),) if tickers[0] else ()
                return keys
            return [("ticker", t) for t in dict.fromkeys(tickers) if t]
        keys: list[_Key] = []
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
        hop = self._hop_ms
        pane_end = event_ms - event_ms % hop + hop
        if closed is not None and pane_end + self._span_ms <= closed:
            self._late_count += 1
            return max(0, closed - event_ms)
        if max_ms is None or event_ms > max_ms:
            self._max_event_ms[partition] = event_ms
        keys = self._keys_of(item)
        if not keys:
            return None
        min_end = pane_end
        if closed is not None and closed >= pane_end:  # some of its (hopping) windows have closed
            min_end = closed - closed % hop + hop
            self._partial_late_count += 1
        self._seq += 1
        self._put(pane_end, keys, (partition, item, self._seq, min_end, story_key(item) if story is None else story))
        return None

    def _put(self, pane_end: int, keys: Sequence[_Key], entry: _Entry) -> None:
        """Add ``entry`` to pane ``pane_end`` of each key; a later copy of a story is kept aside
        (``_copies``: it counts where the first is not eligible or was revoked) and counted as a duplicate."""
        pane = self._panes.get(pane_end)
        if pane is None:
            pane = self._panes[pane_end] = {}
        negative = entry[1].label == "negative"
        story = entry[4]
        slide = self._slide
        covered = slide.lo_ms is not None and slide.lo_ms <= pane_end <= slide.hi_ms  # type: ignore[operator]
        story_panes = self._story_panes if self._span_ms else None
        for key in keys:
            stories = pane.get(key)
            if stories is None or story not in stories:
                if stories is None:
                    pane[key] = {story: entry}
                    if covered:
                        slide.key_joined(key)
                else:
                    stories[story] = entry
                if story_panes is not None:  # count the pane in; mark it when another pane holds the story
                    held = story_panes.get((key, story), 0)
                    story_panes[key, story] = held + 1
                    if held:
                        self._cross.setdefault(pane_end, set()).add(key)
            else:
                self._duplicate_count += 1
                self._copies.setdefault(pane_end, {}).setdefault(key, []).append(entry)
            if negative:
                counts = self._pane_negatives.get(pane_end)
                if counts is None:
                    self._pane_negatives[pane_end] = {key: 1}
                else:
                    counts[key] = counts.get(key, 0) + 1
                if covered:
                    slide.negative_joined(key)
        if entry[3] > pane_end:
            self._partial_panes.add(pane_end)
        frontier = self._frontier_ms
        if frontier is not None and entry[3] <= frontier:  # joins windows closed before (after a rebalance)
            self._reopened.update(range(entry[3], min(frontier, pane_end + self._span_ms) + 1, self._hop_ms))

    def _forget_stories(self, pane_end: int, pane: dict[_Key, dict[str, _Entry]]) -> None:
        """Count pane ``pane_end`` (being dropped or rebuilt) out of the stories' pane counts (hopping only)."""
        if not self._span_ms:
            return
        self._cross.pop(pane_end, None)
        story_panes = self._story_panes
        pop = story_panes.pop
        for key, stories in pane.items():
            for story in stories:
                left = pop((key, story)) - 1
                if left:  # another pane still holds it
                    story_panes[key, story] = left

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
        hop = self._hop_ms
        pane_end = item.published_ms - item.published_ms % hop + hop
        min_end = max(pane_end, floor - floor % hop + hop)
        if min_end > pane_end + self._span_ms:
            return
        self._seq += 1
        self._put(pane_end, keys, (partition, item, self._seq, min_end, story_key(item)))

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
        windows already closed stay closed, except that items arriving for
        them after this (from newly assigned partitions) are counted in them
        and they are closed again with those items only. Call it after every
        rebalance, with the partitions actually lost (possibly none).
        Revoking a partition never seen is harmless.

        A story whose first copy came from a revoked partition is counted
        from its next surviving copy, if any. Limit: ``market`` and ``topic``
        windows mix partitions, so across daemons they are split.

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
        self._slide.reset()
        for pane_end in list(self._panes):
            entries = [e for stories in self._panes[pane_end].values() for e in stories.values()]
            entries += [e for copies in self._copies.get(pane_end, {}).values() for e in copies]
            if all(e[0] not in gone for e in entries):
                continue
            old = self._panes.pop(pane_end)
            self._forget_stories(pane_end, old)
            keyed = [(key, e) for key, stories in old.items() for e in stories.values()]
            keyed += [(key, e) for key, copies in self._copies.pop(pane_end, {}).items() for e in copies]
            self._pane_negatives.pop(pane_end, None)
            duplicates, reopened = self._duplicate_count, set(self._reopened)
            for key, e in sorted(keyed, key=lambda ke: ke[1][2]):  # put the survivors back in arrival order
                if e[0] not in gone:
                    self._put(pane_end, [key], e)
            self._duplicate_count, self._reopened = duplicates, reopened

    # -- output -------------------------------------------------------------------

    def advance(
        self, idle_partitions: Collection[int] = (), interest: WindowInterest | None = None
    ) -> list[WindowResult | WindowCounts]:
        """Recompute the operator watermark and close the windows it passed.

        Args:
            idle_partitions: partitions with nothing left to read for now
                (e.g. the consumer is at their end offset); they do not hold
                the watermark back. Partitions neither seen nor declared are
                ignored.
            interest: which closed windows the caller (a detector) can act on
                (``WindowInterest``); None returns every closed window. With
                it, a window is returned when its key's negative count may
                reach ``min_negative`` (panes' counts summed: an upper bound),
                or it starts on the learning phase, or its key is in ``keys``
                or reaches ``min_negative`` in any window this call closes (so
                an episode opened by this call sees every later window of its
                key). The others are closed all the same and counted in
                ``closed_count``; building their results would be most of the
                work for hopping windows, and the detector would ignore them.

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
        if watermark is None or not self._panes:
            return []
        due = self._due_ends(watermark)
        if not due:
            return []
        results = self._close(due, interest)
        self._forget(due, watermark)
        return results

    def _due_ends(self, watermark: int) -> list[int]:
        """Window ends ``<= watermark`` that hold items and were not closed yet, ascending."""
        hop, span, f = self._hop_ms, self._span_ms, self._frontier_ms
        first = None if f is None else f - f % hop + hop
        ends: set[int] = set()
        for pane_end in self._panes:
            lo = pane_end if first is None else max(pane_end, first)
            ends.update(range(lo, min(pane_end + span, watermark) + 1, hop))
        ends.update(e for e in self._reopened if e <= watermark)
        return sorted(ends)

    def _close(self, due: list[int], interest: WindowInterest | None) -> list[WindowResult | WindowCounts]:
        """Results of the windows ending at ``due`` (ascending) that ``interest`` wants (every one when None)."""
        hop, span, size, panes = self._hop_ms, self._span_ms, self._size_ms, self._panes
        chosen: dict[int, set[_Key] | None] = {}  # end -> the keys to build (None: every key)
        watch: set[_Key] = set(interest.keys) if interest is not None else set()
        for end in due:
            if end in self._reopened:  # closed before: only its keys with new entries close again
                chosen[end] = self._reopened_keys(end)
                self._closed_count += len(chosen[end])
            elif interest is None:
                self._closed_count += self._count_keys(end, None)
                chosen[end] = None
            elif not span and interest.learn_phase_ms is not None and (end - interest.learn_phase_ms) % size == 0:
                self._closed_count += len(panes.get(end, ()))  # tumbling, every window learnt: every key
                chosen[end] = None
            else:
                self._slide_to(end, interest.min_negative)
                self._closed_count += self._count_keys(end, self._slide.present)
                phase = interest.learn_phase_ms
                learnt = phase is not None and (end - size - phase) % size == 0
                reaching = set(self._slide.reaching)
                watch |= reaching
                chosen[end] = None if learnt else reaching
        # with an interest, a window that cannot fire (below min_negative or min_neg_share) needs counts only
        light = None if interest is None else (interest.min_negative, interest.min_neg_share)
        results: list[WindowResult | WindowCounts] = []
        for end in due:
            held = [p for p in (panes.get(e) for e in range(end - span, end + 1, hop)) if p]
            since = self._closed_seq.get(end, 0) if end in self._reopened else 0
            keys = chosen[end]
            if keys is None and not since and self._plain(end):
                results.extend(self._every_key(end, held, light))
                continue
            if keys is None:  # every key: group the panes' stories by key in one pass
                parts: dict[_Key, list[dict[str, _Entry]]] = {}
                for pane in held:
                    for key, stories in pane.items():
                        if key in parts:
                            parts[key].append(stories)
                        else:
                            parts[key] = [stories]
                pick = parts.__getitem__
                keys = set(parts)
            else:
                if end not in self._reopened:
                    keys = keys | watch

                def pick(key: _Key) -> list[dict[str, _Entry]]:
                    return [stories for pane in held if (stories := pane.get(key)) is not None]
            for key in sorted(keys):
                parts_of_key = pick(key)
                items = self._items_of(key, end, parts_of_key, since) if parts_of_key else None
                if items:
                    results.append(self._result_or_counts(key, end, items, light))
        return results

    def _result_or_counts(self, key: _Key, end_ms: int, items: list[ScoredItem],
                          light: tuple[int, float] | None) -> WindowResult | WindowCounts:
        """The window's ``WindowCounts`` when ``light`` (min_negative, min_neg_share) says it cannot fire,
        else its ``WindowResult``."""
        if light is not None:
            k = sum(1 for it in items if it.label == "negative")
            if _cannot_fire(k, len(items), light):
                return self._counts(key, end_ms, len(items), k)
        return self._result_of(key, end_ms, items)

    def _counts(self, key: _Key, end_ms: int, n: int, n_negative: int) -> WindowCounts:
        """The ``WindowCounts`` of window ``end_ms`` of ``key``: ``n`` items (>= 1), ``n_negative`` negative."""
        return WindowCounts(key[0], key[1], end_ms - self._size_ms, end_ms, n, n_negative, n_negative / n)

    def _count_keys(self, end_ms: int, present: Collection[_Key] | None) -> int:
        """How many keys window ``end_ms`` holds items of (``present``: the keys of its panes, when known).

        Keys whose entries in the window's panes all start later (partially
        late or restored items, ``min_end > end_ms``) are not counted.
        """
        lo, hop = end_ms - self._span_ms, self._hop_ms
        held = [(pane_end, pane) for pane_end in range(lo, end_ms + 1, hop) if (pane := self._panes.get(pane_end))]
        keys = set().union(*(pane for _, pane in held)) if present is None else present
        if not any(lo <= p <= end_ms for p in self._partial_panes):
            return len(keys)
        return sum(1 for key in keys if any(
            entry[3] <= end_ms
            for pane_end, pane in held
            for entry in (*pane.get(key, {}).values(), *self._copies.get(pane_end, {}).get(key, ()))))

    def _plain(self, end_ms: int) -> bool:
        """Whether no pane of window ``end_ms`` holds later copies of a story or partially late entries."""
        lo, copies, partial = end_ms - self._span_ms, self._copies, self._partial_panes
        return not any(lo <= p <= end_ms for p in copies) and not any(lo <= p <= end_ms for p in partial)

    def _every_key(self, end_ms: int, held: list[dict[_Key, dict[str, _Entry]]],
                   light: tuple[int, float] | None = None) -> list[WindowResult | WindowCounts]:
        """Results of window ``end_ms`` for every key of its panes ``held``, when ``_plain(end_ms)``.

        With ``light`` (``(min_negative, min_neg_share)``), a key whose window
        cannot fire gets a ``WindowCounts``; for hopping windows it is summed
        from the key's panes (no merge) unless a story of the key is in two of them.
        """
        if not self._span_ms:  # tumbling: the one pane is the window, its negative counts are exact (no copies)
            pane, negatives = held[0], self._pane_negatives.get(end_ms, {})
            out_t: list[WindowResult | WindowCounts] = []
            for key in sorted(pane):
                stories, k = pane[key], negatives.get(key, 0)
                if light is not None and _cannot_fire(k, len(stories), light):
                    out_t.append(self._counts(key, end_ms, len(stories), k))
                else:
                    out_t.append(self._result_of(key, end_ms, [e[1] for e in stories.values()]))
            return out_t
        groups: dict[_Key, list[dict[str, _Entry]]] = {}
        for pane in held:
            for key, stories in pane.items():
                group = groups.get(key)
                if group is None:
                    groups[key] = [stories]
                else:
                    group.append(stories)
        out: list[WindowResult | WindowCounts] = []
        result_of = self._result_or_counts
        counted = self._negatives_in(end_ms) if light is not None else None
        for key in sorted(groups):
            parts = groups[key]
            if counted is not None:
                negatives, crossed = counted
                k = negatives.get(key, 0)
                n = sum(map(len, parts))
                if key not in crossed and _cannot_fire(k, n, light):  # type: ignore[arg-type]
                    out.append(self._counts(key, end_ms, n, k))
                    continue
            if len(parts) == 1:
                items = [entry[1] for entry in parts[0].values()]
            else:
                merged = parts[0].copy()
                held_entries = len(merged)
                for stories in parts[1:]:
                    merged.update(stories)
                    held_entries += len(stories)
                if len(merged) == held_entries:
                    items = [entry[1] for entry in merged.values()]
                else:  # a story in two panes: its first copy counts
                    items = self._items_of(key, end_ms, parts, 0)
            out.append(result_of(key, end_ms, items, light))
        return out

    def _negatives_in(self, end_ms: int) -> tuple[dict[_Key, int], set[_Key]]:
        """Negative entries per key over the panes of window ``end_ms``, and the keys a story of which
        is in two of its panes (``_cross``)."""
        negatives: dict[_Key, int] = {}
        crossed: set[_Key] = set()
        for pane_end in range(end_ms - self._span_ms, end_ms + 1, self._hop_ms):
            for key, k in self._pane_negatives.get(pane_end, {}).items():
                negatives[key] = negatives.get(key, 0) + k
            crossed.update(self._cross.get(pane_end, ()))
        return negatives, crossed

    def _slide_to(self, end_ms: int, min_negative: int) -> None:
        """Make ``_slide`` cover exactly the panes of window ``end_ms``: slide it on, or rebuild it."""
        slide, hop, lo = self._slide, self._hop_ms, end_ms - self._span_ms
        if slide.min_negative != min_negative or slide.lo_ms is None or slide.hi_ms > end_ms or not (  # type: ignore[operator]
                slide.lo_ms <= lo <= slide.hi_ms + hop):  # type: ignore[operator]
            slide.reset(min_negative)
        while slide.lo_ms is not None and slide.lo_ms < lo:
            self._pop_slide()
        for pane_end in range(lo if slide.hi_ms is None else slide.hi_ms + hop, end_ms + 1, hop):
            slide.push(pane_end, self._panes.get(pane_end, {}).keys(), self._pane_negatives.get(pane_end, {}))

    def _pop_slide(self) -> None:
        pane_end = self._slide.lo_ms
        assert pane_end is not None
        self._slide.pop(self._panes.get(pane_end, {}).keys(), self._pane_negatives.get(pane_end, {}))

    def _items_of(self, key: _Key, end_ms: int, parts: list[dict[str, _Entry]], since: int) -> list[ScoredItem]:
        """The items window ``end_ms`` of ``key`` counts, from its panes' story dicts ``parts``.

        An entry counts when ``min_end <= end_ms`` and ``seq > since``; of
        the copies of one story the first to arrive (lowest ``seq``) counts.
        Without copies, partially late entries or a re-closing (the common
        case) that is every entry of the panes, when their stories differ.
        """
        lo, hop, copies, partial = end_ms - self._span_ms, self._hop_ms, self._copies, self._partial_panes
        plain = not since and not (copies and any(p in copies and key in copies[p] for p in range(lo, end_ms + 1, hop)))
        if plain and not (partial and any(lo <= p <= end_ms for p in partial)):
            if len(parts) == 1:
                return [entry[1] for entry in parts[0].values()]
            merged: dict[str, _Entry] = {}
            held = 0
            for stories in parts:
                merged.update(stories)
                held += len(stories)
            if len(merged) == held:  # no story in two panes
                return [entry[1] for entry in merged.values()]
        candidates = [entry for stories in parts for entry in stories.values()]
        for pane_end in range(lo, end_ms + 1, hop):
            candidates.extend(copies.get(pane_end, {}).get(key, ()))
        first: dict[str, _Entry] = {}
        for entry in candidates:
            if entry[3] > end_ms or entry[2] <= since:
                continue
            kept = first.get(entry[4])
            if kept is None or entry[2] < kept[2]:
                first[entry[4]] = entry
        return [entry[1] for entry in first.values()]

    def _forget(self, due: list[int], watermark: int) -> None:
        """Record ``due`` as closed and drop the panes whose every window has closed."""
        seq = self._seq
        for end in due:
            self._closed_seq[end] = seq
            self._reopened.discard(end)
        if self._frontier_ms is None or watermark > self._frontier_ms:
            self._frontier_ms = watermark
        span = self._span_ms
        for pane_end in sorted(p for p in self._panes if p + span <= watermark):
            while self._slide.lo_ms is not None and self._slide.lo_ms <= pane_end:
                self._pop_slide()  # while the pane is still there to subtract
            self._forget_stories(pane_end, self._panes.pop(pane_end))
            self._pane_negatives.pop(pane_end, None)
            self._copies.pop(pane_end, None)
            self._partial_panes.discard(pane_end)
        oldest = min(self._panes, default=None)
        self._closed_seq = {e: s for e, s in self._closed_seq.items() if oldest is not None and e >= oldest}

    def _result_of(self, key: _Key, end_ms: int, items: list[ScoredItem]) -> WindowResult:
        """The result of window ``end_ms`` of ``key`` holding ``items`` (at least one)."""
        if len(items) == 1:  # the most common window on sparse feeds (tweets, ratings): no lists
            return _single(key, end_ms - self._size_ms, end_ms, items[0])
        n = len(items)
        labels = list(map(_LABEL, items))
        n_negative = labels.count("negative")
        n_neutral = labels.count("neutral")
        versions = set(map(_VERSION, items))
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
            math.fsum(map(_SCORE, items)) / n,
            LazyEvidence(items),
            tuple(versions) if len(versions) == 1 else tuple(sorted(versions)),
        )


def _cannot_fire(n_negative: int, n: int, light: tuple[int, float]) -> bool:
    """Whether a window of ``n`` items, ``n_negative`` negative, is below ``light``'s (min_negative, min_neg_share)."""
    return n_negative < light[0] or n_negative / n < light[1]  # the detectors' own comparisons


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
