"""The scheduled refresh job: cron validation, coalesced and missed runs, failures."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from finsentry.config import ConfigError, load_settings
from training import cron_trigger, refresh_argv, schedule_refresh
from training._refresh import JOB_ID


def test_cron_is_validated_at_config_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINSENTRY_TRAINING__REFRESH_CRON", "61 * * * *")
    with pytest.raises(ConfigError, match=r"training\.refresh_cron"):
        load_settings()
    monkeypatch.setenv("FINSENTRY_TRAINING__REFRESH_CRON", "0 3 * * 0")
    assert load_settings().training.refresh_cron == "0 3 * * 0"
    assert cron_trigger("0 3 * * 0").get_next_fire_time(None, datetime(2026, 1, 1, tzinfo=timezone.utc)) == \
        datetime(2026, 1, 4, 3, 0, tzinfo=timezone.utc)  # crontab(5): 0 = Sunday (2026-01-04)
    assert cron_trigger("30 6 * * 1-5").get_next_fire_time(None, datetime(2026, 1, 3, tzinfo=timezone.utc)) == \
        datetime(2026, 1, 5, 6, 30, tzinfo=timezone.utc)  # Saturday -> Monday 06:30
    with pytest.raises(ValueError, match="5 fields"):
        cron_trigger("0 3 * *")


def test_refresh_argv_uses_every_labelled_file(tmp_path: Path) -> None:
    (tmp_path / "b.csv").write_text("text,label\n")
    (tmp_path / "a.jsonl").write_text("")
    (tmp_path / "notes.txt").write_text("")
    argv = refresh_argv(Path("reg"), tmp_path, ["--epochs", "1"])
    assert argv[:3] == ["--publish-dir", "reg", "--promote"]
    files = [argv[i + 1] for i, a in enumerate(argv) if a == "--sentiment-file"]
    assert files == [str(tmp_path / "a.jsonl"), str(tmp_path / "b.csv")]
    assert argv[-2:] == ["--epochs", "1"]
    with pytest.raises(FileNotFoundError):
        refresh_argv(Path("reg"), tmp_path / "missing")


def _run_late(grace_s: float, fail: bool = False) -> tuple[int, object]:
    """Schedule an hourly job whose next run was due 3.5 h ago (four runs missed
    while "asleep"), start the scheduler, and count what happens."""
    calls: list[int] = []
    done = threading.Event()

    def run() -> int:
        calls.append(1)
        if fail:
            raise RuntimeError("training exploded")
        return 0

    asleep_since = datetime.now(timezone.utc) - timedelta(hours=3, minutes=30)
    scheduler = BackgroundScheduler(timezone="UTC")
    trigger = IntervalTrigger(hours=1, start_date=asleep_since)
    stats = schedule_refresh(scheduler, trigger, run, misfire_grace_s=grace_s)  # type: ignore[arg-type]
    scheduler.modify_job(JOB_ID, next_run_time=asleep_since)
    scheduler.add_listener(lambda _e: done.set())
    scheduler.start()
    try:
        assert done.wait(10), "the scheduler did not process the due run"
        done.clear()
        done.wait(1.0)  # would catch a second (uncoalesced) run
    finally:
        scheduler.shutdown(wait=True)
    return len(calls), stats


def test_missed_runs_coalesce_into_one() -> None:
    calls, stats = _run_late(grace_s=4 * 3600)
    assert calls == 1 and (stats.runs, stats.missed, stats.failures) == (1, 0, 0)


def test_a_run_later_than_the_grace_time_is_missed_and_counted() -> None:
    calls, stats = _run_late(grace_s=60)
    assert calls == 0 and (stats.runs, stats.missed) == (0, 1)


def test_a_failed_run_is_counted() -> None:
    calls, stats = _run_late(grace_s=4 * 3600, fail=True)
    assert calls == 1 and (stats.failures, stats.runs) == (1, 0)
