"""Delivery workers: one thread per endpoint, each draining its own queue of the outbox.

A worker takes its endpoint's earliest due delivery, POSTs the frozen body
with fresh Standard Webhooks headers, and records the outcome in the outbox:

- 2xx: delivered (latency observed from queueing to the answer); the
  endpoint's deliveries waiting out a retry delay become due now
  (``Outbox.retry_failed_now``): the receiver is back, so an alert that
  failed during an outage goes within seconds of its return rather than
  after the rest of its backoff (up to hours), oldest first;
- 410 Gone: the endpoint is disabled (persistently; logged at ERROR, gauge
  ``finsentry_webhook_endpoint_disabled`` = 1) and its deliveries are dead-lettered;
- other 4xx (but 408 and 429): that delivery is dead-lettered, not retried;
- 5xx, 408, 429, 1xx/3xx, timeouts, connection errors: retried after
  ``RetryPolicy.next_delay`` (``Retry-After`` honoured), dead-lettered after the last attempt.

Since each endpoint has its own thread, HTTP client and queue, a slow or
dead endpoint delays nobody else, and the daemon's poll loop only ever
writes to the outbox.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import threading
import time
from datetime import datetime, timezone
from importlib import metadata
from typing import IO

import httpx

from ._alert import Alert
from ._endpoint import Endpoint
from ._formats import render, render_notice
from ._metrics import DeliveryMetrics, default_metrics
from ._outbox import Outbox, OutboxError, PendingDelivery
from ._retry import Outcome, RetryPolicy, classify_status, parse_retry_after
from ._signing import Signer

__all__ = ["DeliveryService", "EndpointWorker"]

log = logging.getLogger(__name__)


def _version() -> str:
    try:
        return metadata.version("finsentry")
    except metadata.PackageNotFoundError:
        return "0+unknown"


#: ``user-agent`` of every delivery request.
USER_AGENT = f"finsentry/{_version()}"


def _failure_label(status: int) -> str:
    if status >= 500:
        return "http_5xx"
    if status == 429:
        return "http_429"
    if status == 410:
        return "http_410"
    if 400 <= status < 500:
        return "http_4xx"
    return "http_other"


class EndpointWorker:
    """The delivery thread of one endpoint.

    Args:
        endpoint: where to deliver.
        outbox: the queue (shared with the other workers).
        policy: the retry schedule.
        metrics: where to count.
        poll_s: longest sleep between looks at the queue, seconds (the
            outbox also wakes the worker on ``put``/``redeliver``).
    """

    def __init__(
        self, endpoint: Endpoint, outbox: Outbox, policy: RetryPolicy, metrics: DeliveryMetrics, poll_s: float = 1.0
    ) -> None:
        self.endpoint = endpoint
        self._outbox = outbox
        self._policy = policy
        self._metrics = metrics
        self._poll_s = poll_s
        self._signer = Signer(endpoint.secrets)
        self._client = httpx.Client(
            timeout=httpx.Timeout(endpoint.read_timeout_s, connect=endpoint.connect_timeout_s),
            follow_redirects=False,
            headers={"user-agent": USER_AGENT},
        )
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.busy = False
        self._thread = threading.Thread(target=self._run, name=f"webhook-{endpoint.name}", daemon=True)

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def wake(self) -> None:
        """Look at the queue now (something was queued)."""
        self._wake.set()

    def stop(self) -> None:
        """Ask the thread to finish after the attempt in hand."""
        self._stop.set()
        self._wake.set()

    def join(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` seconds for the thread; True when it ended (or never started)."""
        if self._thread.ident is None:
            self._client.close()
            return True
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    # -- the loop -------------------------------------------------------------------

    def _run(self) -> None:
        name = self.endpoint.name
        try:
            while not self._stop.is_set():
                try:
                    self._step()
                except Exception as exc:  # the thread must outlive any error: it is the endpoint's only one
                    if self._stop.is_set():
                        break
                    if isinstance(exc, (OutboxError, sqlite3.Error)):
                        log.error("webhook %s: outbox error, will try again: %s", name, exc)
                    else:
                        log.exception("webhook %s: unexpected error, will try again", name)
                    self._sleep(self._poll_s)
        finally:
            self._client.close()

    def _sleep(self, seconds: float) -> None:
        self._wake.wait(max(0.0, seconds))
        self._wake.clear()

    def _step(self) -> None:
        ep = self.endpoint
        if self._outbox.disabled_reason(ep.id) is not None:
            self._metrics.disabled.labels(ep.name).set(1)
            self._drop_pending()
            self._sleep(self._poll_s)
            return
        pending = self._outbox.next_pending(ep.id)
        now = time.time()
        if pending is None or pending.next_at > now:
            self._sleep(self._poll_s if pending is None else min(self._poll_s, pending.next_at - now))
            return
        self.busy = True
        try:
            self._attempt(pending)
        except (OutboxError, sqlite3.Error):
            raise
        except Exception as exc:  # a bug for this row must not block the queue behind it
            log.exception("webhook %s: cannot deliver %s; dead-lettered", ep.name, pending.msg_id)
            self._dead(pending, None, f"internal error: {type(exc).__name__}", "internal error")
        finally:
            self.busy = False

    def _drop_pending(self) -> None:
        ep = self.endpoint
        reason = self._outbox.disabled_reason(ep.id) or "endpoint disabled"
        n = self._outbox.dead_letter_pending(ep.id, f"endpoint disabled: {reason}")
        if n:
            self._metrics.dead_lettered.labels(ep.name).inc(n)
            log.error("webhook %s is disabled (%s): %d delivery(ies) dead-lettered", ep.name, reason, n)

    # -- one attempt ------------------------------------------------------------------

    def _render(self, alerts: list[Alert]) -> bytes:
        ep = self.endpoint
        return render(ep.format, alerts, receiver=ep.name, external_url=ep.external_url)

    def _render_notice(self, doc: bytes) -> bytes:
        return render_notice(self.endpoint.format, doc)

    def _attempt(self, pending: PendingDelivery) -> None:
        body = self._outbox.body_for(pending, self.endpoint.group_wait_s, self._render,
                                     render_notice=self._render_notice)
        headers = {"content-type": "application/json", **self._signer.headers(pending.msg_id, body)}
        try:
            response = self._client.post(self.endpoint.url, content=body, headers=headers)
        except httpx.TimeoutException as exc:
            self._retry_or_dead(pending, None, "timeout", f"timeout ({type(exc).__name__})", None)
            return
        except httpx.TransportError as exc:
            self._retry_or_dead(pending, None, "connect_error", f"{type(exc).__name__}: {exc}"[:300], None)
            return
        self._answered(pending, response)

    def _answered(self, pending: PendingDelivery, response: httpx.Response) -> None:
        ep, status = self.endpoint, response.status_code
        outcome = classify_status(status)
        if outcome is Outcome.DELIVERED:
            self._outbox.mark_delivered(pending, status)
            self._metrics.delivered.labels(ep.name).inc()
            self._metrics.latency.labels(ep.name).observe(max(0.0, time.time() - pending.created_at))
            log.debug("webhook %s: delivered %s (HTTP %d)", ep.name, pending.msg_id, status)
            n = self._outbox.retry_failed_now(ep.id)
            if n:
                log.info("webhook %s answers again: %d delivery(ies) waiting to retry are due now", ep.name, n)
            return
        self._metrics.failed.labels(ep.name, _failure_label(status)).inc()
        if outcome is Outcome.DISABLE:
            self._disable(pending)
        elif outcome is Outcome.GIVE_UP:
            self._dead(pending, status, f"HTTP {status}", f"HTTP {status}: refused by the receiver, not retried")
        else:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            self._retry_or_dead(pending, status, None, f"HTTP {status}", retry_after)

    def _retry_or_dead(
        self, pending: PendingDelivery, status: int | None, label: str | None, error: str, retry_after_s: float | None
    ) -> None:
        ep = self.endpoint
        if label is not None:
            self._metrics.failed.labels(ep.name, label).inc()
        attempts = pending.attempts + 1
        delay = self._policy.next_delay(attempts, retry_after_s)
        if delay is None:
            self._dead(pending, status, error, f"{attempts} attempt(s) failed, the last: {error}")
            return
        self._outbox.mark_retry(pending, time.time() + delay, status, error)
        self._metrics.retried.labels(ep.name).inc()
        log.warning("webhook %s: attempt %d/%d of %s failed: %s; next in %.1f s",
                    ep.name, attempts, self._policy.attempts, pending.msg_id, error, delay)

    def _dead(self, pending: PendingDelivery, status: int | None, error: str, reason: str) -> None:
        self._outbox.mark_dead(pending, status, error, reason)
        self._metrics.dead_lettered.labels(self.endpoint.name).inc()
        log.error("webhook %s: %s dead-lettered: %s (see `finsentry alerts list --dead`)",
                  self.endpoint.name, pending.msg_id, reason)

    def _disable(self, pending: PendingDelivery) -> None:
        ep = self.endpoint
        when = datetime.now(timezone.utc).isoformat(timespec="seconds")
        reason = f"HTTP 410 Gone at {when}"
        self._outbox.mark_dead(pending, 410, "HTTP 410", f"endpoint disabled: {reason}")
        self._outbox.disable_endpoint(ep.id, reason)
        self._metrics.dead_lettered.labels(ep.name).inc()
        self._metrics.disabled.labels(ep.name).set(1)
        log.error("webhook %s answered 410 Gone: endpoint DISABLED, its deliveries go to the dead letters "
                  "(re-enable with `finsentry alerts enable %s`)", ep.name, ep.name)


