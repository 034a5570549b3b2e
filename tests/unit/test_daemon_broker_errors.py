"""The daemon rides out retriable broker errors (a broker restarting) instead of exiting.

kafka-python 3.0.12's ``KafkaConsumer.poll`` raises ``KafkaConnectionError`` while
no broker answers (CI saw the daemon of ``benchmarks/faults/brokerrestart.py``
exit with ``111 ECONNREFUSED``); a commit times out. Plain objects stand in for
the consumer here; the real broker restart is tests/e2e/test_fault_brokerrestart.py.
"""

from __future__ import annotations

import threading
from collections import deque
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from kafka import TopicPartition
from kafka.errors import KafkaConnectionError, KafkaTimeoutError, UnsupportedVersionError

from alerts import Alert, Outbox
from finsentry import daemon as daemon_mod
from finsentry.daemon import Daemon, DaemonStats

TP = TopicPartition("raw", 0)


class _Consumer:
    """Plays back ``polls`` (an exception is raised, a dict returned) and records commits."""

    def __init__(self, polls: list[Any], commits: list[Any] | None = None) -> None:
        self.polls = deque(polls)
        self.commits = deque(commits or [])
        self.committed: list[dict] = []

    def poll(self, timeout_ms: int, max_records: int) -> dict:
        step = self.polls.popleft() if self.polls else {}
        if isinstance(step, Exception):
            raise step
        return step

    def commit(self, offsets: dict) -> None:
        step = self.commits.popleft() if self.commits else None
        if isinstance(step, Exception):
            raise step
        self.committed.append({tp: o.offset for tp, o in offsets.items()})

    def assignment(self) -> set[TopicPartition]:
        return {TP}


def _daemon(consumer: _Consumer, max_wait_ms: int = 300) -> Daemon:
    d = object.__new__(Daemon)  # no broker, model or outbox: only the consume / commit edges are exercised
    d.settings = SimpleNamespace(batch=SimpleNamespace(max_batch=10, max_wait_ms=max_wait_ms))  # type: ignore[assignment]
    d.consumer = consumer  # type: ignore[assignment]
    d.stats = DaemonStats()
    d._stop = threading.Event()
    d._broker_error_logged = -float("inf")
    d._sends = []
    d._committed = {}
    d._decided = {}
    d._committed_wm = None
    d.pipeline = SimpleNamespace(windows=SimpleNamespace(watermark_ms=None))  # type: ignore[assignment]
    return d


def _record(offset: int) -> SimpleNamespace:
    return SimpleNamespace(topic="raw", partition=0, offset=offset)


def test_a_poll_refused_by_a_restarting_broker_returns_nothing_and_the_next_poll_goes_on() -> None:
    refused = KafkaConnectionError("111 ECONNREFUSED")
    d = _daemon(_Consumer([refused, refused, {TP: [_record(7), _record(8)]}]), max_wait_ms=3000)
    batch = d._consume()
    assert [r.offset for r in batch.records] == [7, 8]
    assert d.stats.broker_errors == 2 and d.stats.consumed == 2


def test_a_non_retriable_poll_error_still_stops_the_daemon() -> None:
    d = _daemon(_Consumer([UnsupportedVersionError("no")]))
    with pytest.raises(UnsupportedVersionError):
        d._consume()
    assert d.stats.broker_errors == 0


def test_a_commit_that_times_out_is_retried_at_the_next_commit_with_every_owned_partition() -> None:
    consumer = _Consumer([], commits=[KafkaTimeoutError("commit")])
    d = _daemon(consumer)
    done = daemon_mod._Batch(records=[_record(4)], polled_at=[0.0])
    d._commit(done)  # times out: the daemon goes on
    assert d.stats.broker_errors == 1 and consumer.committed == []
    d._commit(None)  # the next loop turn: nothing new finished, the refused offset is committed again
    assert consumer.committed == [{TP: 5}]


def test_broker_error_warnings_are_rate_limited_but_every_error_is_counted(caplog: pytest.LogCaptureFixture) -> None:
    d = _daemon(_Consumer([]))
    with caplog.at_level("WARNING", logger="finsentry.daemon"):
        for _ in range(5):
            d._broker_error("poll", KafkaConnectionError("x"))
    assert d.stats.broker_errors == 5
    assert sum("broker unreachable" in r.getMessage() for r in caplog.records) == 1


