"""The backtest command's driver: feed → scores (cached) → pipeline replay → outputs."""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from tqdm import tqdm

from finsentry.config import Settings
from finsentry.daemon import build_pipeline
from finsentry.gc_tuning import freeze_heap
from ingest import FeedError, FeedResult, read_feed

from ._cache import CachingScorer
from ._outputs import scored_frame, write_alerts, write_json, write_rejected, write_scored
from ._replay import ReplayOutcome, feed_records, replay_in_process, replay_scored
from ._sweep import SweepVariant, apply_overrides

__all__ = ["BacktestOptions", "BacktestResult", "run_backtest"]

log = logging.getLogger(__name__)


@dataclass
class BacktestOptions:
    """What ``finsentry backtest`` was asked to do.

    Attributes:
        feed: feed file or StockNet folder (any ``ingest.read_feed`` format).
        out_dir: output folder (created).
        fmt: feed format, None = detected.
        start, end: event-time range ``[start, end)``, tz-aware UTC; None = open.
        prices: price file or folder (see ``load_prices``); None = no event study.
        market: market index price file (S&P 500); used with ``prices``.
        cache_dir: score cache folder (``scores-<model version>.parquet``).
        via_kafka: replay through a Kafka broker and the daemon as well, and
            check that both alert lists are identical.
        bootstrap: broker for ``via_kafka``; None = ``kafka.bootstrap`` when it
            answers, else a local broker started for the run.
        sweep: detector/window settings to compare (``key -> values``).
        report: write ``report.html`` and its PNG plots.
        progress: show tqdm progress bars (None = only on a terminal).
    """

    feed: Path
    out_dir: Path
    fmt: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    prices: Path | None = None
    market: Path | None = None
    cache_dir: Path = Path("var/score-cache")
    via_kafka: bool = False
    bootstrap: str | None = None
    sweep: dict[str, list[str]] = field(default_factory=dict)
    report: bool = True
    progress: bool | None = None


@dataclass
class BacktestResult:
    """A finished backtest: the in-process outcome and the summary written to ``summary.json``."""

    outcome: ReplayOutcome
    summary: dict[str, Any]
    out_dir: Path


def _read(opts: BacktestOptions) -> FeedResult:
    feed = read_feed(opts.feed, opts.fmt, start=opts.start, end=opts.end)
    if feed.rejected:
        reasons = Counter(r.reason for r in feed.rejected)
        log.warning("%d feed records rejected (%s); listed in rejected.csv", len(feed.rejected),
                    ", ".join(f"{k} {v}" for k, v in reasons.most_common()))
    return feed


