"""SpikeDetector: significance maths, EWMA baseline, minimum count, lifecycle, severity."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest

from alerts import (
    Alert,
    EwmaBaseline,
    SpikeDetector,
    WindowResult,
    binomial_sf,
    cohens_h,
    severity_for,
    wilson_lower_bound,
)

HOUR = 3_600_000
T0 = 1_590_000_000_000 - 1_590_000_000_000 % HOUR


def _w(n: int, neg: int, hour: int = 0, key: str = "ACME", key_type: str = "ticker") -> WindowResult:
    start = T0 + hour * HOUR
    return WindowResult(
        key_type=key_type, key=key, start_ms=start, end_ms=start + HOUR, n=n, n_negative=neg,
        n_neutral=n - neg, n_positive=0, neg_share=neg / n, mean_score=-neg / n, evidence=(),
        model_versions=("m",),
    )


def _exact_sf(k: int, n: int, p: Fraction) -> float:
    return float(sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1)))


@pytest.mark.parametrize("k,n,p", [(5, 5, "1/5"), (3, 10, "1/5"), (8, 12, "3/10"), (0, 4, "1/2"), (40, 200, "1/10")])
def test_binomial_sf_matches_exact_rational_sum(k: int, n: int, p: str) -> None:
    assert binomial_sf(k, n, float(Fraction(p))) == pytest.approx(_exact_sf(k, n, Fraction(p)), rel=1e-9)


def test_binomial_sf_large_n_does_not_overflow_and_validates() -> None:
    assert 0.0 < binomial_sf(600, 5000, 0.1) < 1e-3
    with pytest.raises(ValueError):
        binomial_sf(6, 5, 0.2)
    with pytest.raises(ValueError):
        binomial_sf(1, 5, 1.5)


def test_wilson_lower_bound_known_value() -> None:
    # Wilson 95 % interval of 8/10: [0.4902, 0.9433] (e.g. Agresti & Coull 1998, Table 1 style check)
    assert wilson_lower_bound(8, 10) == pytest.approx(0.4902, abs=1e-4)
    assert wilson_lower_bound(0, 0) == 0.0


def test_cohens_h_and_severity() -> None:
    assert cohens_h(0.5, 0.5) == 0.0
    assert cohens_h(1.0, 0.2) == pytest.approx(math.pi - 2 * math.asin(math.sqrt(0.2)))
    assert [severity_for(h) for h in (0.3, 0.5, 0.79, 0.8)] == ["info", "warning", "warning", "critical"]


def test_ewma_baseline_follows_the_documented_update() -> None:
    b = EwmaBaseline(halflife_windows=1.0, prior_share=0.2, prior_windows=1)
    key = ("ticker", "X")
    assert b.share(key) == 0.2
    b.update(key, 0.4)  # a = max(0.5, 1/2): mean 0.3, var = 0.5 * (0.16 + 0.5 * 0.04)
    assert b.share(key) == pytest.approx(0.3) and b.windows(key) == 1
    assert b.std(key) ** 2 == pytest.approx(0.5 * (0.16 + 0.5 * 0.04))
    b.update(key, 0.0)  # a = max(0.5, 1/3) = 0.5: mean 0.15
    assert b.share(key) == pytest.approx(0.15)


def test_prior_blends_until_enough_windows() -> None:
    b = EwmaBaseline(halflife_windows=24, prior_share=0.2, prior_windows=4)
    key = ("ticker", "X")
    b.update(key, 0.6)
    assert b.share(key) == pytest.approx((4 * 0.2 + 0.6) / 5)
    b.update(key, 0.0)
    assert b.share(key) == pytest.approx((4 * 0.2 + 0.6 + 0.0) / 6)
    before = b.share(key)
    b.update(key, 1.0, suspicious=True)  # a significant window: the long-run weight only
    assert b.share(key) == pytest.approx(before + (1 - 2 ** (-1 / 24)) * (1.0 - before))


def test_two_negatives_of_two_do_not_fire() -> None:
    d = SpikeDetector(min_negative=1, min_neg_share=0.5, alpha=0.001)
    assert d.evaluate_windows([_w(2, 2)], None, HOUR) == []  # p = 0.2**2 = 0.04 > alpha


def test_significant_burst_fires_with_stats_and_severity() -> None:
    d = SpikeDetector(min_negative=5, min_neg_share=0.6)
    [alert] = d.evaluate_windows([_w(8, 8)], None, HOUR)
    assert alert.status == "firing" and alert.key == "ACME"
    assert alert.p_value == pytest.approx(0.2**8) and alert.baseline_share == pytest.approx(0.2)
    assert alert.severity == "critical" and alert.effect_size == pytest.approx(cohens_h(1.0, 0.2))
    assert Alert.from_json(alert.to_json()) == alert


def test_a_key_that_is_always_negative_does_not_alert_on_its_usual_share() -> None:
    d = SpikeDetector(min_negative=5, min_neg_share=0.6, alpha=0.001)
    messages = [a for hour in range(150) for a in d.evaluate_windows([_w(10, 7, hour)], None, HOUR)]
    # the prior (0.2) makes the first window fire once; the learnt baseline then calms the episode
    assert [a.status for a in messages] == ["firing", "resolved"]
    assert d.baseline.share(("ticker", "ACME")) == pytest.approx(0.7, abs=0.05)
    assert d.evaluate_windows([_w(10, 8, 150)], None, HOUR) == []  # 8/10 vs 0.7: p = 0.38


def test_lifecycle_fire_cooldown_hysteresis_resolve_with_stable_id() -> None:
    # a heavy prior keeps the baseline near 0.2 through the test
    d = SpikeDetector(5, 0.6, resolve_share=0.3, baseline=EwmaBaseline(10_000, 0.2, prior_windows=1000))
    [fired] = d.evaluate_windows([_w(8, 8, 0)], None, HOUR)
    assert d.evaluate_windows([_w(9, 9, 1)], None, HOUR) == []  # still firing: cooldown, no repeat
    # 5/10: under the fire bound, but above the share bound and p = 0.033 < resolve_p: not calm
    assert d.evaluate_windows([_w(10, 5, 2)], None, HOUR) == []
    [resolved] = d.evaluate_windows([_w(10, 2, 3)], None, HOUR)
    assert resolved.status == "resolved" and resolved.alert_id == fired.alert_id
    assert resolved.to_json() == fired.resolved().to_json()
    [again] = d.evaluate_windows([_w(8, 8, 4)], None, HOUR)  # a new episode: a new id
    assert again.status == "firing" and again.alert_id != fired.alert_id


def test_quiet_key_resolves_when_an_empty_window_closes() -> None:
    d = SpikeDetector(min_negative=5, min_neg_share=0.6)
    [fired] = d.evaluate_windows([_w(8, 8, 0)], T0 + HOUR, HOUR)
    assert d.evaluate_windows([], T0 + 2 * HOUR - 1, HOUR) == []  # the next window is not closed yet
    [resolved] = d.evaluate_windows([], T0 + 2 * HOUR, HOUR)
    assert resolved.alert_id == fired.alert_id and resolved.status == "resolved"


def test_quiet_resolution_does_not_depend_on_when_advance_is_called() -> None:
    windows = [_w(8, 8, 0), _w(8, 8, 3)]  # hours 1 and 2 empty: resolve, then a new episode

    def run(calls: list[tuple[list[WindowResult], int]]) -> list[bytes]:
        d = SpikeDetector(min_negative=5, min_neg_share=0.6)
        return [a.to_json() for ws, wm in calls for a in d.evaluate_windows(ws, wm, HOUR)]

    one_call = run([(windows, T0 + 4 * HOUR)])
    per_hour = run([([windows[0]], T0 + HOUR), ([], T0 + 2 * HOUR), ([], T0 + 3 * HOUR), ([windows[1]], T0 + 4 * HOUR)])
    assert one_call == per_hour
    assert [Alert.from_json(b).status for b in one_call] == ["firing", "resolved", "firing"]


def test_user_rules_are_an_extra_condition_and_part_of_the_rule_string() -> None:
    strict = SpikeDetector(5, 0.6, rules=["n >= 10"])
    assert "(n >= 10)" in strict.rule
    assert strict.evaluate_windows([_w(8, 8)], None, HOUR) == []
    assert len(strict.evaluate_windows([_w(10, 10, key="B")], None, HOUR)) == 1


def test_keys_are_independent() -> None:
    d = SpikeDetector(5, 0.6)
    alerts = d.evaluate_windows([_w(8, 8, key="A"), _w(8, 8, key="TECH", key_type="topic")], None, HOUR)
    assert [(a.key_type, a.key) for a in alerts] == [("ticker", "A"), ("topic", "TECH")]


def test_hopping_windows_teach_the_baseline_once_per_item() -> None:
    d = SpikeDetector(5, 0.6)
    hop = HOUR // 12
    overlapping = [
        WindowResult(key_type="ticker", key="H", start_ms=T0 + k * hop, end_ms=T0 + k * hop + HOUR, n=10,
                     n_negative=0, n_neutral=10, n_positive=0, neg_share=0.0, mean_score=0.0, evidence=(),
                     model_versions=("m",))
        for k in range(12)
    ]
    d.evaluate_windows(overlapping, None, hop)
    assert d.baseline.windows(("ticker", "H")) == 1  # only the window starting on a multiple of its length


def _reference_evaluate(det: SpikeDetector, closed: list[WindowResult], hop_ms: int) -> list[Alert]:
    """The detector's rule written plainly: every statistic of every window, no shortcut."""
    out: list[Alert] = []
    for w in closed:
        key = (w.key_type, w.key)
        quiet = det.lifecycle.expire_quiet(key, w.end_ms - hop_ms, hop_ms)
        if quiet is not None:
            out.append(quiet)
        stats = det.stats(w)
        fires = det.fires(w, stats)
        alert = det._alert(w, stats) if fires and not det.lifecycle.firing(key) else None
        calm = w.neg_share < det.resolve_share or stats["p_value"] >= det.resolve_p
        message = det.lifecycle.observe(key, w.end_ms, fires, calm, alert)
        if message is not None:
            out.append(message)
        if (w.start_ms - det.baseline_phase_ms) % (w.end_ms - w.start_ms) == 0:
            det.baseline.update(key, w.neg_share, suspicious=stats["p_value"] < det.resolve_p)
    return out


