"""The finsentry daemon: consume → score → window → alert, on Kafka.

One loop, top to bottom (:meth:`Daemon.run`):

1. **consume** a micro-batch from the raw topic (up to ``batch.max_batch``
   records or ``batch.max_wait_ms``, whichever comes first);
2. **score** it (:class:`finsentry.pipeline.Pipeline`: decode, model, windows);
3. **write** scored records to the scored topic and bad records to the
   dead-letter topic (with reason, partition and offset);
4. **close windows** whose end the watermark passed and run the detector;
5. **outbox**: store each alert durably in the outbox (SQLite); delivery
   workers, one thread per endpoint, POST it from there in the background;
6. **commit** the consumed offsets, only after 3–5 are done (at-least-once).

A stop request (SIGTERM/SIGINT through :meth:`Daemon.stop`) lets the batch in
hand finish, commits, gives the delivery workers up to
``webhooks.drain_timeout_s`` to send what is due, and closes the clients.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from kafka import KafkaConsumer, KafkaProducer

from alerts import (
    Alert,
    DeliveryService,
    Endpoint,
    Outbox,
    RetryPolicy,
    ThresholdDetector,
    TumblingWindows,
    load_secrets,
)
from finsentry.broker import create_topics
from finsentry.config import Settings
from finsentry.ops import DaemonOps
from finsentry.pipeline import BatchOutput, Pipeline
from inference import Scorer
from ingest import RecordLike, make_consumer, make_producer

__all__ = ["Daemon", "DaemonStats", "build_delivery", "build_pipeline"]

log = logging.getLogger(__name__)


@dataclass
class DaemonStats:
    """Counters of one daemon run."""

    consumed: int = 0
    scored: int = 0
    dead_lettered: int = 0
    late: int = 0
    windows_closed: int = 0
    alerts: list[Alert] = field(default_factory=list)
    batches: int = 0


def build_pipeline(settings: Settings, scorer: Scorer | None = None) -> Pipeline:
    """The stages configured by ``settings`` (loads the model unless given one).

    Raises:
        inference.ModelFolderError, inference.ProviderError: model problems.
    """
    if scorer is None:
        scorer = Scorer(settings.model.path, settings.model.device, settings.model.intra_op_threads)
    windows = TumblingWindows(
        size_ms=int(settings.windows.size_minutes * 60_000),
        allowed_lateness_ms=int(settings.windows.allowed_lateness_minutes * 60_000),
    )
    detector = ThresholdDetector(settings.detector.min_negative, settings.detector.min_neg_share)
    return Pipeline(scorer, windows, detector)


def build_delivery(settings: Settings) -> DeliveryService:
    """The outbox and delivery workers configured by ``settings.webhooks`` (not started).

    Raises:
        alerts.SecretError: a configured secret is unset or malformed.
        alerts.OutboxError: the outbox file cannot be opened.
    """
    w = settings.webhooks
    endpoints = [
        Endpoint(
            url=e.url, format=e.format, name=e.name or "", secrets=load_secrets(e.secret_env, e.secret_file),
            connect_timeout_s=e.connect_timeout_s or w.connect_timeout_s, read_timeout_s=e.timeout_s or w.timeout_s,
            group_wait_s=e.group_wait_s or 0.0, external_url=w.external_url,
        )
        for e in w.all_endpoints()
    ]
    policy = RetryPolicy(w.retry_schedule_s, cap_s=w.retry_cap_s, jitter=w.retry_jitter)
    return DeliveryService(Outbox(w.outbox_path, endpoints), policy)


class Daemon:
    """The long-running consumer-group member.

    Args:
        settings: the effective configuration.
        pipeline: stages to run (built from settings when omitted).
    """

    def __init__(self, settings: Settings, pipeline: Pipeline | None = None) -> None:
        self.settings = settings
        self.pipeline = pipeline or build_pipeline(settings)
        self.stats = DaemonStats()
        self._stop = threading.Event()
        self.delivery = build_delivery(settings)  # before Kafka: a bad secret fails at once
        self.outbox = self.delivery.outbox
        k = settings.kafka
        if k.create_topics:
            create_topics(k.bootstrap, {k.raw_topic: k.partitions, k.scored_topic: k.partitions, k.dlq_topic: 1})
        self.producer: KafkaProducer = make_producer(k.bootstrap)
        self.consumer: KafkaConsumer = make_consumer(
            k.bootstrap,
            k.group_id,
            [k.raw_topic],
            auto_offset_reset=k.auto_offset_reset,
            max_poll_interval_ms=k.max_poll_interval_ms,
            session_timeout_ms=k.session_timeout_ms,
            max_poll_records=settings.batch.max_batch,
        )
        self.delivery.start()
        self.ops = DaemonOps(self)  # /healthz, /readyz, /metrics, hot model reload
        self.ops.start()
        log.info(
            "daemon ready: model %s on %s, group %s, topic %s",
            self.pipeline.scorer.version,
            self.pipeline.scorer.provider,
            k.group_id,
            k.raw_topic,
        )

    def stop(self) -> None:
        """Ask the loop to finish the batch in hand, commit and return."""
        self._stop.set()

    def run(self, idle_exit_s: float | None = None) -> DaemonStats:
        """Run until :meth:`stop`, or until idle for ``idle_exit_s`` seconds.

        "Idle" means no record arrived for ``idle_exit_s`` seconds, the
        consumer has partitions assigned, and every one of them is caught up
        with its log end (used by the demo and by replays; a production daemon
        runs with ``None``).
        """
        last_record = time.monotonic()
        try:
            while not self._stop.is_set():
                self.ops.tick()  # between batches: a reloaded model goes in here
                records = self._consume()
                if records:
                    last_record = time.monotonic()
                    started = time.perf_counter()
                    out = self.pipeline.process(records)
                    self.ops.batch_done(len(records), time.perf_counter() - started)
                    self._write(out)
                alerts = self._close_windows()
                self._alert(alerts)
                if records or alerts:
                    self.producer.flush()
                    self.consumer.commit()
                elif idle_exit_s is not None and time.monotonic() - last_record >= idle_exit_s:
                    assigned = self._assigned()
                    if assigned and self._idle_partitions() >= assigned:
                        log.info("idle for %.1f s and caught up: exiting", idle_exit_s)
                        break
        finally:
            self.close()
        return self.stats

    # -- the stages' Kafka edges -------------------------------------------------

    def _consume(self) -> list[RecordLike]:
        """Poll until ``max_batch`` records or ``max_wait_ms`` have passed."""
        max_batch = self.settings.batch.max_batch
        deadline = time.monotonic() + self.settings.batch.max_wait_ms / 1000.0
        batch: list[RecordLike] = []
        while len(batch) < max_batch and not self._stop.is_set():
            remaining_ms = int((deadline - time.monotonic()) * 1000)
            if remaining_ms <= 0:
                break
            polled = self.consumer.poll(timeout_ms=remaining_ms, max_records=max_batch - len(batch))
            for records in polled.values():
                batch.extend(records)
        self.stats.consumed += len(batch)
        if batch:
            self.stats.batches += 1
        return batch

    def _write(self, out: BatchOutput) -> None:
        k = self.settings.kafka
        for _, scored in out.scored:
            key = (scored.tickers[0] if scored.tickers else scored.source).encode()
            self.producer.send(k.scored_topic, key=key, value=scored.to_json(), timestamp_ms=scored.published_ms)
        for dead in out.dead:
            headers = [("finsentry-reason", dead.reason.encode())]
            self.producer.send(k.dlq_topic, key=dead.key, value=dead.to_json(), headers=headers)
            log.warning("dead-lettered %s[%d]@%d: %s", dead.topic, dead.partition, dead.offset, dead.reason,
                        extra={"partition": dead.partition, "offset": dead.offset, "reason": dead.reason})
        self.stats.scored += len(out.scored)
        self.stats.dead_lettered += len(out.dead)
        self.stats.late += len(out.late)

    def _assigned(self) -> set[int]:
        return {tp.partition for tp in self.consumer.assignment()}

    def _idle_partitions(self) -> set[int]:
        """Assigned partitions whose position has reached the last known log end."""
        idle: set[int] = set()
        for tp in self.consumer.assignment():
            high = self.consumer.highwater(tp)
            if high is None:
                continue
            try:
                if self.consumer.position(tp, timeout_ms=1000) >= high:
                    idle.add(tp.partition)
            except Exception:  # position unknown yet (e.g. right after a rebalance)
                continue
        return idle

    def _close_windows(self) -> list[Alert]:
        """Advance the watermark over the assigned partitions and close due windows.

        An assigned partition that has delivered nothing yet holds the
        watermark back until it delivers or is idle (caught up).
        """
        self.pipeline.windows.assign_partitions(self._assigned())
        closed, alerts = self.pipeline.close_windows(self._idle_partitions())
        self.stats.windows_closed += len(closed)
        return alerts

    def _alert(self, alerts: list[Alert]) -> None:
        """Store the alerts durably (before the commit); the delivery workers send them."""
        for alert in alerts:
            log.info("ALERT %s %s %s window %s", alert.alert_id, alert.key_type, alert.key, alert.window_start,
                     extra={"alert_id": alert.alert_id, "key": alert.key})
            self.stats.alerts.append(alert)
            self.outbox.put(alert)

    def close(self) -> None:
        """Flush, commit what was processed, close the clients (idempotent)."""
        self.ops.close()
        try:
            self.producer.flush()
            self.producer.close()
        finally:
            try:
                self.consumer.close(autocommit=False)
            finally:
                self.delivery.close(drain_timeout_s=self.settings.webhooks.drain_timeout_s)

