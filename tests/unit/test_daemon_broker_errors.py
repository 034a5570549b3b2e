"""The daemon rides out retriable broker errors (a broker restarting) instead of exiting.

kafka-python 3.0.12's ``KafkaConsumer.poll`` raises ``KafkaConnectionError`` while
no broker answers (CI saw the daemon of ``benchmarks/faults/brokerrestart.py``
exit with ``111 ECONNREFUSED``); a commit times out. Plain objects stand in for
the consumer here; the real broker restart is tests/e2e/test_fault_brokerrestart.py.
"""

from __future__ import annotations

import threading
from collections import deque
from types import SimpleNamespace
from typing import Any

import pytest
from kafka import TopicPartition
from kafka.errors import KafkaConnectionError, KafkaTimeoutError, UnsupportedVersionError

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
