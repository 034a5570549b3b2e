"""Fault run: the webhook receiver down for 10 minutes while ``finsentry run`` raises alerts, then back.

What it does, all on this machine:

1. starts a local Kafka broker (or uses ``--bootstrap``), fresh raw (4
   partitions), scored (4), dead-letter and late topics, and a real webhook
   receiver (``alerts.WebhookSink`` on a fixed port, verifying Standard
   Webhooks signatures with the secret the daemon signs with);
2. starts one ``finsentry run`` with the threshold detector (2 negatives,
   share >= 0.5, one-day windows, as ``kill9.py``) and the **default retry
   schedule** (Standard Webhooks: 0 s, 5 s, 5 min, 30 min, 2 h, ... with
   full jitter); alerts are raised **through the daemon** from real items:
   the Benzinga analyst-ratings sample, in event-time order, written in
   ``--chunks`` equal chunks (``finsentry replay``), so that windows close
   and alerts are raised chunk after chunk;
3. writes the first chunk with the receiver up (it gets those alerts), then
   **stops the receiver** (the server is shut down: connections are refused)
   and writes the other chunks spread over ``--minutes`` of downtime, each
   at even intervals; keeps it down until ``--minutes`` are over and the
   daemon has scored every chunk (so the downtime is at least ``--minutes``;
   ``down_s`` is the measured one);
4. **restarts the receiver** on the same port and waits until every alert the
   daemon stored in its outbox has been received (or ``--wait-max`` s);
   stops the daemon (SIGTERM).

Figures (JSON, also printed): ``alerts_raised`` (messages in the daemon's
outbox: firing and resolved notifications), ``raised_while_down``,
``delivered`` (distinct ``webhook-id``\\ s received, both receiver runs),
``duplicates`` (deliveries of an already received ``webhook-id``: must be
0), ``rejected_signatures`` (must be 0), ``dead_lettered`` (outbox dead
letters: must be 0), ``undelivered`` (raised but never received: must be
0), ``failed_attempts_while_down``, ``last_delivery_after_return_s`` (from
the receiver's return to the last alert received), and
``schedule_only_wait_s``: at the return, the latest ``next_at`` among the
pending deliveries minus the return time, read from the outbox: how long the
retry schedule alone would have kept the receiver waiting for its last alert
(before ``Outbox.retry_failed_now``, which makes the backed-off deliveries due
as soon as one delivery succeeds).

Usage::

    python benchmarks/faults/receiverdown.py               # 10 minutes down, 9,991 items in 11 chunks
    python benchmarks/faults/receiverdown.py --short       # 20 s down, 3,000 items in 4 chunks (CI)
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from alerts import WebhookSink, generate_secret  # noqa: E402
from finsentry.broker import create_topics  # noqa: E402
from finsentry.demo import DEFAULT_FEED, default_data_dir  # noqa: E402
from ingest import read_feed  # noqa: E402
from kill9 import (  # noqa: E402
    _free_port, _scored_so_far, broker_for, daemon_env, fault_topics, wait_exit, write_figures,
)

SECRET_VAR = "FINSENTRY_FAULT_HOOK_SECRET"


def _env(bootstrap: str, topics: dict[str, str], workdir: Path, sink_url: str, port: int,
         secret: str) -> dict[str, str]:
    return {
        **daemon_env(bootstrap, topics, workdir / "outbox.sqlite", port),
        SECRET_VAR: secret,
        "FINSENTRY_WINDOWS__SIZE_MINUTES": "1440",
        "FINSENTRY_WINDOWS__HOP_MINUTES": "1440",  # tumbling, whatever the default hop
        "FINSENTRY_DETECTOR__KIND": "threshold",
        "FINSENTRY_DETECTOR__MIN_NEGATIVE": "2",
        "FINSENTRY_DETECTOR__MIN_NEG_SHARE": "0.5",
        "FINSENTRY_WEBHOOKS__URLS": json.dumps([sink_url]),
        "FINSENTRY_WEBHOOKS__SECRET_ENV": SECRET_VAR,
        "FINSENTRY_WEBHOOKS__CONNECT_TIMEOUT_S": "1",
    }


def _outbox(path: Path, sql: str) -> list[tuple]:
    """Rows of a read-only query on the daemon's outbox (WAL: reading beside the daemon is safe)."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _write_chunk(env: dict[str, str], lines: list[bytes], path: Path) -> None:
    path.write_bytes(b"".join(lines))
    proc = subprocess.run([sys.executable, "-m", "finsentry", "replay", str(path)],
                          env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"replay failed: {proc.stdout[-2000:]}{proc.stderr[-2000:]}")


