"""``--via-kafka``: the same feed through a real broker and the daemon, compared with the in-process run.

The items are produced to a fresh raw topic (``ingest.replay_items``, keyed
by primary ticker, over ``kafka.partitions`` partitions; created with
LogAppendTime like the daemon's, so each record carries its ingestion time
and an item dated after it by more than ``windows.max_future_minutes`` is
flagged ``future`` as in the in-process run), then :class:`finsentry.daemon.Daemon` runs
until it is idle and caught up, with the backtest's caching scorer in its
pipeline. Its alerts, sorted like the in-process ones, must be byte-identical
(``Alert.to_json``) to the in-process list.

The broker: ``bootstrap`` when given; else ``kafka.bootstrap`` when something
answers there; else a :class:`finsentry.broker.LocalBroker` started for the
run in a temporary folder and stopped afterwards. Topics and consumer group
get a random suffix, so nothing of an existing deployment is touched; the
topics are deleted at the end. No webhook endpoint is configured: the alerts
stay in a temporary outbox.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alerts import Alert
from finsentry.config import Settings
from ingest import NewsItem

from ._replay import alert_sort_key

if TYPE_CHECKING:
    from ._backtest import BacktestOptions
    from ._cache import CachingScorer

__all__ = ["check_via_kafka", "run_via_kafka"]

log = logging.getLogger(__name__)


def _answers(bootstrap: str, timeout_s: float = 1.0) -> bool:
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout_s):
            return True
    except (OSError, ValueError):
        return False


@contextlib.contextmanager
def _broker(bootstrap: str | None, settings: Settings) -> Iterator[tuple[str, bool]]:
    """(bootstrap, started_here)."""
    if bootstrap:
        yield bootstrap, False
        return
    if _answers(settings.kafka.bootstrap):
        yield settings.kafka.bootstrap, False
        return
    from finsentry.broker import LocalBroker

    with tempfile.TemporaryDirectory(prefix="finsentry-backtest-broker-") as tmp:
        log.info("no broker at %s: starting a local one", settings.kafka.bootstrap)
        with LocalBroker(run_dir=Path(tmp) / "broker") as broker:
            yield broker.bootstrap, True


def run_via_kafka(items: Sequence[NewsItem], settings: Settings, scorer: CachingScorer,
                  bootstrap: str | None = None, idle_exit_s: float = 2.0) -> list[Alert]:
    """Replay ``items`` into Kafka, run the daemon until idle, return its alerts (sorted).

    Args:
        items: feed items in event-time order.
        settings: the effective settings (kafka/webhooks are overridden for the run).
        scorer: the scorer the daemon's pipeline uses (e.g. the caching one).
        bootstrap: broker address; None = see the module docstring.
        idle_exit_s: how long the daemon waits, caught up, before it exits.

    Raises:
        finsentry.broker.BrokerError: a local broker could not start.
        kafka.errors.KafkaError: the broker failed a request.
    """
    from finsentry.broker import create_topics
    from finsentry.daemon import Daemon, build_pipeline
    from ingest import make_producer, replay_items

    run_id = uuid.uuid4().hex[:12]
    with _broker(bootstrap, settings) as (address, started), tempfile.TemporaryDirectory() as tmp:
        k = settings.kafka.model_copy(update={
            "bootstrap": address, "group_id": f"finsentry-backtest-{run_id}",
            "raw_topic": f"finsentry-backtest-{run_id}.raw", "scored_topic": f"finsentry-backtest-{run_id}.scored",
            "dlq_topic": f"finsentry-backtest-{run_id}.dlq",
            "alert_claims_topic": f"finsentry-backtest-{run_id}.claims",
            "create_topics": True, "auto_offset_reset": "earliest",
        })
        w = settings.webhooks.model_copy(update={"urls": [], "endpoints": [], "outbox_path": Path(tmp) / "outbox.sqlite"})
        run_settings = settings.model_copy(update={"kafka": k, "webhooks": w})
        create_topics(address, {k.raw_topic: k.partitions, k.scored_topic: k.partitions, k.dlq_topic: 1},
                      log_append_time={k.raw_topic})
        try:
            producer = make_producer(address)
            try:
                replay_items(items, producer, k.raw_topic)
            finally:
                producer.close()
            daemon = Daemon(run_settings, pipeline=build_pipeline(run_settings, scorer=scorer),  # type: ignore[arg-type]
                            alert_history=None)  # every alert of the backtest
            stats = daemon.run(idle_exit_s=idle_exit_s)
        finally:
            if not started:
                _delete_topics(address, [k.raw_topic, k.scored_topic, k.dlq_topic, str(k.alert_claims_topic)])
    return sorted(stats.alerts, key=alert_sort_key)


def _delete_topics(bootstrap: str, topics: list[str]) -> None:
    from kafka.admin import KafkaAdminClient

    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="finsentry-backtest-cleanup")
        try:
            admin.delete_topics(topics)
        finally:
            admin.close()
    except Exception as exc:  # noqa: BLE001 - cleanup must not hide the result
        log.warning("could not delete backtest topics %s: %r", topics, exc)


def check_via_kafka(items: Sequence[NewsItem], in_process: Sequence[Alert], settings: Settings,
                    scorer: CachingScorer, opts: BacktestOptions) -> dict[str, Any]:
    """Run :func:`run_via_kafka`, write ``alerts_via_kafka.jsonl`` and compare with the in-process alerts.

    Returns:
        ``{"alerts": n, "identical": bool, "only_in_process": [ids], "only_via_kafka": [ids]}``.
    """
    via = run_via_kafka(items, settings, scorer, opts.bootstrap)
    with (opts.out_dir / "alerts_via_kafka.jsonl").open("wb") as fh:
        for a in via:
            fh.write(a.to_json() + b"\n")
    mine = {a.alert_id for a in in_process}
    theirs = {a.alert_id for a in via}
    return {
        "alerts": len(via),
        "identical": [a.to_json() for a in via] == [a.to_json() for a in in_process],
        "only_in_process": sorted(mine - theirs),
        "only_via_kafka": sorted(theirs - mine),
    }
