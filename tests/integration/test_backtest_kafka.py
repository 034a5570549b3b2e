"""``finsentry backtest --via-kafka`` on a real broker: the same alerts as in process, on a real StockNet slice.

The in-process run scores the slice with the real model (into a fresh score
cache); the Kafka run replays the items with their original timestamps into
a 4-partition topic and runs :class:`finsentry.daemon.Daemon` until idle,
scoring through the same cache. Both alert lists must be byte-identical.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from finsentry.cli import main
from finsentry.config import REPO_ROOT
from finsentry.demo import default_data_dir

pytestmark = pytest.mark.integration

STOCKNET = default_data_dir() / "stocknet"


@pytest.mark.skipif(not STOCKNET.is_dir(), reason=f"StockNet data not found at {STOCKNET} (set FINSENTRY_DATA_DIR)")
def test_via_kafka_alerts_are_identical_to_in_process(kafka_bootstrap: str, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {"WINDOWS__SIZE_MINUTES": "60", "WINDOWS__ALLOWED_LATENESS_MINUTES": "10",
                       "DETECTOR__KIND": "threshold",  # a one-week slice is too short for baselines
                       "DETECTOR__MIN_NEGATIVE": "1", "DETECTOR__MIN_NEG_SHARE": "0.3",
                       "KAFKA__PARTITIONS": "4", "MODEL__PATH": str(REPO_ROOT / "models"),
                       "MODEL__DEVICE": "cpu"}.items():
        monkeypatch.setenv(f"FINSENTRY_{key}", value)
    out = tmp_path / "out"
    code = main(["backtest", str(STOCKNET), "--from", "2014-01-02", "--to", "2014-01-09", "--out", str(out),
                 "--cache-dir", str(tmp_path / "cache"), "--via-kafka", "--bootstrap", kafka_bootstrap,
                 "--no-report"])
    summary = json.loads((out / "summary.json").read_text())
    assert code == 0, summary.get("via_kafka")
    assert summary["feed"]["items"] > 300 and summary["model"]["scored_now"] == summary["feed"]["items"]
    assert summary["pipeline"]["alerts"] >= 3 and summary["pipeline"]["late"] == 0
    via = summary["via_kafka"]
    assert via == {"alerts": summary["pipeline"]["alerts"], "identical": True, "only_in_process": [],
                   "only_via_kafka": []}
    assert (out / "alerts_via_kafka.jsonl").read_bytes() == (out / "alerts.jsonl").read_bytes()
