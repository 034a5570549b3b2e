"""The daemon's operations side: ops server, metrics, hot reload, wired to one :class:`Daemon`.

The daemon calls four methods, all from its poll loop's thread:
:meth:`DaemonOps.start` (once), :meth:`DaemonOps.tick` (before each batch:
swap a reloaded model in, refresh lag and the loop heartbeat),
:meth:`DaemonOps.batch_done` (after ``Pipeline.process``) and
:meth:`DaemonOps.close`. Everything else runs on the ops server's thread and
only reads; the reloader's ``check_once`` runs on the scheduler's threads
(:mod:`finsentry.jobs`).
"""

from __future__ import annotations

import logging
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import REGISTRY

from finsentry.ops._metrics import DaemonMetrics, MetricSource
from finsentry.ops._reload import ModelReloader
from finsentry.ops._server import OpsServer

if TYPE_CHECKING:
    from finsentry.daemon import Daemon

__all__ = ["DaemonOps", "broker_reachable"]

log = logging.getLogger(__name__)

_LAG_EVERY_S = 1.0


def broker_reachable(bootstrap: str, timeout_s: float = 1.0) -> tuple[bool, str]:
    """Whether a TCP connection to one of the ``host:port[,host:port]`` bootstrap servers opens.

    Returns:
        (reachable, the address that answered or the last error).
    """
    error = "no bootstrap address"
    for address in bootstrap.split(","):
        host, _, port = address.strip().rpartition(":")
        try:
            with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout_s):
                return True, address.strip()
        except (OSError, ValueError) as exc:
            error = f"{address.strip()}: {exc}"
    return False, error


class DaemonOps:
    """Metrics, health/readiness endpoint and hot model reload of one daemon.

    Args:
        daemon: the daemon (its ``settings``, ``stats``, ``pipeline``,
            ``consumer`` and ``outbox`` are read).
    """

    def __init__(self, daemon: "Daemon") -> None:
        self._daemon = daemon
        self.settings = daemon.settings.ops
        self.metrics = DaemonMetrics(MetricSource(
            stats=lambda: daemon.stats,
            windows_open=lambda: self._windows_open,  # read on the loop thread: the windows are not thread-safe
            delivery_counts=daemon.outbox.counts,
            model=self._model_info,
            without_time_reference=lambda: daemon.pipeline.without_time_reference,
        ))
        self.server: OpsServer | None = None
        self.reloader: ModelReloader | None = None
        self._heartbeat = time.monotonic()
        self._lag_at = 0.0
        self._assigned = 0
        self._windows_open = 0

    # -- loop side -------------------------------------------------------------

    def start(self) -> None:
        """Start the ops server (``ops.port`` > 0); make the reloader (a registry, jobs on, ``jobs.refresh_interval_s`` > 0)."""
        s = self.settings
        if s.port:
            self.server = OpsServer(s.host, s.port, self.liveness, {
                "consumer_assigned": self._ready_assigned,
                "model_loaded": self._ready_model,
                "broker_reachable": lambda: broker_reachable(self._daemon.settings.kafka.bootstrap),
            }, registries=(self.metrics.registry, REGISTRY)).start()
        self.reloader = self._make_reloader()  # checked by the scheduler's model-refresh job (finsentry.jobs)

    def tick(self) -> None:
        """Between batches: swap in a checked new model, refresh the heartbeat and (1/s) lag and open windows."""
        self._heartbeat = time.monotonic()
        if self.reloader is not None:
            scorer = self.reloader.take()
            if scorer is not None:
                old = self._daemon.pipeline.scorer.version
                self._daemon.pipeline.scorer = scorer  # type: ignore[assignment]
                self.metrics.reloads.labels("swapped").inc()
                log.info("model swapped between batches: %s -> %s on %s", old, scorer.version,  # type: ignore[attr-defined]
                         scorer.provider, extra={"model_version": scorer.version, "reload": "swapped"})  # type: ignore[attr-defined]
        if self._heartbeat - self._lag_at >= _LAG_EVERY_S:
            self._lag_at = self._heartbeat
            self._refresh_state()

    def batch_done(self, size: int, seconds: float) -> None:
        """Record one processed batch of ``size`` records that took ``seconds``."""
        self.metrics.observe_batch(size, seconds)

    def close(self) -> None:
        """Stop the server (idempotent)."""
        if self.server is not None:
            self.server.close()
            self.server = None

    # -- probes (ops server thread) ----------------------------------------------

    def liveness(self) -> tuple[bool, str]:
        """Alive while the poll loop turned within ``ops.stall_s`` seconds."""
        age = time.monotonic() - self._heartbeat
        if age > self.settings.stall_s:
            return False, f"poll loop stalled for {age:.0f} s (ops.stall_s = {self.settings.stall_s:g})"
        return True, "ok"

    def _ready_assigned(self) -> tuple[bool, str]:
        return self._assigned > 0, f"{self._assigned} partition(s) assigned"

    def _ready_model(self) -> tuple[bool, str]:
        version, provider, _ = self._model_info()
        return bool(version), f"{version} on {provider}"

    def _model_info(self) -> tuple[str, str, str]:
        scorer: Any = self._daemon.pipeline.scorer
        folder = getattr(scorer, "folder", None)
        return str(scorer.version), str(scorer.provider), str(getattr(folder, "path", ""))

    # -- helpers -----------------------------------------------------------------

    def _refresh_state(self) -> None:
        consumer = self._daemon.consumer
        lag: dict[tuple[str, int], int] = {}
        assignment = consumer.assignment()
        for tp in assignment:
            high = consumer.highwater(tp)
            if high is None:
                continue
            try:
                lag[(tp.topic, tp.partition)] = max(0, high - consumer.position(tp, timeout_ms=200))
            except Exception:  # position unknown right after a rebalance
                continue
        self._assigned = len(assignment)
        self.metrics.set_lag(lag)
        self._windows_open = int(getattr(self._daemon.pipeline.windows, "open_windows", 0))

    def _make_reloader(self) -> ModelReloader | None:
        m = self._daemon.settings.model
        registry = Path(m.path)
        scorer: Any = self._daemon.pipeline.scorer
        folder = getattr(scorer, "folder", None)
        jobs = self._daemon.settings.jobs
        if not jobs.enabled or jobs.refresh_interval_s <= 0 or folder is None:
            return None  # off, or a scorer that was handed in (tests, tools) rather than loaded from model.path
        if not (registry / "DEFAULT").is_file():
            log.info("hot model reload off: model.path %s is not a registry (no DEFAULT file)", registry)
            return None

        def load(path: Path) -> object:
            from inference import Scorer

            return Scorer(path, m.device, m.intra_op_threads, **({"sub_batch": m.sub_batch} if m.sub_batch else {}))

        def refused(name: str, reason: str) -> None:
            self.metrics.reloads.labels("refused").inc()

        return ModelReloader(registry, Path(folder.path).name, load, folder.topic_labels, on_refused=refused)
