"""The short version of the malformed-records fault run (benchmarks/faults/malformed.py
--short): 600 fuzzed records (bad UTF-8, truncated JSON, wrong types, missing fields,
900 KB fields, 100,000-deep nesting, non-objects, tombstones, naive times) among 600
real items, through one `finsentry run` against the real broker."""

from __future__ import annotations

from pathlib import Path

import pytest
from _faults import run_fault_script  # tests/e2e is on sys.path under pytest


pytestmark = pytest.mark.e2e


def test_malformed_short_no_crash_every_record_accounted_for(kafka_bootstrap: str, tmp_path: Path) -> None:
    out = tmp_path / "malformed.json"
    proc, figures = run_fault_script("malformed.py", out, "--bootstrap", kafka_bootstrap, timeout_s=900)
    assert figures["crashes"] == 0, figures["daemon_summary"]
    assert figures["unaccounted"] == 0 and figures["valid_not_scored"] == 0
    assert figures["dead_letters_without_reason"] == 0
    assert figures["bad_dead_lettered"] + figures["bad_accepted"] == 600
    kinds = figures["outcome_by_kind"]
    for kind in ("bad_utf8", "deep_nesting", "truncated_json", "not_object", "naive_time", "missing_fields"):
        assert kinds[kind] == {"dead_letter": 60}, (kind, kinds[kind])
    assert proc.returncode == 0
