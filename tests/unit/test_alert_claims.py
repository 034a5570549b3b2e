"""Alert claims (finsentry._alert_claims) and the outbox's held messages they work with.

An in-memory log with one total order stands in for the one-partition Kafka
topic (tests/integration/test_daemon_claims.py runs daemons on the real one).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from alerts import Alert, Endpoint, Outbox
from finsentry._alert_claims import AlertClaims, claims_topic_for
from finsentry.jobs import JobLogError, LogRecord

NOW_S = 1_800_000_000.0
HOUR_MS = 3_600_000


class _Log:
    """Append-only, one order, read by time or from an offset as ``KafkaJobLog`` does; ``after_read`` runs
    after each read has been taken (to interleave another member); ``reads`` counts records returned."""

    def __init__(self) -> None:
        self.records: list[LogRecord] = []
        self.now_ms = int(NOW_S * 1000)
        self.after_read: Callable[[], None] = lambda: None
        self.reads = 0

    def append_many(self, records: Sequence[tuple[str, Mapping[str, Any]]]) -> int:
        for key, value in records:
            self.records.append(LogRecord(len(self.records), key, dict(value), self.now_ms))
        return len(self.records) - 1

    def read(self, since_ms: int, through_offset: int | None = None,
             from_offset: int | None = None) -> list[LogRecord]:
        stop = len(self.records) if through_offset is None else min(len(self.records), through_offset + 1)
        if from_offset is None:
            from_offset = next((r.offset for r in self.records if r.timestamp_ms >= since_ms), len(self.records))
        out = self.records[from_offset:stop]
        self.reads += len(out)
        self.after_read()
        return out


def _alert(key: str) -> Alert:
    start = datetime(2026, 11, 29, 12, 0, tzinfo=timezone.utc)
    return Alert(alert_id=f"id-{key}", rule="threshold", key_type="ticker", key=key, window_start=start,
                 window_end=start.replace(hour=13), n=5, n_negative=4, neg_share=0.8, mean_score=-0.6)


def _claims(log: _Log, member: str, group: str = "g", horizon_ms: int = HOUR_MS) -> AlertClaims:
    return AlertClaims(log, group, member, horizon_ms, clock=lambda: log.now_ms / 1000)


def test_the_first_daemon_to_claim_a_message_sends_it_and_the_other_does_not() -> None:
    log = _Log()
    a, b = _claims(log, "A"), _claims(log, "B")
    x, y = _alert("ACME"), _alert("BETA")
    assert a.claim([x]) == ([x], [])
    assert b.claim([x, y]) == ([y], [x])  # x was A's; y is new
    assert b.claimed_elsewhere == 1 and a.claimed_elsewhere == 0
    assert a.claim([x]) == ([x], []) and len(log.records) == 2  # A's own claim again: won, nothing appended
    assert a.claim([x.resolved()]) == ([x.resolved()], [])  # the resolved message is another message
    assert [r.key for r in log.records] == ["g/id-ACME", "g/id-BETA", "g/id-ACME-resolved"]


def test_two_daemons_claiming_at_once_agree_on_one_winner() -> None:
    log = _Log()
    a, b = _claims(log, "A"), _claims(log, "B")
    x = _alert("ACME")

    def b_claims_after_a_read() -> None:  # A reads (sees nothing), then B claims, then A appends and reads back
        log.after_read = lambda: None
        assert b.claim([x]) == ([x], [])

    log.after_read = b_claims_after_a_read
    assert a.claim([x]) == ([], [x])  # A appended too, but B's claim is first in the log
    assert [r.value["member"] for r in log.records] == ["B", "A"]


def test_groups_sharing_a_topic_never_take_each_others_messages() -> None:
    log = _Log()
    x = _alert("ACME")
    assert _claims(log, "A", group="prod").claim([x]) == ([x], [])
    assert _claims(log, "B", group="backtest-1").claim([x]) == ([x], [])


def test_each_read_after_the_first_takes_only_the_new_records() -> None:
    log = _Log()
    a, b = _claims(log, "A"), _claims(log, "B")
    for i in range(50):
        b.claim([_alert(f"T{i}")])
    a.claim([_alert("ACME")])  # first read: the 50 claims in the horizon, then its own record
    before = log.reads
    a.claim([_alert("BETA")])
    assert log.reads - before == 1  # only its own new record, read back


def test_a_re_created_claims_topic_is_read_again_from_its_start() -> None:
    log = _Log()
    a = _claims(log, "A")
    for i in range(5):
        a.claim([_alert(f"T{i}")])
    log.records.clear()  # the topic deleted and created again: offsets start from 0
    x = _alert("ACME")
    assert a.claim([x]) == ([x], [])  # its new claim (offset 0) is read, not skipped


def test_own_claims_that_do_not_come_back_decide_nothing() -> None:
    class Blind(_Log):  # e.g. a read that skipped past this member's records
        def read(self, since_ms: int, through_offset: int | None = None,
                 from_offset: int | None = None) -> list[LogRecord]:
            return []

    a = _claims(Blind(), "A")
    with pytest.raises(JobLogError, match="not read back"):
        a.claim([_alert("ACME")])  # raised, not "lost": the daemon keeps the message held


def test_claims_older_than_the_horizon_no_longer_count() -> None:
    log = _Log()
    a, b = _claims(log, "A"), _claims(log, "B")
    x = _alert("ACME")
    a.claim([x])
    log.now_ms += HOUR_MS + 1
    assert b.claim([x]) == ([x], [])


def test_held_messages_wait_for_release_or_discard(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite", [Endpoint("http://127.0.0.1:9/x", name="r")])
    x, y, z = _alert("ACME"), _alert("BETA"), _alert("GAMMA")
    assert outbox.hold([x, y, z]) == 3
    assert outbox.counts() == {} and outbox.held() == [x, y, z]  # stored, nothing queued
    assert outbox.hold([x]) == 0  # already there
    assert outbox.release([x.message_id, "unknown"]) == 1 and outbox.discard([y.message_id]) == 1
    assert outbox.held() == [z] and outbox.counts() == {"pending": 1}
    assert outbox.release([x.message_id]) == 0  # released once only
    assert outbox.hold([y]) == 1  # a discarded message is gone: it may be held again
    outbox.close()
    again = Outbox(tmp_path / "outbox.sqlite", [Endpoint("http://127.0.0.1:9/x", name="r")])
    assert again.held() == [z, y]  # held messages survive a restart
    assert again.put(x) is False and again.put(z) is False  # put does not store a held or released message twice
    assert again.counts() == {"pending": 1} and again.held() == [z, y]  # nor queue a held one


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


def test_sent_names_the_messages_some_daemon_of_the_group_claimed() -> None:
    log = _Log()
    a, b = _claims(log, "a"), _claims(log, "b")
    a.claim([_alert("X")])
    assert b.sent(["id-X", "id-Y"]) == {"id-X"}  # claimed by a: sent; never claimed: not sent

    class _Down(_Log):
        def read(self, *args: Any, **kwargs: Any) -> list[LogRecord]:
            raise JobLogError("broker away")

    assert _claims(_Down(), "c").sent(["id-X"]) is None  # unknown: the caller must not decide on it
