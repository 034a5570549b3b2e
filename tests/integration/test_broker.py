"""Integration tests against a real Kafka broker (see the kafka_bootstrap fixture).

Nothing is mocked: records go through the broker, the consumer group coordinator and
the __consumer_offsets topic.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from finsentry.broker import BROKER_SCRIPT, BrokerError, LocalBroker, create_topics

if TYPE_CHECKING:
    from kafka import KafkaConsumer

pytestmark = pytest.mark.integration

POLL_DEADLINE_S = 30.0


def _consume(consumer: KafkaConsumer, want: int, deadline_s: float = POLL_DEADLINE_S) -> list[Any]:
    """Poll until ``want`` records arrived (or the deadline passed); return them."""
    records: list[Any] = []
    deadline = time.monotonic() + deadline_s
    while len(records) < want and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=500).values():
            records.extend(batch)
    return records


def _admin(bootstrap: str) -> Any:
    from kafka.admin import KafkaAdminClient

    return KafkaAdminClient(bootstrap_servers=bootstrap, client_id="finsentry-test-admin")


def _group_consumer(bootstrap: str, topic: str, group: str) -> KafkaConsumer:
    from kafka import KafkaConsumer
    from kafka.serializer import DefaultSerializer

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        client_id=f"{group}-client",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        key_deserializer=DefaultSerializer(),  # utf-8 bytes -> str
        value_deserializer=DefaultSerializer(),
    )
    consumer.subscribe([topic])
    return consumer


def test_produce_consume_with_manual_commit(kafka_bootstrap: str, new_topic: Callable[..., str]) -> None:
    from kafka import KafkaProducer, TopicPartition
    from kafka.serializer import DefaultSerializer

    topic = new_topic("broker-roundtrip", partitions=2)
    group = f"finsentry-test-{uuid.uuid4().hex[:8]}"
    producer = KafkaProducer(
        bootstrap_servers=kafka_bootstrap,
        acks="all",
        key_serializer=DefaultSerializer(),  # str -> utf-8 bytes
        value_serializer=DefaultSerializer(),
    )
    try:
        sent = {}
        for i in range(6):
            meta = producer.send(topic, key=f"TICK{i % 3}", value=f"headline {i}").get(timeout=30)
            sent[f"headline {i}"] = (meta.partition, meta.offset)
        producer.flush(timeout=30)

        consumer = _group_consumer(kafka_bootstrap, topic, group)
        try:
            records = _consume(consumer, 6)
            assert sorted(r.value for r in records) == sorted(sent)
            for r in records:
                assert (r.partition, r.offset) == sent[r.value]
            # Same key, same partition (murmur2 partitioner).
            by_key: dict[str, set[int]] = {}
            for r in records:
                by_key.setdefault(r.key, set()).add(r.partition)
            assert all(len(parts) == 1 for parts in by_key.values())

            consumer.commit()
            expected = {}
            for r in records:
                tp = TopicPartition(topic, r.partition)
                expected[tp] = max(expected.get(tp, 0), r.offset + 1)
            for tp, offset in expected.items():
                assert consumer.committed(tp) == offset
        finally:
            consumer.close(autocommit=False)

        # The broker holds the group's committed offsets.
        admin = _admin(kafka_bootstrap)
        try:
            committed = admin.list_group_offsets({group: None})[group]
        finally:
            admin.close()
        assert {tp: om.offset for tp, om in committed.items()} == expected

        # A new member of the group resumes after the committed offsets: only new records.
        for i in range(6, 8):
            producer.send(topic, key=f"TICK{i % 3}", value=f"headline {i}").get(timeout=30)
        producer.flush(timeout=30)
        consumer = _group_consumer(kafka_bootstrap, topic, group)
        try:
            later = _consume(consumer, 2)
            # Give a few more polls to make sure nothing old is redelivered.
            later.extend(_consume(consumer, 1, deadline_s=1.0))
            assert sorted(r.value for r in later) == ["headline 6", "headline 7"]
        finally:
            consumer.close(autocommit=False)
    finally:
        producer.close(timeout=10)


def test_create_topics_is_idempotent(kafka_bootstrap: str) -> None:
    suffix = uuid.uuid4().hex[:10]
    topics = {f"idem-a-{suffix}": 3, f"idem-b-{suffix}": 1}
    create_topics(kafka_bootstrap, topics)
    create_topics(kafka_bootstrap, topics)  # already exists: no error
    create_topics(kafka_bootstrap, {f"idem-a-{suffix}": 3, f"idem-c-{suffix}": 2})  # mixed new/existing

    admin = _admin(kafka_bootstrap)
    try:
        described = {t["name"]: t for t in admin.describe_topics(list(topics) + [f"idem-c-{suffix}"])}
        assert {name: len(t["partitions"]) for name, t in described.items()} == {
            f"idem-a-{suffix}": 3,
            f"idem-b-{suffix}": 1,
            f"idem-c-{suffix}": 2,
        }
        assert all(p["leader_id"] >= 0 for t in described.values() for p in t["partitions"])
        admin.delete_topics(list(described), raise_errors=False)
    finally:
        admin.close()


def test_create_topics_rejects_bad_input(kafka_bootstrap: str) -> None:
    with pytest.raises(ValueError):
        create_topics(kafka_bootstrap, {"bad topic name": 1})
    with pytest.raises(ValueError):
        create_topics(kafka_bootstrap, {"ok-name": 0})
    from kafka.errors import InvalidReplicationFactorError

    with pytest.raises(InvalidReplicationFactorError):
        create_topics(kafka_bootstrap, {f"rf3-{uuid.uuid4().hex[:8]}": 1}, replication=3)


def _jvm_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has ended


def test_local_broker_lifecycle(tmp_path: Path) -> None:
    """A second, private broker: start, serve, refuse a second start, stop ends the JVM."""
    assert BROKER_SCRIPT.is_file()
    run_dir = tmp_path / "run"
    broker = LocalBroker(run_dir=run_dir)
    with pytest.raises(BrokerError):
        _ = broker.bootstrap
    with broker:
        bootstrap = broker.bootstrap
        assert bootstrap.startswith("127.0.0.1:")
        assert (run_dir / "bootstrap").read_text().strip() == bootstrap
        assert broker.start() == bootstrap  # idempotent while running
        assert broker.start_seconds is not None and 0 < broker.start_seconds < 90
        pid = broker.pid
        assert pid is not None and _jvm_alive(pid)
        assert broker.is_running()
        assert "Kafka Server started" in broker.log_tail(10_000)

        # The same run dir cannot host a second broker (fresh data dir only).
        with pytest.raises(BrokerError, match="already"):
            LocalBroker(run_dir=run_dir).start()

        create_topics(bootstrap, {"lifecycle": 1})
    assert not _jvm_alive(pid)
    assert not run_dir.exists()
    assert not broker.is_running()
    broker.stop()  # idempotent


@pytest.mark.skipif(os.environ.get("FINSENTRY_TEST_BOOTSTRAP") is not None, reason="external broker in use")
def test_session_broker_answers(kafka_bootstrap: str) -> None:
    admin = _admin(kafka_bootstrap)
    try:
        cluster = admin.describe_cluster()
    finally:
        admin.close()
    assert [b["broker_id"] for b in cluster["brokers"]] == [1]


def test_local_broker_halt_and_resume_keep_data_and_address(tmp_path: Path) -> None:
    """halt ends the JVM and keeps the data; resume serves the same topics, records and committed offsets."""
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    run_dir = tmp_path / "run"
    with LocalBroker(run_dir=run_dir) as broker:
        bootstrap = broker.bootstrap
        create_topics(bootstrap, {"kept": 2})
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
        for i in range(10):
            producer.send("kept", key=b"k%d" % (i % 2), value=b"v%d" % i).get(timeout=30)
        producer.close(timeout=10)
        consumer = _group_consumer(bootstrap, "kept", "halt-group")
        assert len(_consume(consumer, 10)) == 10
        consumer.commit()
        consumer.close(autocommit=False)
        pid = broker.pid
        assert pid is not None

        broker.halt()
        assert not _jvm_alive(pid)
        assert not broker.is_running()
        assert (run_dir / "data" / "meta.properties").is_file()  # the data dir is kept
        with pytest.raises(BrokerError, match="halted already"):
            broker.halt()

        assert broker.resume() == bootstrap  # same ports
        new_pid = broker.pid
        assert new_pid is not None and new_pid != pid and _jvm_alive(new_pid) and broker.is_running()
        with pytest.raises(BrokerError, match="running"):
            broker.resume()
        reader = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
        tps = [TopicPartition("kept", p) for p in (0, 1)]
        assert sum(reader.end_offsets(tps).values()) == 10  # the records survived
        reader.close()
        later = _group_consumer(bootstrap, "kept", "halt-group")  # resumes after its committed offsets
        assert _consume(later, 1, deadline_s=5.0) == []
        later.close(autocommit=False)
    assert not run_dir.exists() and not _jvm_alive(new_pid)


def test_broker_script_halt_and_resume_refuse_a_dir_without_a_broker(tmp_path: Path) -> None:
    import subprocess

    empty = tmp_path / "empty"
    empty.mkdir()
    for command in ("halt", "resume"):
        proc = subprocess.run(["bash", str(BROKER_SCRIPT), command, str(empty)], capture_output=True, text=True)
        assert proc.returncode != 0 and "not created by 'broker.sh start'" in proc.stderr
    usage = subprocess.run(["bash", str(BROKER_SCRIPT), "--help"], capture_output=True, text=True).stdout
    assert "halt RUN_DIR" in usage and "resume RUN_DIR" in usage


@pytest.mark.timeout(120)
def test_heartbeat_on_a_missing_raw_topic_is_a_clear_error(
    kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from finsentry.cli import main

    monkeypatch.setenv("FINSENTRY_KAFKA__BOOTSTRAP", kafka_bootstrap)
    monkeypatch.setenv("FINSENTRY_KAFKA__RAW_TOPIC", f"missing-{uuid.uuid4().hex[:8]}")
    assert main(["heartbeat", "--count", "1"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_heartbeat_writes_one_record_into_every_raw_partition(
    kafka_bootstrap: str, new_topic: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from finsentry.cli import main
    from finsentry.topics import read_topic
    from ingest import HEARTBEAT_KEY, parse_heartbeat

    raw = new_topic("raw", 3)
    monkeypatch.setenv("FINSENTRY_KAFKA__BOOTSTRAP", kafka_bootstrap)
    monkeypatch.setenv("FINSENTRY_KAFKA__RAW_TOPIC", raw)
    before_ms = int(time.time() * 1000)
    assert main(["heartbeat", "--count", "1"]) == 0
    records = read_topic(kafka_bootstrap, raw)
    assert sorted(p for p, _, _, _ in records) == [0, 1, 2]
    assert all(k == HEARTBEAT_KEY and (parse_heartbeat(k, v) or 0) >= before_ms for _, _, k, v in records)
