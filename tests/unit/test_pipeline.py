"""The data path without Kafka: decode → score → window → detect, on plain records."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from finsentry.config import REPO_ROOT, load_settings
from finsentry.daemon import build_pipeline
from ingest import NewsItem

T0 = datetime(2020, 5, 19, 14, 0, tzinfo=timezone.utc)
NEGATIVE = [
    "Acme cuts full-year guidance, shares slide",
    "Acme shares plunge after profit warning",
    "Acme downgraded to sell as sales collapse",
    "Acme misses estimates, stock tumbles",
    "Acme recalls flagship product; shares sink",
    "Acme faces SEC probe, stock falls sharply",
]


@dataclass
class Rec:
    value: bytes | None
    offset: int
    partition: int = 0
    topic: str = "news.raw"
    timestamp: int = 0
    key: bytes | None = None


def _rec(offset: int, title: str, minutes: float, ticker: str = "ACME") -> Rec:
    item = NewsItem(id=f"i{offset}", source="t", published_at=T0 + timedelta(minutes=minutes), title=title,
                    tickers=[ticker])
    return Rec(item.to_json(), offset)


def test_burst_alerts_once_after_the_watermark_passes() -> None:
    settings = load_settings(
        windows={"size_minutes": 60, "hop_minutes": 60, "allowed_lateness_minutes": 10},  # tumbling
        detector={"min_negative": 5, "min_neg_share": 0.6},
        model={"path": REPO_ROOT / "models", "device": "cpu"},
    )
    pipeline = build_pipeline(settings)
    records = [_rec(i, t, 5 * i) for i, t in enumerate(NEGATIVE)]
    records.append(Rec(b"{broken", 6))
    out = pipeline.process(records)
    assert len(out.scored) == 6 and [d.reason for d in out.dead] == ["not_json"]
    assert sum(s.label == "negative" for _, s in out.scored) >= 5

    closed, alerts = pipeline.close_windows()
    assert closed == [] and alerts == []  # watermark still inside the window

    later = pipeline.process([_rec(7, "Acme names a new CFO", 75, ticker="OTHER")])
    assert len(later.scored) == 1
    closed, alerts = pipeline.close_windows()
    assert [(w.key, w.n) for w in closed] == [("ACME", 6)]
    assert len(alerts) == 1 and alerts[0].key == "ACME" and alerts[0].n_negative >= 5
    body = json.loads(alerts[0].to_json())
    assert body["window_start"].startswith("2020-05-19T14:00:00")

    late = pipeline.process([_rec(8, "Acme shares slide again", 20)])
    assert len(late.late) == 1  # its window closed already
