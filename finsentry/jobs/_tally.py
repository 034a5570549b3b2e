"""Per-member tallies and the group-wide digest figures built from them.

Every daemon of the group publishes a :class:`Tally` to the jobs topic every
``jobs.tally_interval_s`` seconds and when it stops: its counters since it
started (a restarted daemon is a new member with counters from zero). The
digest owner sums, per member, the difference between the member's last
tally at or before the period's end and its last tally at or before the
period's start (zero when the member started inside the period), so the
figures cover every member of the group, including ones that stopped.
"""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["AlertTally", "DigestCounts", "Tally", "sum_tallies"]


@dataclass(frozen=True)
class Tally:
    """One member's counters since it started.

    Attributes:
        member: the member's id; started_ms / at_ms: when it started and when this was taken (ms, UTC).
        scored, dead_lettered: items scored / records dead-lettered.
        raised, resolved: alerts that fired / resolved, by ``key_type:key``.
        model_version: the model in use at ``at_ms``.
    """

    member: str
    started_ms: int
    at_ms: int
    scored: int
    dead_lettered: int
    raised: Mapping[str, int] = field(default_factory=dict)
    resolved: Mapping[str, int] = field(default_factory=dict)
    model_version: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The record value on the jobs topic (``kind = "tally"``)."""
        return {"kind": "tally", "member": self.member, "started_ms": self.started_ms, "at_ms": self.at_ms,
                "scored": self.scored, "dead_lettered": self.dead_lettered, "raised": dict(self.raised),
                "resolved": dict(self.resolved), "model_version": self.model_version}

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> "Tally":
        """Parse a record value written by :meth:`to_dict`.

        Raises:
            KeyError, TypeError, ValueError: not a tally.
        """
        return cls(member=str(value["member"]), started_ms=int(value["started_ms"]), at_ms=int(value["at_ms"]),
                   scored=int(value["scored"]), dead_lettered=int(value["dead_lettered"]),
                   raised={str(k): int(v) for k, v in dict(value["raised"]).items()},
                   resolved={str(k): int(v) for k, v in dict(value["resolved"]).items()},
                   model_version=str(value.get("model_version", "")))


class AlertTally:
    """Cumulative (raised, resolved) alert counts by ``key_type:key``, each message id once. Thread-safe.

    The poll loop ``add``s every alert it raises; the tally job reads ``totals``. The
    ids of the last ``remember`` messages are kept to skip a message raised again
    (e.g. after a rebalance rebuilt its window), so memory stays bounded.

    Args:
        remember: how many recent message ids to keep, >= 1.
    """

    def __init__(self, remember: int = 100_000) -> None:
        self._remember = remember
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._raised: Counter[str] = Counter()
        self._resolved: Counter[str] = Counter()
        self._lock = threading.Lock()

    def add(self, alert: Any) -> None:
        """Count one ``alerts.Alert`` (firing: raised; resolved: resolved) unless its message id was seen."""
        with self._lock:
            if alert.message_id in self._seen:
                self._seen.move_to_end(alert.message_id)
                return
            self._seen[alert.message_id] = None
            if len(self._seen) > self._remember:
                self._seen.popitem(last=False)
            (self._raised if alert.status == "firing" else self._resolved)[f"{alert.key_type}:{alert.key}"] += 1

    def totals(self) -> tuple[dict[str, int], dict[str, int]]:
        """The counts so far: (raised, resolved), each ``{key_type:key: n}``."""
        with self._lock:
            return dict(self._raised), dict(self._resolved)


@dataclass(frozen=True)
class DigestCounts:
    """Group-wide figures for ``[start_ms, end_ms]``: sums over members of their tally differences."""

    items_scored: int = 0
    dead_lettered: int = 0
    raised: dict[str, int] = field(default_factory=dict)
    resolved: dict[str, int] = field(default_factory=dict)
    model_versions: list[str] = field(default_factory=list)
    members: int = 0


def _minus(a: Mapping[str, int], b: Mapping[str, int]) -> Counter[str]:
    out = Counter(a)
    out.subtract(b)
    return +out  # drops zeros (and negatives: a member's counter never decreases)


def sum_tallies(tallies: Iterable[Tally], start_ms: int, end_ms: int) -> DigestCounts:
    """The group's figures between ``start_ms`` and ``end_ms`` (ms, UTC).

    Per member: ``last tally at or before end_ms`` minus ``last tally at or
    before start_ms``; when there is none before ``start_ms``, zero if the
    member started at or after ``start_ms``, else its earliest tally in the
    input (the caller reads far enough back: at least two tally intervals).
    ``model_versions``: every version named by a tally in the span (and the
    base tally's); ``members``: members with a tally in the span.
    """
    by_member: dict[str, list[Tally]] = {}
    for t in tallies:
        by_member.setdefault(t.member, []).append(t)
    scored = dead = members = 0
    raised: Counter[str] = Counter()
    resolved: Counter[str] = Counter()
    versions: set[str] = set()
    for items in by_member.values():
        items.sort(key=lambda t: t.at_ms)
        upto = [t for t in items if t.at_ms <= end_ms]
        if not upto or upto[-1].at_ms < start_ms:
            continue  # no tally inside the span: the member stopped before it (or started after it)
        end = upto[-1]
        before = [t for t in upto if t.at_ms <= start_ms]
        if before:
            base: Tally | None = before[-1]
        elif end.started_ms >= start_ms:
            base = None
        else:
            base = upto[0]
        members += 1
        scored += end.scored - (base.scored if base else 0)
        dead += end.dead_lettered - (base.dead_lettered if base else 0)
        raised += _minus(end.raised, base.raised if base else {})
        resolved += _minus(end.resolved, base.resolved if base else {})
        versions |= {t.model_version for t in upto if t.at_ms >= start_ms and t.model_version}
        if base is not None and base.model_version:
            versions.add(base.model_version)
    return DigestCounts(scored, dead, dict(sorted(raised.items())), dict(sorted(resolved.items())),
                        sorted(versions), members)
