"""Prometheus metrics of webhook delivery (prometheus-client), labelled by endpoint name.

=============================================== ========= ==========================================
name                                            type      meaning
=============================================== ========= ==========================================
finsentry_webhook_delivered_total               counter   notifications answered 2xx
finsentry_webhook_retried_total                 counter   failed attempts that will be tried again
finsentry_webhook_failed_total{reason}          counter   failed attempts, any fate; reason: http_5xx,
                                                          http_4xx, http_429, http_410, http_other,
                                                          timeout, connect_error
finsentry_webhook_dead_lettered_total           counter   deliveries moved to the dead letters
finsentry_webhook_endpoint_disabled             gauge     1 while the endpoint is disabled (HTTP 410)
finsentry_webhook_delivery_latency_seconds      histogram from ``Outbox.put`` to the 2xx answer
=============================================== ========= ==========================================

The metrics are registered once per registry; ``default_metrics()`` uses
prometheus-client's global registry (served by the /metrics endpoint of
another component). Tests pass their own ``CollectorRegistry``.
"""

from __future__ import annotations

import threading

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["DeliveryMetrics", "default_metrics"]

#: Latency buckets, seconds: sub-second local delivery up to the 10-hour retries.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 7200, 36000, 100000)


class DeliveryMetrics:
    """The delivery metrics, registered in ``registry``.

    Raises:
        ValueError: when these metric names are already registered there
            (use ``default_metrics()`` for the global registry).
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        reg = REGISTRY if registry is None else registry
        self.registry = reg
        self.delivered = Counter("finsentry_webhook_delivered", "Notifications answered 2xx.",
                                 ["endpoint"], registry=reg)
        self.retried = Counter("finsentry_webhook_retried", "Failed attempts that will be retried.",
                               ["endpoint"], registry=reg)
        self.failed = Counter("finsentry_webhook_failed", "Failed delivery attempts.",
                              ["endpoint", "reason"], registry=reg)
        self.dead_lettered = Counter("finsentry_webhook_dead_lettered", "Deliveries moved to the dead letters.",
                                     ["endpoint"], registry=reg)
        self.disabled = Gauge("finsentry_webhook_endpoint_disabled", "1 while the endpoint is disabled (HTTP 410).",
                              ["endpoint"], registry=reg)
        self.latency = Histogram("finsentry_webhook_delivery_latency_seconds",
                                 "Seconds from queueing in the outbox to the 2xx answer.",
                                 ["endpoint"], buckets=LATENCY_BUCKETS, registry=reg)

    def value(self, name: str, **labels: str) -> float:
        """A sample's current value (0.0 when absent), e.g. ``value("finsentry_webhook_delivered_total", endpoint="x")``."""
        got = self.registry.get_sample_value(name, labels)
        return 0.0 if got is None else got


_DEFAULT: DeliveryMetrics | None = None
_DEFAULT_LOCK = threading.Lock()


def default_metrics() -> DeliveryMetrics:
    """The process-wide metrics in prometheus-client's global registry (created once)."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            _DEFAULT = DeliveryMetrics()
        return _DEFAULT
