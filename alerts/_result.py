"""The WindowResult record: the aggregate of one closed window.

It is the output of the windowing operator (``alerts._windows``) and the
input of the detectors (``alerts._detector``).
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

__all__ = ["EVIDENCE_LIMIT", "Evidence", "WindowResult"]

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


@dataclass(frozen=True, slots=True)
class WindowResult:
    """Aggregate of the items of one closed window of one key.

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
            ``item_id`` ascending.
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
    evidence: tuple[Evidence, ...]
    model_versions: tuple[str, ...]
