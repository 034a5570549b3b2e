"""Fault run: a soak of ``finsentry run`` at half its maximum sustained rate (resident memory, consumer lag).

What it does, all on this machine:

1. starts a local Kafka broker (or uses ``--bootstrap``), fresh raw (4
   partitions), scored (4), dead-letter and late topics, and a webhook
   receiver (``alerts.WebhookSink``, counts duplicate ``webhook-id``\\ s);
2. loads real items: the Benzinga analyst-ratings sample (9,991 headlines)
   and the StockNet tweets (``--feed`` repeats to choose others); they are
   streamed round-robin, over and over, each copy with a fresh id
   (``<id>~<pass>``) and its event time re-stamped to the wall clock at send
   (UTC ms), so windows open and close as in live use and nothing is late;
3. starts one ``finsentry run`` and measures its **maximum sustained rate**:
   a backlog of ``--probe-items`` items is written at once and the daemon's
   ``finsentry_items_scored_total`` (its ``/metrics``) is read while it
   drains (rate = items scored between 10 % and 90 % of the backlog / the
   seconds between); ``--rate`` skips the probe;
4. streams items at ``--load`` (0.5) x that rate for ``--minutes``, paced
   every 100 ms, and every ``--sample-s`` seconds samples the daemon's
   resident memory (``VmRSS`` of ``/proc/<pid>/status``) and the group's
   consumer lag (sum over partitions of log end offset minus committed
   offset, records, read through the admin API: what a restart would
   re-read);
5. stops the stream, waits for the lag to reach 0, stops the daemon with
   SIGTERM (its graceful shutdown; exit code recorded), reads the topics back
   and counts as ``kill9.py`` does.

The daemon runs with one-minute windows (so windows open and close all
along) and the threshold detector (3 negatives, share >= 0.5: alerts all
along, delivered to the receiver through the outbox).

Warm-up: the daemon's bounded structures fill during the first minutes and
memory grows while they do; that is not a leak. Open windows hold size +
allowed lateness = 1 + 10 minutes of items; the title-key memo
(``alerts._windows``, LRU of 131,072 titles) fills after one pass over the
95,950 distinct real titles; the latency record
(``DaemonStats.latency_ms``, last 100,000 items) after 100,000 items: at
the 56 items/s of half this box's maximum rate, about 29 and 30 minutes
(``fill_minutes`` in the figures: the larger of the two at the achieved
rate; ``warmup_covers_fill`` says whether the warm-up mark came after it).
Hence the defaults: a 30-minute warm-up, then the hour that issue #7 asks
for (90 minutes of stream in all); the growth from minute 5 is reported as
well.

Figures (JSON, also printed): ``max_rate_items_s``, ``rate_items_s``
(target) and ``achieved_rate_items_s``; ``rss_start_mib`` (RSS at
``--warmup`` minutes into the stream), ``rss_end_mib`` (last sample of the
stream), ``rss_growth_pct`` = 100 x (end - start) / start (issue #7 expects
< 5 %), ``rss_max_mib``, ``rss_at_5min_mib`` and
``rss_growth_from_5min_pct``; ``lag_max``, ``lag_p99`` (nearest-rank over the
stream's samples), ``lag_end`` (last sample of the stream), ``drain_s``;
``lost`` (items with neither a scored record nor a dead letter: must be 0),
``duplicate_scored_records`` (must be 0: no fault here), alerts received and
``duplicate_alerts`` (must be 0); ``samples`` (t_s, rss_mib, lag) for a plot.

``--tracemalloc`` runs the daemon under ``tracemalloc`` (25 frames) and,
at the warm-up mark and at the end, asks it (SIGUSR1) to write a snapshot;
the top 25 growing allocation sites (``Snapshot.compare_to``, by traceback
line) go into the JSON as ``tracemalloc_top``. Tracing slows the daemon:
use it to find a leak, not for the figures.

Usage::

    python benchmarks/faults/soak.py                      # probe, then 90 min at 50 % (warm-up 30 min)
    python benchmarks/faults/soak.py --short              # CI: 2 min, warm-up 0.5 min
    python benchmarks/faults/soak.py --rate 60 --minutes 10 --out /tmp/soak.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from alerts import WebhookSink  # noqa: E402
from finsentry.broker import create_topics  # noqa: E402
from finsentry.demo import DEFAULT_FEED, default_data_dir  # noqa: E402
from ingest import NewsItem, make_producer, read_feed, record_key  # noqa: E402
from kill9 import (  # noqa: E402
    _count, _free_port, _scored_so_far, broker_for, daemon_env, fault_topics, wait_exit, write_figures,
)

STOCKNET = Path("stocknet") / "tweet" / "preprocessed"
_MIB = 1024 * 1024

# The daemon under tracemalloc: SIGUSR1 writes a snapshot to $FINSENTRY_SOAK_SNAPSHOT.<n>.
_TRACED_DAEMON = """
import os, signal, sys, tracemalloc
tracemalloc.start(25)
_n = [0]
def _dump(signum, frame):
    _n[0] += 1
    tracemalloc.take_snapshot().dump(f"{os.environ['FINSENTRY_SOAK_SNAPSHOT']}.{_n[0]}")
