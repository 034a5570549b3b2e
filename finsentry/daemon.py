"""The finsentry daemon: consume → score → window → alert, on Kafka.

One loop, top to bottom (:meth:`Daemon.run`):

1. **consume** a micro-batch from the raw topic (up to ``batch.max_batch``
   records or ``batch.max_wait_ms``, whichever comes first), while the
   previous batch is being scored on the scoring thread;
2. **score** it (:class:`finsentry.pipeline.Pipeline`: decode, model, windows)
   on the scoring thread. At most one batch is scored and one is held in
   hand: when both slots are full the loop waits for the scoring thread (the
   wait ends the moment it is done); past ``batch.paused_poll_ms`` the consumer
   **pauses** its partitions and keeps calling ``poll()`` (``max.poll.interval.ms``)
   until the scoring thread is done, then **resumes** them (back-pressure:
   memory stays bounded and a slow model never costs the group membership).
   The batch in hand goes to the scoring thread before the previous batch's
   flush and commit (6), so those round trips overlap scoring;
3. **write** scored records to the scored topic and bad records to the
   dead-letter topic (with reason, partition and offset);
4. **close windows** whose end the watermark passed and run the detector;
5. **outbox**: store each alert durably in the outbox (SQLite); delivery
   workers, one thread per endpoint, POST it from there in the background;
6. **commit** the offsets of the scored batch (not of the batch in hand),
   only after 3–5 are done (at-least-once).

A stop request (SIGTERM/SIGINT through :meth:`Daemon.stop`) lets the batch in
hand finish, commits, gives the delivery workers up to
``webhooks.drain_timeout_s`` to send what is due, and closes the clients.

After a consumer-group rebalance (noted by the listener inside ``poll``,
acted on in the loop with no batch in flight), partitions the daemon lost
leave its windows, its batch in hand and its commits, and partitions it
gained have their open windows rebuilt from the scored topic
(:mod:`finsentry.rebuild`); each commit carries, as metadata, the point
through which the partition's windows are decided, so that a partition's
next owner never decides a window twice (see docs/operations.md, "Scaling out").
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import CommitFailedError, KafkaError, RebalanceInProgressError
from kafka.structs import MemberState, OffsetAndMetadata

from alerts import (
    Alert,
    DeliveryService,
    Endpoint,
    Outbox,
    RetryPolicy,
    load_secrets,
)
from finsentry.broker import create_topics
from finsentry.config import Settings
from finsentry._alert_claims import AlertClaims, claims_topic_for
from finsentry.jobs import AlertTally, DaemonJobs, JobLogError, JobSources, KafkaJobLog
from finsentry.ops import DaemonOps
from finsentry.pipeline import BatchOutput, Pipeline, build_detector, build_windows
from finsentry.rebuild import OnAssigned, commit_metadata, rebuild_detector, rebuild_windows
from inference import Scorer
from ingest import RecordLike, TickerExtractor, load_aliases, make_consumer, make_producer

class OutputError(RuntimeError):
    """The broker refused one of the daemon's output records (scored, late, dead letter)."""


__all__ = ["Daemon", "OutputError", "DaemonStats", "build_delivery", "build_pipeline"]

log = logging.getLogger(__name__)

#: ``Daemon._committed_wm`` after a refused commit: the next loop turn commits every owned partition again.
_RECOMMIT = object()


