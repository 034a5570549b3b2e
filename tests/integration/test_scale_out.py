"""Against the real broker and real HTTP receivers (a stub scorer stands in for the model: the
windows and the group are under test): two daemons in one consumer group on a 4-partition topic
keyed by ticker. The first runs alone, the second joins (the first loses partitions and must go on
closing windows for the rest), then the first is stopped mid-stream and the second takes its
partitions over, rebuilding their open windows; the receiver gets exactly the alerts of a
single-daemon reference run, none twice."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from _stubs import StubScorer  # tests/integration is on sys.path under pytest
from kafka.partitioner.default import murmur2

from alerts import ThresholdDetector, TumblingWindows, WebhookSink
from finsentry.config import Settings, load_settings
from finsentry.daemon import Daemon
from finsentry.pipeline import Pipeline
from ingest import NewsItem, make_producer

pytestmark = pytest.mark.integration

T0 = datetime(2020, 5, 19, 0, 0, tzinfo=timezone.utc)
PARTITIONS = 4
HOURS = 10  # items every 10 minutes for HOURS hours


def _tickers() -> list[str]:
    """Two tickers per partition under the producer's default (murmur2) partitioner."""
    per: dict[int, list[str]] = {p: [] for p in range(PARTITIONS)}
    for i in range(1000):
        name = f"TK{i}"
        p = (murmur2(name.encode()) & 0x7FFFFFFF) % PARTITIONS
        if len(per[p]) < 2:
            per[p].append(name)
        if all(len(v) == 2 for v in per.values()):
            break
    return [t for v in per.values() for t in v]


