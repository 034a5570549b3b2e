"""Garbage-collector settings for finsentry's long-running, allocation-heavy loops.

The window operator and the detector allocate many short-lived objects per
item (entries, window results) while a large, long-lived heap (scored items
in open windows, the model session, a backtest's whole feed) stays put.
CPython's default generation-0 threshold (700 allocations) makes the cyclic
collector run thousands of times a second and walk that heap again and
again: on the aggregator benchmark (``benchmarks/bench_aggregator.py``) it
costs about a third of the time. finsentry therefore raises the thresholds
and, once start-up is done, moves what exists to the permanent generation
(``gc.freeze``, Python >= 3.7), as described in the Python documentation of
the ``gc`` module and in Instagram Engineering, "Dismissing Python Garbage
Collection at Instagram" (2017). Reference cycles are still collected;
only less often.
"""

from __future__ import annotations

import gc

__all__ = ["GC_THRESHOLDS", "freeze_heap", "tune_gc"]

#: (generation 0 allocations, generation 1 and generation 2 collection ratios).
GC_THRESHOLDS: tuple[int, int, int] = (50_000, 20, 100)


def tune_gc() -> None:
    """Raise the collector's thresholds to ``GC_THRESHOLDS`` (process-wide; idempotent)."""
    gc.set_threshold(*GC_THRESHOLDS)


def freeze_heap() -> None:
    """Move every object tracked now to the permanent generation (``gc.freeze``).

    Call it after a start-up phase that built long-lived data (model loaded,
    a backtest's feed read): later collections no longer walk those objects.
    """
    gc.collect()
    gc.freeze()
