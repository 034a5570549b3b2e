"""Against the real broker (a stub scorer stands in for the model): the same feed replayed into Kafka
as fast as possible and, paced, while the daemon reads it live gives byte-identical alert lists, with
the daemon's default windows (60 min hopping by 5, 10 min lateness) and spike detector. Time moves only
through the log (items and the replay's heartbeats; ``windows.idle_advance = false``)."""

from __future__ import annotations

import random
import threading
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from _stubs import StubScorer, daemon_settings  # tests/integration is on sys.path under pytest

from alerts import WebhookSink
from finsentry.daemon import Daemon, build_pipeline
from ingest import NewsItem, make_producer, replay_items

pytestmark = pytest.mark.integration

T0 = datetime(2021, 3, 1, 13, 0, tzinfo=timezone.utc)


def _feed() -> list[NewsItem]:
    """Six hours of calm news on five tickers, two negative bursts and a late-ish straggler, in event order."""
    rng = random.Random(17)
    items = [NewsItem(id=f"bg{i}", source="t", published_at=T0 + timedelta(minutes=rng.uniform(0, 360)),
                      title=f"{t} update {i}", tickers=[t])
             for i, t in enumerate(rng.choice(["ACME", "BETA", "GAMMA", "DELTA", "EPS"]) for _ in range(120))]
    items += [NewsItem(id=f"a{i}", source="t", published_at=T0 + timedelta(minutes=60 + 3 * i),
                       title=f"ACME falls on probe {i}", tickers=["ACME"]) for i in range(7)]
    items += [NewsItem(id=f"b{i}", source="t", published_at=T0 + timedelta(minutes=200 + 4 * i),
                       title=f"BETA falls after guidance cut {i}", tickers=["BETA"]) for i in range(8)]
    return sorted(items, key=lambda it: (it.published_at, it.id))


def _run(bootstrap: str, new_topic: Callable[..., str], tmp_path: Path, speed: float | None) -> list[bytes]:
    raw, scored, dlq = new_topic("raw", 2), new_topic("scored", 2), new_topic("dlq", 2)
    group = f"speeds-{uuid.uuid4().hex[:8]}"
    with WebhookSink() as sink:
        settings = daemon_settings(bootstrap, raw, scored, dlq, group, sink.url, tmp_path / f"outbox-{group}.sqlite")
        settings = settings.model_copy(update={"windows": settings.windows.model_copy(
            update={"idle_advance": False})})
        producer = make_producer(bootstrap)

        def replay() -> None:
            replay_items(_feed(), producer, raw, speed=speed, heartbeat_every_ms=600_000, partitions=[0, 1])

        feeder = threading.Thread(target=replay)
        feeder.start()
        if speed is None:
            feeder.join()  # everything is in the log before the daemon starts
        stats = Daemon(settings, build_pipeline(settings, StubScorer())).run(idle_exit_s=4.0)  # type: ignore[arg-type]
        feeder.join()
        producer.close()
    assert stats.scored == len(_feed())  # every item (consumed also counts the heartbeats)
    return [a.to_json() for a in stats.alerts]


@pytest.mark.timeout(300)
def test_a_feed_replayed_at_two_speeds_gives_byte_identical_alerts(
    kafka_bootstrap: str, new_topic: Callable[..., str], tmp_path: Path
) -> None:
    fast = _run(kafka_bootstrap, new_topic, tmp_path, None)
    paced = _run(kafka_bootstrap, new_topic, tmp_path, 360 * 60 / 8.0)  # six hours of feed in about 8 s, read live
    assert sorted(b.count(b'"status":"firing"') for b in fast) == [0, 0, 1, 1]  # each burst fires, then resolves
    assert paced == fast  # the same alerts, byte for byte, in the same order
