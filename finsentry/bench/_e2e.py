"""End to end through the real broker: replay → daemon → scored topic.

Phase 1 (maximum rate): the headlines are replayed into a fresh raw topic as
fast as the producer goes, then a daemon (in this process, on a thread, with
the already loaded scorer) consumes the backlog; docs/s = items / (first
poll → last item scored). Phases 2-4: the same daemon keeps running while
``replay_items`` paces new copies of the headlines at 25 %, 50 % and 90 % of
that rate (event times spaced 1/rate s, ``speed=1``); the daemon's
consumed → scored latencies (poll return → scored record sent and flushed,
``DaemonStats.latency_ms``) of each phase give p50/p99.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from finsentry.config import load_settings
from finsentry.daemon import Daemon, build_pipeline
from inference import Scorer
from ingest import NewsItem, make_producer, replay_items

__all__ = ["E2EResult", "run_e2e"]

T0 = datetime(2020, 6, 1, 13, 30, tzinfo=timezone.utc)


@dataclass
class E2EResult:
    """Figures of one end-to-end run (docs/s; latencies in ms)."""

    docs_per_s: float
    items: int
    latency: dict[str, dict[str, float]]  # "25%" -> {"rate": docs/s offered, "p50": ms, "p99": ms, "n": items}


def _items(texts: list[str], start: datetime, spacing_s: float, tag: str) -> list[NewsItem]:
    return [NewsItem(id=f"{tag}-{i}", source="benzinga", title=t, tickers=[f"T{i % 50}"],
                     published_at=start + timedelta(seconds=i * spacing_s)) for i, t in enumerate(texts)]


def _wait(predicate, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("end-to-end benchmark: the daemon did not keep up within the time limit")
        time.sleep(0.005)


def run_e2e(bootstrap: str, scorer: Scorer, texts: list[str], workdir: Path, max_batch: int = 64,
            max_wait_ms: int = 20, phase_s: float = 8.0) -> E2EResult:
    """Measure docs/s at the maximum rate, then latency at 25/50/90 % of it (see the module docstring).

    Raises:
        TimeoutError: the daemon fell behind by more than a minute.
    """
    run = uuid.uuid4().hex[:8]
    raw, scored, dlq = f"bench-raw-{run}", f"bench-scored-{run}", f"bench-dlq-{run}"
    settings = load_settings(
        kafka={"bootstrap": bootstrap, "group_id": f"bench-{run}", "raw_topic": raw, "scored_topic": scored,
               "dlq_topic": dlq, "partitions": 2},
        batch={"max_batch": max_batch, "max_wait_ms": max_wait_ms},
        webhooks={"outbox_path": str(workdir / f"outbox-{run}.sqlite")},
    )
    producer = make_producer(bootstrap)
    daemon = Daemon(settings, build_pipeline(settings, scorer))  # creates the topics
    replay_items(_items(texts, T0, 0.001, "max"), producer, raw)
    runner = threading.Thread(target=daemon.run, name="bench-daemon", daemon=True)
    runner.start()
    try:
        _wait(lambda: daemon.stats.consumed > 0, 60)
        start = time.monotonic()
        _wait(lambda: daemon.stats.scored >= len(texts), 600)
        rate = len(texts) / (time.monotonic() - start)
        latency = {}
        for share in (0.25, 0.5, 0.9):
            offered = rate * share
            n = max(20, min(len(texts), int(offered * phase_s)))
            before, seen = daemon.stats.scored, len(daemon.stats.latency_ms)
            tag = f"p{int(share * 100)}"
            replay_items(_items(texts[:n], T0 + timedelta(days=1 + len(latency)), 1.0 / offered, tag),
                         producer, raw, speed=1.0)
            _wait(lambda: daemon.stats.scored >= before + n, 120)
            lat = np.asarray(list(daemon.stats.latency_ms)[seen:], dtype=np.float64)
            latency[f"{int(share * 100)}%"] = {"rate": round(offered, 1), "n": int(lat.size),
                                               "p50": float(np.percentile(lat, 50)),
                                               "p99": float(np.percentile(lat, 99))}
    finally:
        daemon.stop()
        runner.join(timeout=60)
        producer.close()
    return E2EResult(docs_per_s=rate, items=len(texts), latency=latency)