@dataclass
class DaemonStats:
    """Counters of one daemon run."""

    consumed: int = 0
    scored: int = 0
    dead_lettered: int = 0
    late: int = 0
    windows_closed: int = 0
    #: the last 10,000 alerts raised (bounded: a daemon runs for months; the counts below are exact).
    alerts: deque[Alert] = field(default_factory=lambda: deque(maxlen=10_000))
    #: alerts raised, by status.
    alerts_firing: int = 0
    alerts_resolved: int = 0
    #: alerts by key and status, each message once (read by the scheduled digest's tally job).
    alert_tally: AlertTally = field(default_factory=AlertTally)
    batches: int = 0
    #: consumed → scored latency of the last 100,000 items, ms (poll return → scored record handed to the
    #: producer; the flush follows in the same loop turn).
    latency_ms: deque[float] = field(default_factory=lambda: deque(maxlen=100_000))
    #: times the consumer paused its partitions because the scoring queue was full.
    pauses: int = 0
    #: items restored into open windows from the scored topic after an assignment (finsentry.rebuild).
    restored: int = 0
    #: partitions revoked by rebalances and not assigned again (their windows were dropped).
    revoked: int = 0
    #: consumers replaced because their group join stayed pending (see Daemon._watch_group).
    consumer_replacements: int = 0
    #: retriable broker errors ridden out by a poll, a commit, a metadata fetch or an alert claim (e.g. while the
    #: broker restarts).
    broker_errors: int = 0
    #: alert messages another daemon of the group claimed first (discarded here: finsentry._alert_claims).
    alerts_claimed_elsewhere: int = 0


@dataclass
class _Batch:
    """A consumed micro-batch: its records and the monotonic time each was polled (s)."""

    records: list[RecordLike] = field(default_factory=list)
    polled_at: list[float] = field(default_factory=list)

    def offsets(self) -> dict[TopicPartition, OffsetAndMetadata]:
        """Per partition, the offset to commit once this batch is done (last offset + 1)."""
        last: dict[TopicPartition, int] = {}
        for r in self.records:
            tp = TopicPartition(r.topic, r.partition)
            last[tp] = max(last.get(tp, -1), r.offset)
        return {tp: OffsetAndMetadata(off + 1, "", -1) for tp, off in last.items()}


