"""Logging set-up for the CLI: one line per event on stderr, as text or JSON."""

from __future__ import annotations

import logging
import time
from typing import Literal

__all__ = ["setup_logging"]

_TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _json_formatter() -> logging.Formatter:
    """One JSON object per record (python-json-logger): time (UTC ISO 8601), level, logger, message, extras.

    Fields passed with ``extra=`` (e.g. ``alert_id``, ``item_id``, ``partition``)
    become top-level keys.
    """
    from pythonjsonlogger.json import JsonFormatter

    formatter = JsonFormatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        datefmt="%Y-%m-%dT%H:%M:%SZ",
    )
    formatter.converter = time.gmtime  # UTC whatever the host's zone
    return formatter


def setup_logging(level: str = "INFO", log_format: Literal["text", "json"] = "text") -> None:
    """Configure the root logger (idempotent); kafka-python and APScheduler's job executors are kept at
    WARNING (below DEBUG).

    Args:
        level: DEBUG, INFO, WARNING or ERROR.
        log_format: ``text`` (human lines) or ``json`` (one JSON object per line).
    """
    handler = logging.StreamHandler()
    handler.setFormatter(_json_formatter() if log_format == "json" else logging.Formatter(_TEXT))
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), handlers=[handler], force=True)
    logging.getLogger("kafka").setLevel(logging.WARNING)
    # APScheduler's executors log two INFO lines per job run (the model-refresh job runs every 10 s by default);
    # their warnings and errors (a job that raised or was missed) still show. DEBUG keeps everything.
    quiet = logging.getLogger().level > logging.DEBUG
    logging.getLogger("apscheduler.executors").setLevel(logging.WARNING if quiet else logging.NOTSET)