class DeliveryService:
    """The delivery workers of an outbox's endpoints, started and stopped together.

    The service owns ``outbox`` and closes it in ``close``. While started it
    holds an exclusive lock on ``<outbox>.lock`` so that two processes never
    deliver from one outbox file.

    Args:
        outbox: the queue; its ``endpoints`` get one worker each.
        policy: the retry schedule (default: Standard Webhooks, full jitter).
        metrics: where to count (default: the global registry).
        poll_s: longest sleep of an idle worker, seconds (a cross-process
            ``finsentry alerts redeliver`` is noticed within it).

    Raises:
        ValueError: when two endpoints have the same name (metrics and
            ``finsentry alerts enable`` address endpoints by name).
    """

    def __init__(
        self,
        outbox: Outbox,
        policy: RetryPolicy | None = None,
        metrics: DeliveryMetrics | None = None,
        poll_s: float = 1.0,
    ) -> None:
        names = [ep.name for ep in outbox.endpoints]
        if len(set(names)) != len(names):
            raise ValueError(f"webhook endpoint names must be unique, got {sorted(names)}")
        self.outbox = outbox
        self.policy = policy or RetryPolicy()
        self.metrics = metrics or default_metrics()
        self.workers = [EndpointWorker(ep, outbox, self.policy, self.metrics, poll_s) for ep in outbox.endpoints]
        self._lock_file: IO[str] | None = None
        self._started = False
        outbox.subscribe(self._wake_all)

    def _wake_all(self) -> None:
        for worker in self.workers:
            worker.wake()

    def _take_lock(self) -> None:
        path = self.outbox.path.with_name(self.outbox.path.name + ".lock")
        fh = open(path, "a+")  # noqa: SIM115 (held until close)
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            raise OutboxError(
                f"outbox {self.outbox.path} is in use by another finsentry process (lock {path}); "
                "give each daemon its own webhooks.outbox_path"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        self._lock_file = fh

    def start(self) -> "DeliveryService":
        """Lock the outbox, make pending deliveries due now, start the workers; returns self.

        Raises:
            OutboxError: another process delivers from this outbox.
            RuntimeError: when already started.
        """
        if self._started:
            raise RuntimeError("DeliveryService is already started")
        if self.workers:
            self._take_lock()
        for worker in self.workers:
            ep = worker.endpoint
            self.metrics.disabled.labels(ep.name).set(1 if self.outbox.disabled_reason(ep.id) else 0)
            n = self.outbox.reschedule_pending(ep.id)
            if n:
                log.info("webhook %s: %d undelivered alert(s) from the outbox are due now", ep.name, n)
            worker.start()
        self._started = True
        return self

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no endpoint has a due delivery or an attempt in flight.

        Deliveries scheduled for a later retry do not count.

        Returns:
            True when idle within ``timeout_s`` seconds, else False.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            if all(not w.busy and self.outbox.due_count(w.endpoint.id) == 0 for w in self.workers):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)

    def close(self, drain_timeout_s: float = 0.0) -> None:
        """Stop the workers and close the outbox (idempotent).

        Args:
            drain_timeout_s: first wait up to this many seconds for the due
                deliveries to be attempted (``wait_idle``); what is left stays
                in the outbox for the next start.
        """
        if self._started and drain_timeout_s > 0 and not self.wait_idle(drain_timeout_s):
            log.warning("webhook delivery: stopping with due deliveries left in %s", self.outbox.path)
        for worker in self.workers:
            worker.stop()
        deadline = time.monotonic() + 2.0
        for worker in self.workers:
            if not worker.join(max(0.0, deadline - time.monotonic())):
                log.warning("webhook %s: attempt still in flight at shutdown; it stays queued",
                            worker.endpoint.name)
        self.outbox.close()
        if self._lock_file is not None:
            self._lock_file.close()  # releases the flock
            self._lock_file = None
        self._started = False
