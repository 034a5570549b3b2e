"""Fault run: the Kafka broker frozen (SIGSTOP) for 30 s while ``finsentry run`` consumes, then resumed.

What it does, all on this machine:

1. starts its own local Kafka broker (it needs the broker's process id),
   fresh raw (4 partitions), scored (4), dead-letter and late topics;
2. ``finsentry replay`` writes the first ``--items`` items of the Benzinga
   sample (real headlines) into the raw topic (a backlog);
3. ``finsentry run`` consumes it; once it has scored a quarter of the items
   (read from its ``/metrics``), the broker JVM is sent SIGSTOP, held for
   ``--freeze`` seconds (every request the daemon sends meanwhile hangs, then
   times out), and sent SIGCONT; the daemon runs on until caught up
   (``--idle-exit``);
4. reads the topics back and counts as ``kill9.py`` does.

This is a freeze, not the issue's "broker stopped and restarted": the local
broker's script formats a fresh data directory at every start, so a restart
that keeps the data is not possible with it yet. A frozen broker keeps its
connections open and answers nothing, which exercises the client's request
timeouts and reconnection rather than refused connections.

Figures (JSON, also printed): ``lost`` (items with neither a scored record
nor a dead letter: must be 0), ``daemon_exit`` (must be 0), ``frozen_s``,
``scored_at_freeze``, ``scored_records`` / ``distinct_scored`` (re-processing
after timeouts shows as duplicates), ``wall_s``.

Usage::

    python benchmarks/faults/brokerfreeze.py              # 5,000 items, 30 s
    python benchmarks/faults/brokerfreeze.py --short      # 1,000 items, 30 s
"""

from __future__ import annotations

import argparse
import os
import signal
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
    _count, _free_port, daemon_env, daemon_outcome, fault_topics, on_local_broker, start_until_scored,
    write_figures,
)


def run_freeze(broker: LocalBroker, bootstrap: str, workdir: Path, feed: Path, items: int, freeze_s: float,
               idle_exit_s: float) -> dict[str, object]:
    """One fault run (see the module docstring); returns the figures."""
    topics = fault_topics("freeze")
    create_topics(bootstrap, {topics["raw"]: 4, topics["scored"]: 4, topics["dlq"]: 1, topics["late"]: 1})
    port = _free_port()
    env = {**daemon_env(bootstrap, topics, workdir / "outbox.sqlite", port),
           # one row per ONNX Runtime call: an item re-processed after a timeout gets the same label
           "FINSENTRY_MODEL__SUB_BATCH": "1"}
    replay = subprocess.run([sys.executable, "-m", "finsentry", "replay", str(feed), "--limit", str(items)],
                            env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=1800)
    if replay.returncode != 0:
        raise RuntimeError(f"replay failed: {replay.stdout[-2000:]}{replay.stderr[-2000:]}")
    log_path = workdir / "daemon.log"
    started = time.monotonic()
    daemon, scored_at_freeze = start_until_scored(env, log_path, idle_exit_s, port, items // 4)
    assert broker.pid is not None
    os.kill(broker.pid, signal.SIGSTOP)
    frozen_at = time.monotonic()
    try:
        time.sleep(freeze_s)
    finally:
        os.kill(broker.pid, signal.SIGCONT)
    frozen = time.monotonic() - frozen_at
    print(f"[freeze] broker frozen for {frozen:.1f} s after {scored_at_freeze:.0f} items were scored", flush=True)
    outcome = daemon_outcome(daemon, log_path)
    return {
        "fault": "broker frozen (SIGSTOP) mid-stream, then resumed (SIGCONT)",
        "feed": feed.name,
        **_count(bootstrap, topics),
        **outcome,
        "frozen_s": round(frozen, 1),
        "scored_at_freeze": scored_at_freeze,
        "wall_s": round(time.monotonic() - started, 1),
    }


def main(argv: list[str] | None = None) -> int:
    """Command line; prints the figures and writes them as JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--short", action="store_true", help="1,000 items")
    ap.add_argument("--items", type=int, default=None, help="items to replay (default 5,000)")
    ap.add_argument("--freeze", type=float, default=30.0, help="seconds the broker stays frozen")
    ap.add_argument("--idle-exit", type=float, default=8.0, help="the daemon exits after S idle seconds")
    ap.add_argument("--feed", type=Path, default=None, help="feed file (default: the Benzinga sample)")
    ap.add_argument("--out", type=Path, default=None,
                    help="JSON output (default benchmarks/faults/brokerfreeze[-short].json)")
    args = ap.parse_args(argv)
    items = args.items or (1000 if args.short else 5000)
    feed = args.feed or default_data_dir() / DEFAULT_FEED
    out = args.out or Path(__file__).with_name("brokerfreeze-short.json" if args.short else "brokerfreeze.json")
    figures = on_local_broker("finsentry-freeze-", lambda broker, bootstrap, workdir: run_freeze(
        broker, bootstrap, workdir, feed, items, args.freeze, args.idle_exit))
    write_figures(figures, "brokerfreeze.py", argv, out)
    return 0 if figures["lost"] == 0 and figures["daemon_exit"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
