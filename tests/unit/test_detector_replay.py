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


def _stream(seed: int, jitter_min: float = 3) -> list[ScoredItem]:
    """Background news on 12 tickers for 40 hours, negative bursts (8 in 20 min) on two of them, and one
    on a ticker with no other news (its episode ends by the watermark: a quiet hop)."""
    rng = random.Random(seed)
    items, t = [], 0.0
    while t < 40 * 60:
        t += rng.expovariate(1 / 1.5)
        label = rng.choices(("negative", "neutral", "positive"), (0.2, 0.6, 0.2))[0]
        items.append((t - rng.uniform(0, jitter_min), f"K{rng.randrange(12)}", label))  # out of order
    for start, ticker in ((9 * 60, "K3"), (15 * 60, "Q9"), (22 * 60 + 7, "K5"), (31 * 60, "K3")):
        items += [(start + 2.5 * j, ticker, "negative") for j in range(8)]
    items.sort(key=lambda x: x[0] + rng.uniform(0, 2))
    return [_item(i, m, k, lab) for i, (m, k, lab) in enumerate(items)]


def _state(detector: SpikeDetector) -> tuple[dict, dict]:
    baselines = {k: (s.mean, s.var, s.windows) for k, s in detector.baseline._state.items()}
    episodes = {k: (ep.alert.alert_id, ep.last_end_ms) for k, ep in detector.lifecycle.open_episodes.items()}
    return baselines, episodes


@pytest.mark.parametrize("hop_min,lateness_min", [(5, 10), (60, 10), (5, 1), (60, 1)])
def test_replayed_state_equals_the_live_state_at_every_turn(hop_min: int, lateness_min: int) -> None:
    # lateness 1 min with items up to 3 min out of order: some are late live, and must be late in the replay
    items = _stream(seed=3)
    windows = EventTimeWindows(3_600_000, lateness_min * 60_000, hop_min * 60_000)
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
        replay = DetectorReplay(SpikeDetector(5, 0.6), windows, [0], windows.watermark_ms, hours=10_000)
        for seen in items[:i]:
            replay.add(0, seen)
        assert _state(replay.finish()) == _state(live)  # type: ignore[arg-type]
        checked += 1
        with_episode += live.lifecycle.open_count > 0
    assert checked >= 10 and with_episode >= 1  # the comparison covered open episodes too
    assert lateness_min == 10 or windows.late_count + windows.partial_late_count > 0  # and items late live


def test_adopt_takes_only_keys_without_state() -> None:
    items = _stream(seed=4)
    windows = EventTimeWindows(3_600_000, 600_000, 300_000)
    windows.assign_partitions([0])
    cut = next(i for i, it in enumerate(items) if it.published_at >= T0 + timedelta(hours=9, minutes=40))
    replay = DetectorReplay(SpikeDetector(5, 0.6), windows, [0], items[cut].published_ms - 600_000, hours=48)
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


def test_the_replay_starts_on_a_learning_window_boundary_and_forget_drops_state() -> None:
    windows = EventTimeWindows(3_600_000, 600_000, 300_000)
    through = int((T0 + timedelta(hours=30, minutes=17)).timestamp() * 1000)
    replay = DetectorReplay(SpikeDetector(5, 0.6), windows, [0], through, hours=2.5)
    assert replay.since_ms % 3_600_000 == 0 and through - 9_000_000 - 3_600_000 < replay.since_ms <= through - 9_000_000
    items = _stream(seed=4)
    cut = next(i for i, it in enumerate(items) if it.published_at >= T0 + timedelta(hours=9, minutes=40))
    replay = DetectorReplay(SpikeDetector(5, 0.6), windows, [0], items[cut].published_ms - 600_000, hours=48)
    for item in items[:cut]:
        replay.add(0, item)
    det = replay.finish()
    assert isinstance(det, SpikeDetector) and det.lifecycle.firing(("ticker", "K3"))
    assert replay.ticker_partitions["K3"] == 0
    known = len(det.baseline.keys)
    assert det.forget([("ticker", "K3"), ("ticker", "nope")]) == (1, 1)  # baseline and open episode, no message
    assert not det.lifecycle.firing(("ticker", "K3")) and len(det.baseline.keys) == known - 1
    assert ThresholdDetector(3, 0.6).forget([("ticker", "K3")]) == (0, 0)


