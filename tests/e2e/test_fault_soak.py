"""The short version of the soak (benchmarks/faults/soak.py --short): real Benzinga headlines and
StockNet tweets, re-stamped to the wall clock with fresh ids, stream through one `finsentry run` at
half the rate it was just measured to sustain, for 2 minutes, against the real broker; its resident
memory and the group's consumer lag are sampled, and nothing is lost or scored twice."""

from __future__ import annotations

from pathlib import Path

import pytest
from _faults import run_fault_script  # tests/e2e is on sys.path under pytest


pytestmark = pytest.mark.e2e


def test_soak_short_keeps_up_and_loses_nothing(kafka_bootstrap: str, tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    proc, figures = run_fault_script("soak.py", out, "--bootstrap", kafka_bootstrap, timeout_s=900)
    assert figures["max_rate_items_s"] > 0 and figures["rate_items_s"] == pytest.approx(
        figures["max_rate_items_s"] / 2, rel=0.01)
    assert figures["achieved_rate_items_s"] >= 0.9 * figures["rate_items_s"]  # the stream kept its pace
    assert len(figures["samples"]) >= 20 and all(s[1] > 0 for s in figures["samples"])  # RSS read all along
    assert figures["rss_start_mib"] > 0 and figures["rss_end_mib"] > 0
    # bounded lag: at half the maximum rate the daemon keeps up (a backlog would grow by ~rate x 120 s)
    assert figures["lag_max"] < figures["rate_items_s"] * 60
    assert figures["items"] >= 0.9 * figures["rate_items_s"] * 120
    assert figures["lost"] == 0 and figures["duplicate_scored_records"] == 0
    assert figures["distinct_scored"] + figures["dead_lettered_records"] == figures["items"]
    assert figures["daemon_exit"] == 0 and figures["duplicate_alerts"] == 0
    assert proc.returncode == 0, proc.stdout[-3000:]
