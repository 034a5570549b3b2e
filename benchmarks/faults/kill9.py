"""Fault run: ``kill -9`` of ``finsentry run`` at random moments while real news streams through.

What it does, all on this machine:

1. starts a local Kafka broker (or uses ``--bootstrap``), creates fresh raw
   (4 partitions), scored (4) and dead-letter topics, and starts a webhook
   receiver (``alerts.WebhookSink``, counts duplicate ``webhook-id``\\ s);
2. ``finsentry replay`` streams the Benzinga analyst-ratings sample
   (``massive_stock_news_analyst_ratings_partial``, real headlines; or any
   feed file or folder that ``finsentry replay`` reads, ``--feed``, e.g. the
   StockNet tweets for 20,000 items) into the raw topic, at full speed, while
3. ``finsentry run`` daemons are started one after the other; each is sent
   SIGKILL at a random moment (uniform in ``[0, --max-gap]`` s after it has
   scored its first item, read from its own ``/metrics``) and a new one is
   started at once, ``--kills`` times; a last daemon runs until caught up
   (``--idle-exit``) and stops with SIGTERM semantics (its normal exit);
4. reads the raw, scored and dead-letter topics back and counts.

Figures (JSON, also printed):

* ``lost``: raw item ids with neither a scored record nor a dead letter (must be 0);
* ``duplicate_scored_records``: scored records minus distinct item ids: the
  at-least-once re-deliveries on the scored topic (expected > 0 after kills;
  consumers deduplicate by ``item_id``); ``items_scored_twice_after_dedup`` is
  always 0 by construction and is not reported;
* ``conflicting_labels``: item ids whose duplicate records disagree on the label;
* ``duplicate_alerts``: notifications the receiver got with an already-seen
  ``webhook-id`` (the alert id) (must be 0);
* ``alert_ids``: the distinct alert ids received; compare with a run with
  ``--kills 0`` (same items, same seed) to count alerts missed because window
  state is in memory (a killed daemon's open windows restart empty).

Usage::

    python benchmarks/faults/kill9.py                 # 10,000 items, 20 kills (several minutes)
    python benchmarks/faults/kill9.py --short         # 1,500 items, 3 kills (the CI version)
    python benchmarks/faults/kill9.py --bootstrap 127.0.0.1:9092 --out /tmp/kill9.json
    # the issue's 20,000 items: the first 20,000 StockNet tweets (real, 84 tickers), in event-time order
    python benchmarks/faults/kill9.py --feed ../shared/data/stocknet/tweet/preprocessed --items 20000 \
        --out benchmarks/faults/kill9-20k.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from alerts import WebhookSink  # noqa: E402
from finsentry.broker import LocalBroker, create_topics  # noqa: E402
from finsentry.demo import DEFAULT_FEED, default_data_dir  # noqa: E402
from finsentry.topics import read_topic  # noqa: E402
from ingest import HEARTBEAT_KEY  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _scored_so_far(port: int) -> float:
    """``finsentry_items_scored_total`` of the daemon on ``port`` (0 while it is not up)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
            for line in resp.read().decode().splitlines():
                if line.startswith("finsentry_items_scored_total "):
                    return float(line.split()[1])
    except OSError:
        pass
    return 0.0


def fault_topics(prefix: str) -> dict[str, str]:
    """Fresh names for one run: ``raw``, ``scored``, ``dlq``, ``late`` topics and the consumer ``group``."""
    tag = uuid.uuid4().hex[:8]
    return {"raw": f"{prefix}-raw-{tag}", "scored": f"{prefix}-scored-{tag}", "dlq": f"{prefix}-dlq-{tag}",
            "late": f"{prefix}-late-{tag}", "group": f"{prefix}-{tag}"}


def daemon_env(bootstrap: str, topics: dict[str, str], outbox: Path, ops_port: int | None,
               log_level: str = "WARNING") -> dict[str, str]:
    """The environment every fault script's ``finsentry`` processes share (each script adds its own keys).

    This repository on ``PYTHONPATH``; the run's topics (``fault_topics``), created by the script, not the
    daemon; the outbox file; ``/metrics`` on ``ops_port`` (None: no ops server); no reload polling.
    """
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "FINSENTRY_KAFKA__BOOTSTRAP": bootstrap,
        "FINSENTRY_KAFKA__GROUP_ID": topics["group"],
        "FINSENTRY_KAFKA__RAW_TOPIC": topics["raw"],
        "FINSENTRY_KAFKA__SCORED_TOPIC": topics["scored"],
        "FINSENTRY_KAFKA__DLQ_TOPIC": topics["dlq"],
        "FINSENTRY_KAFKA__LATE_TOPIC": topics["late"],
        "FINSENTRY_KAFKA__CREATE_TOPICS": "false",
        "FINSENTRY_WEBHOOKS__OUTBOX_PATH": str(outbox),
        "FINSENTRY_OPS__RELOAD_CHECK_S": "0",
        "FINSENTRY_LOG_LEVEL": log_level,
    }
    if ops_port is not None:
        env["FINSENTRY_OPS__PORT"] = str(ops_port)
    return env