def build_pipeline(settings: Settings, scorer: Scorer | None = None) -> Pipeline:
    """The stages configured by ``settings`` (loads the model unless given one).

    Raises:
        inference.ModelFolderError, inference.ProviderError: model problems.
        ingest.FeedError: the alias CSV cannot be read.
    """
    if scorer is None:
        m = settings.model
        scorer = Scorer(m.path, m.device, m.intra_op_threads, **({"sub_batch": m.sub_batch} if m.sub_batch else {}))
    w = settings.windows
    tickers = TickerExtractor(load_aliases(w.aliases_csv) if w.aliases_csv else None,
                              only_missing=w.extract_tickers == "missing")
    return Pipeline(scorer, build_windows(settings), build_detector(settings), tickers,
                    max_future_ms=round(w.max_future_minutes * 60_000))


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
        alert_history: how many of the last alerts ``stats.alerts`` keeps (default 10,000, so a
            daemon that runs for months holds no growing list); ``None`` keeps all (backtests).
    """

    def __init__(self, settings: Settings, pipeline: Pipeline | None = None,
                 alert_history: int | None = 10_000) -> None:
        self.settings = settings
        self.pipeline = pipeline or build_pipeline(settings)
        self.stats = DaemonStats(alerts=deque(maxlen=alert_history))
        self._stop = threading.Event()
        self._scoring = ThreadPoolExecutor(max_workers=1, thread_name_prefix="finsentry-score")
        self._in_flight: tuple[Future, _Batch] | None = None
        self._in_hand: set[int] = set()  # partitions with records consumed but not yet windowed
        self._unassigned_since: float | None = None  # monotonic s; see _refresh_if_unassigned
        self._joining_since: float | None = None  # monotonic s; see _watch_group
        self._rebuilt: set[int] = set()  # partitions whose open windows were rebuilt (finsentry.rebuild)
        self._ticker_partitions: dict[str, int] = {}  # ticker -> partition of its latest item (forgotten on revoke)
        self._sends: list[tuple[str, Any]] = []  # (topic, FutureRecordMetadata) since the last commit
        self.delivery = build_delivery(settings)  # before Kafka: a bad secret fails at once
        self.outbox = self.delivery.outbox
        k = settings.kafka
        if k.create_topics:
            create_topics(
                k.bootstrap,
                {k.raw_topic: k.partitions, k.scored_topic: k.partitions, k.dlq_topic: 1, k.late_topic: 1},
                log_append_time={k.raw_topic},  # the broker stamps ingestion times (ingest.check_event_time)
            )
        self.producer: KafkaProducer = make_producer(k.bootstrap)
        self._to_rebuild: set[int] = set()  # assigned, not rebuilt yet: done in the loop, not inside poll
        self._owned: set[int] = set()  # partitions whose windows this daemon holds (see _after_rebalance)
        self._rebalanced = False  # a rebalance listener call since the last loop turn
        self._committed: dict[TopicPartition, int] = {}  # last committed offset of each owned partition
        self._decided: dict[TopicPartition, int | None] = {}  # windows decided through (ms): commit metadata
        self._committed_wm: int | None | object = None  # the operator watermark at the last commit, or _RECOMMIT
        self._broker_error_logged = -float("inf")  # monotonic s of the last broker-error warning
        self.consumer: KafkaConsumer = self._make_consumer()
        self.claims = AlertClaims(
            KafkaJobLog(k.bootstrap, k.alert_claims_topic or claims_topic_for(k.group_id), create=True,
                        client_id="finsentry-claims", what="alert claims"),
            group=k.group_id, member=self.outbox.instance_id,
            horizon_ms=int(settings.jobs.retention_hours * 3_600_000 / 2))  # < the outbox's retention
        self.claims.start()  # a bad claims topic or an unreachable broker fails here, not at the first alert
        self._held = bool(self.outbox.held())  # left held by a crash: claimed at the first loop turn
        self._claim_at = 0.0  # monotonic s before which a failed claim is not tried again
        self.delivery.start()
        self.ops = DaemonOps(self)  # /healthz, /readyz, /metrics, hot model reload
        self.ops.start()
        self.jobs: DaemonJobs | None = None  # model refresh, daily digest, housekeeping (finsentry.jobs)
        if settings.jobs.enabled:
            sources = JobSources(stats=lambda: self.stats, model_version=lambda: str(self.pipeline.scorer.version))
            self.jobs = DaemonJobs(settings, sources, self.outbox, self.ops.reloader, self.ops.metrics.registry).start()
        log.info(
            "daemon ready: model %s, provider=%s, group %s, topic %s",
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
            while True:
                stopping = self._stop.is_set()
                batch = _Batch() if stopping else self._consume()
                done = self._finish_scoring()
                self.ops.tick()  # no batch in flight here: a reloaded model goes in now
                batch = self._after_rebalance(batch)  # revoked partitions leave the windows and the batch
                self._rebuild()  # newly assigned partitions, while no batch is being scored or windowed
                self._in_hand = {r.partition for r in batch.records}
                if batch.records:
                    last_record = time.monotonic()
                alerts = self._close_windows()
                if batch.records:  # before the flush and commit below: they overlap this batch's scoring
                    self._submit(batch)
                if (done is not None or alerts or self._held
                        or self.pipeline.windows.watermark_ms != self._committed_wm):
                    self.producer.flush()  # before the alerts are stored: keeps storing → commit short
                    self._commit(done, hold=not self._alert(alerts))
                if batch.records:
                    continue
                if stopping:
                    break
                elif (idle_exit_s is not None and time.monotonic() - last_record >= idle_exit_s and not self._held
                      and self._caught_up()):
                    log.info("idle for %.1f s and caught up: exiting", idle_exit_s)
                    break
                else:
                    self._refresh_if_unassigned()
                    self._watch_group()
        finally:
            if self._held:
                log.warning("alert messages still held at exit (claims unreachable): claimed at the next start")
            self.close()
        return self.stats

    # -- the stages' Kafka edges -------------------------------------------------

    def _consume(self) -> _Batch:
        """Poll until ``max_batch`` records or ``max_wait_ms`` have passed (a micro-batch)."""
        max_batch = self.settings.batch.max_batch
        deadline = time.monotonic() + self.settings.batch.max_wait_ms / 1000.0
        batch = _Batch()
        while len(batch.records) < max_batch and not self._stop.is_set():
            remaining_ms = int((deadline - time.monotonic()) * 1000)
            if remaining_ms <= 0:
                break
            polled = self._poll(remaining_ms, max_batch - len(batch.records))
            now = time.monotonic()
            for records in polled.values():
                batch.records.extend(records)
                batch.polled_at.extend([now] * len(records))
        self.stats.consumed += len(batch.records)
        if batch.records:
            self.stats.batches += 1
        return batch

    def _poll(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[RecordLike]]:
        """``consumer.poll`` that rides out a broker outage: a retriable error returns nothing.

        kafka-python 3.0.12's ``poll`` raises while no broker answers (seen:
        ``KafkaConnectionError: 111 ECONNREFUSED`` from the metadata refresh
        of its coordinator lookup, while the broker restarts), although
        nothing was fetched and the consumer can go on. Such an error is
        counted and logged (:meth:`_broker_error`), and the call returns no
        records after waiting ``timeout_ms`` (at most 0.5 s), as an empty poll would.

        Raises:
            kafka.errors.KafkaError: a non-retriable error.
        """
        try:
            return self.consumer.poll(timeout_ms=timeout_ms, max_records=max_records)
        except KafkaError as exc:
            self._broker_error("poll", exc)
            time.sleep(min(timeout_ms, 500) / 1000.0)
            return {}

    def _broker_error(self, where: str, exc: Exception) -> None:
        """Count a retriable broker error (``stats.broker_errors``); warn at most every 10 s.

        Raises:
            exc: when it is a ``KafkaError`` that is not retriable (it is not ridden out).
        """
        if isinstance(exc, KafkaError) and not exc.retriable:
            raise exc
        self.stats.broker_errors += 1
        now = time.monotonic()
        if now - self._broker_error_logged >= 10.0:
            self._broker_error_logged = now
            log.warning("broker unreachable (%s: %r); retrying (%d such errors so far)", where, exc,
                        self.stats.broker_errors)

    def _make_consumer(self) -> KafkaConsumer:
        """A consumer subscribed to the raw topic with the rebalance listener, its topic metadata fetched.

        The metadata is fetched before the first ``poll`` (the group join): a
        leader that joins before it knows the topic assigns nothing, and the
        rejoin that follows is where kafka-python 3.0.12 was seen to hang
        (see :meth:`_watch_group`).
        """
        k = self.settings.kafka
        consumer = make_consumer(
            k.bootstrap,
            k.group_id,
            [k.raw_topic],
            auto_offset_reset=k.auto_offset_reset,
            max_poll_interval_ms=k.max_poll_interval_ms,
            session_timeout_ms=k.session_timeout_ms,
            max_poll_records=self.settings.batch.max_batch,
        )
        consumer.subscribe([k.raw_topic], listener=OnAssigned(self._note_assigned, self._note_revoked))
        consumer.partitions_for_topic(k.raw_topic)
        return consumer

    def _refresh_if_unassigned(self, after_s: float = 5.0) -> None:
        """Fetch fresh cluster metadata when the consumer has had no partition for ``after_s`` seconds.

        A group joined while the broker's metadata for a just-created topic
        was not yet visible gets an empty assignment, and kafka-python only
        notices the topic at its next metadata refresh (``metadata.max.age.ms``,
        5 min); a fresh fetch (``KafkaConsumer.topics()``) lets the coordinator
        see the changed metadata and rejoin at the next poll.
        """
        if self.consumer.assignment():
            self._unassigned_since = None
            return
        now = time.monotonic()
        if self._unassigned_since is None:
            self._unassigned_since = now
        elif now - self._unassigned_since >= after_s:
            log.info("no partition assigned for %.0f s: refreshing metadata", now - self._unassigned_since)
            self._unassigned_since = now
            try:
                self.consumer.topics()
            except KafkaError as exc:
                self._broker_error("metadata", exc)

    def _join_limit_s(self) -> float:
        """How long a group join may take before the consumer is replaced: 2 session timeouts + 10 s.

        A legitimate rebalance waits at most for dead members to be dropped
        (one session timeout); live daemons rejoin at their next poll, which
        they call every ``batch.max_wait_ms`` even while scoring.
        """
        return 2 * self.settings.kafka.session_timeout_ms / 1000.0 + 10.0

    def _watch_group(self) -> None:
        """Replace the consumer when its group join has been pending for longer than :meth:`_join_limit_s`.

        kafka-python 3.0.12 can leave a join pending forever (seen: the
        leader's SyncGroup never completes, after a rebalance; its member state
        stays ``REBALANCING`` and no partition is fetched). The old consumer
        is closed (it leaves the group) and a new member joins; the windows and
        rebuild bookkeeping follow the new member's assignment. Called only with no batch in flight or in hand.
        """
        state = self.consumer.group_metadata().state
        now = time.monotonic()
        if state == MemberState.STABLE:
            self._joining_since = None
            return
        if self._joining_since is None:
            self._joining_since = now
            return
        if now - self._joining_since < self._join_limit_s():
            return
        log.warning("group join pending for %.0f s (state %s): replacing the consumer", now - self._joining_since,
                    state, extra={"group_id": self.settings.kafka.group_id})
        self.stats.consumer_replacements += 1
        old = self.consumer
        self._rebalanced = True  # the new member's assignment decides what this daemon keeps
        try:
            old.close(autocommit=False, timeout_ms=5000)
        except Exception as exc:  # its state is unknown; the group drops it at its session timeout
            log.warning("closing the replaced consumer failed: %r", exc)
        self.consumer = self._make_consumer()
        self._joining_since = self._unassigned_since = None

    def _submit(self, batch: _Batch) -> None:
        """Hand a batch to the scoring thread (the previous one must be finished)."""
        assert self._in_flight is None, "one batch in flight at most"
        self._in_flight = (self._scoring.submit(self._process, batch.records), batch)

    def _process(self, records: list[RecordLike]) -> BatchOutput:
        """The pipeline over one micro-batch (on the scoring thread), timed for the metrics."""
        started = time.perf_counter()
        out = self.pipeline.process(records)
        self.ops.batch_done(len(records), time.perf_counter() - started)
        return out

    def _finish_scoring(self) -> _Batch | None:
        """Wait for the batch on the scoring thread, write its outputs; None when none was in flight.

        The wait ends the moment the scoring thread is done (no poll timeout
        in between). When scoring takes longer than ``batch.paused_poll_ms``,
        the assigned partitions are paused and ``poll(timeout_ms=0)`` runs
        every ``paused_poll_ms`` (it returns nothing for paused partitions),
        so group membership and the ``max.poll.interval.ms`` clock are served
        however slow scoring is (kafka-python heartbeats from its own thread);
        they are resumed before returning.

        Raises:
            whatever the pipeline raised on the scoring thread.
        """
        if self._in_flight is None:
            return None
        future, batch = self._in_flight
        every_s = self.settings.batch.paused_poll_ms / 1000.0
        if not wait([future], timeout=every_s).done:  # returns the moment scoring ends
            paused: set[TopicPartition] = set()
            self.stats.pauses += 1
            try:
                while not future.done():
                    paused |= self._pause_assigned()
                    self._seek_back(self._poll(0, 1))
                    wait([future], timeout=every_s)
            finally:
                assigned = self.consumer.assignment()
                self.consumer.resume(*[tp for tp in paused if tp in assigned])
        self._in_flight = None
        self._write(future.result())
        now = time.monotonic()
        self.stats.latency_ms.extend((now - t) * 1000.0 for t in batch.polled_at)
        return batch

    def _pause_assigned(self) -> set[TopicPartition]:
        """Pause every assigned partition (also those a rebalance just added); returns them."""
        assigned = set(self.consumer.assignment())
        self.consumer.pause(*assigned)
        return assigned

    def _seek_back(self, polled: dict) -> None:
        """Rewind partitions that delivered records while paused-polling (a rebalance added
        them between pause and poll), so those records are consumed again, never dropped."""
        for tp, records in polled.items():
            if records:
                self.consumer.seek(tp, min(r.offset for r in records))

    def _check_sends(self) -> None:
        """After ``producer.flush()``: raise if any scored record, late event or dead
        letter of the batch was refused by the broker, so its offsets are never committed.

        Raises:
            OutputError: naming the topic and the broker's error.
        """
        sends, self._sends = self._sends, []
        for topic, future in sends:
            if future.failed():
                raise OutputError(f"the broker refused a record for {topic}: {future.exception!r}; "
                                  "offsets not committed")

    def _commit(self, done: _Batch | None, hold: bool = False) -> None:
        """Commit the offsets of a finished batch (never those of a batch still in hand), with the watermark.

        Only partitions still assigned are committed (a revoked one's new
        owner consumes it again from its last commit). Each commit's metadata
        carries the point up to which that partition's windows are decided
        (:func:`finsentry.rebuild.commit_metadata`: the highest operator
        watermark since this daemon got the partition, or what its previous
        owner had decided); when the watermark moved, the last committed
        offsets of the other owned partitions are committed again with it, so
        a partition's next owner never closes a window this daemon closed.
        A commit refused during a rebalance, or failed with a retriable
        broker error (it times out while the broker restarts), is made again
        at the next loop turn with every owned partition (at-least-once: the
        turn's alerts are already in the outbox). ``hold``: alert messages are
        still held unclaimed (:meth:`_alert`): nothing is committed and the
        decided-through points stay where they are; ``done``'s offsets are
        committed with everything else at the first turn that may.

        Raises:
            OutputError: see :meth:`_check_sends`.
            kafka.errors.KafkaError: a non-retriable commit error.
        """
        self._check_sends()
        assigned = self.consumer.assignment()
        offsets = {tp: o.offset for tp, o in (done.offsets() if done is not None else {}).items() if tp in assigned}
        self._committed.update(offsets)
        if hold:
            self._committed_wm = _RECOMMIT
            return
        wm = self.pipeline.windows.watermark_ms
        moved = self._committed_wm is _RECOMMIT
        if wm is not None:
            for tp in assigned:
                if self._decided.get(tp) is None or wm > self._decided[tp]:  # type: ignore[operator]
                    self._decided[tp] = wm
                    moved = True
        if moved:
            offsets = {tp: off for tp, off in self._committed.items() if tp in assigned}
        self._committed_wm = wm
        if not offsets:
            return
        try:
            self.consumer.commit(offsets={tp: OffsetAndMetadata(off, commit_metadata(self._decided.get(tp)), -1)
                                          for tp, off in offsets.items()})
        except (CommitFailedError, RebalanceInProgressError) as exc:
            # the group is rebalancing: a partition that moves is consumed again by its next owner from its
            # last commit (at-least-once); one that stays is committed, with its metadata, at the next turn
            log.warning("commit refused during a rebalance (%s): retried at the next commit", type(exc).__name__)
            self._committed_wm = _RECOMMIT
        except KafkaError as exc:  # e.g. the broker restarting: the commit times out; the same rule applies
            self._broker_error("commit", exc)
            self._committed_wm = _RECOMMIT

    # -- rebalances ----------------------------------------------------------------

    def _note_assigned(self, partitions: set[int]) -> None:
        """Rebalance listener (inside ``poll``): note the assignment; acted on in the loop."""
        self._to_rebuild.update(partitions)
        self._rebalanced = True

    def _note_revoked(self, partitions: set[int]) -> None:
        """Rebalance listener (inside ``poll``): note the revocation; acted on in the loop."""
        self._rebalanced = True

    def _after_rebalance(self, batch: _Batch) -> _Batch:
        """After a rebalance (no batch in flight): drop what this daemon no longer owns.

        The partitions this daemon held and no longer has in its assignment
        (compared with the assignment, not with the revoked set: under the
        eager protocol every partition is revoked, and the new assignment
        may come polls later, while the old one is still listed) leave the windows
        (``EventTimeWindows.revoke_partitions``: their new owner rebuilds
        them from the scored topic) and the batch in hand (their new owner
        consumes them again from the last commit); a later re-assignment
        rebuilds them. The windows' operator watermark is recomputed after
        any rebalance (an adopted partition may be behind it).

        Returns:
            ``batch`` without the records of the lost partitions.
        """
        if not self._rebalanced:
            return batch
        self._rebalanced = False
        assigned = self.consumer.assignment()
        owned = {tp.partition for tp in assigned}
        gone, self._owned = self._owned - owned, owned
        if self.jobs is not None:
            self.jobs.note_assignment(owned)  # the holder of partition 0 runs the group's jobs
        self.pipeline.windows.revoke_partitions(gone)
        self._forget_keys_of(gone)
        self.stats.revoked += len(gone)
        self._rebuilt -= gone
        self._committed = {tp: off for tp, off in self._committed.items() if tp in assigned}
        self._decided = {tp: d for tp, d in self._decided.items() if tp in assigned}
        for tp in assigned:
            if tp not in self._committed:
                try:
                    offset = self.consumer.committed(tp)
                except KafkaError as exc:  # e.g. mid-rebalance: the first finished batch of tp sets it
                    log.warning("committed offset of %s unknown (%r)", tp, exc)
                    continue
                if offset:
                    self._committed[tp] = offset
        if not gone:
            return batch
        log.info("partitions %s revoked: their open windows and %d records in hand dropped (the new owner "
                 "rebuilds and re-reads them)", sorted(gone), sum(r.partition in gone for r in batch.records),
                 extra={"revoked": sorted(gone)})
        kept = _Batch()
        for record, polled_at in zip(batch.records, batch.polled_at):
            if record.partition not in gone:
                kept.records.append(record)
                kept.polled_at.append(polled_at)
        return kept

    def _write(self, out: BatchOutput) -> None:
        k = self.settings.kafka
        for partition, scored in out.scored:  # same partition number as the raw record: see finsentry.rebuild
            for ticker in scored.tickers:
                self._ticker_partitions[ticker] = partition
            key = (scored.tickers[0] if scored.tickers else scored.source).encode()
            self._sends.append((k.scored_topic, self.producer.send(
                k.scored_topic, key=key, value=scored.to_json(), timestamp_ms=scored.published_ms, partition=partition)))
        for late in out.late_events:  # the late-events output (late or future-dated, with lateness)
            self._sends.append((k.late_topic, self.producer.send(
                k.late_topic, key=late.item.item_id.encode(), value=late.to_json())))
        for dead in out.dead:
            headers = [("finsentry-reason", dead.reason.encode())]
            self._sends.append((k.dlq_topic, self.producer.send(
                k.dlq_topic, key=dead.key, value=dead.to_json(), headers=headers)))
            log.warning("dead-lettered %s[%d]@%d: %s", dead.topic, dead.partition, dead.offset, dead.reason,
                        extra={"partition": dead.partition, "offset": dead.offset, "reason": dead.reason})
        self.stats.scored += len(out.scored)
        self.stats.dead_lettered += len(out.dead)
        self.stats.late += len(out.late)

    def _caught_up(self) -> bool:
        """Partitions are assigned and every one has reached its log end."""
        assigned = self._assigned()
        return bool(assigned) and self._idle_partitions() >= assigned

    def _assigned(self) -> set[int]:
        return {tp.partition for tp in self.consumer.assignment()}

    def _idle_partitions(self) -> set[int]:
        """Assigned partitions whose position has reached the last known log end."""
        idle: set[int] = set()
        for tp in self.consumer.assignment():
            if tp.partition in self._in_hand:  # consumed but not windowed yet: not caught up
                continue
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
        idle = self._idle_partitions() if self.settings.windows.idle_advance else set()
        before = self.pipeline.windows.closed_count
        _, alerts = self.pipeline.close_windows(idle)
        self.stats.windows_closed += self.pipeline.windows.closed_count - before
        return alerts

    def _rebuild(self) -> None:
        """Rebuild the open windows of newly assigned partitions from the scored topic (once each)."""
        new = self._to_rebuild - self._rebuilt
        self._to_rebuild.clear()
        if new and self.settings.windows.rebuild:
            k = self.settings.kafka
            stats = rebuild_windows(k.bootstrap, k.scored_topic, new, self.pipeline.windows, k.raw_topic, k.group_id)
            self.stats.restored += stats.restored
            for p, closed in stats.decided_through.items():  # what the previous owner had decided
                self._decided[TopicPartition(k.raw_topic, p)] = closed
            rebuilt = rebuild_detector(k.bootstrap, k.scored_topic, stats.decided_through, self.pipeline.detector,
                                       self.pipeline.windows, self.settings.detector.state_rebuild_hours,
                                       sent=self.claims.sent)
            self._ticker_partitions.update(rebuilt.ticker_partitions)
        self._rebuilt |= new

    def _forget_keys_of(self, gone: set[int]) -> None:
        """Drop the detector state of the tickers whose items came from the revoked partitions ``gone``.

        Their new owner rebuilds and continues it (``finsentry.rebuild.rebuild_detector``); kept here, this
        daemon's watermark would resolve an episode the new owner is continuing. ``market`` and ``topic``
        keys mix partitions and stay.
        """
        if not gone:
            return
        tickers = [t for t, p in self._ticker_partitions.items() if p in gone]
        for t in tickers:
            del self._ticker_partitions[t]
        baselines, episodes = self.pipeline.detector.forget([("ticker", t) for t in tickers])
        if baselines or episodes:
            log.info("partitions %s revoked: forgot %d baselines and %d open episodes (their new owner continues "
                     "them)", sorted(gone), baselines, episodes)

    def _alert(self, alerts: list[Alert]) -> bool:
        """Hold the alerts in the outbox, claim every held message, release what this daemon won.

        See ``finsentry._alert_claims``: a message another daemon of the group
        claimed first (it decided the same window before a kill or a
        rebalance moved the partition here) is discarded. When the claim
        fails with a retriable error (the broker away), the messages stay
        held (durable), the loop goes on, and the claim is tried again at a
        later turn (at most once a second); the caller commits nothing
        meanwhile.

        Returns:
            True when nothing is left held (the turn may be committed).

        Raises:
            alerts.OutboxError: the outbox write failed. kafka.errors.KafkaError: a non-retriable claim error.
        """
        if alerts:
            self.outbox.hold(alerts)  # durable: from here a crash loses nothing (held messages are claimed at start)
            self._held = True
        if not self._held:
            return True
        if time.monotonic() < self._claim_at and not self._stop.is_set():  # stopping: one last try
            return False
        held = self.outbox.held()
        try:
            won, lost = self.claims.claim(held)
        except (KafkaError, JobLogError) as exc:
            self._broker_error("alert claims", exc)
            self._claim_at = time.monotonic() + 1.0
            return False
        self.outbox.release([a.message_id for a in won])
        self.outbox.discard([a.message_id for a in lost])
        self.stats.alerts_claimed_elsewhere += len(lost)
        self._held = False
        for alert in won:
            self._record(alert)
        return True

    def _record(self, alert: Alert) -> None:
        """Log and count an alert this daemon sends."""
        log.info("ALERT %s %s %s %s window %s", alert.status, alert.alert_id, alert.key_type, alert.key,
                 alert.window_start, extra={"alert_id": alert.alert_id, "key": alert.key, "status": alert.status})
        self.stats.alerts.append(alert)
        self.stats.alert_tally.add(alert)
        if alert.status == "resolved":
            self.stats.alerts_resolved += 1
        else:
            self.stats.alerts_firing += 1

    def close(self) -> None:
        """Flush, commit what was processed, close the clients (idempotent)."""
        if self.jobs is not None:
            self.jobs.close()  # first: no job runs once the outbox or the model go away
        self.ops.close()
        try:
            self._scoring.shutdown(wait=True)
            self.producer.flush()
            self.producer.close()
        finally:
            try:
                self.consumer.close(autocommit=False)
            finally:
                self.claims.close()
                self.delivery.close(drain_timeout_s=self.settings.webhooks.drain_timeout_s)

