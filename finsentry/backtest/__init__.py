"""Backtests: replay a historical feed through the daemon's pipeline and score the alerts against prices.

Public surface: :func:`run_backtest` with :class:`BacktestOptions` (the
``finsentry backtest`` command), the score cache (:class:`ScoreCache`,
:class:`CachingScorer`), the in-process replay (:func:`feed_records`,
:func:`replay_in_process`), price loading (:func:`load_prices`,
:func:`load_price_set`), the event study (:func:`market_model_ars`,
:func:`run_event_study`) and the sweep helpers. Method: ``docs/backtesting.md``.
"""

from ._backtest import BacktestOptions, BacktestResult, run_backtest
from ._cache import CachingScorer, ScoreCache
from ._event_study import EST_DAYS, GAP_DAYS, MIN_OBS, MOVE_Z, EventStudy, market_model_ars, run_event_study
from ._prices import PriceError, PriceSet, default_market, load_price_set, load_prices
from ._replay import FeedRecord, ReplayOutcome, alert_sort_key, feed_records, replay_in_process, replay_scored
from ._sweep import SweepError, SweepVariant, apply_overrides, expand_sweep, parse_sweep

__all__ = [
    "EST_DAYS",
    "GAP_DAYS",
    "MIN_OBS",
    "MOVE_Z",
    "EventStudy",
    "PriceError",
    "PriceSet",
    "default_market",
    "load_price_set",
    "load_prices",
    "market_model_ars",
    "run_event_study",
    "BacktestOptions",
    "BacktestResult",
    "CachingScorer",
    "FeedRecord",
    "ReplayOutcome",
    "ScoreCache",
    "SweepError",
    "SweepVariant",
    "alert_sort_key",
    "apply_overrides",
    "expand_sweep",
    "feed_records",
    "parse_sweep",
    "replay_in_process",
    "replay_scored",
    "run_backtest",
]