class _Claims:
    """Fails ``fail`` times with ``error``, then gives every message to this daemon except those in ``lost``."""

    def __init__(self, fail: int, error: Exception, lost: tuple[str, ...] = ()) -> None:
        self.fail, self.error, self.lost = fail, error, lost
        self.calls: list[list[str]] = []

    def claim(self, alerts: list[Alert]) -> tuple[list[Alert], list[Alert]]:
        self.calls.append([a.key for a in alerts])
        if self.fail:
            self.fail -= 1
            raise self.error
        return [a for a in alerts if a.key not in self.lost], [a for a in alerts if a.key in self.lost]


def _alert(key: str) -> Alert:
    start = datetime(2026, 11, 29, 12, 0, tzinfo=timezone.utc)
    return Alert(alert_id=f"id-{key}", rule="threshold", key_type="ticker", key=key, window_start=start,
                 window_end=start.replace(hour=13), n=5, n_negative=4, neg_share=0.8, mean_score=-0.6)


def _alerting(tmp_path: Path, claims: _Claims) -> Daemon:
    d = _daemon(_Consumer([]))
    d.outbox = Outbox(tmp_path / "outbox.sqlite")
    d.claims = claims  # type: ignore[assignment]
    d._held = bool(d.outbox.held())
    d._claim_at = 0.0
    return d


def test_alerts_stay_held_and_the_turn_uncommitted_while_the_claim_fails_then_go_out(tmp_path: Path) -> None:
    claims = _Claims(fail=1, error=KafkaTimeoutError("claims topic"))
    d = _alerting(tmp_path, claims)
    x, y = _alert("ACME"), _alert("BETA")
    assert d._alert([x]) is False  # the broker is away: held, durable, not sent, the caller holds the commit
    assert d.outbox.held() == [x] and d.stats.broker_errors == 1 and not d.stats.alerts
    assert d._alert([y]) is False and len(claims.calls) == 1  # no new try within a second; y held too
    d._claim_at = 0.0  # a second later
    assert d._alert([]) is True  # every held message is claimed at once
    assert claims.calls[-1] == ["ACME", "BETA"] and d.outbox.held() == []
    assert [a.key for a in d.stats.alerts] == ["ACME", "BETA"]


def test_messages_another_daemon_claimed_first_are_discarded(tmp_path: Path) -> None:
    d = _alerting(tmp_path, _Claims(fail=0, error=RuntimeError(), lost=("BETA",)))
    assert d._alert([_alert("ACME"), _alert("BETA")]) is True
    assert d.outbox.held() == [] and [a.key for a in d.stats.alerts] == ["ACME"]
    assert d.outbox.hold([_alert("BETA")]) == 1  # discarded, not kept: only ACME is stored


def test_messages_held_by_a_crashed_run_are_claimed_at_the_next_start(tmp_path: Path) -> None:
    Outbox(tmp_path / "outbox.sqlite").hold([_alert("ACME")])  # the run that crashed before claiming
    d = _alerting(tmp_path, _Claims(fail=0, error=RuntimeError()))
    assert d._held is True
    assert d._alert([]) is True and [a.key for a in d.stats.alerts] == ["ACME"]


def test_a_non_retriable_claim_error_stops_the_daemon(tmp_path: Path) -> None:
    d = _alerting(tmp_path, _Claims(fail=1, error=UnsupportedVersionError("no")))
    with pytest.raises(UnsupportedVersionError):
        d._alert([_alert("ACME")])
    assert d.outbox.held() == [_alert("ACME")]  # kept for the next start


def test_a_held_turn_commits_nothing_and_the_next_turn_commits_its_offsets(tmp_path: Path) -> None:
    consumer = _Consumer([])
    d = _daemon(consumer)
    d._commit(daemon_mod._Batch(records=[_record(4)], polled_at=[0.0]), hold=True)
    assert consumer.committed == []
    d._commit(None)
    assert consumer.committed == [{TP: 5}]
