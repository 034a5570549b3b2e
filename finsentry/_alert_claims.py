"""Alert claims: which daemon of a consumer group stores (and so delivers) each alert message.

Each daemon has its own outbox. When daemon A is killed after storing a loop
turn's alerts and before committing that turn's offsets and decided-through
watermark, the partition's next owner B decides those windows again and
raises the same alert messages (same alert id, same status); without a
shared record, A's outbox (after A's restart) and B's both send them.

The rule: before storing alert messages, a daemon appends a claim for each
one it has not seen claimed (key = the message id, value ``{"kind":
"claim", "member": <its outbox's instance id>, "alert": <the alert JSON>}``)
to its group's one-partition alert-claims topic and reads the partition back
through its own records. The *first* claim of a message in the log wins
(:func:`finsentry.jobs.first_claims`, the rule the scheduled jobs use); only
the winner stores the message. The member id is the outbox's instance id
(``alerts.Outbox.instance_id``), so a daemon restarted on its outbox keeps
its claims. On start, a daemon stores every message it won within the
horizon that its outbox lacks (:meth:`AlertClaims.unstored`): a kill between
a claim and the outbox write loses nothing once the daemon is back.

What is left: a daemon killed after claiming and never restarted on its
outbox does not deliver what it claimed (nor anything else its outbox still
held); a crash between a webhook's HTTP answer and the outbox recording it
re-sends that message with the same ``webhook-id`` (at-least-once delivery,
as with one daemon).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from alerts import Alert
from finsentry.jobs import JobLog, first_claim_records, first_claims

__all__ = ["AlertClaims", "claims_topic_for"]

log = logging.getLogger(__name__)

_TOPIC_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def claims_topic_for(group_id: str) -> str:
    """The default alert-claims topic of a consumer group: ``<group_id>.alert-claims``.

    Characters Kafka refuses in topic names (anything but ASCII letters,
    digits, ``.``, ``_`` and ``-``) become ``_``; the name is cut to Kafka's
    249-character limit.

    >>> claims_topic_for("desk/eu")
    'desk_eu.alert-claims'
    """
    safe = "".join(c if c in _TOPIC_CHARS else "_" for c in group_id)
    return f"{safe[:249 - len('.alert-claims')]}.alert-claims"


class AlertClaims:
    """Decides which alert messages this daemon stores, by first claim on a shared log.

    Args:
        log: the group's alert-claims log (a :class:`finsentry.jobs.JobLog`, e.g. ``KafkaJobLog``).
        member: this daemon's id: its outbox's instance id (stable across restarts on that outbox).
        horizon_ms: how far back claims are read, ms of wall-clock time; must be shorter than the
            outbox's retention, so a message claimed within it and stored is still in the outbox.
        clock: wall clock, Unix seconds.
    """

    def __init__(self, log: JobLog, member: str, horizon_ms: int,
                 clock: Callable[[], float] = time.time) -> None:
        self._log = log
        self.member = member
        self.horizon_ms = horizon_ms
        self._clock = clock
        #: messages another daemon had claimed first (not stored here).
        self.claimed_elsewhere = 0

    def claim(self, alerts: Sequence[Alert]) -> list[Alert]:
        """The alerts of ``alerts`` this daemon won, in their order: store these, drop the rest.

        A message already claimed by this member is won again without a new
        record (a window decided again after a restart, a replayed turn).

        Raises:
            whatever the log raises (``kafka.errors.KafkaError``, ``finsentry.jobs.JobLogError``): nothing
            may be stored then; claims appended before the error stay this member's.
        """
        if not alerts:
            return []
        since = self._since_ms()
        winners = first_claims(self._log.read(since))
        last: int | None = None
        for alert in alerts:
            if alert.message_id not in winners:
                last = self._log.append(alert.message_id, {
                    "kind": "claim", "member": self.member, "at_ms": int(self._clock() * 1000),
                    "alert": alert.to_json().decode("utf-8"),
                })
        if last is not None:  # read back through our own records: the first claim of each message wins
            winners = first_claims(self._log.read(since, through_offset=last))
        won = [a for a in alerts if winners.get(a.message_id) == self.member]
        lost = len(alerts) - len(won)
        if lost:
            self.claimed_elsewhere += lost
            log.info("%d alert message(s) already claimed by another daemon of the group: not stored here", lost,
                     extra={"alert_ids": [a.alert_id for a in alerts if winners.get(a.message_id) != self.member]})
        return won

    def unstored(self, stored: Callable[[str], bool]) -> list[Alert]:
        """Messages this member won within the horizon that ``stored(message_id)`` says are not stored.

        Called at start, before consuming: what a kill between a claim and the
        outbox write left behind. A claim whose alert JSON does not decode is
        logged and skipped.

        Raises:
            whatever the log raises.
        """
        out: list[Alert] = []
        for key, record in first_claim_records(self._log.read(self._since_ms())).items():
            if record.value.get("member") != self.member or stored(key):
                continue
            try:
                out.append(Alert.from_json(str(record.value["alert"])))
            except (KeyError, ValueError) as exc:
                log.error("alert claim %s at offset %d has no readable alert: %s", key, record.offset, exc)
        return out

    def close(self) -> None:
        """Close the log's clients, when it has any (idempotent)."""
        close = getattr(self._log, "close", None)
        if close is not None:
            close()

    def _since_ms(self) -> int:
        return int(self._clock() * 1000) - self.horizon_ms