@pytest.mark.parametrize("seed", range(5))
def test_fast_paths_decide_like_the_plain_rule(seed: int) -> None:
    """Skipping p-values that cannot change a decision gives the same alerts and baselines."""
    import random

    rng = random.Random(seed)
    windows: list[WindowResult] = []
    for hour in range(400):
        for key in ("A", "B", "C"):
            if rng.random() < 0.7:
                n = rng.randint(1, 14)
                share = 0.8 if rng.random() < 0.05 else 0.2
                neg = sum(rng.random() < share for _ in range(n))
                windows.append(_w(n, neg, hour, key))
    fast, plain = SpikeDetector(3, 0.4, alpha=0.01), SpikeDetector(3, 0.4, alpha=0.01)
    got, want = [], []
    for start in range(0, len(windows), 7):
        chunk = windows[start:start + 7]
        got += fast.evaluate_windows(chunk, None, HOUR)
        want += _reference_evaluate(plain, chunk, HOUR)
    assert got == want and any(a.status == "firing" for a in want) and any(a.status == "resolved" for a in want)
    for key in (("ticker", "A"), ("ticker", "B"), ("ticker", "C")):
        assert fast.baseline.share(key) == plain.baseline.share(key)
        assert fast.baseline.std(key) == plain.baseline.std(key)
