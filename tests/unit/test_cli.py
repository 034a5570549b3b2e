"""The finsentry command line: help, config errors, example config."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from finsentry.cli import main
from finsentry.config import REPO_ROOT, load_settings


@pytest.mark.parametrize("command", ["run", "replay", "score", "webhook-sink", "demo", "config", "refresh"])
def test_each_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    assert "usage: finsentry" in capsys.readouterr().out


def test_bad_config_fails_at_start_with_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[batch]\nmax_wait_ms = -3\n")
    assert main(["--config", str(cfg), "config"]) == 2
    err = capsys.readouterr().err
    assert "batch.max_wait_ms" in err and "greater than or equal to 1" in err


def test_example_config_is_valid() -> None:
    settings = load_settings(REPO_ROOT / "deploy" / "finsentry.example.toml")
    assert settings.kafka.raw_topic == "news.raw"


def test_replay_of_a_missing_file_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", "/nonexistent/feed.csv"]) == 1
    assert "/nonexistent/feed.csv" in capsys.readouterr().err


def test_module_entry_point() -> None:
    proc = subprocess.run([sys.executable, "-m", "finsentry", "--version"], capture_output=True, text=True,
                          cwd=REPO_ROOT, timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("finsentry ")


def test_score_refuses_an_empty_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["score", "Acme falls", "   "]) == 2
    assert "empty_text" in capsys.readouterr().err


def test_unknown_log_level_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--log-level", "LOUD", "config"])
    assert info.value.code == 2
    assert "--log-level" in capsys.readouterr().err


def test_log_level_is_case_insensitive(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--log-level", "debug", "config"]) == 0


@pytest.mark.parametrize("args,message", [(["--bursts", "0"], "--bursts"), (["--sizes", "a,b"], "--sizes"),
                                          (["--burst-minutes", "-5"], "--burst-minutes")])
def test_eval_detector_refuses_bad_arguments_as_usage_errors(args: list[str], message: str,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["eval-detector", *args])
    assert info.value.code == 2 and message in capsys.readouterr().err
