"""The short version of the receiver-down fault run (benchmarks/faults/receiverdown.py --short):
`finsentry run` raises alerts from real Benzinga items (threshold detector) while the webhook
receiver (a real HTTP server verifying signatures) is down; once it is back, every alert arrives
exactly once, within seconds rather than after the retry schedule's backoff."""

from __future__ import annotations

from pathlib import Path

import pytest
from _faults import run_fault_script  # tests/e2e is on sys.path under pytest


pytestmark = pytest.mark.e2e


def test_receiver_down_then_back_gets_every_alert_once_and_soon(kafka_bootstrap: str, tmp_path: Path) -> None:
    out = tmp_path / "rdown.json"
    proc, figures = run_fault_script("receiverdown.py", out, "--bootstrap", kafka_bootstrap, timeout_s=900)
    assert figures["down_s"] >= 20 and figures["raised_while_down"] > 0
    assert figures["failed_attempts_while_down"] >= figures["raised_while_down"]  # they were tried and failed
    assert figures["delivered"] == figures["alerts_raised"] and figures["undelivered"] == 0
    assert figures["duplicates"] == 0 and figures["rejected_signatures"] == 0 and figures["dead_lettered"] == 0
    assert figures["last_delivery_after_return_s"] < 30  # soon after the return, whatever the backoff
    assert figures["daemon_exit"] == 0
    assert proc.returncode == 0, proc.stdout[-3000:]
