"""Against the real broker (a stub scorer stands in for the model): in a raw topic that finsentry
created itself, an item dated 2099 by a plain producer (no ``ingested_at``, CreateTime = 2099) is
judged by the broker's append time: flagged ``future``, written to the scored and late-events
topics, and kept out of the windows, so it neither moves the watermark nor closes the open window
early; and a daemon restart rebuilds the windows from the items' event times, not the append times."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from _stubs import StubScorer  # tests/integration is on sys.path under pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient

from alerts import ThresholdDetector, TumblingWindows
from finsentry.config import Settings, load_settings
from finsentry.daemon import Daemon
from finsentry.pipeline import Pipeline
from finsentry.topics import read_topic
from inference import ScoredItem
from ingest import NewsItem

pytestmark = pytest.mark.integration

T0 = datetime(2020, 5, 19, 14, 0, tzinfo=timezone.utc)
FUTURE = datetime(2099, 1, 1, tzinfo=timezone.utc)


def _item(name: str, at: datetime, title: str, ticker: str = "ACME") -> NewsItem:
    return NewsItem(id=name, source="t", published_at=at, title=title, tickers=[ticker])


A = _item("a", T0 + timedelta(minutes=10), "ACME falls after its results")
F = _item("f", FUTURE, "ACME falls, says a feed with a broken clock")
B = _item("b", T0 + timedelta(minutes=20), "ACME falls further")
Q = _item("q", T0 + timedelta(hours=2), "Other news", "OTHER")  # closes the 14:00 window


def _pipeline() -> Pipeline:
    """Tumbling 1 h windows, no allowed lateness, alert at 2 negatives (the default 5 min future bound)."""
    return Pipeline(StubScorer(), TumblingWindows(size_ms=3_600_000, allowed_lateness_ms=0),  # type: ignore[arg-type]
                    ThresholdDetector(2, 0.6))


@pytest.fixture
def settings(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Settings]:
    """Fresh topic names that the daemon creates itself (``kafka.create_topics``), deleted afterwards."""
    run = uuid.uuid4().hex[:10]
    group = f"future-{run}"
    topics = {key: f"future-{run}.{key}" for key in ("raw", "scored", "dlq", "late")}
    yield load_settings(
        kafka={"bootstrap": kafka_bootstrap, "group_id": group, "raw_topic": topics["raw"],
               "scored_topic": topics["scored"], "dlq_topic": topics["dlq"], "late_topic": topics["late"],
               "partitions": 1, "create_topics": True},
        webhooks={"outbox_path": tmp_path / "outbox.sqlite"},
    )
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, client_id="finsentry-tests-cleanup")
    try:
        admin.delete_topics([*topics.values(), f"{group}.alert-claims"], raise_errors=False)
    finally:
        admin.close()


def _produce(bootstrap: str, topic: str, items: list[NewsItem]) -> None:
    """A plain producer, as a third-party feed would use: no ingested_at, CreateTime = published_at."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for item in items:
        assert item.ingested_at is None
        producer.send(topic, key=b"ACME", value=item.to_json(), partition=0, timestamp_ms=item.published_ms)
    producer.flush()
    producer.close()


def _timestamps(bootstrap: str, topic: str) -> list[tuple[int, int]]:
    """(timestamp_type, timestamp ms) of every record of partition 0."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        end = consumer.end_offsets([tp])[tp]
        out: list[tuple[int, int]] = []
        while consumer.position(tp) < end:
            for records in consumer.poll(timeout_ms=1000).values():
                out.extend((r.timestamp_type, r.timestamp) for r in records)
        return out
    finally:
        consumer.close()


def test_a_2099_item_in_a_topic_finsentry_created_is_flagged_and_does_not_move_the_watermark(
    settings: Settings,
) -> None:
    k = settings.kafka
    daemon = Daemon(settings, _pipeline())  # creates the topics, as at a deployment's first start
    _produce(k.bootstrap, k.raw_topic, [A, F, B, Q])
    stats = daemon.run(idle_exit_s=1.0)

    scored = [ScoredItem.from_json(v) for _, _, _, v in read_topic(k.bootstrap, k.scored_topic)]
    assert [(s.item_id, s.time_flag) for s in scored] == [("a", None), ("f", "future"), ("b", None), ("q", None)]
    late = [json.loads(v) for _, _, _, v in read_topic(k.bootstrap, k.late_topic)]
    assert [(d["item_id"], d["late_reason"]) for d in late] == [("f", "future")]
    assert late[0]["lateness_ms"] > 0
    assert stats.late == 1  # the future item only: b and q were not judged late
    # b, after the 2099 item, is still counted in the 14:00 window, which q (16:00) closed
    assert [(a.key, a.window_start, a.n, a.n_negative) for a in stats.alerts] == [("ACME", T0, 2, 2)]
    assert daemon.pipeline.windows.watermark_ms == Q.published_ms  # not dragged to 2099
    assert daemon.pipeline.without_time_reference == 0

    raw_stamps = _timestamps(k.bootstrap, k.raw_topic)
    assert {t for t, _ in raw_stamps} == {1}  # LogAppendTime: the broker's append time, not the producer's
    assert max(ts for _, ts in raw_stamps) < F.published_ms
    scored_stamps = _timestamps(k.bootstrap, k.scored_topic)
    assert [ts for _, ts in scored_stamps] == [s.published_ms for s in scored]  # CreateTime = published_at
    assert {t for t, _ in scored_stamps} == {0}


def test_a_restart_rebuilds_the_windows_at_the_items_event_times_not_their_append_times(
    settings: Settings,
) -> None:
    """A historical feed in a LogAppendTime raw topic: after a restart the partition's watermark is
    set from the last committed record's published_at (b, 14:20), not its append time (now), so
    what follows is not judged late."""
    k = settings.kafka
    daemon = Daemon(settings, _pipeline())
    _produce(k.bootstrap, k.raw_topic, [A, F, B])
    first = daemon.run(idle_exit_s=1.0)
    assert (first.late, len(first.alerts)) == (1, 0)  # the future item; the 14:00 window is still open
    assert [json.loads(v)["late_reason"] for _, _, _, v in read_topic(k.bootstrap, k.late_topic)] == ["future"]

    _produce(k.bootstrap, k.raw_topic, [Q])
    again = Daemon(settings, _pipeline())
    second = again.run(idle_exit_s=1.0)
    assert second.restored == 2  # a and b, from the scored topic (the future item is not restored)
    assert second.late == 0
    assert [(a.key, a.window_start, a.n, a.n_negative) for a in second.alerts] == [("ACME", T0, 2, 2)]
    assert again.pipeline.windows.watermark_ms == Q.published_ms
