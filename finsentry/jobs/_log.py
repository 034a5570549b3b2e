"""The jobs log on Kafka: partition 0 of ``kafka.jobs_topic`` (one partition: one order for every reader).

Used only from the scheduler's threads (never the daemon's consumer, which is
not thread-safe): its own producer (``acks=all``) and an unsubscribed
consumer (no group) that reads the partition by time, behind one lock.
The daemon's alert claims (``finsentry._alert_claims``) use the same class on
their own topic.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from finsentry.broker import create_topics
from finsentry.jobs._ownership import LogRecord
from ingest import make_producer

__all__ = ["JobLogError", "KafkaJobLog"]


class JobLogError(RuntimeError):
    """The jobs topic is missing, or could not be read back in time."""


class KafkaJobLog:
    """:class:`finsentry.jobs.JobLog` on a Kafka topic's partition 0.

    Args:
        bootstrap: broker address(es).
        topic: the jobs topic.
        create: create the topic (one partition) when missing (``kafka.create_topics``).
        timeout_s: limit of one append or one read, seconds.
        client_id: the clients' Kafka client id.
        what: what the topic holds, for error messages (``jobs``, ``alert claims``).
    """

    def __init__(self, bootstrap: str, topic: str, create: bool, timeout_s: float = 15.0,
                 client_id: str = "finsentry-jobs", what: str = "jobs") -> None:
        self.topic = topic
        self._client_id = client_id
        self._what = what
        self._bootstrap = bootstrap
        self._create = create
        self._timeout_s = timeout_s
        self._tp = TopicPartition(topic, 0)
        self._lock = threading.Lock()
        self._producer: KafkaProducer | None = None
        self._consumer: KafkaConsumer | None = None

    def start(self) -> None:
        """Connect now (else at the first append or read): the topic is checked (created when missing and
        ``create``) and the clients made, each attempt bounded by ``timeout_s``.

        Raises:
            JobLogError: the topic is missing. kafka.errors.KafkaError: the broker did not answer in time.
        """
        with self._lock:
            self._ready()

    def _ready(self) -> tuple[KafkaProducer, KafkaConsumer]:
        if self._producer is not None and self._consumer is not None:
            return self._producer, self._consumer
        ms = int(self._timeout_s * 1000)
        consumer = KafkaConsumer(bootstrap_servers=self._bootstrap, group_id=None, enable_auto_commit=False,
                                 client_id=self._client_id, request_timeout_ms=ms + 1000, bootstrap_timeout_ms=ms,
                                 auto_offset_reset="earliest")  # an offset gone with retention: the oldest kept
        try:
            if not consumer.partitions_for_topic(self.topic) and self._create:  # created only when missing
                create_topics(self._bootstrap, {self.topic: 1}, timeout_s=self._timeout_s)
                consumer.topics()  # fresh metadata
            if not consumer.partitions_for_topic(self.topic):
                raise JobLogError(f"{self._what} topic {self.topic!r} does not exist (create it with one "
                                  "partition, or set kafka.create_topics = true)")
            consumer.assign([self._tp])
            producer = make_producer(self._bootstrap, client_id=self._client_id, max_block_ms=ms)
        except BaseException:
            consumer.close()  # no half-made clients left behind (their IO threads)
            raise
        self._consumer, self._producer = consumer, producer
        return producer, consumer

    def append(self, key: str, value: Mapping[str, Any]) -> int:
        """Append one record to partition 0 and wait for the broker's acknowledgement; returns its offset.

        Raises:
            JobLogError: the topic is missing. kafka.errors.KafkaError: the broker refused or timed out.
        """
        return self.append_many([(key, value)])

    def append_many(self, records: Sequence[tuple[str, Mapping[str, Any]]]) -> int:
        """Append records to partition 0, in order, and wait for all acknowledgements; returns the last offset.

        Raises:
            ValueError: no records. JobLogError: the topic is missing. kafka.errors.KafkaError: the broker
            refused or timed out.
        """
        if not records:
            raise ValueError("append_many needs at least one record")
        with self._lock:
            producer, _ = self._ready()
            futures = [producer.send(self.topic, key=key.encode(), partition=0,
                                     value=json.dumps(value, sort_keys=True).encode()) for key, value in records]
            return max(int(f.get(timeout=self._timeout_s).offset) for f in futures)

    def read(self, since_ms: int, through_offset: int | None = None, from_offset: int | None = None) -> list[LogRecord]:
        """Records from the first one stamped at or after ``since_ms`` (ms, UTC), or from offset ``from_offset``
        when given, through ``through_offset`` (inclusive; default: the end of the partition now). Values that
        are not JSON objects are skipped.

        Raises:
            JobLogError: the topic is missing, or the records were not read within the time limit.
        """
        with self._lock:
            _, consumer = self._ready()
            end = consumer.end_offsets([self._tp])[self._tp]
            stop = end if through_offset is None else min(end, through_offset + 1)
            if from_offset is not None:  # not below the oldest record kept (retention) nor past the end
                start = min(max(from_offset, consumer.beginning_offsets([self._tp])[self._tp]), end)
            else:
                found = consumer.offsets_for_times({self._tp: max(0, since_ms)})[self._tp]
                start = found.offset if found is not None else end
            consumer.seek(self._tp, start)
            out: list[LogRecord] = []
            deadline = time.monotonic() + self._timeout_s
            while consumer.position(self._tp) < stop:
                if time.monotonic() > deadline:
                    raise JobLogError(f"reading {self.topic} offsets {start}..{stop} took over {self._timeout_s:g} s")
                for record in consumer.poll(timeout_ms=200).get(self._tp, []):
                    if record.offset >= stop:
                        break
                    out.extend(_parse(record))
            return out

    def close(self) -> None:
        """Close the clients (idempotent)."""
        with self._lock:
            if self._producer is not None:
                self._producer.close(timeout=5)
            if self._consumer is not None:
                self._consumer.close()
            self._producer = self._consumer = None


def _parse(record: Any) -> list[LogRecord]:
    try:
        value = json.loads(record.value)
    except (TypeError, ValueError):
        return []
    if not isinstance(value, dict) or record.key is None:
        return []
    return [LogRecord(record.offset, record.key.decode("utf-8", "replace"), value, int(record.timestamp))]