def _items(hour_from: int, hour_to: int) -> list[NewsItem]:
    """Every 10 minutes one item per ticker; ticker i's hour h is all negative when (h + i) % 3 == 0."""
    out = []
    for minute in range(hour_from * 60, hour_to * 60, 10):
        for i, ticker in enumerate(_tickers()):
            word = "falls" if (minute // 60 + i) % 3 == 0 else "steady"
            out.append(NewsItem(id=f"{ticker}-{minute}", source="t", published_at=T0 + timedelta(minutes=minute),
                                title=f"{ticker} {word} at minute {minute}", tickers=[ticker]))
    return out


def _send(bootstrap: str, topic: str, items: list[NewsItem], pause_s: float = 0.0) -> None:
    producer = make_producer(bootstrap)
    for n, item in enumerate(items):
        producer.send(topic, key=item.tickers[0].encode(), value=item.to_json(), timestamp_ms=item.published_ms)
        if pause_s and n % 8 == 7:
            producer.flush()
            time.sleep(pause_s)
    producer.flush()
    producer.close()


def _settings(bootstrap: str, topics: dict[str, str], group: str, url: str, outbox: Path) -> Settings:
    return load_settings(
        kafka={"bootstrap": bootstrap, "group_id": group, "raw_topic": topics["raw"], "scored_topic": topics["scored"],
               "dlq_topic": topics["dlq"], "late_topic": topics["late"], "create_topics": False,
               "session_timeout_ms": 6000},
        batch={"max_batch": 16, "max_wait_ms": 20},
        windows={"idle_advance": False},  # only items move the watermark: the reference run is reproducible
        webhooks={"urls": [url], "outbox_path": str(outbox), "retry_schedule_s": [0, 0.1, 1],
                  "connect_timeout_s": 0.5, "drain_timeout_s": 5},
    )


def _daemon(settings: Settings) -> Daemon:
    return Daemon(settings, Pipeline(StubScorer(), TumblingWindows(3_600_000, 0),  # type: ignore[arg-type]
                                     ThresholdDetector(3, 0.6)))


def _wait(cond: Callable[[], bool], what: str, timeout_s: float = 180.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _topics(new_topic: Callable[..., str]) -> dict[str, str]:
    return {"raw": new_topic("raw", PARTITIONS), "scored": new_topic("scored", PARTITIONS),
            "dlq": new_topic("dlq", 1), "late": new_topic("late", 1)}


def _alerts(sink: WebhookSink) -> list[tuple[str, str]]:
    return [(headers.get("webhook-id", ""), body["status"]) for headers, body in sink.received]


def _reference(bootstrap: str, new_topic: Callable[..., str], tmp_path: Path) -> list[tuple[str, str]]:
    topics = _topics(new_topic)
    _send(bootstrap, topics["raw"], _items(0, HOURS))
    with WebhookSink() as sink:
        daemon = _daemon(_settings(bootstrap, topics, f"ref-{uuid.uuid4().hex[:8]}", sink.url, tmp_path / "ref.sqlite"))
        stats = daemon.run(idle_exit_s=2.0)
        _wait(lambda: len(sink.received) >= len(stats.alerts), "the reference alerts")
        return sorted(_alerts(sink))


@pytest.mark.timeout(600)
def test_two_daemons_one_stopped_mid_stream_lose_and_duplicate_no_alert(
    kafka_bootstrap: str, new_topic: Callable[..., str], tmp_path: Path
) -> None:
    reference = _reference(kafka_bootstrap, new_topic, tmp_path)
    assert len(reference) >= 10 and len(set(reference)) == len(reference)

    topics = _topics(new_topic)
    group = f"scale-{uuid.uuid4().hex[:8]}"
    _send(kafka_bootstrap, topics["raw"], _items(0, 4))
    with WebhookSink() as sink:
        a = _daemon(_settings(kafka_bootstrap, topics, group, sink.url, tmp_path / "a.sqlite"))
        b = _daemon(_settings(kafka_bootstrap, topics, group, sink.url, tmp_path / "b.sqlite"))
        runners = [threading.Thread(target=d.run, daemon=True) for d in (a, b)]
        try:
            # 1. the first daemon alone: all four partitions
            runners[0].start()
            _wait(lambda: a.stats.scored >= len(_items(0, 4)), "hours 0-4 scored by the first daemon")
            # 2. the second one joins: the first loses partitions (revoked), keeps going on the others
            runners[1].start()
            _wait(lambda: bool(b.consumer.assignment()) and a.stats.revoked > 0, "the rebalance")
            wm_before = a.pipeline.windows.watermark_ms or 0
            _send(kafka_bootstrap, topics["raw"], _items(4, 7))
            _wait(lambda: a.stats.scored + b.stats.scored >= len(_items(0, 7)), "hours 4-7 scored")
            _wait(lambda: (a.pipeline.windows.watermark_ms or 0) >= wm_before + 2 * 3_600_000,
                  "the first daemon's watermark moving on after losing partitions")
            # 3. the first one stops mid-stream; the second takes its partitions over
            before = a.stats.consumed
            feeder = threading.Thread(target=_send, args=(kafka_bootstrap, topics["raw"], _items(7, HOURS), 0.1))
            feeder.start()  # 8 items each 0.1 s: about 3 s
            _wait(lambda: a.stats.consumed >= before + 16, "the first daemon into the last part")
            a.stop()
            runners[0].join(timeout=60)
            assert not runners[0].is_alive()
            feeder.join()
            _wait(lambda: len(sink.received) >= len(reference), "as many alerts as the reference run", 240)
            time.sleep(3.0)  # room for a duplicate to arrive
        finally:
            a.stop()
            b.stop()
            for r in runners:
                if r.is_alive():
                    r.join(timeout=60)
        received = _alerts(sink)
        duplicates = sink.duplicates
    assert duplicates == 0 and not [k for k, n in Counter(received).items() if n > 1], "an alert was sent twice"
    assert sorted(received) == reference, "alerts lost or different from the single-daemon run"
    assert b.stats.restored > 0, "the surviving daemon did not rebuild the adopted partitions' windows"
    assert a.stats.alerts and b.stats.alerts  # both decided windows
    assert len(a.stats.alerts) + len(b.stats.alerts) == len(reference)
