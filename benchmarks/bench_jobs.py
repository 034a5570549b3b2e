"""Scheduled-job figures against a real Kafka broker (the local one unless FINSENTRY_TEST_BOOTSTRAP is set).

1. ``claim``: one digest period claimed by two daemons that both believe they own
   partition 0 (the handover case): time of the winner's claim (read, append, read
   back) and of the loser's (one read), ms.
2. ``digest_read``: reading one day of tallies from the jobs topic (``--members``
   daemons × 24 h / ``--tally-s``) and summing them (``sum_tallies``), ms: the
   digest job's own cost beside its outbox put.

Usage::

    python benchmarks/bench_jobs.py [--periods 40] [--members 4] [--tally-s 60] [--runs 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from finsentry.broker import LocalBroker, create_topics  # noqa: E402
from finsentry.jobs import ClaimGate, KafkaJobLog, Ownership, Tally, sum_tallies  # noqa: E402
from ingest import make_producer  # noqa: E402


def _gate(log: KafkaJobLog, member: str) -> ClaimGate:
    ownership = Ownership()
    ownership.update({0})
    return ClaimGate("bench", member, ownership, log)


def bench_claim(bootstrap: str, topic: str, periods: int) -> dict:
    logs = [KafkaJobLog(bootstrap, topic, create=False) for _ in range(2)]
    gates = [_gate(logs[0], "a"), _gate(logs[1], "b")]
    won: list[float] = []
    lost: list[float] = []
    twice = none = 0
    try:
        for p in range(periods):
            now_ms = int(time.time() * 1000)
            first, second = (gates[0], gates[1]) if p % 2 == 0 else (gates[1], gates[0])
            t0 = time.perf_counter()
            r1 = first.claim("digest", f"P{p}", now_ms, now_ms)
            t1 = time.perf_counter()
            r2 = second.claim("digest", f"P{p}", now_ms, now_ms)
            t2 = time.perf_counter()
            twice += r1.won and r2.won
            none += not r1.won and not r2.won
            won.append((t1 - t0) * 1000)
            lost.append((t2 - t1) * 1000)
    finally:
        for log in logs:
            log.close()
    return {"periods": periods, "winner_claim_ms_median": statistics.median(won),
            "loser_claim_ms_median": statistics.median(lost), "periods_won_twice": twice,
            "periods_won_by_none": none}


def bench_digest_read(bootstrap: str, topic: str, members: int, tally_s: int, runs: int) -> dict:
    end_ms = int(time.time() * 1000)
    start_ms = end_ms - 86_400_000
    per_member = 86_400 // tally_s
    producer = make_producer(bootstrap)
    for m in range(members):
        for i in range(per_member + 2):
            at = start_ms - 2 * tally_s * 1000 + i * tally_s * 1000
            t = Tally(f"m{m}", start_ms - 3_600_000, at, 10 * i, i // 100,
                      {f"ticker:TK{k}": 1 + i // 50 for k in range(20)}, {}, "v1")
            producer.send(topic, key=f"bench/tally/m{m}".encode(), value=json.dumps(t.to_dict()).encode(),
                          partition=0, timestamp_ms=at)
    producer.flush()
    producer.close()
    log = KafkaJobLog(bootstrap, topic, create=False)
    times, records = [], 0
    try:
        for _ in range(runs):
            t0 = time.perf_counter()
            read = log.read(start_ms - 2 * tally_s * 1000 - 60_000)
            counts = sum_tallies([Tally.from_dict(r.value) for r in read if r.value.get("kind") == "tally"],
                                 start_ms, end_ms)
            times.append((time.perf_counter() - t0) * 1000)
            records = len(read)
    finally:
        log.close()
    return {"members": members, "tally_interval_s": tally_s, "records_read": records,
            "items_scored": counts.items_scored, "digest_read_ms_median": statistics.median(times), "runs": runs}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--periods", type=int, default=40)
    parser.add_argument("--members", type=int, default=4)
    parser.add_argument("--tally-s", type=int, default=60)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        external = os.environ.get("FINSENTRY_TEST_BOOTSTRAP", "").strip()
        broker = None if external else LocalBroker(run_dir=Path(tmp) / "broker")
        bootstrap = external or broker.start()  # type: ignore[union-attr]
        try:
            topics = {f"bench-jobs-{uuid.uuid4().hex[:8]}": 1, f"bench-tally-{uuid.uuid4().hex[:8]}": 1}
            create_topics(bootstrap, topics)
            claim_topic, tally_topic = list(topics)
            out = {"claim": bench_claim(bootstrap, claim_topic, args.periods),
                   "digest_read": bench_digest_read(bootstrap, tally_topic, args.members, args.tally_s, args.runs)}
        finally:
            if broker is not None:
                broker.stop()
    print(json.dumps(out, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
