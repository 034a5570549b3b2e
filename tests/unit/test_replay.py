"""Replay into the raw topic: keys, timestamps, speed factor (plain producer object)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from ingest import NewsItem, replay_items

T0 = datetime(2020, 5, 1, 14, 0, tzinfo=timezone.utc)


class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes, int]] = []
        self.flushed = False

    def send(self, topic: str, key: bytes, value: bytes, timestamp_ms: int) -> None:
        self.sent.append((topic, key, value, timestamp_ms))

    def flush(self) -> None:
        self.flushed = True


def _items() -> list[NewsItem]:
    return [
        NewsItem(id="1", source="benzinga", published_at=T0, title="a", tickers=["AAPL"]),
        NewsItem(id="2", source="cnbc", published_at=T0 + timedelta(minutes=30), title="b"),
    ]


def test_keys_and_timestamps() -> None:
    producer = FakeProducer()
    stats = replay_items(_items(), producer, "news.raw")  # type: ignore[arg-type]
    assert stats.sent == 2 and producer.flushed
    assert [(k, ts) for _, k, _, ts in producer.sent] == [
        (b"AAPL", int(T0.timestamp() * 1000)),
        (b"cnbc", int((T0 + timedelta(minutes=30)).timestamp() * 1000)),
    ]
    assert NewsItem.from_json(producer.sent[0][2]).id == "1"


def test_speed_factor_sleeps_feed_time_over_speed() -> None:
    slept: list[float] = []
    replay_items(_items(), FakeProducer(), "t", speed=1800.0, sleep=slept.append)  # type: ignore[arg-type]
    assert len(slept) == 1 and slept[0] == pytest.approx(1.0, abs=0.05)  # 30 min / 1800


def test_bad_speed() -> None:
    with pytest.raises(ValueError, match="speed"):
        replay_items(_items(), FakeProducer(), "t", speed=0)  # type: ignore[arg-type]


class PartitionProducer(FakeProducer):
    def send(self, topic: str, key: bytes, value: bytes, timestamp_ms: int, partition: int | None = None) -> None:
        self.sent.append((topic, key, value, timestamp_ms if partition is None else (partition, timestamp_ms)))


def test_heartbeats_go_into_every_partition_on_feed_time() -> None:
    from ingest import HEARTBEAT_KEY, parse_heartbeat

    items = [NewsItem(id=str(i), source="s", published_at=T0 + timedelta(seconds=40 * i), title="t") for i in range(4)]
    producer = PartitionProducer()
    stats = replay_items(items, producer, "raw", heartbeat_every_ms=60_000, partitions={0, 1})  # type: ignore[arg-type]
    t0 = int(T0.timestamp() * 1000)
    beats = [(ts, parse_heartbeat(k, v)) for _, k, v, ts in producer.sent if k == HEARTBEAT_KEY]
    # before item 0 (t0), before item 2 (t0+80 s, first past t0+60 s), before item 3 (t0+120 s), after the last
    assert beats == [((p, t), t) for t in (t0, t0 + 80_000, t0 + 120_000, t0 + 120_000) for p in (0, 1)]
    assert stats.heartbeats == 8 and stats.sent == 4
    with pytest.raises(ValueError):
        replay_items(items, producer, "raw", heartbeat_every_ms=0, partitions={0})  # type: ignore[arg-type]
