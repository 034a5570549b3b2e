"""Backtests without Kafka: score cache, in-process replay through the daemon's pipeline, outputs, CLI errors.

The score cache is pre-filled with chosen labels where a test needs exact
windows, so the pipeline runs without the model; one test scores real text
with the real model to check that a re-run is answered from the cache.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest

from alerts import ThresholdDetector, TumblingWindows
from finsentry.backtest import (
    BacktestOptions,
    CachingScorer,
    ScoreCache,
    SweepError,
    apply_overrides,
    expand_sweep,
    feed_records,
    parse_sweep,
    replay_in_process,
    replay_scored,
    run_backtest,
)
from finsentry.cli import main
from finsentry.config import REPO_ROOT, load_settings
from finsentry.daemon import build_pipeline
from inference import ScoredItem, Unscored
from ingest import NewsItem

MODELS = REPO_ROOT / "models"
T0 = datetime(2015, 3, 2, 14, 0, tzinfo=timezone.utc)  # a Monday, 09:00 New York


def _settings(**detector: float):
    return load_settings(
        windows={"size_minutes": 60, "hop_minutes": 60, "allowed_lateness_minutes": 10},  # tumbling
        detector={"kind": "threshold", "min_negative": 3, "min_neg_share": 0.6, **detector},
        model={"path": MODELS, "device": "cpu"},
    )


def _item(i: int, minutes: float, ticker: str = "AAA", title: str | None = None) -> NewsItem:
    return NewsItem(id=f"it{i}", source="test", published_at=T0 + timedelta(minutes=minutes),
                    title=title or f"headline {i}", tickers=[ticker])


def _fill(cache: ScoreCache, items: list[NewsItem], labels: list[str], topic: str = "Earnings") -> None:
    probs = {"negative": (0.9, 0.05, 0.05), "neutral": (0.05, 0.9, 0.05), "positive": (0.05, 0.05, 0.9)}
    for it, label in zip(items, labels):
        n, u, p = probs[label]
        cache.put(it.id, ScoredItem(item_id=it.id, source=it.source, published_at=it.published_at,
                                    tickers=it.tickers, title=it.title, p_negative=n, p_neutral=u, p_positive=p,
                                    label=label, score=p - n, topic=topic, topic_p=0.8, model_version="x"))


def _scorer(tmp_path: Path, items: list[NewsItem], labels: list[str]) -> CachingScorer:
    scorer = CachingScorer(MODELS, tmp_path / "cache", "cpu")
    _fill(scorer.cache, items, labels)
    return scorer


# --------------------------------------------------------------------------- score cache


def test_cache_round_trip_rebuilds_items_with_their_own_fields(tmp_path: Path) -> None:
    items = [_item(0, 0), _item(1, 1)]
    cache = ScoreCache(tmp_path, "v1/beta")
    _fill(cache, items[:1], ["negative"])
    cache.put(items[1].id, Unscored("empty_text"))
    cache.save()
    assert cache.path.name == "scores-v1_beta.parquet"
    again = ScoreCache(tmp_path, "v1/beta")
    assert len(again) == 2
    got = again.get(items[0])
    assert isinstance(got, ScoredItem)
    assert (got.item_id, got.label, got.p_negative, got.tickers, got.published_at, got.model_version) == (
        "it0", "negative", 0.9, ("AAA",), items[0].published_at, "v1/beta")
    assert again.get(items[1]) == Unscored("empty_text")
    assert again.get(_item(9, 0)) is None
    assert ScoreCache(tmp_path, "v2").get(items[0]) is None  # another model version: another file


def test_a_rerun_is_answered_from_the_cache_without_the_model(tmp_path: Path) -> None:
    items = [_item(0, 0, title="Acme cuts full-year guidance, shares slide"),
             _item(1, 5, title="Acme beats estimates and raises its dividend")]
    first = CachingScorer(MODELS, tmp_path, "cpu")
    assert first.prefetch(items) == 2 and first.provider != "cache"
    first.cache.save()
    fresh = first.score_items(items)
    second = CachingScorer(MODELS, tmp_path, "cpu")
    cached = second.score_items(items)
    assert (second.hits, second.misses, second.provider) == (2, 0, "cache")  # the model was never loaded
    assert [c.model_dump() for c in cached] == [f.model_dump() for f in fresh]
    assert [c.label for c in cached] == ["negative", "positive"]


# --------------------------------------------------------------------------- replay


def test_in_process_replay_equals_the_window_and_detector_classes_driven_by_hand(tmp_path: Path) -> None:
    items = [_item(i, 5 * i) for i in range(4)] + [_item(10 + i, 7 * i, "BBB") for i in range(3)]
    items += [_item(20, 130), _item(21, 200, "BBB")]
    items.sort(key=lambda it: it.published_at)
    labels = {"it0": "negative", "it1": "negative", "it2": "negative", "it3": "neutral", "it10": "negative",
              "it11": "neutral", "it12": "positive", "it20": "neutral", "it21": "neutral"}
    scorer = _scorer(tmp_path, items, [labels[it.id] for it in items])
    settings = _settings()
    out = replay_in_process(feed_records(items), build_pipeline(settings, scorer=scorer), batch_size=2)

    windows = TumblingWindows(3_600_000, 600_000)
    for it in items:
        windows.add(0, scorer.cache.get(it))
    closed = windows.advance([0])
    detector = ThresholdDetector(3, 0.6)
    expected = [a for a in (detector.evaluate(w) for w in closed) if a is not None]
    assert [a.to_json() for a in out.alerts] == [a.to_json() for a in expected]
    assert [(a.key, a.n, a.n_negative) for a in out.alerts] == [("AAA", 4, 3)]
    assert (len(out.scored), out.late, len(out.dead), out.open_windows) == (9, 0, 0, 1)
    assert scorer.misses == 0


def test_the_fast_path_over_scored_items_gives_the_full_paths_alerts(tmp_path: Path) -> None:
    import random

    rng = random.Random(3)
    items = sorted((_item(i, rng.uniform(0, 600), rng.choice(["AAA", "BBB", "CCC"])) for i in range(300)),
                   key=lambda it: it.published_at)
    scorer = _scorer(tmp_path, items, [rng.choice(["negative", "negative", "neutral", "positive"]) for _ in items])
    for detector in ({"min_negative": 3, "min_neg_share": 0.5}, {"min_negative": 6, "min_neg_share": 0.4}):
        settings = _settings(**detector)
        full = replay_in_process(feed_records(items), build_pipeline(settings, scorer=scorer), batch_size=64)
        fast = replay_scored(full.scored, build_pipeline(settings, scorer=scorer), batch_size=64)
        assert len(full.alerts) >= 3
        assert [a.to_json() for a in fast.alerts] == [a.to_json() for a in full.alerts]
        assert (fast.late, fast.windows_closed, fast.open_windows) == (full.late, full.windows_closed, full.open_windows)


def test_feed_records_are_partition_zero_in_event_time_order() -> None:
    items = [_item(0, 0), _item(1, 3, "BBB")]
    recs = feed_records(items, appended_ms=1_700_000_000_000)
    assert [(r.partition, r.offset, r.key, r.timestamp, r.timestamp_type) for r in recs] == [
        (0, 0, b"AAA", 1_700_000_000_000, 1), (0, 1, b"BBB", 1_700_000_000_000, 1)]  # stamped like LogAppendTime
    assert NewsItem.model_validate_json(recs[1].value) == items[1]
    assert feed_records(items)[0].timestamp > items[1].published_ms  # default: now, after a historical feed


def test_a_future_dated_item_is_not_windowed_in_process_nor_in_the_fast_replay(tmp_path: Path) -> None:
    """As in the daemon on a raw topic finsentry created (LogAppendTime): an item dated far after the
    replay's ingestion time is flagged and left out of the windows, so it cannot close them early."""
    items = [_item(0, 0), _item(1, 5), _item(2, 60 * 24 * 365 * 80), _item(3, 10), _item(4, 130, "BBB")]
    scorer = _scorer(tmp_path, items, ["negative"] * 3 + ["negative", "neutral"])
    settings = _settings()
    pipeline = build_pipeline(settings, scorer=scorer)
    full = replay_in_process(feed_records(items), pipeline, batch_size=2)
    assert [s.time_flag for s in full.scored] == [None, None, "future", None, None]
    assert pipeline.without_time_reference == 0
    assert [(a.key, a.n, a.n_negative) for a in full.alerts] == [("AAA", 3, 3)]  # it3 counted: window not closed early
    assert full.late == 1
    fast = replay_scored(full.scored, build_pipeline(settings, scorer=scorer), batch_size=2)
    assert [a.to_json() for a in fast.alerts] == [a.to_json() for a in full.alerts]
    assert (fast.late, fast.windows_closed, fast.open_windows) == (full.late, full.windows_closed, full.open_windows)


