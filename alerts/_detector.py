"""Spike detectors: a closed window in, an Alert (or nothing) out."""

from __future__ import annotations

from ._alert import Alert
from ._result import WindowResult

__all__ = ["ThresholdDetector"]


class ThresholdDetector:
    """Fires when a window has both enough negative items and a high negative share.

    The rule string (``rule``), e.g. ``"neg_count>=5&neg_share>=0.6"``, goes
    into every alert and into its ``alert_id``: changing a threshold changes
    the ids of the alerts it produces.

    Args:
        min_negative: fire when ``n_negative >= min_negative``; >= 1.
        min_neg_share: and ``neg_share >= min_neg_share``; in [0, 1].

    Raises:
        ValueError: when a threshold is out of range.
    """

    def __init__(self, min_negative: int, min_neg_share: float) -> None:
        if isinstance(min_negative, bool) or int(min_negative) != min_negative or min_negative < 1:
            raise ValueError(f"min_negative must be an int >= 1, got {min_negative!r}")
        if not 0.0 <= min_neg_share <= 1.0:
            raise ValueError(f"min_neg_share must be in [0, 1], got {min_neg_share!r}")
        self._min_negative = int(min_negative)
        self._min_neg_share = float(min_neg_share)
        self._rule = f"neg_count>={self._min_negative}&neg_share>={self._min_neg_share!r}"

    @property
    def rule(self) -> str:
        """The rule string carried by the alerts."""
        return self._rule

    @property
    def min_negative(self) -> int:
        """Minimum count of negative items."""
        return self._min_negative

    @property
    def min_neg_share(self) -> float:
        """Minimum share of negative items, [0, 1]."""
        return self._min_neg_share

    def evaluate(self, w: WindowResult) -> Alert | None:
        """The firing alert for ``w``, or None when the thresholds are not both met."""
        if w.n_negative >= self._min_negative and w.neg_share >= self._min_neg_share:
            return Alert.from_window(w, self._rule)
        return None
