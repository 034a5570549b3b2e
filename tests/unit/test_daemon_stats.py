"""DaemonStats holds no growing list: a daemon runs for months (the soak, benchmarks/faults/soak.py)."""

from __future__ import annotations

from finsentry.daemon import DaemonStats


def test_alert_history_is_bounded_by_default() -> None:
    stats = DaemonStats()
    assert stats.alerts.maxlen == 10_000
    for i in range(10_005):
        stats.alerts.append(i)  # type: ignore[arg-type]  # the container is what is checked
    assert len(stats.alerts) == 10_000 and stats.alerts[0] == 5  # the oldest go
    assert stats.latency_ms.maxlen == 100_000
    assert (stats.alerts_firing, stats.alerts_resolved) == (0, 0)