def _wait_scored(port: int, want: int, daemon: subprocess.Popen[bytes], timeout_s: float = 900) -> None:
    deadline = time.monotonic() + timeout_s
    while _scored_so_far(port) < want:
        if daemon.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the daemon scored {_scored_so_far(port):.0f} of {want} (exit {daemon.poll()})")
        time.sleep(0.2)


class _Receiver:
    """The receiver, stopped and started again on one port; keeps what every run received."""

    def __init__(self, port: int, secret: str) -> None:
        self.port, self.secret = port, secret
        self.ids: list[str] = []
        self.rejected = 0
        self.sink: WebhookSink | None = None

    def start(self) -> None:
        self.sink = WebhookSink(port=self.port, secrets=[self.secret])
        self.sink.__enter__()

    def stop(self) -> None:
        assert self.sink is not None
        self._collect()
        self.sink.__exit__(None, None, None)
        self.sink = None

    def _collect(self) -> None:
        assert self.sink is not None
        self.ids.extend(h.get("webhook-id", "") for h, _ in self.sink.received)
        self.rejected += self.sink.rejected

    def received_ids(self) -> list[str]:
        live = [h.get("webhook-id", "") for h, _ in self.sink.received] if self.sink is not None else []
        return self.ids + live


def run_receiver_down(bootstrap: str, workdir: Path, feed: Path, items: int, chunks: int, down_s: float,
                      wait_max_s: float) -> dict[str, object]:
    """One fault run (see the module docstring); returns the figures."""
    topics = fault_topics("rdown")
    create_topics(bootstrap, {topics["raw"]: 4, topics["scored"]: 4, topics["dlq"]: 1, topics["late"]: 1})
    lines = [item.to_json() + b"\n" for item in read_feed(feed).items[:items]]
    size = -(-len(lines) // chunks)
    parts = [lines[i:i + size] for i in range(0, len(lines), size)]
    secret, port, ops_port = generate_secret(), _free_port(), _free_port()
    receiver = _Receiver(port, secret)
    receiver.start()
    assert receiver.sink is not None
    env = _env(bootstrap, topics, workdir, receiver.sink.url, ops_port, secret)
    outbox = workdir / "outbox.sqlite"
    with (workdir / "daemon.log").open("ab") as log:
        daemon = subprocess.Popen([sys.executable, "-m", "finsentry", "run"], env=env, cwd=REPO_ROOT,
                                  stdout=log, stderr=subprocess.STDOUT)
    started = time.monotonic()
    try:
        written = len(parts[0])
        _write_chunk(env, parts[0], workdir / "chunk-0.jsonl")
        _wait_scored(ops_port, written, daemon)
        time.sleep(2.0)  # the first chunk's alerts reach the receiver while it is up
        raised_before = _outbox(outbox, "SELECT count(*) FROM messages")[0][0]
        receiver.stop()
        down_at = time.monotonic()
        print(f"[receiverdown] receiver stopped; {raised_before} alert(s) raised so far", flush=True)
        for k, part in enumerate(parts[1:], start=1):
            due = down_at + (k - 1) * down_s / max(1, len(parts) - 1)
            time.sleep(max(0.0, due - time.monotonic()))
            _write_chunk(env, part, workdir / f"chunk-{k}.jsonl")
            written += len(part)
        _wait_scored(ops_port, written, daemon)
        time.sleep(max(0.0, down_at + down_s - time.monotonic()))
        raised = _outbox(outbox, "SELECT count(*) FROM messages")[0][0]
        failed_attempts = _outbox(outbox, "SELECT coalesce(sum(attempts), 0) FROM deliveries "
                                          "WHERE state = 'pending'")[0][0]
        latest_due = _outbox(outbox, "SELECT max(next_at) FROM deliveries WHERE state = 'pending'")[0][0]
        receiver.start()
        back_at, back_wall = time.monotonic(), time.time()
        print(f"[receiverdown] receiver back after {back_at - down_at:.0f} s; {raised} alert(s) raised", flush=True)
        last_new, seen = back_at, len(receiver.received_ids())
        while time.monotonic() - back_at < wait_max_s:
            n = len(set(receiver.received_ids()))
            if len(receiver.received_ids()) > seen:
                seen, last_new = len(receiver.received_ids()), time.monotonic()
            if n >= raised:
                break
            time.sleep(0.05)
        time.sleep(1.0)  # anything sent twice would arrive now
    finally:
        exit_code = wait_exit(daemon, 120, stop=True)
        if receiver.sink is not None:
            receiver.stop()
    ids = receiver.ids
    stored = {r[0] for r in _outbox(outbox, "SELECT msg_id FROM messages")}
    grouped = _outbox(outbox, "SELECT count(*) FROM deliveries WHERE state = 'grouped'")[0][0]
    return {
        "fault": "webhook receiver down (connections refused) while alerts are raised, then back",
        "alerts_via": "the daemon: real items through scoring, windows and the threshold detector",
        "feed": feed.name,
        "items": len(lines),
        "chunks": len(parts),
        "down_s": round(back_at - down_at, 1),
        "alerts_raised": len(stored),
        "raised_while_down": len(stored) - raised_before,
        "delivered": len(set(ids) & stored),
        "duplicates": len(ids) - len(set(ids)),
        "rejected_signatures": receiver.rejected,
        "undelivered": len(stored - set(ids)) - grouped,
        "grouped": grouped,
        "dead_lettered": _outbox(outbox, "SELECT count(*) FROM dead_letters")[0][0],
        "failed_attempts_while_down": failed_attempts,
        "last_delivery_after_return_s": round(last_new - back_at, 2),
        "schedule_only_wait_s": None if latest_due is None else round(latest_due - back_wall, 1),
        "daemon_exit": exit_code,
        "wall_s": round(time.monotonic() - started, 1),
    }


def main(argv: list[str] | None = None) -> int:
    """Command line; prints the figures and writes them as JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--short", action="store_true", help="20 s down, 3,000 items in 4 chunks (the CI version)")
    ap.add_argument("--minutes", type=float, default=None, help="minutes the receiver stays down (default 10)")
    ap.add_argument("--items", type=int, default=None, help="items of the feed (default 10,000: the whole sample)")
    ap.add_argument("--chunks", type=int, default=None, help="chunks the items are written in (default 11)")
    ap.add_argument("--wait-max", type=float, default=600.0, help="longest wait for the deliveries after the return, s")
    ap.add_argument("--bootstrap", default=None, help="use this broker (default: start a local one)")
    ap.add_argument("--feed", type=Path, default=None, help="feed file (default: the Benzinga sample)")
    ap.add_argument("--out", type=Path, default=None,
                    help="JSON output (default benchmarks/faults/receiverdown[-short].json)")
    args = ap.parse_args(argv)
    minutes = args.minutes or (20 / 60 if args.short else 10.0)
    items = args.items or (3000 if args.short else 10_000)
    chunks = args.chunks or (4 if args.short else 11)
    if chunks < 2:
        ap.error("--chunks must be >= 2 (one before the receiver stops, the rest while it is down)")
    feed = args.feed or default_data_dir() / DEFAULT_FEED
    out = args.out or Path(__file__).with_name("receiverdown-short.json" if args.short else "receiverdown.json")
    with tempfile.TemporaryDirectory(prefix="finsentry-rdown-") as tmp, broker_for(args.bootstrap, Path(tmp)) as bootstrap:
        figures = run_receiver_down(bootstrap, Path(tmp), feed, items, chunks, minutes * 60, args.wait_max)
    write_figures(figures, "receiverdown.py", argv, out)
    ok = (figures["duplicates"] == 0 and figures["undelivered"] == 0 and figures["dead_lettered"] == 0
          and figures["rejected_signatures"] == 0 and figures["daemon_exit"] == 0)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
