"""The short version of the broker fault run (benchmarks/faults/brokerfreeze.py --short): real
Benzinga items are consumed by `finsentry run` while its (own, local) Kafka broker is frozen with
SIGSTOP for 30 s and resumed; the daemon carries on by itself and no item is lost."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from finsentry.config import REPO_ROOT

pytestmark = pytest.mark.e2e


def test_broker_frozen_30_s_daemon_carries_on_and_loses_nothing(tmp_path: Path) -> None:
    out = tmp_path / "freeze.json"
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "faults" / "brokerfreeze.py"), "--short",
         "--out", str(out), "--idle-exit", "5"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=900,
    )
    assert out.is_file(), proc.stdout[-3000:] + proc.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert figures["daemon_exit"] == 0, figures["daemon_log_tail"]
    assert figures["frozen_s"] >= 30 and 0 < figures["scored_at_freeze"] < 1000  # frozen mid-stream
    assert figures["items"] == 1000 and figures["lost"] == 0
    assert figures["distinct_scored"] + figures["dead_lettered_records"] >= 1000
    assert figures["conflicting_labels"] == 0
    assert proc.returncode == 0, proc.stdout[-3000:]
