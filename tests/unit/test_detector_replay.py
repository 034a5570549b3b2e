"""The detector state rebuilt by replaying scored items (``finsentry.rebuild.DetectorReplay``) equals
the state of the detector that ran live over the same items, turn by turn: baselines and open
episodes (alert ids included), for hopping and tumbling windows."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest

from alerts import EventTimeWindows, SpikeDetector, ThresholdDetector
from finsentry.rebuild import DetectorReplay
from inference import ScoredItem

T0 = datetime(2024, 3, 4, tzinfo=timezone.utc)
_P = {"negative": (0.85, 0.1, 0.05), "neutral": (0.1, 0.8, 0.1), "positive": (0.05, 0.15, 0.8)}


def _item(i: int, minutes: float, ticker: str, label: str) -> ScoredItem:
    p = _P[label]
    return ScoredItem(item_id=f"i{i}", source="t", published_at=T0 + timedelta(minutes=minutes), tickers=(ticker,),
                      title=f"{ticker} story {i}", p_negative=p[0], p_neutral=p[1], p_positive=p[2], label=label,
                      score=p[2] - p[0], model_version="m")


def _stream(seed: int) -> list[ScoredItem]:
    """Background news on 12 tickers for 40 hours, negative bursts (8 in 20 min) on two of them, and one
    on a ticker with no other news (its episode ends by the watermark: a quiet hop)."""
    rng = random.Random(seed)
    items, t = [], 0.0
    while t < 40 * 60:
        t += rng.expovariate(1 / 1.5)
        label = rng.choices(("negative", "neutral", "positive"), (0.2, 0.6, 0.2))[0]
        items.append((t - rng.uniform(0, 3), f"K{rng.randrange(12)}", label))  # a little out of order
    for start, ticker in ((9 * 60, "K3"), (15 * 60, "Q9"), (22 * 60 + 7, "K5"), (31 * 60, "K3")):
        items += [(start + 2.5 * j, ticker, "negative") for j in range(8)]
    items.sort(key=lambda x: x[0] + rng.uniform(0, 2))
    return [_item(i, m, k, lab) for i, (m, k, lab) in enumerate(items)]


def _state(detector: SpikeDetector) -> tuple[dict, dict]:
    baselines = {k: (s.mean, s.var, s.windows) for k, s in detector.baseline._state.items()}
    episodes = {k: (ep.alert.alert_id, ep.last_end_ms) for k, ep in detector.lifecycle.open_episodes.items()}
    return baselines, episodes


@pytest.mark.parametrize("hop_min", [5, 60])
def test_replayed_state_equals_the_live_state_at_every_turn(hop_min: int) -> None:
    items = _stream(seed=3)
    windows = EventTimeWindows(3_600_000, 600_000, hop_min * 60_000)
    live = SpikeDetector(5, 0.6)
    windows.assign_partitions([0])
    checked = with_episode = 0
    for i, item in enumerate(items, 1):
        windows.add_item(0, item)
        if i % 31:
            continue
        live.evaluate_windows(windows.advance((), live.window_interest()), windows.watermark_ms, windows.hop_ms)
        if windows.watermark_ms is None:
            continue
        replay = DetectorReplay(SpikeDetector(5, 0.6), windows, {0: windows.watermark_ms})
        for seen in items[:i]:
            replay.add(0, seen)
        assert _state(replay.finish()) == _state(live)  # type: ignore[arg-type]
        checked += 1
        with_episode += live.lifecycle.open_count > 0
    assert checked >= 10 and with_episode >= 1  # the comparison covered open episodes too


def test_adopt_takes_only_keys_without_state() -> None:
    items = _stream(seed=4)
    windows = EventTimeWindows(3_600_000, 600_000, 300_000)
    windows.assign_partitions([0])
    cut = next(i for i, it in enumerate(items) if it.published_at >= T0 + timedelta(hours=9, minutes=40))
    replay = DetectorReplay(SpikeDetector(5, 0.6), windows, {0: items[cut].published_ms - 600_000})
    for item in items[:cut]:
        replay.add(0, item)
    rebuilt = replay.finish()
    assert isinstance(rebuilt, SpikeDetector) and rebuilt.lifecycle.firing(("ticker", "K3"))  # the 09:00 burst
    own = SpikeDetector(5, 0.6)
    own.baseline.update(("ticker", "K1"), 0.5)
    taken = own.adopt(rebuilt)
    assert taken == (len(rebuilt.baseline.keys) - 1, 1)
    assert own.baseline.windows(("ticker", "K1")) == 1  # its own state kept
    assert own.lifecycle.open_episodes[("ticker", "K3")].alert == rebuilt.lifecycle.open_episodes[("ticker", "K3")].alert


def test_fresh_copies_the_configuration_not_the_state() -> None:
    det = SpikeDetector(4, 0.5, alpha=0.01, resolve_p=0.2, rules=["n >= 6"])
    det.baseline.update(("ticker", "A"), 0.9)
    fresh = det.fresh()
    assert (fresh.min_negative, fresh.min_neg_share, fresh.alpha, fresh.resolve_p, fresh.rule) == (
        4, 0.5, 0.01, 0.2, det.rule)
    assert fresh.baseline.keys == frozenset() and fresh.baseline.fresh().share(("ticker", "A")) == 0.2
    assert ThresholdDetector(3, 0.6).fresh().rule == ThresholdDetector(3, 0.6).rule
    assert not ThresholdDetector(3, 0.6).stateful and det.stateful