# --------------------------------------------------------------------------- sweep


def test_sweep_parsing_and_validation() -> None:
    sweep = parse_sweep(["detector.min_negative=2,4", "windows.size_minutes=60,120"])
    variants = expand_sweep(sweep, _settings())
    assert [v.overrides for v in variants][:2] == [
        {"detector.min_negative": 2, "windows.size_minutes": 60.0},
        {"detector.min_negative": 2, "windows.size_minutes": 120.0}]
    assert len(variants) == 4
    assert apply_overrides(_settings(), {"detector.min_neg_share": "0.25"}).detector.min_neg_share == 0.25
    with pytest.raises(SweepError, match="expected key=v1,v2"):
        parse_sweep(["detector.min_negative"])
    with pytest.raises(SweepError, match="must be one of"):
        expand_sweep({"kafka.bootstrap": ["x:1"]}, _settings())
    with pytest.raises(SweepError, match="unknown field"):
        expand_sweep({"detector.min_negatives": ["1"]}, _settings())
    with pytest.raises(SweepError, match="min_negative"):
        expand_sweep({"detector.min_negative": ["0"]}, _settings())
    with pytest.raises(SweepError, match="--sweep windows: .*must divide"):  # a rule across two fields
        expand_sweep({"windows.hop_minutes": ["7"]}, _settings())


