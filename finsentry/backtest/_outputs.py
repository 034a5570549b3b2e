"""Writing a backtest's output folder: alerts.csv / alerts.jsonl, scored.parquet, rejected.csv, summary.json."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from alerts import Alert
from inference import ScoredItem
from ingest import Rejected

__all__ = ["ALERT_COLUMNS", "alerts_frame", "scored_frame", "write_alerts", "write_json", "write_rejected",
           "write_scored"]

#: Columns of ``alerts.csv`` (times ISO 8601 UTC; ``evidence`` = the most negative titles joined by `` | ``).
ALERT_COLUMNS: tuple[str, ...] = (
    "alert_id", "rule", "key_type", "key", "window_start", "window_end", "n", "n_negative", "neg_share",
    "mean_score", "model_versions", "evidence_ids", "evidence",
)


def alerts_frame(alerts: Sequence[Alert]) -> pd.DataFrame:
    """One row per alert with :data:`ALERT_COLUMNS` (window times as pandas UTC timestamps)."""
    rows = [
        {
            "alert_id": a.alert_id, "rule": a.rule, "key_type": a.key_type, "key": a.key,
            "window_start": a.window_start, "window_end": a.window_end, "n": a.n, "n_negative": a.n_negative,
            "neg_share": a.neg_share, "mean_score": a.mean_score, "model_versions": "|".join(a.model_versions),
            "evidence_ids": "|".join(e.item_id for e in a.evidence),
            "evidence": " | ".join(e.title for e in a.evidence),
        }
        for a in alerts
    ]
    frame = pd.DataFrame(rows, columns=list(ALERT_COLUMNS))
    for col in ("window_start", "window_end"):
        frame[col] = pd.to_datetime(frame[col], utc=True)
    return frame


def write_alerts(alerts: Sequence[Alert], out_dir: Path) -> None:
    """``alerts.jsonl`` (each line the alert's canonical webhook JSON) and ``alerts.csv``."""
    with (out_dir / "alerts.jsonl").open("wb") as fh:
        for a in alerts:
            fh.write(a.to_json() + b"\n")
    frame = alerts_frame(alerts)
    for col in ("window_start", "window_end"):
        frame[col] = frame[col].map(lambda t: t.isoformat())
    frame.to_csv(out_dir / "alerts.csv", index=False, quoting=csv.QUOTE_MINIMAL)


def scored_frame(scored: Sequence[ScoredItem]) -> pd.DataFrame:
    """The scored items as columns (``published_at`` UTC timestamps, ``tickers`` lists)."""
    names = ("item_id", "source", "published_at", "tickers", "title", "p_negative", "p_neutral", "p_positive",
             "label", "score", "topic", "topic_p", "truncated", "model_version")
    data: dict[str, list[Any]] = {n: [] for n in names}
    for s in scored:
        for n in names:
            data[n].append(getattr(s, n))
    data["tickers"] = [list(t) for t in data["tickers"]]
    frame = pd.DataFrame(data, columns=list(names))
    frame["published_at"] = pd.to_datetime(frame["published_at"], utc=True)
    return frame


def write_scored(frame: pd.DataFrame, out_dir: Path) -> None:
    """``scored.parquet``: one row per scored item (see :func:`scored_frame`)."""
    frame.to_parquet(out_dir / "scored.parquet", index=False)


def write_rejected(rejected: Sequence[Rejected], out_dir: Path) -> None:
    """``rejected.csv``: every feed record that could not be read (line, reason, detail, raw)."""
    with (out_dir / "rejected.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["line", "reason", "detail", "raw"])
        for r in rejected:
            w.writerow([r.line, r.reason, getattr(r, "detail", ""), r.raw])


def write_json(obj: Any, path: Path) -> None:
    """Pretty JSON, NaN written as null."""
    path.write_text(json.dumps(_clean(obj), indent=2, sort_keys=False, default=str) + "\n", encoding="utf-8")


def _clean(obj: Any) -> Any:
    if isinstance(obj, float) and obj != obj:
        return None
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj
