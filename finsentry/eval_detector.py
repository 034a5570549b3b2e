"""``finsentry eval-detector``: recall, false alerts and delay of the windows + detector on real feeds.

Method
    * Background: a real feed (default: the Benzinga analyst-ratings file),
      scored once with the configured model; the scores go to the backtests'
      score cache (``var/score-cache/``, one Parquet file per model version,
      keyed by item id: ``finsentry.backtest.CachingScorer``), so later runs,
      and backtests of the same feed, only replay the window operator and the
      detector.
    * Bursts: real negative headlines (Bearish tweets of
      ``twitter_financial_news_sentiment/sent_valid.csv``, also scored once and
      cached) injected on a background ticker: ``size`` items spread evenly
      over ``burst_minutes`` (default 30) from a random start (seeded). Each
      burst size is run separately, with ``bursts`` bursts, one per ticker
      and at least ``2 * window`` apart on the same ticker.
    * Replay: items in event-time order through ``finsentry.pipeline``'s
      window operator and detector (built from the settings), one partition,
      with a heartbeat every minute of feed time, as ``finsentry replay``
      writes them.
    * Measures: ``recall`` = share of bursts with a firing alert on their
      ticker whose window overlaps the burst; ``median_delay_s`` = median of
      (event time at which that alert was decided: the feed's clock, i.e.
      the watermark plus the allowed lateness, when its window closed) -
      (burst end), negative when the alert came before the burst's last item; ``false_alerts_per_ticker_day`` =
      firing alerts on the background alone / distinct (ticker, UTC day)
      pairs with background items. With the bursts injected, alerts that
      match no burst are also reported (``other_alerts_per_ticker_day``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import statistics
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from alerts import Alert
from finsentry.backtest import CachingScorer
from finsentry.config import REPO_ROOT, Settings
from finsentry.pipeline import build_detector, build_windows
from inference import ScoredItem, Unscored
from ingest import NewsItem, read_feed

__all__ = ["BurstSpec", "EvalResult", "evaluate_detector", "load_scored"]

log = logging.getLogger(__name__)

MINUTE_MS = 60_000
DAY_MS = 86_400_000


@dataclass(frozen=True)
class BurstSpec:
    """One injected burst: ``size`` items on ``ticker`` from ``start_ms`` over ``span_ms`` (epoch ms UTC)."""

    ticker: str
    start_ms: int
    span_ms: int
    size: int

    @property
    def end_ms(self) -> int:
        """Event time of the burst's last item."""
        return self.start_ms + (self.span_ms * (self.size - 1)) // max(self.size, 1)


@dataclass
class EvalResult:
    """The JSON-able result of one evaluation."""

    doc: dict[str, Any]


def load_scored(items: list[NewsItem], scorer: CachingScorer, batch: int = 256) -> list[ScoredItem]:
    """Scores of ``items`` (items without text left are dropped), from the score cache where it has them.

    New scores are saved to the cache (``scorer.cache.save()``).

    Raises:
        OSError: the cache cannot be written.
    """
    out: list[ScoredItem] = []
    for i in range(0, len(items), batch):
        out.extend(r for r in scorer.score_items(items[i : i + batch]) if not isinstance(r, Unscored))
    scorer.cache.save()
    return out


def _bearish(path: Path, limit: int = 400) -> list[NewsItem]:
    import csv

    out: list[NewsItem] = []
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            text = " ".join(row["text"].split())
            if row["label"] == "0" and "http" not in text and len(text) > 30:
                out.append(NewsItem(id=f"bear-{len(out)}", source="injected", title=text,
                                    published_at=datetime(2000, 1, 1, tzinfo=timezone.utc)))
            if len(out) == limit:
                break
    return out


