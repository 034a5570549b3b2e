"""Alert claims (finsentry._alert_claims): the first claim of an alert message in the group's log wins.

An in-memory log with one total order stands in for the one-partition Kafka
topic (tests/integration/test_alert_claims.py runs the daemons on the real one).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from alerts import Alert, Outbox
from finsentry._alert_claims import AlertClaims, claims_topic_for
from finsentry.jobs import LogRecord

NOW_S = 1_800_000_000.0
HOUR_MS = 3_600_000


class _Log:
    """Append-only, one order; ``after_read`` runs after each read has been taken (to interleave another member)."""

    def __init__(self) -> None:
        self.records: list[LogRecord] = []
        self.now_ms = int(NOW_S * 1000)
        self.after_read: Callable[[], None] = lambda: None

    def append(self, key: str, value: Mapping[str, Any]) -> int:
        self.records.append(LogRecord(len(self.records), key, dict(value), self.now_ms))
        return len(self.records) - 1

    def read(self, since_ms: int, through_offset: int | None = None) -> list[LogRecord]:
        last = len(self.records) - 1 if through_offset is None else through_offset
        out = [r for r in self.records if r.timestamp_ms >= since_ms and r.offset <= last]
        self.after_read()
        return out


def _alert(key: str, status: str = "firing") -> Alert:
    start = datetime(2026, 11, 29, 12, 0, tzinfo=timezone.utc)
    alert = Alert(alert_id=f"id-{key}", rule="threshold", key_type="ticker", key=key, window_start=start,
                  window_end=start.replace(hour=13), n=5, n_negative=4, neg_share=0.8, mean_score=-0.6)
    return alert if status == "firing" else alert.resolved()


def _claims(log: _Log, member: str, horizon_ms: int = HOUR_MS) -> AlertClaims:
    return AlertClaims(log, member, horizon_ms, clock=lambda: log.now_ms / 1000)


def test_the_first_daemon_to_claim_a_message_stores_it_and_the_other_does_not() -> None:
    log = _Log()
    a, b = _claims(log, "A"), _claims(log, "B")
    x, y = _alert("ACME"), _alert("BETA")
    assert a.claim([x]) == [x]
    assert b.claim([x, y]) == [y]  # x was A's; y is new
    assert b.claimed_elsewhere == 1 and a.claimed_elsewhere == 0
    assert a.claim([x]) == [x] and len(log.records) == 2  # A's own claim again: won, nothing appended
    assert a.claim([x.resolved()]) == [x.resolved()]  # the resolved message is another message


def test_two_daemons_claiming_at_once_agree_on_one_winner() -> None:
    log = _Log()
    a, b = _claims(log, "A"), _claims(log, "B")
    x = _alert("ACME")

    def b_claims_after_a_read() -> None:  # A reads (sees nothing), then B claims, then A appends and reads back
        log.after_read = lambda: None
        assert b.claim([x]) == [x]

    log.after_read = b_claims_after_a_read
    assert a.claim([x]) == []  # A appended too, but B's claim is first in the log
    assert a.claimed_elsewhere == 1
    assert [r.value["member"] for r in log.records] == ["B", "A"]


def test_claims_older_than_the_horizon_are_not_read() -> None:
    log = _Log()
    a, b = _claims(log, "A"), _claims(log, "B")
    x = _alert("ACME")
    a.claim([x])
    log.now_ms += HOUR_MS + 1
    assert b.claim([x]) == [x]


def test_unstored_lists_what_this_daemon_won_and_its_outbox_lacks(tmp_path: Path) -> None:
    log = _Log()
    outbox = Outbox(tmp_path / "outbox.sqlite")
    a, b = _claims(log, outbox.instance_id), _claims(log, "B")
    x, y, z = _alert("ACME"), _alert("BETA"), _alert("GAMMA")
    b.claim([z])
    assert a.claim([x, y, z]) == [x, y]
    outbox.put(x)  # killed before y was stored
    assert a.unstored(outbox.has_message) == [y]
    assert b.unstored(lambda _: False) == [z]
    log.records.append(LogRecord(len(log.records), "broken", {"kind": "claim", "member": outbox.instance_id},
                                 log.now_ms))  # a claim without its alert: logged, skipped
    assert a.unstored(outbox.has_message) == [y]


def test_an_outbox_keeps_its_instance_id_across_opens(tmp_path: Path) -> None:
    first = Outbox(tmp_path / "outbox.sqlite")
    ident = first.instance_id
    first.close()
    assert Outbox(tmp_path / "outbox.sqlite").instance_id == ident
    assert Outbox(tmp_path / "other.sqlite").instance_id != ident
    assert len(ident) == 32


def test_the_claims_topic_is_named_after_the_group_in_kafka_topic_characters() -> None:
    assert claims_topic_for("finsentry") == "finsentry.alert-claims"
    assert claims_topic_for("desk/eu team") == "desk_eu_team.alert-claims"
    assert len(claims_topic_for("g" * 400)) == 249
