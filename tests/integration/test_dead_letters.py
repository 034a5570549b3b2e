"""Against the real broker: malformed records land in the dead-letter topic
with their reason, partition and offset, while the valid records around them
are scored and the offsets are committed past all of them."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition

from finsentry.config import load_settings
from finsentry.daemon import Daemon
from finsentry.topics import read_topic
from inference import ScoredItem
from ingest import NewsItem, make_producer

pytestmark = pytest.mark.integration

# Real Benzinga headlines (../shared/data/massive_stock_news_analyst_ratings_partial).
HEADLINES = [
    ("A", "Agilent Technologies shares are trading lower after the company reported Q2 results"),
    ("AAPL", "Apple Reports Q2 EPS Beat, Sales Up 1% Year-Over-Year"),
    ("ABBV", "AbbVie Raises FY20 Adj. EPS Guidance"),
]


def _item(i: int) -> NewsItem:
    ticker, title = HEADLINES[i]
    return NewsItem(
        id=f"ok-{i}",
        source="benzinga",
        published_at=datetime(2020, 5, 1, 14, i, tzinfo=timezone.utc),
        title=title,
        tickers=[ticker],
    )


def test_malformed_records_are_dead_lettered_and_valid_ones_scored(
    kafka_bootstrap: str, new_topic: Callable[..., str], tmp_path: Path
) -> None:
    raw, scored, dlq = new_topic("raw", 1), new_topic("scored", 1), new_topic("dlq", 1)
    sequence: list[bytes] = [
        _item(0).to_json(),
        b"this is not JSON {",
        _item(1).to_json(),
        json.dumps({"id": "half", "source": "benzinga", "title": "no time"}).encode(),
        _item(2).to_json(),
        b"\xff\xfe\x00 not UTF-8",
        NewsItem(id="blank", source="x", published_at=datetime(2020, 5, 1, 15, tzinfo=timezone.utc),
                 title="  <p> </p> ").to_json(),
    ]
    producer = make_producer(kafka_bootstrap)
    for value in sequence:
        producer.send(raw, key=b"k", value=value, partition=0)
    producer.flush()
    producer.close()

    group = f"dlq-test-{uuid.uuid4().hex[:8]}"
    settings = load_settings(
        kafka={"bootstrap": kafka_bootstrap, "group_id": group, "raw_topic": raw, "scored_topic": scored,
               "dlq_topic": dlq, "create_topics": False},
        webhooks={"outbox_path": tmp_path / "outbox.sqlite"},
    )
    stats = Daemon(settings).run(idle_exit_s=1.5)
    assert (stats.consumed, stats.scored, stats.dead_lettered) == (7, 3, 4)

    dead = [json.loads(v) for _, _, _, v in read_topic(kafka_bootstrap, dlq)]
    assert [(d["offset"], d["reason"]) for d in dead] == [
        (1, "not_json"), (3, "invalid"), (5, "not_utf8"), (6, "empty_text")
    ]
    assert all(d["topic"] == raw and d["partition"] == 0 and d["detail"] for d in dead)
    assert "published_at" in dead[1]["detail"]

    out = [ScoredItem.from_json(v) for _, _, _, v in read_topic(kafka_bootstrap, scored)]
    assert [s.item_id for s in out] == ["ok-0", "ok-1", "ok-2"]
    assert all(abs(s.p_negative + s.p_neutral + s.p_positive - 1) < 1e-4 for s in out)

    probe = KafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False)
    try:
        assert probe.committed(TopicPartition(raw, 0)) == len(sequence)
    finally:
        probe.close()
