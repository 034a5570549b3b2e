"""eval-detector's replay: the windows + detector over scored items, with feed-time heartbeats."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from finsentry.config import load_settings
from finsentry.eval_detector import BurstSpec, _burst_items, _overlaps, replay_detector
from inference import ScoredItem

T0 = datetime(2020, 5, 19, 14, 0, tzinfo=timezone.utc)


def _scored(i: int, minutes: float, label: str, ticker: str = "ACME") -> ScoredItem:
    p = {"negative": (0.9, 0.05, 0.05), "neutral": (0.05, 0.9, 0.05)}[label]
    return ScoredItem(item_id=f"s{i}", source="t", published_at=T0 + timedelta(minutes=minutes), tickers=(ticker,),
                      title=f"headline {i} {label}", p_negative=p[0], p_neutral=p[1], p_positive=p[2], label=label,
                      score=p[2] - p[0], model_version="m")


def test_injected_burst_is_found_with_its_delay_and_background_is_quiet() -> None:
    settings = load_settings(windows={"size_minutes": 60, "hop_minutes": 5, "allowed_lateness_minutes": 10})
    background = [_scored(i, 37 * i, "neutral", ticker=("ACME", "OTHR")[i % 2]) for i in range(60)]
    assert replay_detector(settings, background) == []
    bearish = [_scored(100 + i, 0, "negative") for i in range(8)]
    start = int((T0 + timedelta(hours=10)).timestamp() * 1000)
    burst = BurstSpec("ACME", start, 30 * 60_000, 8)
    injected = _burst_items([burst], bearish, seed=1)
    assert [s.published_ms - start for s in injected] == [i * 225_000 for i in range(8)]
    fired = replay_detector(settings, background + injected)
    assert len(fired) == 1
    alert, decided_ms = fired[0]
    assert alert.key == "ACME" and _overlaps(alert, burst)
    # decided when the feed clock passed window end + lateness, within one window of the burst's end
    end_ms = int(alert.window_end.timestamp() * 1000)
    assert decided_ms >= end_ms + 10 * 60_000 and decided_ms - burst.end_ms <= 60 * 60_000
