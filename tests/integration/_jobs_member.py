"""One daemon of a group as its own process, for the kill -9 test of the scheduled jobs
(tests/integration/test_jobs_group.py): the stub scorer, real Kafka, real outbox and delivery.

Usage: ``python _jobs_member.py '<load_settings overrides as JSON>'``; SIGTERM stops it cleanly.
"""

from __future__ import annotations

import json
import logging
import signal
import sys

from _stubs import StubScorer  # this folder is on sys.path: the script's own

from alerts import ThresholdDetector, TumblingWindows
from finsentry.config import load_settings
from finsentry.daemon import Daemon
from finsentry.pipeline import Pipeline


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = load_settings(**json.loads(sys.argv[1]))
    daemon = Daemon(settings, Pipeline(StubScorer(), TumblingWindows(3_600_000, 0),  # type: ignore[arg-type]
                                       ThresholdDetector(3, 0.6)))
    signal.signal(signal.SIGTERM, lambda *_: daemon.stop())
    daemon.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