def _env(bootstrap: str, topics: dict[str, str], workdir: Path, sink_url: str, ops_port: int) -> dict[str, str]:
    return {
        **daemon_env(bootstrap, topics, workdir / "outbox.sqlite", ops_port),
        "FINSENTRY_KAFKA__SESSION_TIMEOUT_MS": "6000",  # a killed member leaves the group sooner
        "FINSENTRY_WINDOWS__SIZE_MINUTES": "1440",  # the sample is sparse: one-day windows, as the demo
        "FINSENTRY_WINDOWS__HOP_MINUTES": "1440",  # tumbling, whatever the default hop
        "FINSENTRY_DETECTOR__MIN_NEGATIVE": "2",
        "FINSENTRY_DETECTOR__MIN_NEG_SHARE": "0.5",
        "FINSENTRY_WEBHOOKS__URLS": json.dumps([sink_url]),
        "FINSENTRY_WEBHOOKS__RETRY_SCHEDULE_S": "[0, 0.5, 1, 2, 5]",
        "FINSENTRY_WEBHOOKS__DRAIN_TIMEOUT_S": "15",
    }


def wait_exit(proc: subprocess.Popen[bytes], timeout_s: float, stop: bool = False) -> int:
    """The exit status of ``proc`` (SIGTERMed first when ``stop``); -9, after a SIGKILL, past ``timeout_s``."""
    if stop and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        return -9


def _daemon(env: dict[str, str], log_path: Path, idle_exit: float | None = None) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "finsentry", "run"] + ([] if idle_exit is None else ["--idle-exit", str(idle_exit)])
    with log_path.open("ab") as log:
        return subprocess.Popen(cmd, env=env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)


def start_until_scored(env: dict[str, str], log_path: Path, idle_exit_s: float, port: int, count: float,
                       timeout_s: float = 600.0) -> tuple[subprocess.Popen[bytes], float]:
    """Start ``finsentry run`` (output to ``log_path``) and wait until it has scored ``count`` items (its
    ``/metrics`` on ``port``), has exited, or ``timeout_s`` has passed; return it and the items scored by then."""
    daemon = _daemon(env, log_path, idle_exit_s)
    deadline = time.monotonic() + timeout_s
    while _scored_so_far(port) < count and time.monotonic() < deadline and daemon.poll() is None:
        time.sleep(0.1)
    return daemon, _scored_so_far(port)


def daemon_outcome(daemon: subprocess.Popen[bytes], log_path: Path, timeout_s: float = 1800) -> dict[str, object]:
    """Wait for the daemon to exit by itself: ``daemon_exit`` and, when it is not 0, ``daemon_log_tail``."""
    code = wait_exit(daemon, timeout_s)
    return {"daemon_exit": code, "daemon_log_tail": log_path.read_text(errors="replace")[-5000:] if code else ""}


