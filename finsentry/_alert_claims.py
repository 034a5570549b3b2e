"""Alert claims: which daemon of a consumer group sends each alert message.

Each daemon has its own outbox. When daemon A is killed after storing a loop
turn's alerts and before committing that turn's offsets and decided-through
watermark, the partition's next owner B decides those windows again and
raises the same alert messages (same alert id, same status); without a
shared record, A's outbox (after A's restart) and B's would both send them.

The rule, per loop turn that raises alerts (``Daemon._alert``):

1. **hold**: the messages go into the outbox, durable but not queued
   (``alerts.Outbox.hold``);
2. **claim**: for each held message not claimed yet, a claim record (key
   ``<group>/<message id>``, value ``{"kind": "claim", "member": <the
   outbox's instance id>}``) is appended to the group's one-partition claims
   topic, and the partition is read back through those records; the *first*
   claim of a key in the log wins (:func:`finsentry.jobs.first_claims`, the
   rule of the scheduled jobs);
3. **release** what this daemon won (queued for delivery) and **discard**
   what another daemon claimed first (``Outbox.release`` / ``discard``).

A crash anywhere in between leaves the messages held in the outbox; the
daemon claims them again at its next start (its member id is the outbox's
instance id, so its earlier claims are still its own), and the offsets of
that turn are committed only after step 3. What is left: a daemon's held or
queued messages are sent only when it runs again on its outbox; a daemon
back after more than the horizon may claim again a message another daemon
won and sent; a crash between a receiver's answer and the outbox recording
it re-sends that message with the same ``webhook-id`` (at-least-once
delivery, as with one daemon).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, Protocol

from kafka.errors import KafkaError

from alerts import Alert
from finsentry.broker import TOPIC_CHARS
from finsentry.jobs import JobLogError, LogRecord

__all__ = ["AlertClaims", "ClaimLog", "claims_topic_for"]

log = logging.getLogger(__name__)



def claims_topic_for(group_id: str) -> str:
    """The default claims topic of a consumer group: ``<group_id>.alert-claims``.

    Characters Kafka refuses in topic names (anything but ASCII letters,
    digits, ``.``, ``_`` and ``-``) become ``_``; the name is cut to Kafka's
    249-character limit.

    >>> claims_topic_for("desk/eu")
    'desk_eu.alert-claims'
    """
    safe = re.sub(f"[^{TOPIC_CHARS}]", "_", group_id)
    return f"{safe[:249 - len('.alert-claims')]}.alert-claims"


class ClaimLog(Protocol):
    """An append-only log with one total order (``finsentry.jobs.KafkaJobLog`` on the claims topic)."""

    def append_many(self, records: Sequence[tuple[str, Mapping[str, Any]]]) -> int:
        """Append in order, durably; returns the last record's offset."""
        ...

    def read(self, since_ms: int, through_offset: int | None = None,
             from_offset: int | None = None) -> list[LogRecord]:
        """Records stamped at or after ``since_ms`` (or from ``from_offset``) through ``through_offset``."""
        ...


