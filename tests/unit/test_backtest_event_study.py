"""Event study and report on synthetic prices with a known market model and an injected abnormal move."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from alerts import Alert, WindowResult
from finsentry.backtest import BacktestOptions, CachingScorer, load_price_set, market_model_ars, run_backtest
from finsentry.backtest import run_event_study
from finsentry.backtest import PriceError, load_prices
from finsentry.config import REPO_ROOT, load_settings
from inference import ScoredItem
from ingest import NewsItem

DAY0 = pd.Timestamp("2015-03-03")  # a Tuesday
BETA, ALPHA = 1.3, 0.0002


def _prices(tmp_path: Path) -> Path:
    """Market + AAA/BBB/CCC: r = ALPHA + BETA m + noise; AAA drops 8 % then 2 % abnormally on DAY0, DAY0+1."""
    rng = np.random.default_rng(7)
    days = pd.bdate_range("2014-01-02", "2015-06-30")
    m = rng.normal(0.0003, 0.01, len(days))
    folder = tmp_path / "prices"
    folder.mkdir()
    market = 2000 * np.cumprod(1 + m)
    pd.DataFrame({"Date": days.strftime("%Y-%m-%d"), "Close": market}).to_csv(tmp_path / "^GSPC.csv", index=False)
    k0 = days.get_loc(DAY0)
    for ticker in ("AAA", "BBB", "CCC"):
        r = ALPHA + BETA * m + rng.normal(0, 0.004, len(days))
        if ticker == "AAA":
            r[k0] -= 0.08
            r[k0 + 1] -= 0.02
        pd.DataFrame({"Date": days.strftime("%Y-%m-%d"), "Open": 1.0, "Adj Close": 50 * np.cumprod(1 + r)}).to_csv(
            folder / f"{ticker}.csv", index=False)
    return folder


def _alert(ticker: str, end: datetime) -> Alert:
    end_ms = int(end.timestamp() * 1000)
    w = WindowResult("ticker", ticker, end_ms - 3_600_000, end_ms, 5, 5, 0, 0, 1.0, -0.8, (), ("x",))
    return Alert.from_window(w, "neg_count>=5&neg_share>=0.6")


def _scored(tickers: list[str], start: datetime, days: int) -> pd.DataFrame:
    times = [start + timedelta(days=d) for d in range(days)]
    return pd.DataFrame({"item_id": [f"s{i}" for i in range(len(times) * len(tickers))],
                         "published_at": pd.to_datetime([t for t in times for _ in tickers], utc=True),
                         "tickers": [[tk] for _ in times for tk in tickers], "topic": "Earnings"})


def test_market_model_recovers_alpha_and_beta(tmp_path: Path) -> None:
    ps = load_price_set(_prices(tmp_path), tmp_path / "^GSPC.csv")
    mm = market_model_ars(ps.stocks["BBB"], ps.market)
    assert mm["beta"].iloc[-1] == pytest.approx(BETA, abs=0.1)
    assert mm["sigma"].iloc[-1] == pytest.approx(0.004, rel=0.2)
    # day k uses returns k-130 .. k-11 and needs 100 of them: returns start on day 1, so day 111 is the first
    assert mm["alpha"].iloc[:111].isna().all() and mm["alpha"].iloc[111:].notna().all()


def test_event_study_finds_the_injected_drop_and_maps_event_days(tmp_path: Path) -> None:
    ps = load_price_set(_prices(tmp_path), tmp_path / "^GSPC.csv")
    alerts = [
        _alert("AAA", datetime(2015, 3, 3, 15, 0, tzinfo=timezone.utc)),   # 10:00 New York: day 0 = that day
        _alert("BBB", datetime(2015, 3, 3, 21, 30, tzinfo=timezone.utc)),  # 16:30 New York: the next day
        _alert("CCC", datetime(2015, 3, 7, 15, 0, tzinfo=timezone.utc)),   # Saturday: Monday
        _alert("ZZZ", datetime(2015, 3, 3, 15, 0, tzinfo=timezone.utc)),   # no prices: listed
    ]
    study = run_event_study(alerts, _scored(["AAA", "BBB", "CCC"], datetime(2015, 3, 2, tzinfo=timezone.utc), 3),
                            ps, tmp_path)
    ev = study.events.set_index("ticker")
    assert list(ev["day0"]) == ["2015-03-03", "2015-03-04", "2015-03-09"]
    assert ev.at["AAA", "car_0_1"] == pytest.approx(-0.10, abs=0.015)
    assert ev.at["AAA", "car_1_5"] == pytest.approx(-0.02, abs=0.015)  # day +1's injected 2 % only
    assert ev.at["AAA", "hit"] and not ev.at["BBB", "hit"]
    assert ev.at["AAA", "t_0_1"] == pytest.approx(ev.at["AAA", "car_0_1"] / (ev.at["AAA", "sigma"] * np.sqrt(2)))
    s = study.summary
    assert s["tickers_without_prices"] == ["ZZZ"] and s["events"] == 3
    assert s["price_tickers_not_in_feed"] == sorted(set(ps.stocks) - {"AAA", "BBB", "CCC"})
    assert s["mean_car_0_1"] == pytest.approx(ev["car_0_1"].mean())
    j1 = ev["car_0_1"].mean() / (np.sqrt((2 * ev["sigma"] ** 2).sum()) / 3)  # MacKinlay (1997) J1
    assert s["t_car_0_1"] == pytest.approx(j1)
    assert s["precision"] == pytest.approx(1 / 3)
    assert s["moves"] >= 2 and s["recall"] == pytest.approx(s["moves_recalled"] / s["moves"]) and s["recall"] > 0.5
    assert study.path["tau"].tolist() == list(range(-5, 11)) and study.path["mean_car"].iloc[-1] < -0.02
    assert (tmp_path / "events.csv").is_file()


def test_price_files_with_null_days_are_kept_and_listed_other_garbage_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "AAA_historical_data.csv").write_text("Date,Close\n2015-03-02,10\n2015-03-03,null\n2015-03-04,11\n")
    missing: list[str] = []
    series = load_prices(tmp_path / "AAA_historical_data.csv", missing)["AAA"]
    assert list(series) == [10.0, 11.0] and missing == ["AAA 2015-03-03"]
    (tmp_path / "b.csv").write_text("Date,Volume\n2015-03-02,10\n")
    with pytest.raises(PriceError, match="missing column.*Adj Close or Close"):
        load_prices(tmp_path / "b.csv")
    (tmp_path / "c.csv").write_text("Date,Close\n2015-03-02,ten\n2015-03-03,-1\n")
    with pytest.raises(PriceError, match=r"line 2 \('ten'\), line 3 \('-1'\)"):
        load_prices(tmp_path / "c.csv")
    (tmp_path / "long.csv").write_text("Ticker,Date,Close\nAAA,2015-03-02,1\nBBB,2015-03-02,2\n")
    assert sorted(load_prices(tmp_path / "long.csv")) == ["AAA", "BBB"]


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.srcs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.srcs.append(dict(attrs)["src"] or "")


def test_report_references_only_plots_that_exist_and_decode(tmp_path: Path) -> None:
    folder = _prices(tmp_path)
    t = datetime(2015, 3, 3, 14, 5, tzinfo=timezone.utc)
    items = [NewsItem(id=f"n{i}", source="test", published_at=t + timedelta(minutes=i), title=f"AAA falls {i}",
                      tickers=["AAA"]) for i in range(5)]
    items.append(NewsItem(id="late", source="test", published_at=t + timedelta(hours=3), title="AAA later",
                          tickers=["AAA"]))
    feed = tmp_path / "feed.jsonl"
    feed.write_bytes(b"".join(it.to_json() + b"\n" for it in items))
    settings = load_settings(detector={"kind": "threshold", "min_negative": 5, "min_neg_share": 0.6},
                             windows={"hop_minutes": 60},  # tumbling: one window, one alert
                             model={"path": REPO_ROOT / "models", "device": "cpu"})
    scorer = CachingScorer(REPO_ROOT / "models", tmp_path / "cache", "cpu")
    for it in items:
        neg = it.id != "late"
        scorer.cache.put(it.id, ScoredItem(item_id=it.id, source="test", published_at=it.published_at,
                                           tickers=it.tickers, p_negative=0.9 if neg else 0.1, p_neutral=0.05,
                                           p_positive=0.05 if neg else 0.85, label="negative" if neg else "positive",
                                           score=-0.85 if neg else 0.75, topic="Stock Commentary", topic_p=0.7,
                                           model_version="x"))
    scorer.cache.save()
    out = tmp_path / "out"
    run_backtest(BacktestOptions(feed=feed, out_dir=out, prices=folder, market=tmp_path / "^GSPC.csv",
                                 cache_dir=tmp_path / "cache", progress=False), settings)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["pipeline"]["alerts"] == 1 and summary["event_study"]["events"] == 1
    assert summary["event_study"]["mean_car_0_1"] < -0.08
    parser = _Images()
    parser.feed((out / "report.html").read_text())
    assert {"market_sentiment.png", "timeline_AAA.png", "alerts_by_topic.png", "mean_car.png"} <= set(parser.srcs)
    for src in parser.srcs:
        with Image.open(out / src) as img:
            img.load()  # decodes every pixel: a truncated or corrupt PNG raises
            assert img.format == "PNG" and img.width > 300 and img.height > 200
            assert len(img.getcolors(maxcolors=1 << 16) or range(256)) > 3  # not a blank canvas
