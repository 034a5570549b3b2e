"""Aggregator throughput: scored events/s through the window operator and the detector, one core.

Synthetic scored items (labels drawn 20 % negative, 60 % neutral, 20 %
positive) over ``--keys`` tickers, event times increasing by 50 ms on
average (with jitter inside the allowed lateness), one partition. Each run
feeds ``--n`` items through ``EventTimeWindows.add_item`` (with their story keys
and event times in ms, which the pipeline's novelty check computes upstream: not timed here), calls ``advance``
and ``SpikeDetector.evaluate_windows`` every ``--advance-every`` items, and
closes everything at the end. The process uses finsentry's collector
settings (``finsentry.gc_tuning``: raised thresholds, start-up heap frozen). The figure is items / wall seconds for the
whole loop (window assignment, dedup, watermark, window results, baseline,
binomial test, lifecycle). Items are built before the clock starts.

Usage::

    python benchmarks/bench_aggregator.py [--n 200000] [--keys 10000] [--runs 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time
from datetime import datetime, timedelta, timezone

from alerts import EventTimeWindows, SpikeDetector, WindowCounts, story_key
from finsentry.gc_tuning import freeze_heap, tune_gc
from inference import ScoredItem

T0 = datetime(2024, 1, 2, tzinfo=timezone.utc)
_P = {"negative": (0.8, 0.15, 0.05), "neutral": (0.1, 0.8, 0.1), "positive": (0.05, 0.15, 0.8)}


def _items(n: int, keys: int, seed: int) -> list[ScoredItem]:
    rng = random.Random(seed)
    tickers = [f"K{i:05d}" for i in range(keys)]
    out, t = [], 0
    for i in range(n):
        t += rng.randint(0, 100)
        label = rng.choices(("negative", "neutral", "positive"), (0.2, 0.6, 0.2))[0]
        p = _P[label]
        out.append(ScoredItem.model_construct(
            item_id=f"i{i}", source="bench", published_at=T0 + timedelta(milliseconds=max(0, t - rng.randint(0, 60_000))),
            tickers=(rng.choice(tickers),), title=f"headline {i}", p_negative=p[0], p_neutral=p[1], p_positive=p[2],
            label=label, score=p[2] - p[0], topic=None, topic_p=0.0, truncated=False, model_version="m",
            ticker_sources=(), novel=True, time_flag=None,
        ))
    return out


def run_once(items: list[ScoredItem], stories: list[str], hop_min: int | None, advance_every: int
             ) -> tuple[float, int, int, int, int]:
    """One pass: (events/s, windows closed, window results built for the detector, alerts, of the results built
    those that are learning-only ``WindowCounts``)."""
    windows = EventTimeWindows(60 * 60_000, 10 * 60_000, None if hop_min is None else hop_min * 60_000)
    detector = SpikeDetector(5, 0.6)
    windows.assign_partitions([0])
    alerts_n = built = counts = 0
    start = time.perf_counter()
    for i, (item, story) in enumerate(zip(items, stories), 1):
        windows.add_item(0, item, story)
        if i % advance_every == 0:
            closed = windows.advance((), detector.window_interest())
            built += len(closed)
            counts += sum(type(r) is WindowCounts for r in closed)  # ~0.2 % of the time
            alerts_n += len(detector.evaluate_windows(closed, windows.watermark_ms, windows.hop_ms))
    windows.heartbeat(0, items[-1].published_ms + 3 * 3_600_000)
    closed = windows.advance((), detector.window_interest())
    built += len(closed)
    counts += sum(type(r) is WindowCounts for r in closed)
    alerts_n += len(detector.evaluate_windows(closed, windows.watermark_ms, windows.hop_ms))
    rate = len(items) / (time.perf_counter() - start)
    return rate, windows.closed_count, built, alerts_n, counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--keys", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--advance-every", type=int, default=500)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core
    tune_gc()  # the collector settings of the finsentry command (finsentry.gc_tuning)
    items = _items(args.n, args.keys, seed=1)
    stories = [story_key(it) for it in items]  # computed upstream by the pipeline's novelty check
    for it in items:
        it.published_ms  # noqa: B018 (computed once per item, upstream too: the novelty check reads it first)
    freeze_heap()  # as the daemon does after start-up; the items stand for the scored stream
    report = {"n": args.n, "keys": args.keys, "runs": args.runs}
    for name, hop in (("tumbling_60m", None), ("hopping_60m_by_5m", 5)):
        rates, closed, built, alerts, counts = [], 0, 0, 0, 0
        for _ in range(args.runs):  # both configurations in one process, one after the other
            rate, closed, built, alerts, counts = run_once(items, stories, hop, args.advance_every)
            rates.append(rate)
        report[name] = {"median_events_per_s": round(statistics.median(rates)), "runs": [round(r) for r in rates],
                        "windows_closed": closed, "windows_built": built, "of_which_counts_only": counts,
                        "alerts": alerts}
    print(json.dumps(report, indent=2) if args.json else report)


if __name__ == "__main__":
    main()
