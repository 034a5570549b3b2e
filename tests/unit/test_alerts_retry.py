"""Retry policy: the default (Standard Webhooks-style) schedule, full jitter, the cap, Retry-After, answer classes."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from alerts import (
    DEFAULT_RETRY_SCHEDULE_S,
    STANDARD_WEBHOOKS_EXAMPLE_SCHEDULE_S,
    Outcome,
    RetryPolicy,
    classify_status,
    parse_retry_after,
)


def test_default_schedule_and_the_specification_example() -> None:
    policy = RetryPolicy(jitter=False)
    assert DEFAULT_RETRY_SCHEDULE_S == (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
    assert policy.attempts == 8 and policy.cap_s == 86400
    assert policy.first_delay() == 0
    assert [policy.next_delay(k) for k in range(1, 9)] == [5, 300, 1800, 7200, 18000, 36000, 36000, None]
    spec = RetryPolicy(STANDARD_WEBHOOKS_EXAMPLE_SCHEDULE_S, jitter=False)  # the default cap keeps the 24 h step
    assert spec.attempts == 10 and spec.next_delay(9) == 86400
    assert sum(STANDARD_WEBHOOKS_EXAMPLE_SCHEDULE_S) == 75 * 3600 + 35 * 60 + 5  # "75:35:05" in the spec table


def test_full_jitter_stays_within_zero_and_the_capped_nominal_delay() -> None:
    policy = RetryPolicy((0, 10, 1000), cap_s=100, rng=random.Random(7))
    second = [policy.next_delay(1) for _ in range(2000)]
    third = [policy.next_delay(2) for _ in range(2000)]
    assert all(0 <= d <= 10 for d in second) and all(0 <= d <= 100 for d in third)
    assert 4 < sum(second) / len(second) < 6  # uniform: mean near half the nominal delay
    assert max(third) > 90  # the cap, not the 1000 s nominal, bounds it
    assert policy.next_delay(3) is None


def test_retry_after_is_a_floor_capped_at_cap_s() -> None:
    policy = RetryPolicy((0, 1, 1), cap_s=60, jitter=False)
    assert policy.next_delay(1, retry_after_s=30) == 30
    assert policy.next_delay(1, retry_after_s=0.2) == 1
    assert policy.next_delay(1, retry_after_s=10_000) == 60


@pytest.mark.parametrize(
    "kwargs", [{"schedule_s": ()}, {"schedule_s": (0, -1)}, {"cap_s": 0}]
)
def test_bad_policies_are_rejected(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)
    with pytest.raises(ValueError):
        RetryPolicy().next_delay(0)


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, Outcome.DELIVERED), (204, Outcome.DELIVERED), (299, Outcome.DELIVERED),
        (410, Outcome.DISABLE),
        (400, Outcome.GIVE_UP), (401, Outcome.GIVE_UP), (404, Outcome.GIVE_UP), (413, Outcome.GIVE_UP),
        (408, Outcome.RETRY), (429, Outcome.RETRY), (500, Outcome.RETRY), (503, Outcome.RETRY),
        (301, Outcome.RETRY), (101, Outcome.RETRY),
    ],
)
def test_classify_status(status: int, outcome: Outcome) -> None:
    assert classify_status(status) is outcome


def test_parse_retry_after_seconds_and_http_dates() -> None:
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(" 7 ") == 7.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=90), usegmt=True), now=now) == 90.0
    assert parse_retry_after(format_datetime(now - timedelta(seconds=90), usegmt=True), now=now) == 0.0
    for bad in (None, "", "soon", "-5", "1.5e3"):
        assert parse_retry_after(bad) is None
