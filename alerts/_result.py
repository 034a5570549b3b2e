"""The WindowResult record: the aggregate of one closed window.

It is the output of the windowing operator (``alerts._windows``) and the
input of the detectors (``alerts._detector``).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, NamedTuple, overload

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:  # typing only: importing ``inference`` loads ONNX Runtime
    from inference._scored import ScoredItem

__all__ = ["EVIDENCE_LIMIT", "Evidence", "LazyEvidence", "WindowCounts", "WindowInterest", "WindowResult"]

#: The most evidence items a window result (and so an alert) carries.
EVIDENCE_LIMIT: int = 10


class Evidence(BaseModel):
    """One item quoted as evidence: the most negative items of a window.

    Attributes:
        item_id: the NewsItem id.
        title: the headline.
        p_negative: the model's probability that the item is negative, [0, 1].
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    item_id: str
    title: str
    p_negative: float


def _rank(it: ScoredItem) -> tuple[float, str]:
    return (-it.p_negative, it.item_id)


class LazyEvidence(Sequence[Evidence]):
    """The evidence of a window, ranked only when first read.

    A window operator closes many windows and a detector fires on few of
    them, so ranking every window's items (``heapq.nsmallest`` plus one
    ``Evidence`` per quoted item) when it closes would be most of the
    operator's work. This sequence keeps the window's items and ranks them on
    first access: the ``EVIDENCE_LIMIT`` items with the highest
    ``p_negative``, ties by ``item_id`` ascending. It compares equal to the
    tuple of the same evidence.

    Args:
        items: the window's items (kept by reference, not copied).
    """

    __slots__ = ("_items", "_value")

    def __init__(self, items: Sequence[ScoredItem]) -> None:
        self._items: Sequence[ScoredItem] | None = items
        self._value: tuple[Evidence, ...] | None = None

    def _get(self) -> tuple[Evidence, ...]:
        if self._value is None:
            items = self._items or ()
            self._value = tuple(  # fields come from validated ScoredItems: no second validation
                Evidence.model_construct(item_id=it.item_id, title=it.title, p_negative=it.p_negative)
                for it in heapq.nsmallest(EVIDENCE_LIMIT, items, key=_rank)
            )
            self._items = None
        return self._value

    @overload
    def __getitem__(self, index: int) -> Evidence: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[Evidence, ...]: ...

    def __getitem__(self, index: int | slice) -> Evidence | tuple[Evidence, ...]:
        return self._get()[index]

    def __len__(self) -> int:
        return len(self._get())

    def __iter__(self) -> Iterator[Evidence]:
        return iter(self._get())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, LazyEvidence):
            return self._get() == other._get()
        if isinstance(other, (tuple, list)):
            return self._get() == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._get())

    def __repr__(self) -> str:
        return repr(self._get())


class WindowResult(NamedTuple):
    """Aggregate of the items of one closed window of one key (an immutable named tuple: cheap to build).

    Attributes:
        key_type: what ``key`` is; ``"ticker"`` for now.
        key: the ticker (or, later, another key).
        start_ms: window start, inclusive, epoch ms UTC.
        end_ms: window end, exclusive, epoch ms UTC.
        n: distinct items (by item id) in the window, >= 1.
        n_negative, n_neutral, n_positive: items per ``label``.
        neg_share: ``n_negative / n`` in [0, 1].
        mean_score: mean of the items' ``score`` (``p_positive - p_negative``),
            in [-1, 1]; summed with ``math.fsum`` so that it does not depend on
            the order the items arrived in.
        evidence: up to ``EVIDENCE_LIMIT`` items with the highest
            ``p_negative``, sorted by ``p_negative`` descending then
            ``item_id`` ascending (a ``LazyEvidence`` from the window
            operator: ranked when first read).
        model_versions: the distinct model versions that scored the items,
            sorted.
    """

    key_type: str
    key: str
    start_ms: int
    end_ms: int
    n: int
    n_negative: int
    n_neutral: int
    n_positive: int
    neg_share: float
    mean_score: float
    evidence: Sequence[Evidence]
    model_versions: tuple[str, ...]


class WindowCounts(NamedTuple):
    """The counts of a closed window that can only be learnt from (a lighter ``WindowResult``).

    ``EventTimeWindows.advance(interest=...)`` returns this instead of a
    ``WindowResult`` for a window whose negative count is below
    ``interest.min_negative`` or whose negative share is below
    ``interest.min_neg_share``: such a window cannot fire, so no detector
    reads its mean score, evidence or model versions (they go into alerts
    only), yet the baseline learns its share and an open episode's lifecycle
    sees it. The fields mean what they mean in ``WindowResult``.
    """

    key_type: str
    key: str
    start_ms: int
    end_ms: int
    n: int
    n_negative: int
    neg_share: float


class WindowInterest(NamedTuple):
    """Which closed windows a detector can act on; the window operator may close the rest silently.

    A detector ignores a closed window unless its negative count reaches
    ``min_negative``, it learns from it, or its key has an open episode.
    ``EventTimeWindows.advance`` returns a superset of those (see there), so
    the alerts are the same as with every window returned.

    Attributes:
        min_negative: the least negative count a window can fire with, >= 1.
        keys: ``(key_type, key)`` pairs whose every window is wanted (open episodes).
        learn_phase_ms: windows whose start minus this is a multiple of their
            size are wanted (the detector learns its baseline from them), ms;
            None when the detector learns from none.
        min_neg_share: the least negative share a window can fire with, in
            [0, 1]; a wanted window below it (or below ``min_negative``) comes
            as ``WindowCounts``.
    """

    min_negative: int
    keys: frozenset[tuple[str, str]]
    learn_phase_ms: int | None
    min_neg_share: float = 0.0
