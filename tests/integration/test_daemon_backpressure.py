"""Against the real broker and the real model: a scorer slower than
``max.poll.interval.ms`` costs no rebalance and loses no item, because the
daemon pauses its partitions while a batch is scored and keeps polling."""

from __future__ import annotations

import csv
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition

from finsentry.config import REPO_ROOT, load_settings
from finsentry.daemon import Daemon, build_pipeline
from finsentry.topics import read_topic
from inference import ScoredItem, Scorer, Unscored
from ingest import NewsItem, make_producer

pytestmark = pytest.mark.integration

BENZINGA = REPO_ROOT.parent / "shared" / "data" / "massive_stock_news_analyst_ratings_partial" / "analyst_ratings_processed.csv"
N_ITEMS, MAX_BATCH = 20, 8
POLL_INTERVAL_MS = 1_500
SCORE_SECONDS = 3.0  # per batch: twice max.poll.interval.ms


class _SlowScorer:
    """The real scorer, made slower than the poll interval; records the consumer's paused partitions."""

    def __init__(self, scorer: Scorer) -> None:
        self._scorer = scorer
        self.version, self.provider = scorer.version, scorer.provider
        self.daemon: Daemon | None = None
        self.calls: list[tuple[set, set, set]] = []  # (paused at start, paused mid-way, assigned)
        self.sizes: list[int] = []

    def score_items(self, items: Sequence[NewsItem]) -> list[ScoredItem | Unscored]:
        assert self.daemon is not None
        consumer = self.daemon.consumer
        self.sizes.append(len(items))
        at_start = set(consumer.paused())
        time.sleep(SCORE_SECONDS / 2)
        mid = set(consumer.paused())
        out = self._scorer.score_items(items)
        time.sleep(SCORE_SECONDS / 2)
        self.calls.append((at_start, mid, set(consumer.assignment())))
        return out


def _titles(n: int) -> list[str]:
    if not BENZINGA.is_file():
        pytest.skip(f"{BENZINGA} is missing (the shared data lives beside the repo as ../shared/data)")
    with BENZINGA.open(newline="", encoding="utf-8") as fh:
        return [row["title"] for _, row in zip(range(n), csv.DictReader(fh))]


def test_scorer_slower_than_poll_interval_no_rebalance_no_loss(
    kafka_bootstrap: str, new_topic: Callable[..., str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    raw, scored, dlq = new_topic("raw", 2), new_topic("scored", 2), new_topic("dlq", 1)
    t0 = datetime(2020, 6, 5, 14, 0, tzinfo=timezone.utc)
    producer = make_producer(kafka_bootstrap)
    for i, title in enumerate(_titles(N_ITEMS)):
        item = NewsItem(id=f"bp{i}", source="benzinga", published_at=t0 + timedelta(minutes=i), title=title,
                        tickers=[f"T{i % 4}"])
        producer.send(raw, key=item.tickers[0].encode(), value=item.to_json(), timestamp_ms=item.published_ms)
    producer.flush()
    producer.close()

    group = f"bp-{uuid.uuid4().hex[:8]}"
    settings = load_settings(
        kafka={"bootstrap": kafka_bootstrap, "group_id": group, "raw_topic": raw, "scored_topic": scored,
               "dlq_topic": dlq, "create_topics": False, "max_poll_interval_ms": POLL_INTERVAL_MS,
               "session_timeout_ms": 6_000},
        batch={"max_batch": MAX_BATCH, "max_wait_ms": 50},
        model={"device": "cpu"},
        webhooks={"outbox_path": str(tmp_path / "outbox.sqlite")},
    )
    slow = _SlowScorer(Scorer(settings.model.path, "cpu"))
    daemon = Daemon(settings, build_pipeline(settings, slow))  # type: ignore[arg-type]
    slow.daemon = daemon
    caplog.set_level(logging.WARNING, logger="kafka")
    runner = threading.Thread(target=daemon.run, kwargs={"idle_exit_s": 2.0})
    runner.start()
    runner.join(timeout=120)
    if runner.is_alive():
        daemon.stop()
        runner.join(timeout=60)
        pytest.fail(f"daemon did not finish in 120 s (stats {daemon.stats})")

    expired = [r for r in caplog.records if "poll timeout has expired" in r.getMessage()
               or "rebalance" in r.getMessage().lower()]
    assert expired == [], [r.getMessage() for r in expired]
    assert daemon.stats.consumed == N_ITEMS and daemon.stats.scored == N_ITEMS
    assert daemon.stats.pauses >= 1 and len(slow.calls) >= 2
    assert max(slow.sizes) == MAX_BATCH and sum(slow.sizes) == N_ITEMS  # a batch closes at max_batch
    for i, (at_start, mid, assigned) in enumerate(slow.calls):
        assert assigned, "partitions stayed assigned"
        if i > 0:
            assert at_start == set(), "partitions resumed before the next batch is scored"
    assert any(mid == assigned for _, mid, assigned in slow.calls), "paused while a batch was scored"

    ids = [ScoredItem.from_json(value).item_id for _, _, _, value in read_topic(kafka_bootstrap, scored)]
    assert sorted(ids) == sorted(f"bp{i}" for i in range(N_ITEMS))  # none lost, none twice
    probe = KafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False)
    try:
        committed = sum(probe.committed(TopicPartition(raw, p)) or 0 for p in (0, 1))
    finally:
        probe.close()
    assert committed == N_ITEMS
