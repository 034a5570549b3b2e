"""Per-key baseline of the negative share: an exponentially weighted mean and variance.

Update rule for a new observation ``x`` (the negative share of a closed,
non-firing window of the key) with weight ``a`` (Finch 2009, "Incremental
calculation of weighted mean and variance", eq. 143; West 1979)::

    d    = x - mean
    mean = mean + a * d
    var  = (1 - a) * (var + a * d * d)

``a = max(1 - 2 ** (-1 / halflife), 1 / (prior_windows + seen + 1))``: in the
long run an observation's weight halves every ``halflife`` windows. A key
starts at the prior (``prior_share``, variance ``p (1 - p)``) counted as
``prior_windows`` windows: the ``1 / (prior_windows + seen + 1)`` term makes
the first updates an exact running mean of the prior and the windows seen
(as a Beta-binomial prior would), so a new key learns quickly but not from
one window only. Windows the detector found significant are learnt with
the long-run weight only (see ``update``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["BaselineState", "EwmaBaseline"]


@dataclass(slots=True)
class BaselineState:
    """The learnt state of one key: EWMA ``mean`` and ``var`` of the share, ``windows`` seen."""

    mean: float
    var: float
    windows: int = 0


class EwmaBaseline:
    """EWMA mean/variance of the negative share per key.

    Args:
        halflife_windows: windows after which an observation's weight halves, > 0.
        prior_share: the share a new key is assumed to have, in (0, 1).
        prior_windows: how many windows the prior is worth, >= 0.

    Raises:
        ValueError: a parameter out of range.
    """

    def __init__(self, halflife_windows: float = 24.0, prior_share: float = 0.2, prior_windows: int = 4) -> None:
        if halflife_windows <= 0:
            raise ValueError(f"halflife_windows must be > 0, got {halflife_windows}")
        if not 0.0 < prior_share < 1.0:
            raise ValueError(f"prior_share must be in (0, 1), got {prior_share}")
        if prior_windows < 0:
            raise ValueError(f"prior_windows must be >= 0, got {prior_windows}")
        self._halflife = float(halflife_windows)
        self._a = 1.0 - 2.0 ** (-1.0 / halflife_windows)
        self._prior = float(prior_share)
        self._prior_windows = int(prior_windows)
        self._state: dict[tuple[str, str], BaselineState] = {}

    def share(self, key: tuple[str, str]) -> float:
        """The baseline negative share of ``key`` ((key_type, key)), in [0, 1]."""
        s = self._state.get(key)
        return self._prior if s is None else s.mean

    def std(self, key: tuple[str, str]) -> float:
        """The EWMA standard deviation of the share of ``key``."""
        s = self._state.get(key)
        var = self._prior * (1 - self._prior) if s is None else s.var
        return max(var, 0.0) ** 0.5

    def windows(self, key: tuple[str, str]) -> int:
        """How many windows of ``key`` the baseline has learnt from."""
        s = self._state.get(key)
        return 0 if s is None else s.windows

    def fresh(self) -> "EwmaBaseline":
        """A baseline of the same parameters with nothing learnt."""
        return EwmaBaseline(self._halflife, self._prior, self._prior_windows)

    @property
    def keys(self) -> frozenset[tuple[str, str]]:
        """The keys learnt from at least once."""
        return frozenset(self._state)

    def adopt(self, other: "EwmaBaseline") -> int:
        """Take ``other``'s learnt state for every key this baseline has not learnt from yet.

        Used after a restart or a rebalance: ``other`` is a baseline rebuilt
        by replaying the scored topic (``finsentry.rebuild``). Keys this
        baseline already knows keep their own state.

        Returns:
            How many keys were taken.
        """
        taken = 0
        for key, s in other._state.items():
            if key not in self._state:
                self._state[key] = BaselineState(mean=s.mean, var=s.var, windows=s.windows)
                taken += 1
        return taken

    def forget(self, keys: Iterable[tuple[str, str]]) -> int:
        """Drop what was learnt for ``keys`` (their partition went to another daemon); returns how many were known."""
        return sum(self._state.pop(key, None) is not None for key in keys)

    def update(self, key: tuple[str, str], share: float, suspicious: bool = False) -> None:
        """Learn one window's negative share (in [0, 1]) for ``key``.

        A ``suspicious`` window (one the detector found significant) is
        learnt with the long-run weight ``1 - 2 ** (-1 / halflife)`` only, never
        the fast-start weight: a burst barely moves the baseline of a key with
        little history, yet a key whose usual share is high is learnt in the end.
        """
        s = self._state.get(key)
        if s is None:
            s = self._state[key] = BaselineState(mean=self._prior, var=self._prior * (1 - self._prior))
        a = self._a if suspicious else max(self._a, 1.0 / (self._prior_windows + s.windows + 1))
        d = share - s.mean
        s.mean += a * d
        s.var = (1 - a) * (s.var + a * d * d)
        s.windows += 1