signal.signal(signal.SIGUSR1, _dump)
from finsentry.cli import main
sys.exit(main(["run"]))
"""


def load_items(feeds: list[Path]) -> list[NewsItem]:
    """The items of ``feeds`` interleaved round-robin (so each source is in every stretch of the stream).

    Raises:
        FileNotFoundError: a feed is missing.
        ingest.FeedError: a feed cannot be read.
    """
    lists = []
    for feed in feeds:
        if not feed.exists():
            raise FileNotFoundError(f"feed {feed} not found (set FINSENTRY_DATA_DIR or pass --feed)")
        lists.append(read_feed(feed).items)
    out = [item for group in itertools.zip_longest(*lists) for item in group if item is not None]
    if not out:
        raise ValueError(f"no items in {feeds}")
    return out


def fresh_copies(items: list[NewsItem]) -> Iterator[NewsItem]:
    """Endless copies of ``items``: pass n gets id ``<id>~<n>``; event time is set at send (see :func:`stamp`)."""
    for n in itertools.count():
        for item in items:
            yield item.model_copy(update={"id": f"{item.id}~{n}"})


def stamp(item: NewsItem) -> NewsItem:
    """``item`` with ``published_at`` = now (aware UTC)."""
    return item.model_copy(update={"published_at": datetime.now(timezone.utc)})


class _Stream:
    """Produces fresh copies of real items to the raw topic (keyed by ticker, record time = event time)."""

    def __init__(self, bootstrap: str, topic: str, items: list[NewsItem]) -> None:
        self._producer = make_producer(bootstrap)
        self._topic = topic
        self._copies = fresh_copies(items)
        self.sent = 0

    def send(self, n: int) -> None:
        for _ in range(n):
            item = stamp(next(self._copies))
            self._producer.send(self._topic, key=record_key(item), value=item.to_json(), timestamp_ms=item.published_ms)
            self.sent += 1

    def flush(self) -> None:
        """Wait until every item sent so far is acknowledged by the broker."""
        self._producer.flush()

    def paced(self, rate: float, seconds: float, on_tick: Callable[[float], None] | None = None) -> float:
        """Send at ``rate`` items/s for ``seconds`` (100 ms ticks); returns the wall seconds taken."""
        start = time.monotonic()
        first = self.sent
        while (elapsed := time.monotonic() - start) < seconds:
            self.send(int(rate * elapsed) - (self.sent - first))
            self._producer.flush()
            if on_tick is not None:
                on_tick(elapsed)
            time.sleep(0.1)
        return time.monotonic() - start

    def close(self) -> None:
        self._producer.flush()
        self._producer.close()


def rss_mib(pid: int) -> float:
    """Resident set size of ``pid`` in MiB (``VmRSS`` of ``/proc/<pid>/status``); 0 when it has ended."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024 / _MIB
    except OSError:
        pass
    return 0.0


