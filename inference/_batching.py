"""Length-sorted sub-batches: cut the padding a transformer batch pays for.

A batch is padded to its longest sequence, so a batch that mixes a 9-token
headline with a 90-token article pays for 81 padding positions on the short
one. Sorting the items of a batch window by token length and cutting the
sorted order into sub-batches keeps each sub-batch's lengths close (the
"bucketing by length" of sequence-model serving); the scores are then written
back at each item's original position, so callers see their input order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["length_sorted_batches", "padded_tokens"]


def length_sorted_batches(lengths: Sequence[int], max_rows: int) -> list[np.ndarray]:
    """Cut the positions of a batch window into sub-batches of similar length.

    Args:
        lengths: token count of each item, in input order (n items).
        max_rows: most items per sub-batch (>= 1).

    Returns:
        int64 index arrays into the input, one per sub-batch; together they
        hold every position ``0..n-1`` exactly once. Positions are ordered by
        length (ties keep input order: a stable sort), so scattering each
        sub-batch's results to ``out[index]`` restores the input order.

    Raises:
        ValueError: ``max_rows < 1``.
    """
    if max_rows < 1:
        raise ValueError(f"max_rows must be >= 1, got {max_rows}")
    order = np.argsort(np.asarray(lengths, dtype=np.int64), kind="stable")
    return [order[i : i + max_rows] for i in range(0, len(order), max_rows)]


def padded_tokens(lengths: Sequence[int], batches: Sequence[np.ndarray]) -> int:
    """Token positions the model computes for ``batches`` (rows x longest row, summed).

    ``padded_tokens(lengths, batches) - sum(lengths)`` is the padding cost.
    """
    arr = np.asarray(lengths, dtype=np.int64)
    return int(sum(len(b) * int(arr[b].max()) for b in batches if len(b)))
