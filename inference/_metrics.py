"""Prometheus metric of the loaded model: ``finsentry_model_info{provider, model_version} 1``.

Registered once in prometheus-client's global registry (served by the
daemon's /metrics endpoint when one is running), so dashboards and alerts
can tell a CPU fallback from a CUDA run.
"""

from __future__ import annotations

import threading

from prometheus_client import REGISTRY, Gauge

__all__ = ["model_info", "record_provider"]

_LOCK = threading.Lock()
_GAUGE: list[Gauge] = []


def model_info() -> Gauge:
    """The ``finsentry_model_info`` gauge (created in the global registry on first use)."""
    with _LOCK:
        if not _GAUGE:
            _GAUGE.append(Gauge("finsentry_model_info", "Loaded model: 1 per (provider, model_version) in use",
                                ["provider", "model_version"], registry=REGISTRY))
        return _GAUGE[0]


def record_provider(provider: str, model_version: str) -> None:
    """Set ``finsentry_model_info{provider=..., model_version=...}`` to 1."""
    model_info().labels(provider=provider, model_version=model_version).set(1)
