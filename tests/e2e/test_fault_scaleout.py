"""The short version of the scale-out fault run (benchmarks/faults/scaleout.py --short): real
Benzinga items stream through two `finsentry run` daemons in one group on the real broker; one is
killed with SIGKILL mid-stream, the other takes its partitions over; compared with a one-daemon
reference run, no alert is lost or received twice and no item is lost."""

from __future__ import annotations

from pathlib import Path

import pytest
from _faults import run_fault_script  # tests/e2e is on sys.path under pytest


pytestmark = pytest.mark.e2e


def test_scaleout_short_one_of_two_killed_loses_and_duplicates_no_alert(kafka_bootstrap: str, tmp_path: Path) -> None:
    out = tmp_path / "scaleout.json"
    proc, figures = run_fault_script("scaleout.py", out, "--bootstrap", kafka_bootstrap, "--idle-exit", "5", timeout_s=1200)
    assert figures["items"] == 1000
    assert figures["reference_alerts"] >= 5, "too few alerts for the comparison to mean anything"
    assert figures["items_labelled_differently"] == 0  # the comparison is not blurred by batch-dependent scores
    assert figures["lost"] == 0 and figures["duplicate_alerts"] == 0, figures
    assert figures["unexpected_alerts"] == 0, figures
    assert figures["items_lost"] == 0 and figures["conflicting_labels"] == 0
    assert figures["scored_by_a_at_kill"] + figures["scored_by_b_at_kill"] >= 1  # killed mid-stream
    assert proc.returncode == 0, proc.stdout[-3000:]
