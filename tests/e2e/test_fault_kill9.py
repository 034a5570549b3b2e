"""The short version of the kill -9 fault run (benchmarks/faults/kill9.py --short):
real Benzinga items stream through `finsentry run` daemons killed with SIGKILL
three times against the real broker; no item is lost, no alert is received twice."""

from __future__ import annotations

from pathlib import Path

import pytest
from _faults import run_fault_script  # tests/e2e is on sys.path under pytest


pytestmark = pytest.mark.e2e


def test_kill9_short_loses_nothing_and_duplicates_no_alert(kafka_bootstrap: str, tmp_path: Path) -> None:
    out = tmp_path / "kill9.json"
    proc, figures = run_fault_script("kill9.py", out, "--bootstrap", kafka_bootstrap, "--idle-exit", "5", timeout_s=900)
    assert figures["kills"] == 3 and len(figures["kills_at_s"]) == 3
    assert figures["items"] == 1500 and figures["raw_records"] == 1500
    assert figures["lost"] == 0
    assert figures["distinct_scored"] + figures["dead_lettered_records"] >= 1500
    assert figures["conflicting_labels"] == 0
    assert figures["duplicate_alerts"] == 0 and figures["distinct_alerts"] == figures["alerts_received"]
    assert proc.returncode == 0, proc.stdout[-3000:]
