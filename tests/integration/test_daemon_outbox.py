"""Against the real broker (a stub scorer stands in for the model): the daemon
puts alerts in the outbox before it commits, a receiver outage loses nothing
across a daemon restart, and a failed outbox write leaves the offsets
uncommitted so that the batch is processed again."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from _stubs import StubScorer, daemon_settings  # tests/integration is on sys.path under pytest
from kafka import KafkaConsumer, TopicPartition

from alerts import Alert, OutboxError, ThresholdDetector, TumblingWindows, WebhookSink
from finsentry.daemon import Daemon
from finsentry.pipeline import Pipeline
from ingest import NewsItem, make_producer

pytestmark = pytest.mark.integration

T0 = datetime(2020, 5, 19, 14, 0, tzinfo=timezone.utc)


def _pipeline() -> Pipeline:
    windows = TumblingWindows(size_ms=3_600_000, allowed_lateness_ms=0)
    return Pipeline(StubScorer(), windows, ThresholdDetector(3, 0.6))  # type: ignore[arg-type]


def _produce(bootstrap: str, topic: str) -> None:
    """A burst of 4 negative ACME items in [14:00, 15:00), then a quiet item at 16:00 closing the window."""
    producer = make_producer(bootstrap)
    items = [NewsItem(id=f"n{i}", source="t", published_at=T0 + timedelta(minutes=10 * i),
                      title=f"ACME falls {i}", tickers=["ACME"]) for i in range(4)]
    items.append(NewsItem(id="q", source="t", published_at=T0 + timedelta(hours=2), title="Other news",
                          tickers=["OTHER"]))
    for item in items:
        producer.send(topic, key=b"k", value=item.to_json(), partition=0, timestamp_ms=item.published_ms)
    producer.flush()
    producer.close()


def _committed(bootstrap: str, group: str, topic: str) -> int | None:
    probe = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        return probe.committed(TopicPartition(topic, 0))
    finally:
        probe.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_receiver_outage_across_a_daemon_restart_loses_and_duplicates_nothing(
    kafka_bootstrap: str, new_topic: Callable[..., str], tmp_path: Path
) -> None:
    raw, scored, dlq = new_topic("raw", 1), new_topic("scored", 1), new_topic("dlq", 1)
    _produce(kafka_bootstrap, raw)
    group, port = f"outbox-{uuid.uuid4().hex[:8]}", _free_port()
    settings = daemon_settings(kafka_bootstrap, raw, scored, dlq, group, f"http://127.0.0.1:{port}/alerts",
                         tmp_path / "outbox.sqlite")

    stats = Daemon(settings, _pipeline()).run(idle_exit_s=1.0)  # the receiver is down all along
    assert len(stats.alerts) == 1
    assert _committed(kafka_bootstrap, group, raw) == 5  # committed: the alert is safe in the outbox

    with WebhookSink(port=port) as sink:
        again = Daemon(settings, _pipeline()).run(idle_exit_s=1.0)  # restart: nothing new to consume
        received = list(sink.received)
    assert again.consumed == 0 and not again.alerts
    assert len(received) == 1 and sink.duplicates == 0
    alert = Alert.model_validate(received[0][1])
    assert alert == stats.alerts[0] and received[0][0]["webhook-id"] == alert.alert_id


def test_a_failed_outbox_write_leaves_the_offsets_uncommitted(
    kafka_bootstrap: str, new_topic: Callable[..., str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw, scored, dlq = new_topic("raw", 1), new_topic("scored", 1), new_topic("dlq", 1)
    _produce(kafka_bootstrap, raw)
    group = f"outbox-{uuid.uuid4().hex[:8]}"
    with WebhookSink() as sink:
        settings = daemon_settings(kafka_bootstrap, raw, scored, dlq, group, sink.url, tmp_path / "outbox.sqlite")
        daemon = Daemon(settings, _pipeline())

        def disk_full(alerts: object, now: float | None = None) -> int:
            raise OutboxError("disk full (injected)")

        monkeypatch.setattr(daemon.outbox, "hold", disk_full)  # the daemon's first outbox write of an alert
        with pytest.raises(OutboxError):
            daemon.run(idle_exit_s=1.0)
        assert _committed(kafka_bootstrap, group, raw) in (None, 0)
        assert sink.received == []

        stats = Daemon(settings, _pipeline()).run(idle_exit_s=1.0)  # reprocesses the uncommitted batch
        assert stats.consumed == 5 and len(stats.alerts) == 1
        assert len(sink.received) == 1
    assert _committed(kafka_bootstrap, group, raw) == 5
