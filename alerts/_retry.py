"""When to try a webhook again: the retry schedule and how an answer is classified.

Source of the schedules: the Standard Webhooks specification 1.0.0
(https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md,
"Deliverability and reliability") recommends exponential backoff with jitter
over several days and gives an example schedule: immediately, 5 s, 5 min,
30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h (``STANDARD_WEBHOOKS_EXAMPLE_SCHEDULE_S``).
finsentry's default (``DEFAULT_RETRY_SCHEDULE_S``) is modelled on it: the
same first seven steps, then one more 10 h wait, eight attempts over about
27.6 hours; it is the schedule Svix, the specification's original author,
documents for its own service. Each delay is capped and drawn with *full
jitter* (uniform in ``[0, min(cap, nominal)]``, the AWS "Exponential Backoff
And Jitter" variant), so that many messages failing together do not retry in
lock step.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Sequence
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

__all__ = [
    "DEFAULT_RETRY_SCHEDULE_S",
    "STANDARD_WEBHOOKS_EXAMPLE_SCHEDULE_S",
    "Outcome",
    "RetryPolicy",
    "classify_status",
    "parse_retry_after",
]

#: Nominal delay (seconds) before each attempt, by default (8 attempts, ~27.6 h).
DEFAULT_RETRY_SCHEDULE_S: tuple[float, ...] = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
#: The Standard Webhooks specification's example schedule (10 attempts, ~75.6 h).
STANDARD_WEBHOOKS_EXAMPLE_SCHEDULE_S: tuple[float, ...] = (0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)


class Outcome(enum.Enum):
    """What one HTTP answer (or failure) means for the alert and the endpoint."""

    DELIVERED = "delivered"  # 2xx
    RETRY = "retry"  # 5xx, 408, 429, 1xx/3xx, timeouts, connection errors
    GIVE_UP = "give_up"  # other 4xx: the receiver refuses this message
    DISABLE = "disable"  # 410 Gone: the receiver wants no more messages


def classify_status(status: int) -> Outcome:
    """The outcome of an HTTP answer with status code ``status``.

    2xx is delivered; 410 disables the endpoint; 408 and 429 are retried
    like 5xx; every other 4xx stops retrying that message. Redirects are not
    followed, so 1xx and 3xx count as failures and are retried.
    """
    if 200 <= status < 300:
        return Outcome.DELIVERED
    if status == 410:
        return Outcome.DISABLE
    if 400 <= status < 500 and status not in (408, 429):
        return Outcome.GIVE_UP
    return Outcome.RETRY


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (RFC 9110 section 10.2.3).

    Args:
        value: the header: delay seconds (``"120"``) or an HTTP date.
        now: the current time for an HTTP date (default: the wall clock).

    Returns:
        The delay in seconds, >= 0, or None when absent or unparsable.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    now = now or datetime.now(timezone.utc)
    return max(0.0, (when - now).total_seconds())


class RetryPolicy:
    """A capped retry schedule with full jitter.

    Attempt ``k`` (1-based) of a message happens ``schedule_s[k - 1]``
    seconds (nominal) after attempt ``k - 1`` failed; ``schedule_s[0]`` is the
    delay of the first attempt after the message is queued and is normally 0.
    There are ``len(schedule_s)`` attempts in all.

    Args:
        schedule_s: nominal delays, seconds, each >= 0; at least one. Default:
            ``DEFAULT_RETRY_SCHEDULE_S``.
        cap_s: largest delay ever waited, seconds, > 0 (also caps a
            receiver's ``Retry-After``). Default 24 hours.
        jitter: draw each delay uniformly in ``[0, min(cap_s, nominal)]``
            (full jitter); False waits the nominal (capped) delay.
        rng: random source for the jitter (tests pass a seeded one).

    Raises:
        ValueError: when the schedule is empty or has a negative delay, or
            ``cap_s`` is not > 0.
    """

    def __init__(
        self,
        schedule_s: Sequence[float] = DEFAULT_RETRY_SCHEDULE_S,
        cap_s: float = 86400.0,
        jitter: bool = True,
        rng: random.Random | None = None,
    ) -> None:
        schedule = tuple(float(s) for s in schedule_s)
        if not schedule:
            raise ValueError("the retry schedule needs at least one attempt")
        if any(s < 0 for s in schedule):
            raise ValueError(f"retry delays must be >= 0 seconds, got {schedule}")
        if not cap_s > 0:
            raise ValueError(f"cap_s must be > 0, got {cap_s!r}")
        self._schedule = schedule
        self._cap_s = float(cap_s)
        self._jitter = bool(jitter)
        self._rng = rng or random.Random()

    @property
    def schedule_s(self) -> tuple[float, ...]:
        """The nominal delays, seconds."""
        return self._schedule

    @property
    def attempts(self) -> int:
        """Attempts in all, first one included."""
        return len(self._schedule)

    @property
    def cap_s(self) -> float:
        """The largest delay, seconds."""
        return self._cap_s

    def first_delay(self) -> float:
        """Seconds from queueing to the first attempt (``schedule_s[0]``, capped, no jitter)."""
        return min(self._cap_s, self._schedule[0])

    def next_delay(self, attempts_made: int, retry_after_s: float | None = None) -> float | None:
        """Seconds to wait before the next attempt, or None when none is left.

        Args:
            attempts_made: attempts already made (and failed), >= 1.
            retry_after_s: the receiver's ``Retry-After``, seconds; the delay
                is at least this much (itself capped at ``cap_s``).

        Raises:
            ValueError: when ``attempts_made < 1``.
        """
        if attempts_made < 1:
            raise ValueError(f"attempts_made must be >= 1, got {attempts_made}")
        if attempts_made >= len(self._schedule):
            return None
        ceiling = min(self._cap_s, self._schedule[attempts_made])
        delay = self._rng.uniform(0.0, ceiling) if self._jitter else ceiling
        if retry_after_s is not None:
            delay = max(delay, min(self._cap_s, retry_after_s))
        return delay
