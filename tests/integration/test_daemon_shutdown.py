"""Against the real broker: ``finsentry run`` stops cleanly on SIGTERM,
having committed the offsets of everything it scored."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition

from finsentry.config import REPO_ROOT
from finsentry.topics import read_topic
from ingest import NewsItem, make_producer

pytestmark = pytest.mark.integration


def test_sigterm_finishes_commits_and_exits_zero(
    kafka_bootstrap: str, new_topic: Callable[..., str], tmp_path: Path
) -> None:
    raw, scored, dlq = new_topic("raw", 2), new_topic("scored", 2), new_topic("dlq", 1)
    t0 = datetime(2020, 5, 1, 13, 30, tzinfo=timezone.utc)
    producer = make_producer(kafka_bootstrap)
    for i in range(40):
        item = NewsItem(id=f"s{i}", source="t", published_at=t0 + timedelta(minutes=i),
                        title=f"Company {i} reports quarterly results", tickers=[f"T{i % 5}"])
        producer.send(raw, key=item.tickers[0].encode(), value=item.to_json(), timestamp_ms=item.published_ms)
    producer.flush()
    producer.close()

    group = f"stop-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "FINSENTRY_KAFKA__BOOTSTRAP": kafka_bootstrap, "FINSENTRY_KAFKA__GROUP_ID": group,
           "FINSENTRY_KAFKA__RAW_TOPIC": raw, "FINSENTRY_KAFKA__SCORED_TOPIC": scored,
           "FINSENTRY_KAFKA__DLQ_TOPIC": dlq, "FINSENTRY_WEBHOOKS__OUTBOX_PATH": str(tmp_path / "outbox.sqlite")}
    proc = subprocess.Popen([sys.executable, "-m", "finsentry", "run"], env=env, cwd=REPO_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while len(read_topic(kafka_bootstrap, scored)) < 40:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "daemon did not score the items in time"
            time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "consumed 40, scored 40," in out

    probe = KafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False)
    try:
        committed = sum(probe.committed(TopicPartition(raw, p)) or 0 for p in (0, 1))
    finally:
        probe.close()
    assert committed == 40