def run_backtest(opts: BacktestOptions, settings: Settings) -> BacktestResult:
    """Run one backtest and write its output folder.

    Steps: read the feed (``ingest.read_feed``); score every item not yet in
    the score cache (progress bar); replay the items through the daemon's
    pipeline (``build_pipeline`` with the caching scorer) in process; with
    ``via_kafka`` also through the broker and ``finsentry.daemon.Daemon``;
    event study when prices are given; sweep; report.

    Raises:
        ingest.FeedError: unreadable feed (missing columns, unknown format, ...), or
            no item left to backtest (all rejected, or none in the range).
        ValueError: ``start`` not before ``end``; ``out_dir`` is an existing file.
        PriceError: unreadable price file (missing columns, bad dates, ...).
        SweepError: a bad ``--sweep`` key or value.
        ViaKafkaMismatch: the broker run gave other alerts than the in-process run.
        inference.ModelFolderError: model problems.
    """
    t0 = time.perf_counter()
    if opts.start is not None and opts.end is not None and opts.start >= opts.end:
        raise ValueError(f"--from {opts.start.isoformat()} is not before --to {opts.end.isoformat()}: empty range")
    if opts.out_dir.exists() and not opts.out_dir.is_dir():
        raise ValueError(f"--out {opts.out_dir}: exists and is not a folder")
    opts.out_dir.mkdir(parents=True, exist_ok=True)
    variants = _variants(opts, settings)  # validate --sweep before the long work
    prices = _load_prices(opts)  # likewise the price files
    feed = _read(opts)
    write_rejected(feed.rejected, opts.out_dir)
    if not feed.items:
        span = f" between {_iso(opts.start)} and {_iso(opts.end)}" if opts.start or opts.end else ""
        raise FeedError(f"{opts.feed}: no items to backtest{span} ({len(feed.rejected)} records rejected"
                        f"{', listed in ' + str(opts.out_dir / 'rejected.csv') if feed.rejected else ''})")
    scorer = CachingScorer(settings.model.path, opts.cache_dir, settings.model.device, settings.model.intra_op_threads)
    timings: dict[str, float] = {"read_s": time.perf_counter() - t0}

    t = time.perf_counter()
    cached_before = sum(1 for it in feed.items if it.id in scorer.cache)
    with tqdm(total=len(feed.items) - cached_before, unit="item", desc="score", disable=_no_bar(opts)) as bar:
        newly = scorer.prefetch(feed.items, settings.batch.max_batch, on_done=bar.update)
    scorer.cache.save()
    timings["score_s"] = time.perf_counter() - t

    t = time.perf_counter()
    records = feed_records(feed.items)
    freeze_heap()  # the feed and its records live until the end: later collections skip them
    outcome = _replay(records, settings, scorer, opts, "replay")
    timings["replay_s"] = time.perf_counter() - t
    scored = scored_frame(outcome.scored)
    write_alerts(outcome.alerts, opts.out_dir)
    write_scored(scored, opts.out_dir)

    summary: dict[str, Any] = {
        "feed": {"path": str(opts.feed), "format": feed.format, "items": len(feed.items),
                 "rejected": len(feed.rejected), "rejected_by_reason": dict(Counter(r.reason for r in feed.rejected)),
                 "notes": feed.notes, "from": _iso(opts.start), "to": _iso(opts.end),
                 "first_event": _iso(feed.items[0].published_at) if feed.items else None,
                 "last_event": _iso(feed.items[-1].published_at) if feed.items else None},
        "model": {"version": scorer.version, "provider": scorer.provider, "cache": str(scorer.cache.path),
                  "cached_before": cached_before, "scored_now": newly},
        "settings": {"windows": settings.windows.model_dump(), "detector": settings.detector.model_dump(),
                     "batch_size": settings.batch.max_batch},
        "pipeline": {"scored": len(outcome.scored), "dead_lettered": len(outcome.dead),
                     "dead_by_reason": dict(Counter(d.reason for d in outcome.dead)), "late": outcome.late,
                     "windows_closed": outcome.windows_closed, "windows_open_at_end": outcome.open_windows,
                     "alerts": len(outcome.alerts)},
        "timings": timings,
    }
    study = None
    if prices is not None:
        from ._event_study import run_event_study

        t = time.perf_counter()
        study = run_event_study(outcome.alerts, scored, prices, opts.out_dir)
        summary["event_study"] = study.summary
        for key, what in (("tickers_without_prices", "alerts of tickers without prices (not studied)"),
                          ("feed_tickers_without_prices", "feed tickers without prices"),
                          ("price_tickers_not_in_feed", "price files of tickers the feed never names (unused)"),
                          ("price_days_without_quote", "price rows without a quote (missing days)")):
            if study.summary[key]:
                log.warning("%s: %s", what, ", ".join(study.summary[key]))
        timings["event_study_s"] = time.perf_counter() - t
    if opts.via_kafka:
        from ._via_kafka import check_via_kafka

        t = time.perf_counter()
        summary["via_kafka"] = check_via_kafka(feed.items, outcome.alerts, settings, scorer, opts)
        timings["via_kafka_s"] = time.perf_counter() - t
    if len(variants) > 1:
        t = time.perf_counter()
        summary["sweep"] = _sweep(variants, outcome, settings, scorer, opts, scored, prices)
        timings["sweep_s"] = time.perf_counter() - t
    if opts.report:
        from ._report import write_report

        t = time.perf_counter()
        summary["report"] = str(write_report(opts.out_dir, outcome.alerts, scored, prices, study, summary))
        timings["report_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - t0
    write_json(summary, opts.out_dir / "summary.json")
    return BacktestResult(outcome, summary, opts.out_dir)


def _no_bar(opts: BacktestOptions) -> bool | None:
    return None if opts.progress is None else not opts.progress


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _replay(records: list, settings: Settings, scorer: CachingScorer, opts: BacktestOptions,
            desc: str) -> ReplayOutcome:
    pipeline = build_pipeline(settings, scorer=scorer)  # type: ignore[arg-type]
    with tqdm(total=len(records), unit="item", desc=desc, disable=_no_bar(opts)) as bar:
        return replay_in_process(records, pipeline, settings.batch.max_batch, on_batch=bar.update)


def _variants(opts: BacktestOptions, settings: Settings) -> list[SweepVariant]:
    from ._sweep import expand_sweep

    return expand_sweep(opts.sweep, settings)


def _load_prices(opts: BacktestOptions) -> Any:
    if opts.prices is None:
        return None
    from ._prices import load_price_set

    return load_price_set(opts.prices, opts.market)


def _sweep(variants: list[SweepVariant], base: ReplayOutcome, settings: Settings, scorer: CachingScorer,
           opts: BacktestOptions, scored: Any, prices: Any) -> list[dict[str, Any]]:
    """Each variant over the scored items of the main run (``replay_scored``: no decoding, no model)."""
    rows: list[dict[str, Any]] = []
    for v in variants:
        vs = apply_overrides(settings, v.overrides)
        t = time.perf_counter()
        pipeline = build_pipeline(vs, scorer=scorer)  # type: ignore[arg-type]
        with tqdm(total=len(base.scored), unit="item", desc=f"sweep {v.label}", disable=_no_bar(opts)) as bar:
            outcome = replay_scored(base.scored, pipeline, vs.batch.max_batch, on_batch=bar.update)
        row: dict[str, Any] = {**v.overrides, "alerts": len(outcome.alerts), "windows_closed": outcome.windows_closed,
                               "late": outcome.late, "seconds": round(time.perf_counter() - t, 3)}
        if prices is not None:
            from ._event_study import run_event_study

            s = run_event_study(outcome.alerts, scored, prices, None).summary
            row.update({k: s.get(k) for k in ("events", "mean_car_0_1", "t_car_0_1", "mean_car_0_5", "t_car_0_5",
                                              "mean_car_1_5", "t_car_1_5", "precision", "recall", "base_rate")})
        rows.append(row)
    import pandas as pd

    pd.DataFrame(rows).to_csv(opts.out_dir / "sweep.csv", index=False)
    return rows
