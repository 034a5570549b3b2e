"""``report.html`` and its PNG plots (matplotlib, Agg backend: no display needed).

Plots (each a PNG next to the report, referenced by ``<img src>``):

* ``timeline_<TICKER>.png`` for the tickers with the most alerts (else the
  most items), up to ``TOP_TICKERS``: the price (when given) with the alerts
  marked, and below it the daily item count with the daily negative share;
* ``market_sentiment.png``: daily mean score (``p_positive − p_negative``)
  and negative share over all items, with the market index when given;
* ``alerts_by_topic.png``: alerts per topic; an alert's topic is the most
  common topic among its evidence items (ties: alphabetical);
* ``mean_car.png`` (with prices): the mean cumulative abnormal return from
  day −5 around the events, with the 95 % confidence band.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import pandas as pd  # noqa: E402

from alerts import Alert  # noqa: E402

from ._outputs import alerts_frame  # noqa: E402

__all__ = ["TOP_TICKERS", "alert_topics", "write_report"]

TOP_TICKERS = 6
_DPI = 110


def alert_topics(alerts: Sequence[Alert], scored: pd.DataFrame) -> list[str]:
    """The topic of each alert: the most common topic of its evidence items (``"unknown"`` when none)."""
    topic_of = dict(zip(scored["item_id"], scored["topic"].fillna("unknown"))) if len(scored) else {}
    out = []
    for a in alerts:
        counts = Counter(topic_of.get(e.item_id, "unknown") for e in a.evidence)
        out.append(min(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0] if counts else "unknown")
    return out


def _daily(scored: pd.DataFrame) -> pd.DataFrame:
    """Per (ticker, UTC day): items, negative share, mean score."""
    ex = scored[["published_at", "tickers", "label", "score"]].explode("tickers").dropna(subset=["tickers"])
    ex["day"] = ex["published_at"].dt.tz_convert("UTC").dt.tz_localize(None).dt.normalize()
    ex["neg"] = ex["label"].eq("negative")
    return ex.groupby(["tickers", "day"]).agg(items=("neg", "size"), neg_share=("neg", "mean"),
                                              mean_score=("score", "mean"))


def _dates(ax: Any) -> None:
    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def _save(fig: Any, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=_DPI)
    plt.close(fig)
    return path.name


def _timeline(ticker: str, daily: pd.DataFrame, alerts: pd.DataFrame, prices: Any, out_dir: Path) -> str:
    d = daily.loc[ticker]
    fig, (ax_p, ax_n) = plt.subplots(2, 1, figsize=(11, 5.5), sharex=True, height_ratios=[1.1, 1])
    days = alerts.loc[alerts["key"] == ticker, "window_end"].dt.tz_convert("UTC").dt.tz_localize(None)
    series = prices.stocks.get(ticker) if prices is not None else None
    if series is not None:
        s = series.loc[d.index.min() - pd.Timedelta(days=7): d.index.max() + pd.Timedelta(days=7)]
        ax_p.plot(s.index, s.to_numpy(), color="#1f4e79", lw=1.2, label=f"{ticker} adjusted close")
        if len(days) and len(s):
            at = s.reindex(days.dt.normalize(), method="ffill")
            ax_p.scatter(days, at.to_numpy(), marker="v", color="#c0392b", s=40, zorder=3, label="alert")
        ax_p.set_ylabel("price (USD)")
        ax_p.legend(loc="upper left", fontsize=8)
    else:
        ax_p.text(0.5, 0.5, "no prices given", ha="center", va="center", transform=ax_p.transAxes)
    for t in days:
        ax_n.axvline(t, color="#c0392b", alpha=0.35, lw=0.8)
    ax_n.bar(d.index, d["items"], width=1.0, color="#95a5a6", label="items / day")
    ax_n.set_ylabel("items / day")
    ax2 = ax_n.twinx()
    ax2.plot(d.index, d["neg_share"].rolling(7, min_periods=1).mean(), color="#c0392b", lw=1.2,
             label="negative share (7-day mean)")
    ax2.set_ylim(0, 1)
    ax2.set_ylabel("negative share")
    _dates(ax_n)
    ax_p.set_title(f"{ticker}: {len(days)} alerts, {int(d['items'].sum())} items")
    ax2.legend(loc="upper right", fontsize=8)
    return _save(fig, out_dir / f"timeline_{ticker}.png")


def _market(scored: pd.DataFrame, prices: Any, out_dir: Path) -> str:
    day = scored["published_at"].dt.tz_convert("UTC").dt.tz_localize(None).dt.normalize()
    g = scored.assign(day=day, neg=scored["label"].eq("negative")).groupby("day")
    d = pd.DataFrame({"score": g["score"].mean(), "neg": g["neg"].mean(), "items": g.size()})
    fig, ax = plt.subplots(figsize=(11, 4))
    ax.plot(d.index, d["score"], color="#7f8c8d", lw=0.6, alpha=0.6, label="mean score (daily)")
    ax.plot(d.index, d["score"].rolling(7, min_periods=1).mean(), color="#2c3e50", lw=1.5,
            label="mean score (7-day mean)")
    ax.plot(d.index, -d["neg"].rolling(7, min_periods=1).mean(), color="#c0392b", lw=1.0,
            label="− negative share (7-day mean)")
    ax.axhline(0, color="black", lw=0.5)
    ax.set_ylabel("score = p_pos − p_neg")
    ax.legend(loc="upper left", fontsize=8)
    if prices is not None:
        m = prices.market.loc[d.index.min(): d.index.max()]
        ax2 = ax.twinx()
        ax2.plot(m.index, m.to_numpy(), color="#1f4e79", lw=1.0, alpha=0.8, label="market index")
        ax2.set_ylabel("market index")
        ax2.legend(loc="upper right", fontsize=8)
    _dates(ax)
    ax.set_title(f"Market-wide sentiment: {len(scored)} items")
    return _save(fig, out_dir / "market_sentiment.png")


def _topics(topics: list[str], out_dir: Path) -> str:
    counts = Counter(topics)
    fig, ax = plt.subplots(figsize=(8, max(2.5, 0.35 * len(counts) + 1)))
    if counts:
        names, values = zip(*sorted(counts.items(), key=lambda kv: (kv[1], kv[0])))
        ax.barh(names, values, color="#c0392b")
    else:
        ax.text(0.5, 0.5, "no alerts", ha="center", va="center", transform=ax.transAxes)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # alert counts: whole numbers only
    ax.set_xlabel("alerts")
    ax.set_title("Alerts by topic (most common topic of the evidence items)")
    return _save(fig, out_dir / "alerts_by_topic.png")


def _car(path: pd.DataFrame, n_events: int, out_dir: Path) -> str:
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.fill_between(path["tau"], path["low"] * 100, path["high"] * 100, color="#c0392b", alpha=0.2,
                    label="95 % confidence band")
    ax.plot(path["tau"], path["mean_car"] * 100, color="#c0392b", marker="o", ms=3, label="mean CAR")
    ax.axvline(0, color="black", lw=0.8, ls="--")
    ax.axhline(0, color="black", lw=0.5)
    ax.set_xlabel("trading days relative to the alert (day 0 = first close after the window end)")
    ax.set_ylabel("CAR from day −5 (%)")
    ax.set_title(f"Mean cumulative abnormal return around {n_events} alert events (market model)")
    ax.legend(fontsize=8)
    return _save(fig, out_dir / "mean_car.png")


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "n/a" if v != v else f"{v:.4g}"
    return html.escape(str(v))


def _table(rows: list[tuple[str, Any]]) -> str:
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{_fmt(v)}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def write_report(out_dir: Path, alerts: Sequence[Alert], scored: pd.DataFrame, prices: Any, study: Any,
                 summary: dict[str, Any]) -> Path:
    """Write the PNG plots and ``report.html`` into ``out_dir``; returns the report's path."""
    frame = alerts_frame(alerts)
    figures: list[tuple[str, str]] = []
    if len(scored):
        daily = _daily(scored)
        by_alerts = frame["key"].value_counts()
        tickers = list(by_alerts.index[:TOP_TICKERS])
        if len(tickers) < TOP_TICKERS:
            busiest = daily.groupby(level=0)["items"].sum().sort_values(ascending=False).index
            tickers += [t for t in busiest if t not in tickers][: TOP_TICKERS - len(tickers)]
        figures.append((_market(scored, prices, out_dir), "Market-wide sentiment"))
        for t in tickers:
            if t in daily.index.get_level_values(0):
                figures.append((_timeline(t, daily, frame, prices, out_dir), f"{t}: price, items and alerts"))
    figures.append((_topics(alert_topics(alerts, scored), out_dir), "Alerts by topic"))
    if study is not None:
        figures.append((_car(study.path, len(study.events), out_dir), "Mean CAR around alerts"))
    p, f = summary["pipeline"], summary["feed"]
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>finsentry backtest</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:1150px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:3px 8px;text-align:left}"
        "img{max-width:100%;border:1px solid #ddd;margin:.5em 0}figcaption{color:#555}</style></head><body>",
        f"<h1>finsentry backtest: {html.escape(Path(f['path']).name)}</h1>",
        _table([("feed", f["path"]), ("format", f["format"]), ("items", f["items"]), ("rejected", f["rejected"]),
                ("first event", f["first_event"]), ("last event", f["last_event"]),
                ("model", summary["model"]["version"]), ("windows", summary["settings"]["windows"]),
                ("detector", summary["settings"]["detector"]), ("windows closed", p["windows_closed"]),
                ("late items", p["late"]), ("alerts", p["alerts"])]),
    ]
    if study is not None:
        e = study.summary
        parts += ["<h2>Event study</h2>", f"<p>{html.escape(e['method'])}; estimation window "
                  f"{e['estimation_window_days']} trading days ending {e['gap_days']} days before day 0.</p>",
                  _table([(k, e.get(k)) for k in ("events", "mean_car_0_1", "t_car_0_1", "t_cs_car_0_1",
                                                  "mean_car_0_5", "t_car_0_5", "t_cs_car_0_5", "mean_car_1_5",
                                                  "t_car_1_5", "precision",
                                                  "recall", "base_rate", "lift", "moves")])]
    parts.append("<h2>Plots</h2>")
    for name, caption in figures:
        parts.append(f"<figure><img src='{html.escape(name)}' alt='{html.escape(caption)}'>"
                     f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    if len(frame):
        top = frame.sort_values("n_negative", ascending=False).head(20)
        rows = "".join(
            f"<tr><td>{html.escape(r.key)}</td><td>{r.window_start:%Y-%m-%d %H:%M}</td><td>{r.n_negative}/{r.n}</td>"
            f"<td>{html.escape(r.evidence[:160])}</td></tr>" for r in top.itertuples())
        parts.append("<h2>Largest alerts</h2><table><tr><th>key</th><th>window start (UTC)</th>"
                     f"<th>negative / items</th><th>evidence</th></tr>{rows}</table>")
    parts.append("<p>Files: <a href='alerts.csv'>alerts.csv</a>, <a href='alerts.jsonl'>alerts.jsonl</a>, "
                 "<a href='summary.json'>summary.json</a>, scored.parquet.</p></body></html>")
    path = out_dir / "report.html"
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
