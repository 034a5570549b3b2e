"""The short version of the broker fault run (benchmarks/faults/brokerfreeze.py --short): real
Benzinga items are consumed by `finsentry run` while its (own, local) Kafka broker is frozen with
SIGSTOP for 30 s and resumed; the daemon carries on by itself and no item is lost."""

from __future__ import annotations

from pathlib import Path

import pytest
from _faults import run_fault_script  # tests/e2e is on sys.path under pytest


pytestmark = pytest.mark.e2e


def test_broker_frozen_30_s_daemon_carries_on_and_loses_nothing(tmp_path: Path) -> None:
    out = tmp_path / "freeze.json"
    proc, figures = run_fault_script("brokerfreeze.py", out, "--idle-exit", "5", timeout_s=900)
    assert figures["daemon_exit"] == 0, figures["daemon_log_tail"]
    assert figures["frozen_s"] >= 30 and 0 < figures["scored_at_freeze"] < 1000  # frozen mid-stream
    assert figures["items"] == 1000 and figures["lost"] == 0
    assert figures["distinct_scored"] + figures["dead_lettered_records"] >= 1000
    assert figures["conflicting_labels"] == 0
    assert proc.returncode == 0, proc.stdout[-3000:]