def test_episodes_the_group_never_sent_are_not_adopted() -> None:
    from finsentry.rebuild import _drop_unsent

    items = _stream(seed=4)
    windows = EventTimeWindows(3_600_000, 600_000, 300_000)
    cut = next(i for i, it in enumerate(items) if it.published_at >= T0 + timedelta(hours=9, minutes=40))

    def replayed() -> SpikeDetector:
        replay = DetectorReplay(SpikeDetector(5, 0.6), windows, [0], items[cut].published_ms - 600_000, hours=48)
        for item in items[:cut]:
            replay.add(0, item)
        return replay.finish()  # type: ignore[return-value]

    det = replayed()
    firing = det.lifecycle.open_episodes[("ticker", "K3")].alert.message_id
    assert _drop_unsent(det, lambda ids: {firing}) == 0 and det.lifecycle.firing(("ticker", "K3"))
    assert _drop_unsent(det, lambda ids: None) == 0 and det.lifecycle.firing(("ticker", "K3"))  # unknown: kept
    assert _drop_unsent(det, lambda ids: set()) == 1 and not det.lifecycle.firing(("ticker", "K3"))


def test_an_item_late_live_because_of_a_later_one_is_late_in_the_replay() -> None:
    # decided through W; after it the log holds an item at W+30 min, then one at W-2 min that was late live
    W = int((T0 + timedelta(hours=5)).timestamp() * 1000)
    m = 60_000
    log = [_item(1, 0, "K1", "neutral"), _item(2, 0, "K1", "neutral"), _item(3, 0, "K1", "negative"),
           _item(4, 0, "K1", "negative")]
    log = [it.model_copy(update={"published_at": T0 + timedelta(milliseconds=W + d * m - int(T0.timestamp() * 1000))})
           for it, d in zip(log, (-50, -40, 30, -2))]
    windows = EventTimeWindows(3_600_000, 5 * m)  # tumbling, 5 min lateness
    windows.assign_partitions([0])
    live = SpikeDetector(5, 0.6)
    for it in log:
        windows.add_item(0, it)
    assert windows.late_count == 1  # the W-2 item: its window had closed at W+25 min
    live.evaluate_windows(windows.advance((), live.window_interest()), W, windows.hop_ms)
    replay = DetectorReplay(SpikeDetector(5, 0.6), windows, [0], W, hours=48)
    for it in log:
        replay.add(0, it)
    assert _state(replay.finish()) == _state(live)  # type: ignore[arg-type]
    assert live.baseline.windows(("ticker", "K1")) == 1 and live.baseline.share(("ticker", "K1")) < 0.2


def test_partitions_decided_through_different_points_are_replayed_each_to_its_own() -> None:
    from finsentry.rebuild import replays_by_point

    windows = EventTimeWindows(3_600_000, 600_000, 300_000)
    w1, w2 = 1_700_000_000_000, 1_700_007_200_000
    replays = replays_by_point(SpikeDetector(5, 0.6), windows, {0: w1, 1: w2, 2: w1}, hours=48)
    assert {t: r._partitions for t, r in replays.items()} == {w1: [0, 2], w2: [1]}
    assert all(r.through_ms == t for t, r in replays.items())


def test_a_daemon_forgets_the_detector_state_of_tickers_whose_partition_was_revoked() -> None:
    from types import SimpleNamespace

    from finsentry.daemon import Daemon

    det = SpikeDetector(5, 0.6)
    for t in ("A", "B", "C"):
        det.baseline.update(("ticker", t), 0.1)
    d = object.__new__(Daemon)  # only the detector and the ticker -> partition map are exercised
    d.pipeline = SimpleNamespace(detector=det)  # type: ignore[assignment]
    d._ticker_partitions = {"A": 0, "B": 1, "C": 0}
    d._forget_keys_of({0})
    assert det.baseline.keys == frozenset({("ticker", "B")}) and d._ticker_partitions == {"B": 1}
