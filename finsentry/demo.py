"""``finsentry demo``: the whole product on this machine, then clean up.

Starts a local Apache Kafka broker, creates the topics, starts a local
webhook receiver, replays a real historical feed from ``../shared/data`` into
the raw topic, runs the daemon until it has consumed everything, writes the
scored topic to a file, stops the broker and prints where things are.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from alerts import WebhookSink
from finsentry.broker import LocalBroker, create_topics
from finsentry.config import REPO_ROOT, Settings
from finsentry.daemon import Daemon, DaemonStats
from finsentry.topics import dump_topic
from ingest import make_producer, read_feed, replay_items

__all__ = ["DemoResult", "default_data_dir", "run_demo"]

log = logging.getLogger(__name__)

DEFAULT_FEED = Path("massive_stock_news_analyst_ratings_partial") / "analyst_ratings_processed.csv"


def default_data_dir() -> Path:
    """``$FINSENTRY_DATA_DIR``, else ``../shared/data`` beside the repository."""
    return Path(os.environ.get("FINSENTRY_DATA_DIR") or REPO_ROOT.parent / "shared" / "data")


@dataclass
class DemoResult:
    """Where the demo's outputs are, and its figures."""

    alerts_path: Path
    scored_path: Path
    stats: DaemonStats
    alerts_received: int
    broker_start_s: float
    wall_s: float


#: Demo windows and detector: the Benzinga sample is sparse (about 10,000 headlines for 37
#: tickers over 11 years), so the demo uses one-day windows; live feeds use the config's.
DEMO_WINDOW_MINUTES = 1440.0
DEMO_MIN_NEGATIVE = 5
DEMO_MIN_NEG_SHARE = 0.6


def run_demo(
    settings: Settings,
    workdir: Path,
    feed: Path | None = None,
    limit: int | None = None,
    window_minutes: float = DEMO_WINDOW_MINUTES,
    min_negative: int = DEMO_MIN_NEGATIVE,
    min_neg_share: float = DEMO_MIN_NEG_SHARE,
) -> DemoResult:
    """Run the end-to-end demo (see module docstring) and print a summary.

    The window size and the detector thresholds are the demo's own (see
    ``DEMO_*``), so that the sparse sample feed yields a few real alerts.

    Raises:
        FileNotFoundError: the feed file is missing.
        finsentry.broker.BrokerError: the broker could not start.
    """
    t0 = time.monotonic()
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    feed = feed or default_data_dir() / DEFAULT_FEED
    if not feed.is_file():
        raise FileNotFoundError(f"demo feed {feed} not found (set FINSENTRY_DATA_DIR or pass --feed)")
    alerts_path, scored_path = workdir / "alerts.jsonl", workdir / "scored.jsonl"
    outbox_path = workdir / "outbox.sqlite"
    for stale in [alerts_path] + [outbox_path.with_name(outbox_path.name + s) for s in ("", "-wal", "-shm")]:
        stale.unlink(missing_ok=True)  # a demo is a fresh world: new broker, new outbox

    print(f"[demo] starting a local Apache Kafka broker in {workdir / 'broker'} ...", flush=True)
    with LocalBroker(run_dir=workdir / "broker") as broker, WebhookSink(out_path=alerts_path, echo=True) as sink:
        bootstrap = broker.bootstrap
        print(f"[demo] broker ready at {bootstrap} in {broker.start_seconds:.1f} s; webhook receiver at {sink.url}")
        settings = settings.model_copy(
            update={
                "kafka": settings.kafka.model_copy(update={"bootstrap": bootstrap, "group_id": "finsentry-demo"}),
                "webhooks": settings.webhooks.model_copy(update={"urls": [sink.url], "outbox_path": outbox_path}),
                "windows": settings.windows.model_copy(
                    update={"size_minutes": window_minutes, "hop_minutes": window_minutes,  # tumbling: sparse feed
                            "allowed_lateness_minutes": min(60.0, window_minutes)}
                ),
                "detector": settings.detector.model_copy(
                    update={"min_negative": min_negative, "min_neg_share": min_neg_share}
                ),
            }
        )
        k = settings.kafka
        create_topics(bootstrap, {k.raw_topic: k.partitions, k.scored_topic: k.partitions, k.dlq_topic: 1},
                      log_append_time={k.raw_topic})

        items = read_feed(feed, limit=limit)
        producer = make_producer(bootstrap)
        try:
            replayed = replay_items(items.items, producer, k.raw_topic, heartbeat_every_ms=60_000,
                                    partitions=producer.partitions_for(k.raw_topic) or set())
        finally:
            producer.close()
        print(f"[demo] replayed {replayed.sent} real items from {feed.name} ({len(items.rejected)} rows rejected)")

        print(
            f"[demo] running the finsentry daemon until it has consumed everything "
            f"({window_minutes:g}-minute windows per ticker; alert at >= {min_negative} negative items "
            f"and >= {min_neg_share:.0%} negative) ...",
            flush=True,
        )
        stats = Daemon(settings).run(idle_exit_s=3.0)
        n_scored = dump_topic(bootstrap, k.scored_topic, scored_path)
        received = len(sink.received)
    wall = time.monotonic() - t0
    print(
        f"[demo] done in {wall:.0f} s: consumed {stats.consumed}, scored {stats.scored}, "
        f"dead-lettered {stats.dead_lettered}, windows closed {stats.windows_closed}, "
        f"alerts {len(stats.alerts)} sent / {received} received"
    )
    print(f"[demo] alerts received by the webhook receiver: {alerts_path}")
    print(f"[demo] scored items ({n_scored}, one JSON per line):   {scored_path}")
    return DemoResult(alerts_path, scored_path, stats, received, broker.start_seconds, wall)
