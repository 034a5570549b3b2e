"""Which daemon of a consumer group runs the group's scheduled jobs, and the claim rule.

Two layers (docs/operations.md, "Scheduled jobs"):

1. **Owner**: the member assigned partition 0 of the raw topic
   (:class:`Ownership`, fed by the poll loop after each rebalance). Kafka's
   group protocol gives a partition to at most one member per generation, so
   normally one daemon runs the jobs and the others count
   ``skipped_not_owner``.
2. **Claim**: before acting, the owner appends a claim record
   ``(group, job, period)`` to the one-partition jobs topic and reads the
   partition back up to its own record; the *first* claim record for that
   key in the log wins (:func:`claim_winner`). A partition's log has one
   order that every reader sees, so two members that both believe they own
   partition 0 during a handover (the old owner not yet told, the new one
   already assigned) cannot both win the same period. A member keeps the
   periods it ran or lost in memory as well, so its own regular run and a
   catch-up run cannot both act.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["ClaimGate", "ClaimResult", "JobLog", "LogRecord", "OWNER_PARTITION", "Ownership", "claim_winner"]

#: The raw-topic partition whose holder owns the group's jobs.
OWNER_PARTITION = 0


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One record of the jobs log: its offset, key and JSON value (a dict), and timestamp (ms, UTC)."""

    offset: int
    key: str
    value: Mapping[str, Any]
    timestamp_ms: int


class JobLog(Protocol):
    """An append-only log with one total order (the jobs topic's single partition)."""

    def append(self, key: str, value: Mapping[str, Any]) -> int:
        """Append durably; returns the record's offset."""
        ...

    def read(self, since_ms: int, through_offset: int | None = None) -> list[LogRecord]:
        """Records from the first one stamped at or after ``since_ms`` through ``through_offset`` (else the end)."""
        ...


def claim_winner(records: Iterable[LogRecord], key: str) -> str | None:
    """The member of the first ``claim`` record with ``key`` in log order, or None when there is none."""
    for record in sorted(records, key=lambda r: r.offset):
        if record.key == key and record.value.get("kind") == "claim":
            return str(record.value["member"])
    return None


class Ownership:
    """The partitions of the raw topic this daemon holds, set by the poll loop and read by the scheduler.

    Args:
        on_gain: called (on the loop's thread) when this member becomes the owner.
    """

    def __init__(self, on_gain: Callable[[], None] = lambda: None) -> None:
        self._lock = threading.Lock()
        self._partitions: frozenset[int] = frozenset()
        self._on_gain = on_gain

    def update(self, partitions: Iterable[int]) -> None:
        """Record the current assignment (partition numbers); fires ``on_gain`` on becoming the owner."""
        new = frozenset(partitions)
        with self._lock:
            was, self._partitions = OWNER_PARTITION in self._partitions, new
        if OWNER_PARTITION in new and not was:
            self._on_gain()

    def is_owner(self) -> bool:
        """Whether this member holds partition 0 now."""
        with self._lock:
            return OWNER_PARTITION in self._partitions


@dataclass(frozen=True, slots=True)
class ClaimResult:
    """The outcome of one claim: ``won``, else ``reason`` is ``not_owner``, ``claimed`` (by ``winner``) or ``done``."""

    won: bool
    reason: str = ""
    winner: str | None = None


class ClaimGate:
    """Applies the owner rule and the claim rule for one member of ``group``.

    Args:
        group: the consumer group (claims of other groups on the same log never interfere).
        member: this daemon's unique id (host, pid, random suffix: a restarted daemon is a new member).
        ownership: this member's :class:`Ownership`.
        log: the shared :class:`JobLog`.
    """

    def __init__(self, group: str, member: str, ownership: Ownership, log: JobLog) -> None:
        self.group = group
        self.member = member
        self._ownership = ownership
        self._log = log
        self._seen: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def key(self, job: str, period: str) -> str:
        """The claim key of ``job`` for ``period`` (``group/claim/job/period``)."""
        return f"{self.group}/claim/{job}/{period}"

    def claim(self, job: str, period: str, period_ms: int, now_ms: int) -> ClaimResult:
        """Try to become the one member that runs ``job`` for ``period`` (its fire time, ``period_ms``).

        Claims are stamped with the claiming host's clock at or after its
        own ``period_ms``, so reading from ``period_ms - 60 s`` finds every
        claim of the period (the 60 s absorbs a clock stepped back).

        Raises:
            whatever the log raises (the caller counts the run as failed; nothing was done).
        """
        if not self._ownership.is_owner():
            return ClaimResult(False, "not_owner")
        with self._lock:
            if (job, period) in self._seen:
                return ClaimResult(False, "done")
            self._seen.add((job, period))  # this member never tries a period twice, won or lost
        key = self.key(job, period)
        try:
            winner = claim_winner(self._log.read(period_ms - 60_000), key)  # claimed already: append nothing
            if winner is None:
                offset = self._log.append(key, {"kind": "claim", "member": self.member, "at_ms": now_ms})
                winner = claim_winner(self._log.read(period_ms - 60_000, through_offset=offset), key)
        except BaseException:
            with self._lock:  # may be tried again (a catch-up); a claim it did append is still its own
                self._seen.discard((job, period))
            raise
        if winner == self.member:
            return ClaimResult(True)
        return ClaimResult(False, "claimed", winner)

    def done(self, job: str, period: str, now_ms: int, detail: Mapping[str, Any]) -> None:
        """Record that this member finished ``job`` for ``period`` (informational: operators and tests read it)."""
        self._log.append(f"{self.group}/done/{job}/{period}",
                         {"kind": "done", "member": self.member, "at_ms": now_ms, **detail})