def _plan(background: list[ScoredItem], size: int, n: int, span_ms: int, gap_ms: int, seed: int) -> list[BurstSpec]:
    rng = random.Random(seed * 1000 + size)
    tickers = sorted({t for s in background for t in s.tickers})
    lo, hi = background[0].published_ms, background[-1].published_ms - span_ms - gap_ms
    plan: list[BurstSpec] = []
    while len(plan) < n:
        ticker = rng.choice(tickers)
        start = rng.randrange(lo, hi) // MINUTE_MS * MINUTE_MS
        if all(b.ticker != ticker or abs(b.start_ms - start) > gap_ms for b in plan):
            plan.append(BurstSpec(ticker, start, span_ms, size))
    return plan


def _burst_items(plan: list[BurstSpec], bearish: list[ScoredItem], seed: int) -> list[ScoredItem]:
    rng = random.Random(seed)
    out: list[ScoredItem] = []
    for b_i, burst in enumerate(plan):
        for i, src in enumerate(rng.sample(bearish, burst.size)):
            t = burst.start_ms + (burst.span_ms * i) // burst.size
            out.append(src.model_copy(update={
                "item_id": f"burst-{b_i}-{i}", "tickers": (burst.ticker,),
                "published_at": datetime.fromtimestamp(t / 1000, tz=timezone.utc),
            }))
    return out


def replay_detector(settings: Settings, items: list[ScoredItem]) -> list[tuple[Alert, int]]:
    """Firing alerts (with the event time, ms, at which each was decided) over ``items`` in event-time order."""
    windows, detector = build_windows(settings), build_detector(settings)
    windows.assign_partitions([0])
    fired: list[tuple[Alert, int]] = []
    beat: int | None = None

    def close() -> None:
        closed = windows.advance((), detector.window_interest())
        if closed or detector.__class__.__name__ == "SpikeDetector":
            for alert in detector.evaluate_windows(closed, windows.watermark_ms, windows.hop_ms):
                if alert.status == "firing":  # decided when the feed's clock reached watermark + lateness
                    fired.append((alert, (windows.watermark_ms or 0) + windows.allowed_lateness_ms))

    for item in sorted(items, key=lambda s: (s.published_ms, s.item_id)):
        t = item.published_ms
        beat = t - t % MINUTE_MS if beat is None else beat
        while beat + MINUTE_MS <= t:  # the replay's heartbeats, one per minute of feed time
            beat += MINUTE_MS
            windows.heartbeat(0, beat)
            close()
        windows.add_item(0, item)
    end = (beat or 0) + windows.size_ms + windows.allowed_lateness_ms + windows.hop_ms
    while beat is not None and beat < end:
        beat += MINUTE_MS
        windows.heartbeat(0, beat)
        close()
    return fired


