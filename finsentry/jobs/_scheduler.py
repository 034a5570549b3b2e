"""The daemon's scheduled jobs (APScheduler 3.x ``BackgroundScheduler``, UTC).

Jobs, each ``coalesce=True`` (runs missed while the process was busy or
asleep collapse into one), ``max_instances=1`` and ``misfire_grace_time =
jobs.misfire_grace_s`` (a later run is skipped and counted ``missed``):

- ``model-refresh`` (every ``jobs.refresh_interval_s``; every member: its own
  model): :meth:`finsentry.ops.ModelReloader.check_once`; the poll loop swaps
  a checked model in between batches (``DaemonOps.tick``).
- ``tally`` (every ``jobs.tally_interval_s``; every member): publishes this
  member's counters to the jobs topic (:mod:`finsentry.jobs._tally`).
- ``digest`` (``jobs.digest_cron``; **one member per group and period**,
  :mod:`finsentry.jobs._ownership`): a signed notice through the outbox with
  the group's figures over the ``jobs.digest_hours`` before the period.
- ``housekeeping`` (``jobs.housekeeping_cron``; every member: its own outbox):
  ``Outbox.prune`` of messages delivered over ``jobs.retention_hours`` ago.

Every run is counted in ``finsentry_scheduled_runs_total{job, result}``
(``ok``, ``failed``, ``missed``, ``skipped_not_owner``, ``skipped_claimed``).
Jobs run on the scheduler's threads, never on the poll loop's; what they
read from the daemon comes through :class:`JobSources` (thread-safe reads).
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.interval import IntervalTrigger
from prometheus_client import CollectorRegistry, Counter

from alerts import NOTICE_FORMATS, Outbox
from finsentry.config import Settings
from finsentry.jobs._log import KafkaJobLog
from finsentry.jobs._ownership import ClaimGate, JobLog, Ownership
from finsentry.jobs._periods import digest_id, fire_times, latest_period, period_name
from finsentry.jobs._tally import DigestCounts, Tally, sum_tallies
from training import cron_trigger

__all__ = ["DaemonJobs", "JobSources", "RESULTS", "digest_document"]

log = logging.getLogger(__name__)

#: Values of the ``result`` label of ``finsentry_scheduled_runs_total``.
RESULTS = ("ok", "failed", "missed", "skipped_not_owner", "skipped_claimed")
#: Catch-up runs at most this many past periods of one job when this member becomes the owner.
_CATCH_UP_LIMIT = 10


@dataclass(frozen=True)
class JobSources:
    """What the jobs read from the daemon; each callable must be safe to call from any thread.

    Attributes:
        stats: returns the daemon's counters (``scored``, ``dead_lettered``: ints; ``alert_tally``: an
            ``AlertTally`` the poll loop adds every alert to).
        model_version: returns the version of the model in use.
    """

    stats: Callable[[], Any]
    model_version: Callable[[], str]


def digest_document(group: str, period: datetime, hours: float, counts: DigestCounts, model_version: str) -> dict:
    """The digest notice (native body) for the ``hours`` before ``period`` (UTC).

    Keys: kind ("digest"), digest_id, group, period_start / period_end (RFC 3339, UTC), items_scored,
    dead_lettered, alerts_raised / alerts_resolved ({key_type:key: count}), their totals, model_versions
    (seen in the span), model_version (the sender's now), members (daemons that reported), text (one line
    per figure: the Slack body).
    """
    start = period - timedelta(hours=hours)
    raised, resolved = sum(counts.raised.values()), sum(counts.resolved.values())
    top = ", ".join(f"{k} ({n})" for k, n in sorted(counts.raised.items(), key=lambda kv: (-kv[1], kv[0]))[:5])
    text = "\n".join([
        f"finsentry digest {group}: {period_name(start)} to {period_name(period)}",
        f"items scored {counts.items_scored}, dead-lettered {counts.dead_lettered}",
        f"alerts raised {raised}, resolved {resolved}" + (f"; most raised: {top}" if top else ""),
        f"model {model_version} (in the span: {', '.join(counts.model_versions) or 'none reported'})",
    ])
    return {"kind": "digest", "digest_id": digest_id(period), "group": group,
            "period_start": period_name(start), "period_end": period_name(period),
            "items_scored": counts.items_scored, "dead_lettered": counts.dead_lettered,
            "alerts_raised": counts.raised, "alerts_resolved": counts.resolved,
            "alerts_raised_total": raised, "alerts_resolved_total": resolved,
            "model_versions": counts.model_versions, "model_version": model_version,
            "members": counts.members, "text": text}


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


class DaemonJobs:
    """The scheduler of one daemon and its jobs (see the module docstring).

    Args:
        settings: the effective configuration (``jobs``, ``kafka``).
        sources: the daemon's counters and model version.
        outbox: the daemon's outbox (digest notices, pruning).
        reloader: the hot-reload checker (``check_once``), or None (refresh off).
        registry: the Prometheus registry the run counter goes in.
        job_log: the shared jobs log (default: :class:`KafkaJobLog` on ``kafka.jobs_topic``).
    """

    def __init__(self, settings: Settings, sources: JobSources, outbox: Outbox, reloader: Any | None,
                 registry: CollectorRegistry, job_log: JobLog | None = None) -> None:
        self.settings = settings
        self._s = settings.jobs
        self._sources = sources
        self._outbox = outbox
        self._reloader = reloader
        self.member = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._started_ms = int(time.time() * 1000)
        k = settings.kafka
        self._log = job_log or KafkaJobLog(k.bootstrap, k.jobs_topic, create=k.create_topics)
        self.ownership = Ownership(on_gain=self._on_gain)
        self.gate = ClaimGate(k.group_id, self.member, self.ownership, self._log)
        self.runs = Counter("finsentry_scheduled_runs", "Scheduled job runs by job and result.", ["job", "result"],
                            registry=registry)
        self._scheduler = BackgroundScheduler(
            timezone=timezone.utc, executors={"default": ThreadPoolExecutor(4)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": math.ceil(self._s.misfire_grace_s)})
        self._scheduler.add_listener(self._on_missed, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)
        self._digest_trigger: BaseTrigger | None = None
        self._tallying = False
        self._closing = threading.Event()

    # -- life cycle ----------------------------------------------------------------

    def start(self) -> "DaemonJobs":
        """Schedule the configured jobs and start the scheduler's thread; returns self."""
        s = self._s
        if self._reloader is not None and s.refresh_interval_s > 0:
            self._add("model-refresh", IntervalTrigger(seconds=s.refresh_interval_s), self._refresh)
        if s.digest_cron and not any(ep.format in NOTICE_FORMATS for ep in self._outbox.endpoints):
            log.info("daily digest off: no native or slack webhook endpoint to send it to")
        elif s.digest_cron:
            self._digest_trigger = cron_trigger(s.digest_cron)
            self._add("digest", self._digest_trigger, self._digest_due)
            self._add("tally", IntervalTrigger(seconds=s.tally_interval_s), self._tally)
            self._tallying = True
        if s.housekeeping_cron:
            self._add("housekeeping", cron_trigger(s.housekeeping_cron), self._housekeeping)
        self._scheduler.start()
        log.info("scheduled jobs started as member %s: %s", self.member,
                 ", ".join(f"{j.id} (next {j.next_run_time:%Y-%m-%d %H:%M:%S} UTC)" for j in self._scheduler.get_jobs()))
        return self

    def close(self) -> None:
        """Stop the scheduler (a job in progress finishes: each is bounded by the jobs log's timeouts), publish a
        last tally, close the jobs log. Idempotent."""
        self._closing.set()  # a catch-up in progress stops between two periods
        if self._scheduler.running:
            self._scheduler.shutdown(wait=True)
        if self._tallying:
            self._tallying = False
            self._counted("tally", self._tally)
        close = getattr(self._log, "close", None)
        if close is not None:
            close()

    def _add(self, job: str, trigger: BaseTrigger, func: Callable[[], str | None]) -> None:
        for result in RESULTS:
            self.runs.labels(job, result)
        self._scheduler.add_job(self._counted, trigger, args=(job, func), id=job, name=job)

    # -- bookkeeping ----------------------------------------------------------------

    def run_count(self, job: str, result: str) -> float:
        """``finsentry_scheduled_runs_total{job, result}`` now (0 when never counted)."""
        for metric in self.runs.collect():
            for sample in metric.samples:
                if sample.name.endswith("_total") and sample.labels == {"job": job, "result": result}:
                    return sample.value
        return 0.0

    def _counted(self, job: str, func: Callable[[], str | None]) -> None:
        """Run ``func``; count its result: its return value (None: ``ok``; ``""``: not counted, a period this
        member had already handled) or ``failed`` when it raises."""
        try:
            result = func()
        except Exception:
            log.exception("scheduled job %s failed", job, extra={"job": job})
            result = "failed"
        if result != "":
            self.runs.labels(job, result or "ok").inc()

    def _on_missed(self, event: JobEvent) -> None:
        what = "missed its start (later than jobs.misfire_grace_s)" if event.code == EVENT_JOB_MISSED else \
            "skipped: the previous run is still going"
        log.warning("scheduled job %s %s", event.job_id, what, extra={"job": event.job_id})
        self.runs.labels(event.job_id, "missed").inc()

    # -- the jobs -------------------------------------------------------------------

    def _refresh(self) -> None:
        self._reloader.check_once()  # type: ignore[union-attr]

    def _tally(self) -> None:
        stats = self._sources.stats()
        raised, resolved = stats.alert_tally.totals()
        tally = Tally(self.member, self._started_ms, int(time.time() * 1000), int(stats.scored),
                      int(stats.dead_lettered), raised, resolved, str(self._sources.model_version()))
        self._log.append(f"{self.gate.group}/tally/{self.member}", tally.to_dict())

    def _housekeeping(self) -> None:
        pruned = self._outbox.prune(self._s.retention_hours * 3600.0)
        log.info("housekeeping: %d outbox message(s) delivered over %g h ago pruned", pruned,
                 self._s.retention_hours, extra={"job": "housekeeping", "pruned": pruned})

    def _digest_due(self) -> str | None:
        """The cron fire: run the digest for the period that just came (the latest one within the grace)."""
        assert self._digest_trigger is not None
        period = latest_period(self._digest_trigger, _now(), self._s.misfire_grace_s)
        if period is None:
            return "missed"
        return self._digest(period)

    def _digest(self, period: datetime) -> str | None:
        """One digest period: owner + claim, then the group's figures into the outbox, durably."""
        name = period_name(period)
        claim = self.gate.claim("digest", name, _ms(period), int(time.time() * 1000))
        if not claim.won:
            if claim.reason == "claimed":
                log.info("digest %s already claimed by %s", name, claim.winner, extra={"job": "digest"})
            return "" if claim.reason == "done" else f"skipped_{claim.reason}"
        start = period - timedelta(hours=self._s.digest_hours)
        lookback_ms = int(2 * self._s.tally_interval_s * 1000) + 60_000
        tallies = [Tally.from_dict(r.value) for r in self._log.read(_ms(start) - lookback_ms)
                   if r.value.get("kind") == "tally" and r.key.startswith(f"{self.gate.group}/tally/")]
        counts = sum_tallies(tallies, _ms(start), _ms(period))
        doc = digest_document(self.gate.group, period, self._s.digest_hours, counts, self._sources.model_version())
        body = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
        new = self._outbox.put_notice(doc["digest_id"], "digest", body, NOTICE_FORMATS)
        self.gate.done("digest", name, int(time.time() * 1000), {"digest_id": doc["digest_id"]})
        log.info("digest %s queued (%d items scored, %d alerts raised, %d member(s))%s", doc["digest_id"],
                 counts.items_scored, doc["alerts_raised_total"], counts.members, "" if new else " (already queued)",
                 extra={"job": "digest", "digest_id": doc["digest_id"]})
        return None

    # -- ownership ------------------------------------------------------------------

    def note_assignment(self, partitions: set[int]) -> None:
        """The poll loop's current raw-topic partitions (called after each rebalance, on the loop's thread)."""
        self.ownership.update(partitions)

    def _on_gain(self) -> None:
        """This member became the owner: catch up the periods within the grace that nobody ran (a handover)."""
        if self._digest_trigger is not None and self._scheduler.running:
            self._scheduler.add_job(self._catch_up, id="digest-catch-up", name="digest-catch-up",
                                    replace_existing=True)

    def _catch_up(self) -> None:
        """Each digest period within the grace (at most ``_CATCH_UP_LIMIT``), oldest first, counted one by one."""
        assert self._digest_trigger is not None
        now = _now()
        periods = fire_times(self._digest_trigger, now - timedelta(seconds=self._s.misfire_grace_s), now,
                             limit=_CATCH_UP_LIMIT)
        for period in periods:
            if self._closing.is_set():
                return
            self._counted("digest", lambda p=period: self._digest(p))  # type: ignore[misc]
        log.info("owner of the group's jobs now: %d digest period(s) within the grace checked", len(periods),
                 extra={"job": "digest"})