class _LagProbe:
    """The group's lag on a topic: sum over partitions of (log end offset - committed offset), records."""

    def __init__(self, bootstrap: str, topic: str, group: str) -> None:
        from kafka import KafkaConsumer, TopicPartition
        from kafka.admin import KafkaAdminClient

        self._admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="finsentry-soak-lag")
        self._ends = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
        self._tps = [TopicPartition(topic, p) for p in sorted(self._ends.partitions_for_topic(topic) or ())]
        self._group = group

    def __call__(self) -> int:
        """The lag now, records (retried for up to 10 s while the group coordinator is not available)."""
        from kafka.errors import KafkaError

        for attempt in range(20):
            try:
                return self._lag()
            except KafkaError:
                if attempt == 19:
                    raise
                time.sleep(0.5)
        raise AssertionError("unreachable")

    def _lag(self) -> int:
        ends = self._ends.end_offsets(self._tps)
        committed = self._admin.list_group_offsets({self._group: list(self._tps)}).get(self._group, {})
        return sum(ends[tp] - max(0, getattr(committed.get(tp), "offset", 0) or 0) for tp in self._tps)

    def close(self) -> None:
        self._ends.close()
        self._admin.close()


def _env(bootstrap: str, topics: dict[str, str], workdir: Path, sink_url: str, ops_port: int) -> dict[str, str]:
    return {
        **daemon_env(bootstrap, topics, workdir / "outbox.sqlite", ops_port),
        "FINSENTRY_WINDOWS__SIZE_MINUTES": "1",  # live-stamped items: one-minute windows open and close all along
        "FINSENTRY_WINDOWS__HOP_MINUTES": "1",  # tumbling, whatever the default hop
        # the threshold detector: alerts all along, so the outbox and the delivery worker are exercised too
        "FINSENTRY_DETECTOR__KIND": "threshold",
        "FINSENTRY_DETECTOR__MIN_NEGATIVE": "3",
        "FINSENTRY_DETECTOR__MIN_NEG_SHARE": "0.5",
        "FINSENTRY_WEBHOOKS__URLS": json.dumps([sink_url]),
        "FINSENTRY_SOAK_SNAPSHOT": str(workdir / "tracemalloc"),
    }


def _start_daemon(env: dict[str, str], log_path: Path, traced: bool) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-c", _TRACED_DAEMON] if traced else [sys.executable, "-m", "finsentry", "run"]
    with log_path.open("ab") as log:
        return subprocess.Popen(cmd, env=env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)


def _wait_scored(port: int, want: float, proc: subprocess.Popen[bytes], timeout_s: float) -> float:
    deadline = time.monotonic() + timeout_s
    while (n := _scored_so_far(port)) < want:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"daemon scored {n:.0f} of {want:.0f} (exit {proc.poll()})")
        time.sleep(0.2)
    return n


def probe_max_rate(stream: _Stream, port: int, proc: subprocess.Popen[bytes], backlog: int) -> float:
    """Items/s the daemon scores while draining a backlog of ``backlog`` items (between 10 % and 90 % of it).

    Returns when the whole backlog is scored.

    Raises:
        RuntimeError: the daemon exited, or did not get through the backlog in time.
    """
    base = _wait_scored(port, 0, proc, 5)
    stream.send(backlog)
    stream.flush()
    n10 = _wait_scored(port, base + 0.1 * backlog, proc, 900)
    t10 = time.monotonic()
    n90 = _wait_scored(port, base + 0.9 * backlog, proc, 1800)
    rate = (n90 - n10) / (time.monotonic() - t10)
    _wait_scored(port, base + backlog, proc, 600)
    return rate


def p99(values: list[int]) -> int:
    """Nearest-rank 99th percentile of ``values`` (0 for none)."""
    if not values:
        return 0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]


