"""Against the real broker (a stub scorer stands in for the model): a daemon restarted in the
middle of an open window rebuilds it from the scored topic by timestamp, so the window's alert
counts the items from before and after the restart, and an alert sent before the restart is not
sent again."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from _stubs import StubScorer, daemon_settings  # tests/integration is on sys.path under pytest

from alerts import Alert, TumblingWindows, WebhookSink
from finsentry.daemon import Daemon
from finsentry.pipeline import Pipeline
from finsentry.rebuild import rebuild_windows
from inference import ScoredItem
from ingest import NewsItem, make_producer

pytestmark = pytest.mark.integration

T0 = datetime(2020, 5, 19, 14, 0, tzinfo=timezone.utc)


def _pipeline() -> Pipeline:
    from alerts import ThresholdDetector

    return Pipeline(StubScorer(), TumblingWindows(3_600_000, 0), ThresholdDetector(3, 0.6))  # type: ignore[arg-type]


def _send(bootstrap: str, topic: str, items: list[NewsItem]) -> None:
    producer = make_producer(bootstrap)
    for item in items:
        producer.send(topic, key=b"ACME", value=item.to_json(), partition=0, timestamp_ms=item.published_ms)
    producer.flush()
    producer.close()


def _item(name: str, minutes: int, title: str) -> NewsItem:
    return NewsItem(id=name, source="t", published_at=T0 + timedelta(minutes=minutes), title=title, tickers=["ACME"])


@pytest.mark.timeout(240)
def test_restart_mid_window_loses_nothing_and_resends_nothing(
    kafka_bootstrap: str, new_topic: Callable[..., str], tmp_path: Path
) -> None:
    raw, scored, dlq = new_topic("raw", 1), new_topic("scored", 1), new_topic("dlq", 1)
    group = f"rebuild-{uuid.uuid4().hex[:8]}"
    # before the restart: a burst in [12:00, 13:00) (closed and alerted), then 2 negatives in [14:00, 15:00)
    _send(kafka_bootstrap, raw, [_item(f"a{i}", -120 + 10 * i, f"ACME falls early {i}") for i in range(3)]
          + [_item(f"b{i}", 5 + 10 * i, f"ACME falls again {i}") for i in range(2)])
    with WebhookSink() as sink:
        settings = daemon_settings(kafka_bootstrap, raw, scored, dlq, group, sink.url, tmp_path / "outbox.sqlite")
        first = Daemon(settings, _pipeline()).run(idle_exit_s=1.0)
        assert [(a.key, a.window_start) for a in first.alerts] == [("ACME", T0 - timedelta(hours=2))]
        # after the restart: one more negative in [14:00, 15:00) and an item that closes the window
        _send(kafka_bootstrap, raw, [_item("c0", 40, "ACME falls once more"), _item("z", 125, "Quiet news")])
        second = Daemon(settings, _pipeline()).run(idle_exit_s=1.0)
        third = Daemon(settings, _pipeline()).run(idle_exit_s=1.0)  # nothing new: rebuilds, sends nothing
        received = [Alert.model_validate(body) for _, body in sink.received]
    assert second.consumed == 2 and [(a.window_start, a.n, a.n_negative) for a in second.alerts] == [(T0, 3, 3)]
    assert third.consumed == 0 and not third.alerts
    assert sorted((a.window_start, a.status) for a in received) == [
        (T0 - timedelta(hours=2), "firing"), (T0, "firing")
    ]
    assert sink.duplicates == 0


def test_rebuild_seeks_from_the_committed_point_and_skips_partitions_without_records(
    kafka_bootstrap: str, new_topic: Callable[..., str]
) -> None:
    from kafka import KafkaConsumer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    raw, scored = new_topic("raw", 2), new_topic("scored", 2)
    group = f"rebuild-{uuid.uuid4().hex[:8]}"
    producer = make_producer(kafka_bootstrap)
    for partition, minutes in ((0, 0), (0, 30), (1, 300)):
        item = _item(f"r{partition}{minutes}", minutes, f"t{minutes}")
        producer.send(raw, key=b"ACME", value=item.to_json(), partition=partition, timestamp_ms=item.published_ms)
        if partition == 0:  # only partition 0 has scored records
            s = ScoredItem(item_id=item.id, source="t", published_at=item.published_at, tickers=("ACME",),
                           title=item.title, p_negative=0.9, p_neutral=0.05, p_positive=0.05, label="negative",
                           score=-0.85, model_version="m")
            producer.send(scored, key=b"ACME", value=s.to_json(), partition=0, timestamp_ms=s.published_ms)
    producer.flush()
    producer.close()
    committer = KafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False)
    committer.commit({TopicPartition(raw, 0): OffsetAndMetadata(2, "", -1),
                      TopicPartition(raw, 1): OffsetAndMetadata(1, "", -1)})
    committer.close()

    windows = TumblingWindows(3_600_000, 0)
    stats = rebuild_windows(kafka_bootstrap, scored, [0, 1], windows, raw, group, timeout_s=10)
    t30 = int((T0 + timedelta(minutes=30)).timestamp() * 1000)
    # W = min(last committed timestamps) - lateness = T0+30 min; seek time = start of the window open at W = T0
    assert stats.closed_through_ms == t30 and stats.since_ms == int(T0.timestamp() * 1000)
    assert stats.restored == 2 and stats.partitions == 1  # partition 1: no scored record after the seek time
    assert windows.open_windows == 1
    assert windows.partition_watermark_ms(0) == t30  # from the committed record, not the restored ones
    assert windows.partition_watermark_ms(1) == int((T0 + timedelta(minutes=300)).timestamp() * 1000)
    # a group that never committed needs no rebuild: it reads the raw topic from its start
    fresh = rebuild_windows(kafka_bootstrap, scored, [0, 1], TumblingWindows(3_600_000, 0), raw, "never-committed")
    assert fresh.restored == 0 and fresh.since_ms is None
