"""Backtest throughput over cached scores (issue #8 target: >= 200,000 items/s).

Three figures on the same items, measured side by side in one process:

1. ``cache``: rebuilding ``ScoredItem`` objects from the score cache (Parquet
   already loaded) for every feed item (``CachingScorer.score_items``).
2. ``full``: the in-process replay of a backtest's first pass: feed records
   → ``Pipeline.process`` (JSON decode + NewsItem validation, scores from
   the cache, windows) → ``Pipeline.close_windows`` per batch of 64.
3. ``windows``: the sweep path over cached scores, ``replay_scored``: the
   scored items through a fresh pipeline's windows and detector
   (``close_windows`` per batch of 64), no decoding, no model.

The score cache must hold the feed's items (run ``finsentry backtest`` on the
feed first with the same ``--cache-dir``); missing items are scored before
timing starts. Each figure is given per wall-clock second and per CPU second
of this process (the latter is what a shared, loaded machine can tell).

Usage::

    python benchmarks/bench_backtest.py [--feed DIR_OR_FILE] [--cache-dir var/score-cache] [--runs 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from finsentry.gc_tuning import freeze_heap, tune_gc  # noqa: E402
from finsentry.backtest import CachingScorer, feed_records, replay_in_process, replay_scored  # noqa: E402
from finsentry.config import load_settings  # noqa: E402
from finsentry.daemon import build_pipeline  # noqa: E402
from finsentry.demo import default_data_dir  # noqa: E402
from ingest import read_feed  # noqa: E402


def _median_rate(n: int, fn, runs: int) -> tuple[float, list[float], float]:
    """(median items/s wall, runs, median items per CPU-second of this process)."""
    rates, cpu_rates = [], []
    for _ in range(runs):
        t, c = time.perf_counter(), time.process_time()
        fn()
        rates.append(n / (time.perf_counter() - t))
        cpu_rates.append(n / (time.process_time() - c))
    return statistics.median(rates), rates, statistics.median(cpu_rates)


def main() -> int:
    """Run the benchmark and print the figures (text or JSON)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--feed", type=Path, default=default_data_dir() / "stocknet")
    ap.add_argument("--cache-dir", type=Path, default=REPO_ROOT / "var" / "score-cache")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    tune_gc()  # as the finsentry command does
    settings = load_settings(model={"path": REPO_ROOT / "models", "device": "cpu"})
    feed = read_feed(args.feed)
    items = feed.items
    scorer = CachingScorer(settings.model.path, args.cache_dir, "cpu")
    missing = scorer.prefetch(items)
    scorer.cache.save()
    records = feed_records(items)
    batch = settings.batch.max_batch

    cache_rate, cache_runs, cache_cpu = _median_rate(len(items), lambda: scorer.score_items(items), args.runs)
    full_out = {}

    def full() -> None:
        full_out["o"] = replay_in_process(records, build_pipeline(settings, scorer=scorer), batch)

    full_rate, full_runs, full_cpu = _median_rate(len(items), full, max(1, args.runs // 2))
    scored = full_out["o"].scored
    freeze_heap()  # as run_backtest does once the feed is read
    win_rate, win_runs, win_cpu = _median_rate(
        len(scored), lambda: replay_scored(scored, build_pipeline(settings, scorer=scorer), batch), args.runs)
    result = {
        "feed": str(args.feed), "items": len(items), "scored": len(scored), "scored_before_timing": missing,
        "alerts": len(full_out["o"].alerts), "windows_closed": full_out["o"].windows_closed,
        "settings": {"windows": settings.windows.model_dump(), "detector": settings.detector.model_dump()},
        "cache_items_per_s": round(cache_rate), "full_items_per_s": round(full_rate),
        "windows_items_per_s": round(win_rate),
        "per_cpu_second": {"cache": round(cache_cpu), "full": round(full_cpu), "windows": round(win_cpu)},
        "runs": {"cache": [round(r) for r in cache_runs], "full": [round(r) for r in full_runs],
                 "windows": [round(r) for r in win_runs]},
        "machine": f"{platform.node()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "load_average": os.getloadavg(),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for k, v in result.items():
            print(f"{k}: {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