def _tracemalloc_top(workdir: Path) -> list[str]:
    import tracemalloc

    first, last = workdir / "tracemalloc.1", workdir / "tracemalloc.2"
    if not (first.is_file() and last.is_file()):
        return []
    diff = tracemalloc.Snapshot.load(str(last)).compare_to(tracemalloc.Snapshot.load(str(first)), "lineno")
    return [str(d) for d in diff[:25]]


def _fill_items(distinct_titles: int) -> int:
    """Items the daemon consumes before its bounded structures are full: the latency record
    (``DaemonStats.latency_ms``, 100,000) or one pass over the distinct titles, when the
    title-key memo (131,072) holds them all."""
    return max(100_000, min(distinct_titles, 131_072))


def run_soak(bootstrap: str, workdir: Path, feeds: list[Path], minutes: float, warmup_min: float, load: float,
             rate: float | None, probe_items: int, sample_s: float, traced: bool) -> dict[str, object]:
    """One soak run (see the module docstring); returns the figures."""
    items = load_items(feeds)
    topics = fault_topics("soak")
    create_topics(bootstrap, {topics["raw"]: 4, topics["scored"]: 4, topics["dlq"]: 1, topics["late"]: 1})
    started = time.monotonic()
    with WebhookSink() as sink:
        port = _free_port()
        env = _env(bootstrap, topics, workdir, sink.url, port)
        stream = _Stream(bootstrap, topics["raw"], items)
        proc = _start_daemon(env, workdir / "daemon.log", traced)
        lag = _LagProbe(bootstrap, topics["raw"], topics["group"])
        try:
            deadline = time.monotonic() + 180
            while not _ops_up(port):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"daemon did not come up (exit {proc.poll()}); see {workdir / 'daemon.log'}")
                time.sleep(0.2)
            max_rate = probe_max_rate(stream, port, proc, probe_items if rate is None else 100)
            max_rate = None if rate is not None else max_rate  # with --rate: only a 100-item warm-up
            target = rate if rate is not None else load * max_rate
            print(f"[soak] max rate {max_rate or float('nan'):.1f} items/s; streaming {target:.1f} items/s "
                  f"for {minutes} min", flush=True)
            samples: list[tuple[float, float, int]] = []
            state = {"next": 0.0, "snap": False}

            def on_tick(elapsed: float) -> None:
                if elapsed >= state["next"]:
                    state["next"] += sample_s
                    samples.append((round(elapsed, 1), round(rss_mib(proc.pid), 2), lag()))
                if traced and not state["snap"] and elapsed >= warmup_min * 60:
                    state["snap"] = True
                    proc.send_signal(signal.SIGUSR1)
                if proc.poll() is not None:
                    raise RuntimeError(f"daemon exited {proc.returncode} mid-soak; see {workdir / 'daemon.log'}")

            sent_before = stream.sent
            seconds = stream.paced(target, minutes * 60, on_tick)
            achieved = (stream.sent - sent_before) / seconds
            if traced:
                proc.send_signal(signal.SIGUSR1)
            drain_started = time.monotonic()
            while lag() > 0 and time.monotonic() - drain_started < 1800:
                time.sleep(1.0)
            drain_s = time.monotonic() - drain_started
            time.sleep(2.0 if traced else 0.0)
        finally:
            stream.close()
            lag.close()
            exit_code = wait_exit(proc, 120, stop=True)
        time.sleep(1.0)  # the last deliveries' answers
        received = sink.received
        duplicate_alerts = sink.duplicates
    figures = _count(bootstrap, topics)
    warm = [s for s in samples if s[0] >= warmup_min * 60] or samples
    lags = [s[2] for s in samples]
    rss_start, rss_end = warm[0][1], samples[-1][1]
    at5 = next((s[1] for s in samples if s[0] >= 300), samples[0][1])
    figures.update({
        "fault": "soak: steady stream at a fraction of the maximum rate",
        "feeds": [f.name if f.is_file() else str(f) for f in feeds],
        "distinct_real_items": len(items),
        "max_rate_items_s": None if max_rate is None else round(max_rate, 1),
        "load": load if rate is None else None,
        "rate_items_s": round(target, 1),
        "achieved_rate_items_s": round(achieved, 1),
        "minutes": minutes,
        "warmup_minutes": warmup_min,
        "fill_minutes": round(_fill_items(len(items)) / achieved / 60, 1) if achieved else None,
        "warmup_covers_fill": bool(achieved) and warmup_min * 60 * achieved >= _fill_items(len(items)),
        "rss_start_mib": rss_start,
        "rss_end_mib": rss_end,
        "rss_max_mib": max(s[1] for s in samples),
        "rss_at_5min_mib": at5,
        "rss_growth_from_5min_pct": round(100 * (rss_end - at5) / at5, 2),
        "rss_growth_pct": round(100 * (rss_end - rss_start) / rss_start, 2),
        "lag_max": max(lags),
        "lag_p99": p99(lags),
        "lag_end": lags[-1],
        "drain_s": round(drain_s, 1),
        "daemon_exit": exit_code,
        "alerts_received": len(received),
        "duplicate_alerts": duplicate_alerts,
        "tracemalloc_top": _tracemalloc_top(workdir) if traced else [],
        "wall_s": round(time.monotonic() - started, 1),
        "sample_s": sample_s,
        "samples": samples,
    })
    return figures


