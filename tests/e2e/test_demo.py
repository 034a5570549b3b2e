"""``finsentry demo`` (the README's first command) on a slice of its real feed:
it starts and removes its own broker, and what the receiver got matches what
the daemon sent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from finsentry.config import load_settings
from finsentry.demo import run_demo

pytestmark = pytest.mark.e2e


def test_demo_runs_end_to_end_and_cleans_up(tmp_path: Path) -> None:
    result = run_demo(load_settings(), workdir=tmp_path / "demo", limit=1500)
    assert result.stats.scored == 1500 and result.stats.consumed >= 1500  # consumed also counts heartbeats
    assert result.alerts_received == len(result.stats.alerts)
    scored = result.scored_path.read_text().splitlines()
    assert len(scored) == 1500 and {"item_id", "label", "p_negative"} <= json.loads(scored[0]).keys()
    alerts = result.alerts_path.read_text().splitlines() if result.alerts_path.exists() else []
    assert len(alerts) == result.alerts_received
    assert not (tmp_path / "demo" / "broker").exists(), "the demo's broker run dir must be removed"
