"""Spike detectors: closed windows in, alerts (firing and resolved) out.

:class:`ThresholdDetector` is the stateless rule of the first version
(count and share thresholds). :class:`SpikeDetector` adds a per-key baseline
(``alerts._baseline``), an exact binomial test against it
(``alerts._significance``), user rules (``alerts._rules``), an effect-size
severity, and the firing -> cooldown -> resolved lifecycle
(``alerts._lifecycle``). Formulas and sources: ``docs/detector.md``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from ._alert import Alert
from ._baseline import EwmaBaseline
from ._lifecycle import AlertLifecycle
from ._result import WindowCounts, WindowInterest, WindowResult
from ._rules import Rule, compile_rule
from ._significance import binomial_pmf, binomial_sf, cohens_h, severity_for

__all__ = ["SpikeDetector", "ThresholdDetector"]

# the baseline share used by the binomial test is kept in [_P0_FLOOR, _P0_CEIL]
_P0_FLOOR = 0.05
_P0_CEIL = 0.95


def _check_thresholds(min_negative: int, min_neg_share: float) -> None:
    if isinstance(min_negative, bool) or int(min_negative) != min_negative or min_negative < 1:
        raise ValueError(f"min_negative must be an int >= 1, got {min_negative!r}")
    if not 0.0 <= min_neg_share <= 1.0:
        raise ValueError(f"min_neg_share must be in [0, 1], got {min_neg_share!r}")


class ThresholdDetector:
    """Fires when a window has both enough negative items and a high negative share.

    Stateless: every window that meets both thresholds gives its own alert.
    The rule string (``rule``), e.g. ``"neg_count>=5&neg_share>=0.6"``, goes
    into every alert and into its ``alert_id``: changing a threshold changes
    the ids of the alerts it produces.

    Args:
        min_negative: fire when ``n_negative >= min_negative``; >= 1.
        min_neg_share: and ``neg_share >= min_neg_share``; in [0, 1].

    Raises:
        ValueError: when a threshold is out of range.
    """

    def __init__(self, min_negative: int, min_neg_share: float) -> None:
        _check_thresholds(min_negative, min_neg_share)
        self._min_negative = int(min_negative)
        self._min_neg_share = float(min_neg_share)
        self._rule = f"neg_count>={self._min_negative}&neg_share>={self._min_neg_share!r}"

    @property
    def rule(self) -> str:
        """The rule string carried by the alerts."""
        return self._rule

    @property
    def min_negative(self) -> int:
        """Minimum count of negative items."""
        return self._min_negative

    @property
    def min_neg_share(self) -> float:
        """Minimum share of negative items, [0, 1]."""
        return self._min_neg_share

    #: Whether the detector keeps state across windows (a restart rebuilds it: ``finsentry.rebuild``).
    stateful = False

    def fresh(self) -> "ThresholdDetector":
        """A detector of the same configuration."""
        return ThresholdDetector(self._min_negative, self._min_neg_share)

    def adopt(self, other: "ThresholdDetector") -> tuple[int, int]:
        """Nothing to take: this detector keeps no state. Returns ``(0, 0)``."""
        return 0, 0

    def forget(self, keys: Iterable[tuple[str, str]]) -> tuple[int, int]:
        """Nothing to drop: this detector keeps no state. Returns ``(0, 0)``."""
        return 0, 0

    def evaluate(self, w: WindowResult) -> Alert | None:
        """The firing alert for ``w``, or None when the thresholds are not both met."""
        if w.n_negative >= self._min_negative and w.neg_share >= self._min_neg_share:
            return Alert.from_window(w, self._rule)
        return None

    def window_interest(self) -> WindowInterest:
        """The windows this detector can act on: those with at least ``min_negative`` negative items."""
        return WindowInterest(self._min_negative, frozenset(), None, self._min_neg_share)

    def evaluate_windows(self, closed: Sequence[WindowResult | WindowCounts], watermark_ms: int | None, hop_ms: int) -> list[Alert]:
        """``evaluate`` over ``closed`` in order (the other arguments are unused)."""
        return [a for a in (self.evaluate(w) for w in closed) if a is not None]


class SpikeDetector:
    """Baseline-aware spike detector with significance test, user rules and lifecycle.

    A closed window of key ``k`` *fires* when all of these hold:

    * ``n_negative >= min_negative`` and ``neg_share >= min_neg_share``;
    * ``p_value <= alpha``, where ``p_value = P(X >= n_negative)`` for
      ``X ~ Binomial(n, p0)`` and ``p0`` is ``k``'s baseline share clamped to
      [0.05, 0.95];
    * every user rule (``rules``) is true on the window's statistics.

    Firing windows open an episode (one firing alert, then silence while
    firing); see ``alerts._lifecycle``. A window is *calm*, and ends an open
    episode, when it does not fire and ``neg_share < resolve_share`` or
    ``p_value >= resolve_p`` (hysteresis: both bounds lie well inside the
    firing condition). The baseline learns from every closed window after it
    was tested, but only from windows that start at a multiple of their own
    length (the tumbling windows among hopping ones: an item is learnt once),
    and from significant windows (``p_value < resolve_p``) with the long-run
    weight only: a burst barely moves its key's baseline, while a key whose
    usual share is high is learnt in the end and stops alerting.
    Severity is from Cohen's h of ``neg_share`` against ``p0``.

    Args:
        min_negative: minimum negative count, >= 1.
        min_neg_share: minimum negative share, [0, 1].
        alpha: significance level of the binomial test, (0, 1].
        resolve_share: hysteresis share bound; default ``min_neg_share / 2``.
        resolve_p: hysteresis p-value bound, in (alpha, 1]; default 0.05.
        baseline: the per-key baseline (default ``EwmaBaseline()``).
        rules: extra conditions (texts are compiled with ``compile_rule``).

    Raises:
        ValueError: a threshold out of range; ``alerts.RuleError`` (a
            ValueError) for a rejected rule.
    """

    def __init__(
        self,
        min_negative: int,
        min_neg_share: float,
        alpha: float = 0.001,
        resolve_share: float | None = None,
        resolve_p: float = 0.05,
        baseline: EwmaBaseline | None = None,
        rules: Sequence[str | Rule] = (),
    ) -> None:
        _check_thresholds(min_negative, min_neg_share)
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {alpha!r}")
        self.min_negative = int(min_negative)
        self.min_neg_share = float(min_neg_share)
        self.alpha = float(alpha)
        self.baseline = baseline or EwmaBaseline()
        self.rules: tuple[Rule, ...] = tuple(r if isinstance(r, Rule) else compile_rule(r) for r in rules)
        self.resolve_share = self.min_neg_share / 2 if resolve_share is None else float(resolve_share)
        if not 0.0 <= self.resolve_share <= self.min_neg_share:
            raise ValueError(f"resolve_share must be in [0, min_neg_share], got {resolve_share!r}")
        if not self.alpha < resolve_p <= 1.0:
            raise ValueError(f"resolve_p must be in (alpha, 1], got {resolve_p!r}")
        self.resolve_p = float(resolve_p)
        self.lifecycle = AlertLifecycle()
        self.baseline_phase_ms = 0  # windows starting at a multiple of their size (from the epoch) are learnt
        parts = [f"neg_count>={self.min_negative}", f"neg_share>={self.min_neg_share!r}", f"p<={self.alpha!r}"]
        self._rule = "&".join(parts + [f"({r.text})" for r in self.rules])

    #: Whether the detector keeps state across windows (a restart rebuilds it: ``finsentry.rebuild``).
    stateful = True

    @property
    def rule(self) -> str:
        """The rule string carried by the alerts (and hashed into their ids)."""
        return self._rule

    def fresh(self) -> "SpikeDetector":
        """A detector of the same configuration (thresholds, rules, baseline parameters) with no state."""
        fresh = SpikeDetector(self.min_negative, self.min_neg_share, self.alpha, self.resolve_share, self.resolve_p,
                              self.baseline.fresh(), self.rules)
        fresh.baseline_phase_ms = self.baseline_phase_ms
        return fresh

    def forget(self, keys: Iterable[tuple[str, str]]) -> tuple[int, int]:
        """Drop the baselines and open episodes of ``keys`` without sending anything.

        Called when the partitions those keys' items come from went to another
        daemon of the group after a rebalance: that daemon rebuilds and
        continues them (``finsentry.rebuild``); left here, an episode would be
        resolved by this daemon's watermark while the other one continues it.

        Returns:
            ``(baselines dropped, open episodes dropped)``.
        """
        keys = list(keys)
        return self.baseline.forget(keys), self.lifecycle.forget(keys)

    def adopt(self, other: "SpikeDetector") -> tuple[int, int]:
        """Take ``other``'s baselines and open episodes for the keys this detector has none for.

        ``other`` is a detector of the same configuration that replayed the
        scored topic up to the point the partitions' windows were decided
        (``finsentry.rebuild.rebuild_detector``). Keys already known here keep
        their state.

        Returns:
            ``(baseline keys taken, open episodes taken)``.
        """
        return self.baseline.adopt(other.baseline), self.lifecycle.adopt(other.lifecycle)

    def stats(self, w: WindowResult) -> dict[str, float]:
        """The statistics of ``w`` that rules see (``alerts.RULE_SYMBOLS``), against the current baseline."""
        key = (w.key_type, w.key)
        base = self.baseline.share(key)
        p0 = min(max(base, _P0_FLOOR), _P0_CEIL)
        return {
            "n": float(w.n),
            "neg_count": float(w.n_negative),
            "neu_count": float(w.n_neutral),
            "pos_count": float(w.n_positive),
            "neg_share": w.neg_share,
            "mean_score": w.mean_score,
            "baseline_share": base,
            "baseline_std": self.baseline.std(key),
            "p_value": binomial_sf(w.n_negative, w.n, p0),
            "effect_size": cohens_h(w.neg_share, p0),
            "window_minutes": (w.end_ms - w.start_ms) / 60_000,
        }

    def fires(self, w: WindowResult, stats: dict[str, float]) -> bool:
        """Whether ``w`` meets every condition (see the class docstring)."""
        return (
            w.n_negative >= self.min_negative
            and w.neg_share >= self.min_neg_share
            and stats["p_value"] <= self.alpha
            and all(rule(stats) for rule in self.rules)
        )

    def window_interest(self) -> WindowInterest:
        """The windows this detector can act on now (pass it to ``EventTimeWindows.advance``).

        A closed window changes nothing here unless it can fire (``n_negative
        >= min_negative``), its key has an open episode, or the baseline
        learns from it (it starts on ``baseline_phase_ms``): every other
        window would go through ``evaluate_windows`` without effect.
        """
        return WindowInterest(self.min_negative, self.lifecycle.open_keys, self.baseline_phase_ms, self.min_neg_share)

    def evaluate_windows(self, closed: Sequence[WindowResult | WindowCounts], watermark_ms: int | None, hop_ms: int) -> list[Alert]:
        """Run the detector over closed windows, in the order given, then over the watermark.

        Args:
            closed: windows closed by one ``advance``, ordered by ``(end_ms, key)``; a
                ``WindowCounts`` (a window below ``min_negative`` or ``min_neg_share``)
                is learnt from and seen by the lifecycle, and cannot fire.
            watermark_ms: the watermark after that ``advance`` (epoch ms UTC);
                episodes whose key had an empty window before it resolve.
            hop_ms: distance between consecutive window ends (the window size
                for tumbling windows), ms.

        Returns:
            Firing and resolved alerts in the order decided.
        """
        out: list[Alert] = []
        lifecycle = self.lifecycle
        share_of, learn = self.baseline.share, self.baseline.update
        min_negative, min_neg_share, resolve_share, resolve_p = (
            self.min_negative, self.min_neg_share, self.resolve_share, self.resolve_p)
        phase = self.baseline_phase_ms
        for w in closed:
            key = (w.key_type, w.key)
            k, n, share = w.n_negative, w.n, w.neg_share
            was_open = lifecycle.firing(key)
            if was_open:
                quiet = lifecycle.expire_quiet(key, w.end_ms - hop_ms, hop_ms)
                if quiet is not None:
                    out.append(quiet)
                    was_open = False
            p0 = min(max(share_of(key), _P0_FLOOR), _P0_CEIL)
            p_value: float | None = None
            fires = False
            alert = None
            if k >= min_negative and share >= min_neg_share:
                p_value = binomial_sf(k, n, p0)
                if p_value <= self.alpha:
                    stats = self.stats(w)
                    fires = all(rule(stats) for rule in self.rules)
                    if fires and not was_open:
                        alert = self._alert(w, stats)
            if fires or was_open:
                if p_value is None and share >= resolve_share:
                    p_value = binomial_sf(k, n, p0)
                calm = share < resolve_share or (p_value is not None and p_value >= resolve_p)
                message = lifecycle.observe(key, w.end_ms, fires, calm, alert)
                if message is not None:
                    out.append(message)
            if (w.start_ms - phase) % (w.end_ms - w.start_ms) == 0:
                # learn from non-overlapping windows only (hopping windows would count an item size/hop times)
                if p_value is None:
                    p_value = self._p_value_for_learning(k, n, p0) if k else 1.0
                learn(key, share, p_value < resolve_p)
        if watermark_ms is not None and lifecycle.open_count:
            for key in sorted(lifecycle.open_episodes):
                quiet = lifecycle.expire_quiet(key, watermark_ms, hop_ms)
                if quiet is not None:
                    out.append(quiet)
        return out

    def _p_value_for_learning(self, k: int, n: int, p0: float) -> float:
        """``binomial_sf(k, n, p0)``, or 1.0 where it is sure to be >= ``resolve_p`` (<= 0.5).

        Only the comparison with ``resolve_p`` is used by the caller. When
        ``k <= floor(n * p0)`` the upper tail ``P(X >= k)`` is at least 1/2,
        because a binomial's median is ``floor(n p0)`` or ``ceil(n p0)``
        (Kaas & Buhrman 1980, "Mean, median and mode in binomial
        distributions", Statistica Neerlandica 34:13-18), so the exact sum is
        skipped; and when ``P(X = k)``, the tail's first term, is already
        ``>= resolve_p``, that term is returned instead of the whole tail.
        """
        if k <= 0 or (self.resolve_p <= 0.5 and k <= math.floor(n * p0)):
            return 1.0
        first = binomial_pmf(k, n, p0)  # P(X >= k) >= P(X = k): at or above resolve_p it decides as well
        return first if first >= self.resolve_p else binomial_sf(k, n, p0)

    def _alert(self, w: WindowResult, stats: dict[str, float]) -> Alert:
        alert = Alert.from_window(w, self._rule)
        h = stats["effect_size"]
        return alert.model_copy(
            update={
                "severity": severity_for(h),
                "baseline_share": stats["baseline_share"],
                "p_value": stats["p_value"],
                "effect_size": h,
            }
        )
