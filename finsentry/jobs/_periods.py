"""Periods of cron-scheduled jobs: which scheduled fire times a run stands for, and their names.

A *period* of a cron job is one of its scheduled fire times (UTC, whole
seconds). A run made late (coalesced, or caught up after an ownership
handover) stands for the latest fire time at or before the moment it runs.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from apscheduler.triggers.base import BaseTrigger

__all__ = ["digest_id", "fire_times", "latest_period", "period_name"]

_TICK = timedelta(microseconds=1)


def fire_times(trigger: BaseTrigger, after: datetime, until: datetime, limit: int = 1000) -> list[datetime]:
    """The trigger's fire times ``t`` with ``after < t <= until``, oldest first (at most ``limit``, the latest ones).

    Args:
        trigger: an APScheduler trigger (a cron trigger: its fire times do not depend on the previous one).
        after, until: aware datetimes.

    Raises:
        ValueError: a naive datetime.
    """
    if after.tzinfo is None or until.tzinfo is None:
        raise ValueError("fire_times needs aware datetimes (UTC)")
    out: list[datetime] = []
    previous = None
    cursor = after + _TICK
    while True:
        t = trigger.get_next_fire_time(previous, cursor)
        if t is None or t > until:
            break
        out.append(t.astimezone(timezone.utc))
        previous, cursor = t, t + _TICK
    return out[-limit:]


def latest_period(trigger: BaseTrigger, now: datetime, grace_s: float) -> datetime | None:
    """The latest fire time in ``(now - grace_s, now]``, or None (the last one is older than the grace).

    Raises:
        ValueError: ``now`` is naive.
    """
    times = fire_times(trigger, now - timedelta(seconds=grace_s), now, limit=1)
    return times[-1] if times else None


def period_name(period: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ`` of a period (UTC)."""
    return period.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def digest_id(period: datetime) -> str:
    """The digest's idempotency key (its ``webhook-id``): ``digest-2026-11-29`` for a period at
    midnight UTC (the daily default), else ``digest-2026-11-29T18:30:05Z``."""
    utc = period.astimezone(timezone.utc)
    if (utc.hour, utc.minute, utc.second) == (0, 0, 0):
        return f"digest-{utc:%Y-%m-%d}"
    return f"digest-{period_name(utc)}"