def _ticker_days(items: list[ScoredItem]) -> int:
    return len({(t, s.published_ms // DAY_MS) for s in items for t in s.tickers})


def evaluate_detector(
    settings: Settings,
    background_feed: Path,
    bearish_csv: Path,
    sizes: tuple[int, ...] = (3, 5, 8, 12),
    bursts: int = 30,
    burst_minutes: int = 30,
    seed: int = 7,
    cache_dir: Path = REPO_ROOT / "var" / "score-cache",
) -> EvalResult:
    """Run the evaluation described in the module docstring.

    Raises:
        ingest.FeedError: a feed cannot be read; inference errors: the model cannot be loaded.
    """
    scorer = CachingScorer(settings.model.path, cache_dir, settings.model.device, settings.model.intra_op_threads)
    provenance = _provenance(scorer.folder.path)  # before the run: the code and model it used
    t0 = time.perf_counter()
    background = load_scored(read_feed(background_feed).items, scorer)
    bearish = [s for s in load_scored(_bearish(bearish_csv), scorer) if s.label == "negative"]
    background.sort(key=lambda s: (s.published_ms, s.item_id))
    scored_s = time.perf_counter() - t0
    ticker_days = _ticker_days(background)
    t1 = time.perf_counter()
    false_alerts = replay_detector(settings, background)
    window_ms = round(settings.windows.size_minutes * MINUTE_MS)
    rows = []
    for size in sizes:
        plan = _plan(background, size, bursts, burst_minutes * MINUTE_MS, 2 * window_ms + DAY_MS, seed)
        alerts = replay_detector(settings, background + _burst_items(plan, bearish, seed + size))
        delays, matched = [], set()
        for burst in plan:
            hits = [(a, at) for a, at in alerts if a.key == burst.ticker and _overlaps(a, burst)]
            if hits:
                delays.append((min(at for _, at in hits) - burst.end_ms) / 1000)
                matched.update(id(a) for a, _ in hits)
        other = sum(1 for a, _ in alerts if id(a) not in matched)
        rows.append({
            "burst_size": size, "burst_minutes": burst_minutes, "bursts": len(plan),
            "recall": round(len(delays) / len(plan), 4),
            "median_delay_s": statistics.median(delays) if delays else None,
            "false_alerts_per_ticker_day": round(len(false_alerts) / ticker_days, 5),
            "other_alerts_per_ticker_day": round(other / ticker_days, 5),
        })
    replay_s = time.perf_counter() - t1
    w, d = settings.windows, settings.detector
    doc = {
        "model_version": scorer.version,
        "provenance": provenance,
        "background": {"feed": background_feed.name, "items": len(background), "ticker_days": ticker_days,
                       "tickers": len({t for s in background for t in s.tickers}),
                       "false_alerts": len(false_alerts),
                       "false_alerts_per_ticker_day": round(len(false_alerts) / ticker_days, 5)},
        "injected": {"source": bearish_csv.name, "negative_headlines": len(bearish), "seed": seed},
        "windows": {"size_minutes": w.size_minutes, "hop_minutes": w.hop_minutes,
                    "allowed_lateness_minutes": w.allowed_lateness_minutes, "key_types": list(w.key_types)},
        "detector": d.model_dump(mode="json"),
        "results": rows,
        "case_8_in_30_minutes": next((r for r in rows if r["burst_size"] == 8 and burst_minutes == 30), None),
        "seconds": {"score_or_load": round(scored_s, 1), "replays": round(replay_s, 1)},
    }
    return EvalResult(doc)


def _provenance(model_path: Path) -> dict[str, str | None]:
    """The code and model a result came from: git commit of this checkout (None outside git; ``+changes``
    appended when the working tree differs from it), sha256 of the model folder's ``model.onnx`` (the file
    the CPU scores)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip() or None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        commit = f"{commit}+changes" if commit and dirty else commit
    except (OSError, subprocess.SubprocessError):
        commit = None
    onnx = model_path / "model.onnx"
    digest = hashlib.sha256(onnx.read_bytes()).hexdigest() if onnx.is_file() else None
    return {"git_commit": commit, "model_onnx_sha256": digest}


def _overlaps(alert: Alert, burst: BurstSpec) -> bool:
    start = int(alert.window_start.timestamp() * 1000)
    end = int(alert.window_end.timestamp() * 1000)
    return start <= burst.end_ms and burst.start_ms < end


def format_table(doc: dict[str, Any]) -> str:
    """A Markdown table of ``doc["results"]``."""
    lines = ["| burst size | in minutes | bursts | recall | median delay (s) | false alerts / ticker-day |",
             "|---|---|---|---|---|---|"]
    for r in doc["results"]:
        delay = "–" if r["median_delay_s"] is None else f"{r['median_delay_s']:.0f}"
        lines.append(f"| {r['burst_size']} | {r['burst_minutes']} | {r['bursts']} | {r['recall']:.2f} | {delay} | "
                     f"{r['false_alerts_per_ticker_day']:.4f} |")
    return "\n".join(lines)


def write_result(result: EvalResult, out: Path) -> None:
    """Write the JSON (sorted keys, indented) to ``out``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result.doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")
