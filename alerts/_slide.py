"""Per-key counts over a run of consecutive panes, kept up to date as the window slides.

The hopping-window operator (``alerts._windows``) needs, for each window it
closes, how many keys hold items in it and which keys may reach the
detector's ``min_negative``. Summing the window's ``size / hop`` panes again
at every hop costs ``size / hop`` times the pane sizes; sliding costs one
pane in and one pane out (the "subtract-on-evict" form of sliding-window
aggregation: Tangwongsan et al. 2015, "General incremental sliding-window
aggregation", PVLDB 8(7), section 2), plus O(1) per item added to a pane
the run covers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

__all__ = ["SlidingCounts"]

_Key = tuple[str, str]


class SlidingCounts:
    """Counts per key over the panes ``lo_ms .. hi_ms`` (pane ends, every ``hop_ms``).

    ``present[key]``: how many of the panes hold the key; ``negatives[key]``:
    negative entries of the key in them; ``reaching``: keys with
    ``negatives >= min_negative``. Not thread-safe.

    Args:
        hop_ms: distance between pane ends, ms, > 0.
        min_negative: the threshold of ``reaching``, >= 1.
    """

    def __init__(self, hop_ms: int, min_negative: int) -> None:
        self.hop_ms = hop_ms
        self.min_negative = min_negative
        self.lo_ms: int | None = None
        self.hi_ms: int | None = None
        self.present: dict[_Key, int] = {}
        self.negatives: dict[_Key, int] = {}
        self.reaching: set[_Key] = set()

    def reset(self, min_negative: int | None = None) -> None:
        """Forget everything (and change the threshold when given)."""
        self.lo_ms = self.hi_ms = None
        self.present.clear()
        self.negatives.clear()
        self.reaching.clear()
        if min_negative is not None:
            self.min_negative = min_negative

    def covers(self, pane_end_ms: int) -> bool:
        """Whether the run includes pane ``pane_end_ms``."""
        return self.lo_ms is not None and self.lo_ms <= pane_end_ms <= self.hi_ms  # type: ignore[operator]

    def push(self, pane_end_ms: int, keys: Iterable[_Key], negatives: Mapping[_Key, int]) -> None:
        """Append pane ``pane_end_ms`` (``hi_ms + hop_ms``, or the first pane) with its keys and negative counts.

        Raises:
            ValueError: the pane does not follow the run.
        """
        if self.hi_ms is not None and pane_end_ms != self.hi_ms + self.hop_ms:
            raise ValueError(f"pane {pane_end_ms} does not follow {self.hi_ms}")
        present = self.present
        for key in keys:
            present[key] = present.get(key, 0) + 1
        for key, n in negatives.items():
            self._add_negatives(key, n)
        if self.lo_ms is None:
            self.lo_ms = pane_end_ms
        self.hi_ms = pane_end_ms

    def pop(self, keys: Iterable[_Key], negatives: Mapping[_Key, int]) -> None:
        """Remove the run's first pane (``lo_ms``), whose keys and negative counts are given."""
        present = self.present
        for key in keys:
            left = present[key] - 1
            if left:
                present[key] = left
            else:
                del present[key]
        for key, n in negatives.items():
            self._add_negatives(key, -n)
        if self.lo_ms == self.hi_ms:
            self.reset()
        else:
            self.lo_ms += self.hop_ms  # type: ignore[operator]

    def key_joined(self, key: _Key) -> None:
        """A covered pane got its first entry of ``key``."""
        self.present[key] = self.present.get(key, 0) + 1

    def negative_joined(self, key: _Key) -> None:
        """A covered pane got a negative entry of ``key``."""
        self._add_negatives(key, 1)

    def _add_negatives(self, key: _Key, n: int) -> None:
        total = self.negatives.get(key, 0) + n
        if total:
            self.negatives[key] = total
        else:
            self.negatives.pop(key, None)
        if total >= self.min_negative:
            self.reaching.add(key)
        else:
            self.reaching.discard(key)