# --------------------------------------------------------------------------- whole command


def _write_jsonl(path: Path, items: list[NewsItem]) -> Path:
    path.write_bytes(b"".join(it.to_json() + b"\n" for it in items))
    return path


def test_backtest_writes_every_output_and_lists_rejected_rows(tmp_path: Path) -> None:
    items = [_item(i, 5 * i) for i in range(4)] + [_item(9, 180)]
    feed = _write_jsonl(tmp_path / "feed.jsonl", items)
    with feed.open("ab") as fh:
        fh.write(b'{"id": "bad", "source": "test", "published_at": "2015-03-02T10:00:00", "title": "naive"}\n')
    scorer = _scorer(tmp_path, items, ["negative", "negative", "negative", "neutral", "neutral"])
    scorer.cache.save()
    out = tmp_path / "out"
    result = run_backtest(BacktestOptions(feed=feed, out_dir=out, cache_dir=tmp_path / "cache", progress=False,
                                          sweep={"detector.min_negative": ["3", "4"]}), _settings())
    s = json.loads((out / "summary.json").read_text())
    assert s["feed"]["items"] == 5 and s["feed"]["rejected_by_reason"] == {"naive_time": 1}
    assert s["model"]["cached_before"] == 5 and s["model"]["scored_now"] == 0
    assert s["pipeline"]["alerts"] == 1 and s["pipeline"]["windows_open_at_end"] == 1
    assert [r["alerts"] for r in s["sweep"]] == [1, 0]
    alerts_csv = pd.read_csv(out / "alerts.csv")
    assert list(alerts_csv["key"]) == ["AAA"] and list(alerts_csv["n_negative"]) == [3]
    lines = (out / "alerts.jsonl").read_bytes().splitlines()
    assert lines == [result.outcome.alerts[0].to_json()]
    scored = pd.read_parquet(out / "scored.parquet")
    assert len(scored) == 5 and set(scored["label"]) == {"negative", "neutral"}
    rejected = pd.read_csv(out / "rejected.csv")
    assert list(rejected["reason"]) == ["naive_time"] and list(rejected["line"]) == [6]
    assert (out / "report.html").is_file() and (out / "sweep.csv").is_file()


def test_cli_names_missing_feed_columns_and_bad_price_files(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad_feed = tmp_path / "feed.csv"
    bad_feed.write_text("when,headline\n2015-03-02,Acme falls\n")
    assert main(["backtest", str(bad_feed), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "FeedError" in err and "columns found ['when', 'headline']" in err

    feed = _write_jsonl(tmp_path / "feed.jsonl", [_item(0, 0)])
    prices = tmp_path / "prices"
    prices.mkdir()
    (prices / "AAA.csv").write_text("Date,Adj Close\n2015-03-02,10\n03/03/2015,11\n")
    assert main(["backtest", str(feed), "--out", str(tmp_path / "o"), "--prices", str(prices)]) == 1
    err = capsys.readouterr().err
    assert "PriceError" in err and "unparseable dates" in err and "line 3 ('03/03/2015')" in err


def test_cli_refuses_an_empty_range_and_a_feed_with_no_usable_item(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    feed = _write_jsonl(tmp_path / "feed.jsonl", [_item(0, 0)])
    out = str(tmp_path / "o")
    assert main(["backtest", str(feed), "--out", out, "--from", "2020-06-01", "--to", "2020-05-01"]) == 1
    assert "empty range" in capsys.readouterr().err
    (tmp_path / "a-file").write_text("x")
    assert main(["backtest", str(feed), "--out", str(tmp_path / "a-file")]) == 1
    assert "exists and is not a folder" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"id": "x", "source": "t", "published_at": "2015-03-02T10:00:00", "title": "naive"}\n')
    assert main(["backtest", str(bad), "--out", out]) == 1
    err = capsys.readouterr().err
    assert "no items to backtest" in err and "1 records rejected" in err and "rejected.csv" in err


def test_cli_refuses_a_price_file_without_rows(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    feed = _write_jsonl(tmp_path / "feed.jsonl", [_item(0, 0)])
    prices = tmp_path / "prices"
    prices.mkdir()
    (prices / "AAA.csv").write_text("Date,Adj Close\n")
    assert main(["backtest", str(feed), "--out", str(tmp_path / "o"), "--prices", str(prices)]) == 1
    assert "AAA" in (err := capsys.readouterr().err) and "no price rows" in err
