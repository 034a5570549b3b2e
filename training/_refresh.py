"""Scheduled model refresh: retrain on a cron schedule and promote by the
champion / challenger rule (:mod:`training._promote`).

Scheduling is APScheduler's (3.x): a cron trigger, ``coalesce=True`` (runs
missed while the process was asleep or busy collapse into one run, made as
soon as it can be), ``max_instances=1`` (never two trainings at once) and
``misfire_grace_time`` (a run later than that is skipped). Every run, failure
and missed run is logged and counted in :class:`RefreshStats`.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.cron import CronTrigger

log = logging.getLogger(__name__)

__all__ = ["JOB_ID", "RefreshFailed", "RefreshStats", "cron_trigger", "labelled_files", "refresh_argv", "run_refresh",
           "schedule_refresh"]

JOB_ID = "model-refresh"
_SUFFIXES = (".csv", ".parquet", ".jsonl", ".ndjson")


_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def cron_trigger(expression: str, timezone: str = "UTC") -> CronTrigger:
    """A trigger from a 5-field crontab line: minute hour day-of-month month day-of-week.

    Six fields put a second field first (``second minute hour ...``, as Quartz
    and Spring do), for schedules finer than a minute (tests).
    Day-of-week numbers follow crontab(5): 0 and 7 are Sunday, 1 is Monday.
    (APScheduler's own numbering starts at Monday = 0, so numbers are turned
    into day names first.)

    Raises:
        ValueError: the expression is not a valid crontab line.
    """
    fields = expression.split()
    if len(fields) not in (5, 6):
        raise ValueError(f"{expression!r}: a crontab line has 5 fields (6 with seconds first), got {len(fields)}")
    second = fields.pop(0) if len(fields) == 6 else "0"
    minute, hour, day, month, dow = fields
    dow = re.sub(r"\d+", lambda m: _DAY_NAMES[int(m.group()) % 7] if int(m.group()) <= 7 else m.group(), dow)
    return CronTrigger(second=second, minute=minute, hour=hour, day=day, month=month, day_of_week=dow,
                       timezone=timezone)


@dataclass
class RefreshStats:
    """Counters of the refresh job (thread-safe increments)."""

    runs: int = 0
    failures: int = 0
    missed: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, what: str) -> None:
        """Add one to ``runs``, ``failures`` or ``missed``."""
        with self._lock:
            setattr(self, what, getattr(self, what) + 1)


def labelled_files(folder: Path) -> list[Path]:
    """The labelled data files (CSV / Parquet / JSONL) directly in ``folder``, sorted.

    Raises:
        FileNotFoundError: ``folder`` is not a directory.
    """
    if not folder.is_dir():
        raise FileNotFoundError(f"refresh data folder {folder} does not exist")
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in _SUFFIXES)


def refresh_argv(registry: Path, data_folder: Path | None, extra: Sequence[str] = ()) -> list[str]:
    """``finsentry train`` arguments of one refresh: publish into ``registry`` with
    ``--promote``, plus every labelled file of ``data_folder`` as ``--sentiment-file``."""
    argv = ["--publish-dir", str(registry), "--promote", "--no-progress"]
    for path in labelled_files(data_folder) if data_folder is not None else []:
        argv += ["--sentiment-file", str(path)]
    return argv + list(extra)


class RefreshFailed(RuntimeError):
    """A refresh run's training exited with a non-zero code."""


def run_refresh(registry: Path, data_folder: Path | None, extra: Sequence[str] = ()) -> int:
    """One refresh: train, publish into ``registry``, promote if better.

    Returns:
        0 (the training's exit code).

    Raises:
        RefreshFailed: training returned a non-zero exit code.
        FileNotFoundError: ``data_folder`` does not exist.
    """
    from ._cli import train_main

    rc = train_main(refresh_argv(registry, data_folder, extra))
    if rc != 0:
        raise RefreshFailed(f"finsentry train exited with {rc}")
    return rc


def _listener(stats: RefreshStats) -> Callable[[JobExecutionEvent], None]:
    def on_event(event: JobExecutionEvent) -> None:
        if event.code == EVENT_JOB_MISSED:
            stats.count("missed")
            log.error("model refresh run due %s was missed (later than the misfire grace time)",
                      event.scheduled_run_time)
        elif event.code == EVENT_JOB_ERROR:
            stats.count("failures")
            log.error("model refresh run due %s failed: %r", event.scheduled_run_time, event.exception)
        else:
            stats.count("runs")
            log.info("model refresh run due %s finished: %r", event.scheduled_run_time, event.retval)

    return on_event


def schedule_refresh(
    scheduler: BaseScheduler,
    trigger: CronTrigger,
    run: Callable[[], object],
    misfire_grace_s: float = 3600.0,
) -> RefreshStats:
    """Add the refresh job to ``scheduler`` (not started) and return its counters.

    ``run`` is called with no arguments; an exception counts as a failure.
    """
    stats = RefreshStats()
    scheduler.add_listener(_listener(stats), EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED)
    scheduler.add_job(run, trigger, id=JOB_ID, coalesce=True, max_instances=1,
                      misfire_grace_time=int(misfire_grace_s), replace_existing=True)
    return stats
