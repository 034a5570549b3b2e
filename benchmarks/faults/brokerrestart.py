"""Fault run: the Kafka broker stopped for 30 s while ``finsentry run`` consumes, then restarted on its data.

What it does, all on this machine:

1. starts its own local Kafka broker (``LocalBroker``: it halts and resumes
   it), fresh raw (4 partitions), scored (4), dead-letter and late topics;
2. ``finsentry replay`` writes the first ``--items`` items of the Benzinga
   sample (real headlines) into the raw topic (a backlog);
3. ``finsentry run`` consumes it; once it has scored a quarter of the items
   (read from its ``/metrics``), the broker is **stopped** (``broker.sh
   halt``: SIGTERM to the JVM, a controlled shutdown; the process ends, every
   connection is refused), kept down ``--down`` seconds, and **restarted**
   (``broker.sh resume``: a new JVM on the same data dir, config and ports);
   nothing is done to the daemon;
4. once the broker is back, ``finsentry replay`` writes the next
   ``--tail-items`` items of the sample (items that exist only after the
   restart: the daemon must fetch them through its new connections); the
   daemon runs on until caught up (``--idle-exit``) and exits by itself;
5. reads the topics back and counts as ``kill9.py`` does.

Figures (JSON, also printed): ``lost`` (items with neither a scored record
nor a dead letter: must be 0), ``daemon_exit`` (must be 0),
``duplicate_scored_records`` (records re-processed after the outage: the
daemon's output is at-least-once), ``conflicting_labels`` (must be 0),
``stopped_s`` (from the halt's start to the resume's start: the JVM's
shutdown and the time it stayed stopped), ``down_s`` (from the halt's start
to the broker serving again: ``stopped_s`` plus the JVM's start),
``reconnect_s`` (from the broker serving again to the daemon's next scored
item, read from its ``/metrics`` every 0.1 s), ``scored_at_halt``,
``scored_while_down`` (items the daemon scored while the broker was down:
at most the batches in hand), ``wall_s``.

Usage::

    python benchmarks/faults/brokerrestart.py              # 5,000 + 1,000 items, 30 s down
    python benchmarks/faults/brokerrestart.py --short      # 1,000 + 200 items, 30 s down (CI)
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from finsentry.broker import LocalBroker, create_topics  # noqa: E402
from finsentry.demo import DEFAULT_FEED, default_data_dir  # noqa: E402
from kill9 import (  # noqa: E402
    _count, _free_port, _scored_so_far, daemon_env, daemon_outcome, fault_topics, on_local_broker,
    start_until_scored, write_figures,
)


def _env(bootstrap: str, topics: dict[str, str], workdir: Path, port: int) -> dict[str, str]:
    return {**daemon_env(bootstrap, topics, workdir / "outbox.sqlite", port),
            # one row per ONNX Runtime call: an item re-processed after the outage gets the same label
            "FINSENTRY_MODEL__SUB_BATCH": "1"}


def _replay(env: dict[str, str], feed: Path, start: int, count: int, workdir: Path) -> None:
    """Write items ``start .. start + count - 1`` of ``feed`` (event-time order) into the raw topic."""
    part = workdir / f"feed-{start}.jsonl"
    from ingest import read_feed

    items = read_feed(feed).items[start:start + count]
    part.write_bytes(b"".join(item.to_json() + b"\n" for item in items))
    proc = subprocess.run([sys.executable, "-m", "finsentry", "replay", str(part)],
                          env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=1800, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"replay failed: {proc.stdout[-2000:]}{proc.stderr[-2000:]}")


def run_restart(broker: LocalBroker, bootstrap: str, workdir: Path, feed: Path, items: int, tail_items: int,
                down_s: float, idle_exit_s: float) -> dict[str, object]:
    """One fault run (see the module docstring); returns the figures."""
    topics = fault_topics("restart")
    create_topics(bootstrap, {topics["raw"]: 4, topics["scored"]: 4, topics["dlq"]: 1, topics["late"]: 1})
    port = _free_port()
    env = _env(bootstrap, topics, workdir, port)
    _replay(env, feed, 0, items, workdir)
    log_path = workdir / "daemon.log"
    started = time.monotonic()
    daemon, scored_at_halt = start_until_scored(env, log_path, idle_exit_s, port, items // 4)
    halted_at = time.monotonic()
    broker.halt()
    print(f"[restart] broker stopped after {scored_at_halt:.0f} items were scored "
          f"({time.monotonic() - halted_at:.1f} s to stop)", flush=True)
    time.sleep(max(0.0, down_s - (time.monotonic() - halted_at)))
    scored_before_resume = _scored_so_far(port)
    resumed_at = time.monotonic()
    broker.resume()
    back_at = time.monotonic()
    print(f"[restart] broker serving again after {back_at - halted_at:.1f} s", flush=True)
    reconnect_s = None
    while daemon.poll() is None and time.monotonic() - back_at < 600:
        if _scored_so_far(port) > scored_before_resume:
            reconnect_s = time.monotonic() - back_at
            break
        time.sleep(0.1)
    _replay(env, feed, items, tail_items, workdir)
    outcome = daemon_outcome(daemon, log_path)
    return {
        "fault": "broker stopped (JVM ended, data kept) mid-stream, restarted 30 s later on the same data and ports",
        "feed": feed.name,
        **_count(bootstrap, topics),
        "items_before_stop": items,
        "items_after_restart": tail_items,
        **outcome,
        "stopped_s": round(resumed_at - halted_at, 1),
        "down_s": round(back_at - halted_at, 1),
        "reconnect_s": None if reconnect_s is None else round(reconnect_s, 1),
        "scored_at_halt": scored_at_halt,
        "scored_while_down": scored_before_resume - scored_at_halt,
        "wall_s": round(time.monotonic() - started, 1),
    }


def main(argv: list[str] | None = None) -> int:
    """Command line; prints the figures and writes them as JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--short", action="store_true", help="1,000 + 200 items")
    ap.add_argument("--items", type=int, default=None, help="backlog before the stop (default 5,000)")
    ap.add_argument("--tail-items", type=int, default=None, help="items written after the restart (default 1,000)")
    ap.add_argument("--down", type=float, default=30.0, help="seconds the broker stays stopped")
    ap.add_argument("--idle-exit", type=float, default=8.0, help="the daemon exits after S idle seconds")
    ap.add_argument("--feed", type=Path, default=None, help="feed file (default: the Benzinga sample)")
    ap.add_argument("--out", type=Path, default=None,
                    help="JSON output (default benchmarks/faults/brokerrestart[-short].json)")
    args = ap.parse_args(argv)
    items = args.items or (1000 if args.short else 5000)
    tail = args.tail_items if args.tail_items is not None else (200 if args.short else 1000)
    feed = args.feed or default_data_dir() / DEFAULT_FEED
    out = args.out or Path(__file__).with_name("brokerrestart-short.json" if args.short else "brokerrestart.json")
    figures = on_local_broker("finsentry-restart-", lambda broker, bootstrap, workdir: run_restart(
        broker, bootstrap, workdir, feed, items, tail, args.down, args.idle_exit))
    write_figures(figures, "brokerrestart.py", argv, out)
    ok = figures["lost"] == 0 and figures["daemon_exit"] == 0 and figures["conflicting_labels"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
