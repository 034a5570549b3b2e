"""Running a fault script of benchmarks/faults/ from an e2e test (its short, CI version)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from finsentry.config import REPO_ROOT


def run_fault_script(script: str, out: Path, *args: str, timeout_s: float) -> tuple[subprocess.CompletedProcess[str], dict]:
    """Run ``benchmarks/faults/<script> --short --out OUT ARGS...``; return the process and its JSON figures.

    Raises:
        AssertionError: the script wrote no figures (the message holds the ends of its output).
        subprocess.TimeoutExpired: it ran longer than ``timeout_s``.
    """
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "faults" / script), "--short", "--out", str(out), *args],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout_s,
    )
    assert out.is_file(), proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc, json.loads(out.read_text())