def _ops_up(port: int) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def main(argv: list[str] | None = None) -> int:
    """Command line; prints the figures and writes them as JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--short", action="store_true", help="the CI version: 2 minutes, warm-up 0.5 min, 1,000-item probe")
    ap.add_argument("--minutes", type=float, default=None, help="stream duration (default 90: 30 warm-up + 60)")
    ap.add_argument("--warmup", type=float, default=None, help="RSS start mark, minutes into the stream (default 30)")
    ap.add_argument("--load", type=float, default=0.5, help="fraction of the measured maximum rate (default 0.5)")
    ap.add_argument("--rate", type=float, default=None, help="items/s to stream (skips the maximum-rate probe)")
    ap.add_argument("--probe-items", type=int, default=None, help="backlog of the rate probe (default 4,000)")
    ap.add_argument("--sample-s", type=float, default=5.0, help="seconds between RSS / lag samples")
    ap.add_argument("--feed", type=Path, action="append", default=None,
                    help="feed file or folder (repeatable; default: Benzinga sample + StockNet tweets)")
    ap.add_argument("--tracemalloc", action="store_true", help="trace the daemon's allocations (slow; leak hunting)")
    ap.add_argument("--bootstrap", default=None, help="use this broker (default: start a local one)")
    ap.add_argument("--out", type=Path, default=None, help="JSON output (default benchmarks/faults/soak[-short].json)")
    args = ap.parse_args(argv)
    minutes = args.minutes or (2.0 if args.short else 90.0)
    warmup = args.warmup if args.warmup is not None else (0.5 if args.short else 30.0)
    if not 0 <= warmup < minutes:
        ap.error(f"--warmup {warmup} must be >= 0 and below --minutes {minutes}")
    if not 0 < args.load <= 1 or (args.rate is not None and args.rate <= 0):
        ap.error("--load must be in (0, 1] and --rate > 0")
    probe = args.probe_items or (1000 if args.short else 4000)
    feeds = args.feed or [default_data_dir() / DEFAULT_FEED, default_data_dir() / STOCKNET]
    out = args.out or Path(__file__).with_name("soak-short.json" if args.short else "soak.json")
    with tempfile.TemporaryDirectory(prefix="finsentry-soak-") as tmp, broker_for(args.bootstrap, Path(tmp)) as bootstrap:
        figures = run_soak(bootstrap, Path(tmp), feeds, minutes, warmup, args.load, args.rate, probe,
                           args.sample_s, args.tracemalloc)
    write_figures(figures, "soak.py", argv, out)
    ok = (figures["lost"] == 0 and figures["duplicate_alerts"] == 0 and figures["daemon_exit"] == 0
          and figures["duplicate_scored_records"] == 0)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