class AlertClaims:
    """Decides which alert messages this daemon sends, by first claim on its group's shared log.

    Keeps the first claim of each key read so far (within the horizon) in
    memory and reads only the records appended since its last read.

    Args:
        log: the group's claims log.
        group: the consumer group (the key's prefix: groups sharing a topic never interfere).
        member: this daemon's id: its outbox's instance id (stable across restarts on that outbox).
        horizon_ms: how far back claims count, ms of wall-clock time (a claim older than that is
            forgotten and the key may be claimed again).
        clock: wall clock, Unix seconds.
    """

    def __init__(self, log: ClaimLog, group: str, member: str, horizon_ms: int,
                 clock: Callable[[], float] = time.time) -> None:
        self._log = log
        self.group = group
        self.member = member
        self.horizon_ms = horizon_ms
        self._clock = clock
        self._first: dict[str, tuple[str, int]] = {}  # key -> (member of its first claim, its timestamp ms)
        self._next: int | None = None  # the offset to read from next; None: seek by time
        #: messages another daemon had claimed first (discarded here).
        self.claimed_elsewhere = 0

    def key(self, message_id: str) -> str:
        """The claim key of an alert message: ``<group>/<message id>``."""
        return f"{self.group}/{message_id}"

    def claim(self, alerts: Sequence[Alert]) -> tuple[list[Alert], list[Alert]]:
        """Claim ``alerts``' messages; returns (won, lost), each in input order.

        A message this member claimed before is won again without a new
        record (a window decided again after a restart, a retried claim).

        Raises:
            whatever the log raises (``kafka.errors.KafkaError``, ``finsentry.jobs.JobLogError``), and
            ``JobLogError`` when this member's new claims cannot be read back: then nothing is decided
            (the messages stay held); claims appended before the error stay this member's.
        """
        if not alerts:
            return [], []
        self._refresh()
        now_ms = int(self._clock() * 1000)
        new = [(k, {"kind": "claim", "member": self.member, "at_ms": now_ms})
               for k in dict.fromkeys(self.key(a.message_id) for a in alerts) if k not in self._first]
        if new:
            last = self._log.append_many(new)
            self._refresh(through_offset=last)  # first claim of each key wins
            if any(k not in self._first for k, _ in new):  # our own records not read back: never decide blind
                log.warning("the claims log did not give back this daemon's claims: reading it again by time")
                self._first, self._next = {}, None
                self._refresh(through_offset=last)
                missing = [k for k, _ in new if k not in self._first]
                if missing:
                    raise JobLogError(f"claims {missing[:3]} were appended but not read back from the claims log")
        won: list[Alert] = []
        lost: list[Alert] = []
        for alert in alerts:
            (won if self._first.get(self.key(alert.message_id), ("",))[0] == self.member else lost).append(alert)
        if lost:
            self.claimed_elsewhere += len(lost)
            log.info("%d alert message(s) claimed first by another daemon of the group: discarded here", len(lost),
                     extra={"alert_ids": [a.alert_id for a in lost]})
        return won, lost

    def sent(self, message_ids: Collection[str]) -> set[str] | None:
        """Of ``message_ids``, those some daemon of the group claimed (and so sent) within the horizon;
        None when the claims log cannot be read now (the caller must not decide on it)."""
        try:
            self._refresh()
        except (KafkaError, JobLogError) as exc:
            log.warning("alert claims unreadable (%s): every rebuilt episode is kept", exc)
            return None
        return {m for m in message_ids if self.key(m) in self._first}

    def _refresh(self, through_offset: int | None = None) -> None:
        """Read the records appended since the last read (the first time: the horizon) into the first claims."""
        since = int(self._clock() * 1000) - self.horizon_ms
        if through_offset is not None and self._next is not None and through_offset < self._next:
            log.warning("the claims log's offsets went back (topic re-created?): reading it again by time")
            self._first, self._next = {}, None
        for record in sorted(self._log.read(since, through_offset, self._next), key=lambda r: r.offset):
            self._next = record.offset + 1
            if record.value.get("kind") == "claim" and record.key not in self._first:
                self._first[record.key] = (str(record.value.get("member")), record.timestamp_ms)
        if through_offset is not None:
            self._next = max(self._next or 0, through_offset + 1)
        self._first = {k: v for k, v in self._first.items() if v[1] >= since}

    def start(self) -> None:
        """Connect the log now, when it can (a bad topic or an unreachable broker fails at start, not at
        the first alert).

        Raises:
            whatever the log's ``start`` raises.
        """
        start = getattr(self._log, "start", None)
        if start is not None:
            start()

    def close(self) -> None:
        """Close the log's clients, when it has any (idempotent)."""
        close = getattr(self._log, "close", None)
        if close is not None:
            close()
