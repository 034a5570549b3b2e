"""Prometheus metrics of the daemon (prometheus-client), one registry per daemon.

Counters come from :class:`finsentry.daemon.DaemonStats` at scrape time (a
custom collector, so the poll loop does nothing per item); the histograms are
observed once per batch; the gauges are refreshed by the loop about once a
second (:meth:`DaemonMetrics.set_lag`) or read at scrape time.

============================================= ========= =============================================
name                                          type      meaning
============================================= ========= =============================================
finsentry_items_consumed_total                counter   raw-topic records polled
finsentry_items_scored_total                  counter   records written to the scored topic
finsentry_items_dead_lettered_total           counter   records written to the dead-letter topic
finsentry_items_late_total                    counter   scored items whose window had closed
finsentry_items_without_time_reference_total  counter   items windowed with no ingestion time to judge a
                                                        future ``published_at`` by (``Pipeline.without_time_reference``)
finsentry_batches_total                       counter   micro-batches processed
finsentry_windows_closed_total                counter   windows closed by the watermark
finsentry_alerts_raised_total                 counter   alerts this process sent to its outbox (firing + resolved)
finsentry_alerts_claimed_elsewhere_total      counter   alert messages another daemon of the group claimed first
finsentry_broker_errors_total                 counter   retriable broker errors ridden out (poll, commit, claims)
finsentry_batch_size                          histogram records per micro-batch
finsentry_batch_scoring_seconds               histogram ``Pipeline.process`` time of one batch
                                                        (decode + model + windows), seconds
finsentry_consumer_lag{topic,partition}       gauge     log end offset - consumer position, records
finsentry_windows_open                        gauge     windows held in memory
finsentry_alert_deliveries{state}             gauge     outbox delivery rows per state
finsentry_model_info{version,provider,path}   gauge     1 for the model in use (an *info* metric)
finsentry_model_reloads_total{result}         counter   hot reloads: ``swapped`` or ``refused``
============================================= ========= =============================================

The webhook delivery metrics (``alerts._metrics``) live in prometheus-client's
global registry and are served beside these by the ops server.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["DaemonMetrics"]

log = logging.getLogger(__name__)

#: Batch size buckets, records (powers of two up to the largest ``batch.max_batch``).
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
#: Batch scoring time buckets, seconds: a GPU batch (ms) up to a large CPU batch.
SCORING_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

_STAT_COUNTERS = (
    ("finsentry_items_consumed", "Raw-topic records polled.", "consumed"),
    ("finsentry_items_scored", "Records written to the scored topic.", "scored"),
    ("finsentry_items_dead_lettered", "Records written to the dead-letter topic.", "dead_lettered"),
    ("finsentry_items_late", "Scored items whose window had already closed.", "late"),
    ("finsentry_batches", "Micro-batches processed.", "batches"),
    ("finsentry_windows_closed", "Windows closed by the watermark.", "windows_closed"),
    ("finsentry_alerts_claimed_elsewhere", "Alert messages another daemon of the group claimed first (not sent "
     "here).", "alerts_claimed_elsewhere"),
    ("finsentry_broker_errors", "Retriable broker errors ridden out by a poll, a commit or an alert claim.",
     "broker_errors"),
)


class _DaemonCollector(Collector):
    """Reads the daemon's counters and state when scraped."""

    def __init__(self, source: "MetricSource", lag: Callable[[], dict[tuple[str, int], int]]) -> None:
        self._source = source
        self._lag = lag

    def collect(self) -> Iterator[Any]:
        stats = self._source.stats()
        for name, doc, attr in _STAT_COUNTERS:
            yield CounterMetricFamily(name, doc, value=float(getattr(stats, attr, 0)))
        sent = getattr(stats, "alerts_firing", 0) + getattr(stats, "alerts_resolved", 0)  # exact: stats.alerts is bounded
        yield CounterMetricFamily("finsentry_alerts_raised", "Alerts this process sent to its outbox.", value=float(sent))
        yield CounterMetricFamily(
            "finsentry_items_without_time_reference", "Items windowed with no ingestion time (no ingested_at, raw "
            "topic with CreateTime) to judge a future published_at by.", value=float(self._source.without_time_reference()))
        lag = GaugeMetricFamily("finsentry_consumer_lag", "Log end offset minus consumer position, records.",
                                labels=["topic", "partition"])
        for (topic, partition), value in sorted(self._lag().items()):
            lag.add_metric([topic, str(partition)], float(value))
        yield lag
        yield GaugeMetricFamily("finsentry_windows_open", "Windows held in memory.",
                                value=float(self._source.windows_open()))
        states = GaugeMetricFamily("finsentry_alert_deliveries", "Outbox delivery rows per state.", labels=["state"])
        for state, n in sorted(self._source.delivery_counts().items()):
            states.add_metric([state], float(n))
        yield states
        info = GaugeMetricFamily("finsentry_model_info", "1 for the model in use.",
                                 labels=["version", "provider", "path"])
        version, provider, path = self._source.model()
        info.add_metric([version, provider, path], 1.0)
        yield info


class MetricSource:
    """What the collector reads at scrape time (the daemon supplies the callables).

    Args:
        stats: returns the daemon's ``DaemonStats``.
        windows_open: returns the number of open windows.
        delivery_counts: returns outbox delivery rows per state.
        model: returns (version, execution provider, folder path) of the model in use.
        without_time_reference: returns the items windowed without an ingestion time
            (``Pipeline.without_time_reference``); None: always 0.
    """

    def __init__(self, stats: Callable[[], Any], windows_open: Callable[[], int],
                 delivery_counts: Callable[[], dict[str, int]], model: Callable[[], tuple[str, str, str]],
                 without_time_reference: Callable[[], int] | None = None) -> None:
        self.stats = stats
        self.windows_open = windows_open
        self.delivery_counts = delivery_counts
        self.model = model
        self.without_time_reference = without_time_reference or (lambda: 0)


class DaemonMetrics:
    """The daemon's metrics in their own ``CollectorRegistry`` (one per daemon instance).

    Args:
        source: what to read at scrape time.
    """

    def __init__(self, source: MetricSource) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self._lag: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()
        self.batch_size = Histogram("finsentry_batch_size", "Records per micro-batch.",
                                    buckets=BATCH_BUCKETS, registry=self.registry)
        self.scoring_seconds = Histogram("finsentry_batch_scoring_seconds",
                                         "Pipeline.process time of one batch (decode + model + windows), seconds.",
                                         buckets=SCORING_BUCKETS, registry=self.registry)
        self.reloads = Counter("finsentry_model_reloads", "Hot model reloads by result (swapped, refused).",
                               ["result"], registry=self.registry)
        for result in ("swapped", "refused"):
            self.reloads.labels(result)
        self.registry.register(_DaemonCollector(source, self.lag))

    def observe_batch(self, size: int, seconds: float) -> None:
        """Record one processed batch: ``size`` records in ``seconds``."""
        self.batch_size.observe(size)
        self.scoring_seconds.observe(seconds)

    def set_lag(self, lag: dict[tuple[str, int], int]) -> None:
        """Replace the per-partition lag: {(topic, partition): records behind}."""
        with self._lock:
            self._lag = dict(lag)

    def lag(self) -> dict[tuple[str, int], int]:
        """The last per-partition lag set."""
        with self._lock:
            return dict(self._lag)

    def value(self, name: str, **labels: str) -> float | None:
        """A sample's current value, or None (e.g. ``value("finsentry_model_reloads_total", result="refused")``)."""
        return self.registry.get_sample_value(name, labels)
