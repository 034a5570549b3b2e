"""The champion / challenger rule (pure; no torch)."""

from __future__ import annotations

import pytest

from training import MAX_SET_DROP, decide

CHAMP = {"sentiment": 0.83, "topic": 0.88, "phrasebank": 0.70}


def test_first_model_is_promoted() -> None:
    d = decide(None, {}, "v2", CHAMP)
    assert d.promote and d.champion is None and "no champion" in d.reason


def test_better_on_average_without_a_big_drop_is_promoted() -> None:
    new = {"sentiment": 0.85, "topic": 0.88, "phrasebank": 0.695}
    d = decide("v1", CHAMP, "v2", new)
    assert d.promote and d.champion_scores == CHAMP and d.challenger_scores == new


def test_a_drop_over_one_point_on_any_set_refuses() -> None:
    new = {"sentiment": 0.90, "topic": 0.88 - MAX_SET_DROP - 0.001, "phrasebank": 0.75}
    d = decide("v1", CHAMP, "v2", new)
    assert not d.promote and "topic" in d.reason


def test_equal_is_not_better() -> None:
    d = decide("v1", CHAMP, "v2", dict(CHAMP))
    assert not d.promote and "does not beat" in d.reason


def test_mismatched_sets_are_an_error() -> None:
    with pytest.raises(ValueError, match="score sets differ"):
        decide("v1", CHAMP, "v2", {"sentiment": 0.9})
