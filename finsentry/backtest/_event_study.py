"""Event study of alerts against prices: market-model abnormal returns, CARs, t-statistics, precision/recall.

Method (MacKinlay, A. C. (1997). "Event Studies in Economics and Finance".
*Journal of Economic Literature* 35(1), 13–39; section numbers below refer
to it):

* **Calendar**: the market index's trading days. Returns are simple daily
  returns of adjusted closes, ``R_t = P_t / P_{t-1} - 1``; a day whose price
  or previous price is missing has no return.
* **Event day 0** of an alert is the first trading day whose close (taken as
  16:00 America/New_York) is at or after the alert's ``window_end``: the
  first close at which the alert was known. (Early closes are not modelled.)
  Alerts of one ticker with the same day 0 form one event.
* **Market model** (sec. 4.1, eq. 4): ``R_it = alpha_i + beta_i R_mt + e_it``,
  estimated by OLS over an *estimation window* of ``EST_DAYS`` = 120 trading
  days ending ``GAP_DAYS`` = 10 trading days before day 0 (days −130 … −11),
  so the event cannot leak into its own normal-return model; at least
  ``MIN_OBS`` = 100 returns are required. ``sigma²_i`` = residual variance
  with ``L − 2`` degrees of freedom (eq. 9).
* **Abnormal return** (eq. 7): ``AR_it = R_it − alpha_i − beta_i R_mt``;
  **CAR** over ``[0, +1]`` and ``[0, +5]`` (eq. 12), with
  ``var(CAR_i) = L2 · sigma²_i`` (eq. 13 for large estimation windows, the
  estimation-error term dropped). ``[+1, +5]`` is also given: day 0's
  close-to-close return starts at the previous close, before an alert that
  fired during the session, so for intraday windows it can hold the very move
  the news reacted to; ``[+1, +5]`` is strictly after the alert.
* **Aggregation** (eqs. 14–16, 20): ``mean CAR`` over N events and
  ``J1 = mean CAR / sqrt(Σ var(CAR_i) / N²)``, which assumes independent
  events; the cross-sectional ``t = mean CAR / (s / sqrt(N))`` is also given
  (robust to event-induced variance, Brown & Warner 1985).
* **Large negative abnormal move**: a ticker-day whose standardised abnormal
  return ``AR_t / sigma`` (market model estimated as above with day t as
  day 0) is ``<= MOVE_Z`` = −2. **Precision**: share of events with such a
  move on day 0 or +1. **Recall**: share of such moves, over the tickers
  that occur in the feed and have prices and the trading days the feed
  spans, that had an event of the same ticker on that day or the day before.
  **Base rate**: share of those ticker-days followed by a move on the day or
  the next (the precision of alerts placed at random); ``lift = precision /
  base rate``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from alerts import Alert

from ._prices import PriceSet

__all__ = ["EST_DAYS", "EventStudy", "GAP_DAYS", "MIN_OBS", "MOVE_Z", "PATH_DAYS", "market_model_ars",
           "run_event_study"]

EST_DAYS = 120
GAP_DAYS = 10
MIN_OBS = 100
MOVE_Z = -2.0
#: Event-time range (trading days) of the mean CAR path plotted in the report.
PATH_DAYS: tuple[int, int] = (-5, 10)
_CITATION = ('MacKinlay, A. C. (1997). "Event Studies in Economics and Finance". '
             "Journal of Economic Literature 35(1), 13-39")


@dataclass
class EventStudy:
    """Result of :func:`run_event_study`.

    Attributes:
        events: one row per event (ticker, day 0, alerts, alpha, beta, sigma,
            car_0_1, car_0_5, car_1_5, t_0_1, t_0_5, z_day0, z_day1, hit).
        path: mean CAR from day −5 to day tau (rows tau = −5…+10) with the
            cross-sectional 95 % confidence band (``mean ± 1.96 s/√N``).
        summary: the figures written to ``summary.json``.
    """

    events: pd.DataFrame
    path: pd.DataFrame
    summary: dict[str, Any]


@dataclass
class _Model:
    """Per-ticker arrays on the calendar: returns and market-model parameters for day 0 = index."""

    r: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray
    sigma: np.ndarray
    z: np.ndarray  # standardised AR of each day with its own parameters


def market_model_ars(stock: pd.Series, market: pd.Series) -> pd.DataFrame:
    """Market-model parameters and abnormal returns of one stock on the market's calendar.

    Args:
        stock: adjusted closes indexed by trading day.
        market: index closes indexed by trading day (defines the calendar).

    Returns:
        Frame indexed by the market's days with columns ``r`` (stock return),
        ``m`` (market return), ``alpha``, ``beta``, ``sigma`` (estimated over
        days −130…−11 relative to the row), ``ar`` and ``z = ar / sigma``;
        NaN where fewer than ``MIN_OBS`` returns were available.
    """
    cal = market.index
    r = stock.reindex(cal).pct_change(fill_method=None)
    m = market.pct_change(fill_method=None)
    valid = (r.notna() & m.notna()).astype(float)
    x, y = m.where(valid > 0, 0.0), r.where(valid > 0, 0.0)
    roll = {name: s.rolling(EST_DAYS, min_periods=1).sum().shift(GAP_DAYS + 1)
            for name, s in {"n": valid, "sx": x, "sy": y, "sxx": x * x, "syy": y * y, "sxy": x * y}.items()}
    n = roll["n"].where(roll["n"] >= MIN_OBS)
    cxy = roll["sxy"] - roll["sx"] * roll["sy"] / n
    cxx = roll["sxx"] - roll["sx"] ** 2 / n
    cyy = roll["syy"] - roll["sy"] ** 2 / n
    beta = cxy / cxx
    alpha = (roll["sy"] - beta * roll["sx"]) / n
    sigma = np.sqrt(((cyy - beta * cxy) / (n - 2)).clip(lower=0))
    ar = r - alpha - beta * m
    return pd.DataFrame({"r": r, "m": m, "alpha": alpha, "beta": beta, "sigma": sigma, "ar": ar, "z": ar / sigma})


def _event_day(times: pd.Series, cal: pd.DatetimeIndex) -> np.ndarray:
    closes = (cal + pd.Timedelta(hours=16)).tz_localize("America/New_York").tz_convert("UTC").as_unit("ns")
    when = pd.DatetimeIndex(pd.to_datetime(times, utc=True)).as_unit("ns")
    return np.searchsorted(closes.asi8, when.asi8, side="left")


def _stats(cars: np.ndarray, var: np.ndarray) -> dict[str, float]:
    n = len(cars)
    if n == 0:
        return {"mean": float("nan"), "j1": float("nan"), "t_cs": float("nan"), "share_negative": float("nan")}
    mean = float(cars.mean())
    sd = float(cars.std(ddof=1)) if n > 1 else float("nan")
    return {"mean": mean, "j1": mean / float(np.sqrt(var.sum()) / n),
            "t_cs": mean / (sd / np.sqrt(n)) if n > 1 and sd > 0 else float("nan"),
            "share_negative": float((cars < 0).mean())}


def run_event_study(alerts: Sequence[Alert], scored: pd.DataFrame, prices: PriceSet,
                    out_dir: Path | None) -> EventStudy:
    """Score ``alerts`` against ``prices`` (see the module docstring for the method).

    Args:
        alerts: the backtest's alerts; only ``key_type == "ticker"`` ones are studied.
        scored: the scored items (``scored_frame``): fixes the tickers and the
            trading days the feed covers, for recall and the base rate.
        prices: stock and market prices.
        out_dir: where ``events.csv`` is written; None = nowhere.

    Returns:
        The per-event table, the mean CAR path and the summary figures.
    """
    market = prices.market
    cal = market.index
    ticker_alerts = [a for a in alerts if a.key_type == "ticker"]
    no_price = sorted({a.key for a in ticker_alerts if a.key not in prices.stocks})
    studied = [a for a in ticker_alerts if a.key in prices.stocks]
    frame = pd.DataFrame({"ticker": [a.key for a in studied], "window_end": [a.window_end for a in studied]})
    frame["k0"] = _event_day(frame["window_end"], cal) if len(frame) else np.array([], dtype=int)
    grouped = frame.groupby(["ticker", "k0"], sort=True).size().rename("alerts").reset_index()

    feed_tickers = sorted({t for ts in scored["tickers"] for t in ts}) if len(scored) else []
    models = {t: market_model_ars(prices.stocks[t], market)
              for t in sorted(set(feed_tickers) | set(grouped["ticker"])) if t in prices.stocks}
    lo, hi = PATH_DAYS
    rows, paths = [], []
    dropped = 0
    for ticker, k0, n_alerts in grouped.itertuples(index=False):
        mm = models[ticker]
        if k0 + lo < 0 or k0 + hi >= len(cal):
            dropped += 1
            continue
        a, b, s = mm["alpha"].iat[k0], mm["beta"].iat[k0], mm["sigma"].iat[k0]
        window = slice(k0 + lo, k0 + hi + 1)
        ar = mm["r"].to_numpy()[window] - a - b * mm["m"].to_numpy()[window]
        if not np.isfinite([a, b, s]).all() or not np.isfinite(ar[-lo: -lo + 6]).all():
            dropped += 1
            continue
        car01, car05, car15 = ar[-lo] + ar[-lo + 1], ar[-lo: -lo + 6].sum(), ar[-lo + 1: -lo + 6].sum()
        z0, z1 = mm["z"].iat[k0], mm["z"].iat[k0 + 1]
        rows.append({"ticker": ticker, "day0": cal[k0].date().isoformat(), "alerts": int(n_alerts), "alpha": a,
                     "beta": b, "sigma": s, "car_0_1": car01, "car_0_5": car05, "car_1_5": car15,
                     "t_0_1": car01 / (s * np.sqrt(2)), "t_0_5": car05 / (s * np.sqrt(6)), "z_day0": z0,
                     "z_day1": z1, "hit": bool(min(np.nan_to_num(z0, nan=0), np.nan_to_num(z1, nan=0)) <= MOVE_Z)})
        paths.append(np.cumsum(ar))
    events = pd.DataFrame(rows, columns=["ticker", "day0", "alerts", "alpha", "beta", "sigma", "car_0_1", "car_0_5",
                                         "car_1_5", "t_0_1", "t_0_5", "z_day0", "z_day1", "hit"])
    path = _path(paths)
    summary = _summary(events, len(ticker_alerts), len(alerts) - len(ticker_alerts), no_price, dropped)
    summary.update(_precision_recall(events, scored, models, cal, feed_tickers, prices))
    summary["tickers_without_prices"] = no_price
    summary["price_days_without_quote"] = prices.missing
    summary["feed_tickers_without_prices"] = sorted(set(feed_tickers) - set(prices.stocks))
    summary["price_tickers_not_in_feed"] = sorted(set(prices.stocks) - set(feed_tickers))
    if out_dir is not None:
        events.to_csv(out_dir / "events.csv", index=False)
    return EventStudy(events, path, summary)


def _path(paths: list[np.ndarray]) -> pd.DataFrame:
    lo, hi = PATH_DAYS
    taus = np.arange(lo, hi + 1)
    if not paths:
        return pd.DataFrame({"tau": taus, "mean_car": np.nan, "low": np.nan, "high": np.nan, "n": 0})
    mat = np.vstack(paths)
    n = np.isfinite(mat).sum(axis=0)
    mean = np.nanmean(mat, axis=0)
    se = np.nanstd(mat, axis=0, ddof=1) / np.sqrt(np.maximum(n, 1)) if len(paths) > 1 else np.full(len(taus), np.nan)
    return pd.DataFrame({"tau": taus, "mean_car": mean, "low": mean - 1.96 * se, "high": mean + 1.96 * se, "n": n})


def _summary(events: pd.DataFrame, n_ticker_alerts: int, n_other: int, no_price: list[str],
             dropped: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        "method": f"market model, {_CITATION}",
        "estimation_window_days": EST_DAYS, "gap_days": GAP_DAYS, "min_obs": MIN_OBS,
        "event_day": "first trading day whose 16:00 America/New_York close is at or after the alert window end",
        "alerts_ticker": n_ticker_alerts, "alerts_other_keys": n_other, "events": len(events),
        "events_dropped_missing_data": dropped,
    }
    for h, col, days in (("0_1", "car_0_1", 2), ("0_5", "car_0_5", 6), ("1_5", "car_1_5", 5)):
        cars = events[col].to_numpy(float)
        st = _stats(cars, days * events["sigma"].to_numpy(float) ** 2)
        out.update({f"mean_car_{h}": st["mean"], f"t_car_{h}": st["j1"], f"t_cs_car_{h}": st["t_cs"],
                    f"share_negative_car_{h}": st["share_negative"]})
    return out


def _precision_recall(events: pd.DataFrame, scored: pd.DataFrame, models: dict[str, pd.DataFrame],
                      cal: pd.DatetimeIndex, feed_tickers: list[str], prices: PriceSet) -> dict[str, Any]:
    if len(scored) == 0:
        return {"precision": float("nan"), "recall": float("nan"), "base_rate": float("nan"), "lift": float("nan"),
                "moves": 0, "move_threshold_z": MOVE_Z}
    times = scored["published_at"]
    k_first, k_last = _event_day(pd.Series([times.min(), times.max()]), cal)
    k_last = min(int(k_last), len(cal) - 2)
    event_days: dict[str, set[int]] = {}
    for ticker, day0 in zip(events["ticker"], events["day0"]):
        event_days.setdefault(ticker, set()).add(int(cal.get_loc(pd.Timestamp(day0))))
    moves = recalled = days = followed = 0
    for ticker in feed_tickers:
        if ticker not in models:
            continue
        z = models[ticker]["z"].to_numpy()
        ks = np.arange(int(k_first), k_last + 1)
        zk, zn = z[ks], z[ks + 1]
        ok = np.isfinite(zk)
        is_move = ok & (zk <= MOVE_Z)
        moves += int(is_move.sum())
        have = event_days.get(ticker, set())
        recalled += sum(1 for k in ks[is_move] if k in have or (k - 1) in have)
        both = ok & np.isfinite(zn)
        days += int(both.sum())
        followed += int((both & ((zk <= MOVE_Z) | (zn <= MOVE_Z))).sum())
    precision = float(events["hit"].mean()) if len(events) else float("nan")
    base = followed / days if days else float("nan")
    return {"precision": precision, "recall": recalled / moves if moves else float("nan"), "base_rate": base,
            "lift": precision / base if base and base == base and precision == precision else float("nan"),
            "moves": moves, "moves_recalled": recalled, "ticker_days": days, "move_threshold_z": MOVE_Z}
