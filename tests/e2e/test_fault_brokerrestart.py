"""The short version of the broker restart fault run (benchmarks/faults/brokerrestart.py --short):
real Benzinga items are consumed by `finsentry run` while its (own, local) Kafka broker is stopped
(the JVM ends; `broker.sh halt`) for 30 s and started again on the same data dir and ports
(`broker.sh resume`); the daemon reconnects by itself, scores the items written after the restart,
and no item is lost."""

from __future__ import annotations

from pathlib import Path

import pytest
from _faults import run_fault_script  # tests/e2e is on sys.path under pytest


pytestmark = pytest.mark.e2e


def test_broker_stopped_30_s_and_restarted_daemon_reconnects_and_loses_nothing(tmp_path: Path) -> None:
    out = tmp_path / "restart.json"
    proc, figures = run_fault_script("brokerrestart.py", out, "--idle-exit", "5", timeout_s=900)
    assert figures["daemon_exit"] == 0, figures["daemon_log_tail"]
    assert figures["stopped_s"] >= 30 and 0 < figures["scored_at_halt"] < 1000  # stopped mid-stream
    assert figures["reconnect_s"] is not None  # it scored again after the restart, by itself
    assert figures["items"] == 1200 and figures["lost"] == 0  # incl. the 200 written after the restart
    assert figures["distinct_scored"] + figures["dead_lettered_records"] == 1200
    assert figures["conflicting_labels"] == 0
    assert proc.returncode == 0, proc.stdout[-3000:]