def on_local_broker(prefix: str, run: Callable[[LocalBroker, str, Path], dict[str, object]]) -> dict[str, object]:
    """``run(broker, bootstrap, workdir)`` on a local broker of its own, in a temporary folder (both removed after)."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        broker = LocalBroker(run_dir=Path(tmp) / "broker")
        bootstrap = broker.start()
        try:
            return run(broker, bootstrap, Path(tmp))
        finally:
            broker.stop()


def run_kill9(bootstrap: str, workdir: Path, feed: Path, items: int, kills: int, seed: int,
              max_gap_s: float, idle_exit_s: float) -> dict[str, object]:
    """One fault run (see the module docstring); returns the figures."""
    rng = random.Random(seed)
    topics = fault_topics("kill9")
    create_topics(bootstrap, {topics["raw"]: 4, topics["scored"]: 4, topics["dlq"]: 1, topics["late"]: 1})
    started = time.monotonic()
    kill_times: list[float] = []
    scored_at_kill: list[float] = []
    with WebhookSink() as sink:
        ops_port = _free_port()
        env = _env(bootstrap, topics, workdir, sink.url, ops_port)
        replay = subprocess.Popen(
            [sys.executable, "-m", "finsentry", "replay", str(feed), "--limit", str(items)],
            env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for k in range(kills):
            proc = _daemon(env, workdir / "daemon.log")
            deadline = time.monotonic() + 120
            while _scored_so_far(ops_port) < 1 and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.1)
            time.sleep(rng.uniform(0, max_gap_s))
            scored_at_kill.append(_scored_so_far(ops_port))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kill_times.append(round(time.monotonic() - started, 2))
            print(f"[kill9] kill {k + 1}/{kills} at {kill_times[-1]:.1f} s "
                  f"(that daemon had scored {scored_at_kill[-1]:.0f})", flush=True)
        replay_out = replay.communicate(timeout=600)[0].decode(errors="replace").strip().splitlines()
        final = _daemon(env, workdir / "daemon.log", idle_exit=idle_exit_s)
        if final.wait(timeout=1800) != 0:
            raise RuntimeError(f"the last daemon exited {final.returncode}; see {workdir / 'daemon.log'}")
        time.sleep(1.0)  # the last deliveries' answers
        received = sink.received
        duplicate_alerts = sink.duplicates
    figures = _count(bootstrap, topics)
    alert_ids = [headers.get("webhook-id") for headers, _ in received]
    figures.update({
        "fault": "kill -9 of finsentry run",
        "feed": feed.name if feed.is_file() else "/".join(feed.parts[-3:]),
        "kills": kills,
        "kills_at_s": kill_times,
        "scored_by_killed_daemon": scored_at_kill,
        "seed": seed,
        "alerts_received": len(received),
        "distinct_alerts": len(set(alert_ids)),
        "duplicate_alerts": duplicate_alerts,
        "alert_ids": sorted({a for a in alert_ids if a}),
        "wall_s": round(time.monotonic() - started, 1),
        "replay": replay_out[-1] if replay_out else "",
    })
    return figures


def _count(bootstrap: str, topics: dict[str, str]) -> dict[str, object]:
    raw = [r for r in read_topic(bootstrap, topics["raw"], timeout_s=120) if r[2] != HEARTBEAT_KEY]
    raw_ids = {(p, o): json.loads(v)["id"] for p, o, _, v in raw}  # items only: heartbeats are not scored
    scored = [json.loads(v) for _, _, _, v in read_topic(bootstrap, topics["scored"], timeout_s=120)]
    dead = [json.loads(v) for _, _, _, v in read_topic(bootstrap, topics["dlq"], timeout_s=120)]
    per_item = Counter(s["item_id"] for s in scored)
    labels: dict[str, set[str]] = {}
    for s in scored:
        labels.setdefault(s["item_id"], set()).add(s["label"])
    dead_ids = {raw_ids.get((d.get("partition"), d.get("offset"))) for d in dead}
    all_ids = set(raw_ids.values())
    return {
        "items": len(all_ids),
        "raw_records": len(raw),
        "scored_records": len(scored),
        "distinct_scored": len(per_item),
        "dead_lettered_records": len(dead),
        "lost": len(all_ids - set(per_item) - dead_ids),
        "duplicate_scored_records": len(scored) - len(per_item),
        "items_with_duplicate_records": sum(1 for n in per_item.values() if n > 1),
        "conflicting_labels": sum(1 for v in labels.values() if len(v) > 1),
    }



@contextlib.contextmanager
def broker_for(bootstrap: str | None, workdir: Path) -> Iterator[str]:
    """Yield ``bootstrap``, or the address of a local broker started in ``workdir`` (stopped on exit) when None."""
    if bootstrap is not None:
        yield bootstrap
        return
    broker = LocalBroker(run_dir=workdir / "broker")
    try:
        yield broker.start()
    finally:
        broker.stop()


def write_figures(figures: dict[str, object], script: str, argv: list[str] | None, out: Path) -> None:
    """Add the reproducing command and the machine to ``figures``, print them and write them to ``out`` as JSON."""
    figures["command"] = f"python benchmarks/faults/{script} " + " ".join(argv if argv is not None else sys.argv[1:])
    figures["machine"] = f"{platform.machine()}, {len(os.sched_getaffinity(0))} usable cores, {platform.python_version()}"
    text = json.dumps(figures, indent=2)
    print(text)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")


def main(argv: list[str] | None = None) -> int:
    """Command line; prints the figures and writes them as JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--short", action="store_true", help="the CI version: 1,500 items, 3 kills")
    ap.add_argument("--items", type=int, default=None, help="items to replay (default 10,000: the whole sample)")
    ap.add_argument("--kills", type=int, default=None, help="kill -9 count (default 20)")
    ap.add_argument("--max-gap", type=float, default=4.0, help="kill within this many s after first scoring")
    ap.add_argument("--idle-exit", type=float, default=8.0, help="the last daemon exits after S idle seconds")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--bootstrap", default=None, help="use this broker (default: start a local one)")
    ap.add_argument("--feed", type=Path, default=None,
                    help="feed file or folder, e.g. stocknet/tweet/preprocessed (default: the Benzinga sample)")
    ap.add_argument("--out", type=Path, default=None, help="JSON output (default benchmarks/faults/kill9[-short].json)")
    args = ap.parse_args(argv)
    items = args.items or (1500 if args.short else 10_000)
    kills = args.kills if args.kills is not None else (3 if args.short else 20)
    feed = args.feed or default_data_dir() / DEFAULT_FEED
    out = args.out or Path(__file__).with_name("kill9-short.json" if args.short else "kill9.json")
    with tempfile.TemporaryDirectory(prefix="finsentry-kill9-") as tmp, broker_for(args.bootstrap, Path(tmp)) as bootstrap:
        figures = run_kill9(bootstrap, Path(tmp), feed, items, kills, args.seed, args.max_gap, args.idle_exit)
    write_figures(figures, "kill9.py", argv, out)
    ok = figures["lost"] == 0 and figures["duplicate_alerts"] == 0 and figures["conflicting_labels"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
