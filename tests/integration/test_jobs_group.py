"""Against the real broker and a real signing-checking HTTP receiver (a stub scorer stands in for the model:
the scheduler and the group are under test): two daemons in one consumer group with a digest every 3 s (threads of this process, then processes with one
killed by SIGKILL).
Each period's digest is sent exactly once across both, also across a handover when the owner (the holder
of raw partition 0) is stopped mid-run; every digest is signed and valid; the last one carries the group's
figures (items scored, dead letters, alerts raised by key) summed over both daemons."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from _stubs import StubScorer  # tests/integration is on sys.path under pytest

from alerts import ThresholdDetector, TumblingWindows, WebhookSink, generate_secret
from finsentry.config import REPO_ROOT, Settings, load_settings
from finsentry.daemon import Daemon
from finsentry.jobs import KafkaJobLog
from finsentry.pipeline import Pipeline
from ingest import NewsItem, make_producer

pytestmark = pytest.mark.integration

HERE = Path(__file__).resolve().parent
T0 = datetime(2020, 5, 19, 0, 0, tzinfo=timezone.utc)
EVERY_S = 3
TICKERS = [f"TK{i}" for i in range(8)]


def _items(hour_from: int, hour_to: int) -> list[NewsItem]:
    """Every 10 minutes one item per ticker; ticker i's hour h is all negative when (h + i) % 3 == 0."""
    return [NewsItem(id=f"{t}-{m}", source="t", published_at=T0 + timedelta(minutes=m),
                     title=f"{t} {'falls' if (m // 60 + i) % 3 == 0 else 'steady'} at minute {m}", tickers=[t])
            for m in range(hour_from * 60, hour_to * 60, 10) for i, t in enumerate(TICKERS)]


def _send(bootstrap: str, topic: str, items: list[NewsItem], junk: int = 0) -> None:
    producer = make_producer(bootstrap)
    for item in items:
        producer.send(topic, key=item.tickers[0].encode(), value=item.to_json(), timestamp_ms=item.published_ms)
    for n in range(junk):  # dead-lettered: not JSON
        producer.send(topic, key=b"junk", value=b"\xff not json %d" % n)
    producer.flush()
    producer.close()


def _settings(bootstrap: str, topics: dict[str, str], group: str, url: str, outbox: Path) -> Settings:
    return load_settings(**_overrides(bootstrap, topics, group, url, outbox))


def _overrides(bootstrap: str, topics: dict[str, str], group: str, url: str, outbox: Path) -> dict:
    return dict(
        kafka={"bootstrap": bootstrap, "group_id": group, "raw_topic": topics["raw"], "scored_topic": topics["scored"],
               "dlq_topic": topics["dlq"], "late_topic": topics["late"], "jobs_topic": topics["jobs"],
               "create_topics": False, "session_timeout_ms": 6000},
        batch={"max_batch": 16, "max_wait_ms": 20},
        webhooks={"urls": [url], "outbox_path": str(outbox), "retry_schedule_s": [0, 0.1, 1],
                  "connect_timeout_s": 0.5, "drain_timeout_s": 5, "secret_env": "FINSENTRY_TEST_JOBS_SECRET"},
        jobs={"digest_cron": f"*/{EVERY_S} * * * * *", "tally_interval_s": 1, "misfire_grace_s": 30,
              "housekeeping_cron": "*/5 * * * * *"},
    )


def _daemon(settings: Settings) -> Daemon:
    return Daemon(settings, Pipeline(StubScorer(), TumblingWindows(3_600_000, 0),  # type: ignore[arg-type]
                                     ThresholdDetector(3, 0.6)))


def _wait(cond: Callable[[], bool], what: str, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _digests(sink: WebhookSink) -> list[tuple[str, dict]]:
    return [(h.get("webhook-id", ""), b) for h, b in sink.received if isinstance(b, dict) and b.get("kind") == "digest"]


def _settled(*daemons: Daemon, quiet_s: float = 2.0) -> Callable[[], bool]:
    """A condition: the daemons' scored / dead-lettered / alert counts have not changed for ``quiet_s``."""
    last: dict[str, object] = {"state": None, "since": time.monotonic()}

    def check() -> bool:
        state = tuple((d.stats.scored, d.stats.dead_lettered, len(d.stats.alerts)) for d in daemons)
        if state != last["state"]:
            last["state"], last["since"] = state, time.monotonic()
        return time.monotonic() - float(last["since"]) >= quiet_s  # type: ignore[arg-type]

    return check


def _runs(d: Daemon, result: str, job: str = "digest") -> float:
    return d.jobs.run_count(job, result)  # type: ignore[union-attr]


@pytest.mark.timeout(600)
def test_two_daemons_send_each_digest_once_across_a_handover(
    kafka_bootstrap: str, new_topic: Callable[..., str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = generate_secret()
    monkeypatch.setenv("FINSENTRY_TEST_JOBS_SECRET", secret)
    topics = {"raw": new_topic("raw", 4), "scored": new_topic("scored", 4), "dlq": new_topic("dlq", 1),
              "late": new_topic("late", 1), "jobs": new_topic("jobs", 1)}
    group = f"jobs-{uuid.uuid4().hex[:8]}"
    _send(kafka_bootstrap, topics["raw"], _items(0, 4), junk=3)
    with WebhookSink(secrets=[secret]) as sink:
        a = _daemon(_settings(kafka_bootstrap, topics, group, sink.url, tmp_path / "a.sqlite"))
        b = _daemon(_settings(kafka_bootstrap, topics, group, sink.url, tmp_path / "b.sqlite"))
        runners = {d: threading.Thread(target=d.run, daemon=True) for d in (a, b)}
        try:
            runners[a].start()
            _wait(lambda: a.stats.scored >= len(_items(0, 4)) and len(_digests(sink)) >= 2, "a alone: 2 digests")
            runners[b].start()
            _wait(lambda: bool(b.consumer.assignment()) and bool(a.consumer.assignment())
                  and a.jobs.ownership.is_owner() != b.jobs.ownership.is_owner(), "the rebalance")  # type: ignore[union-attr]
            n = len(_digests(sink))
            _wait(lambda: len(_digests(sink)) >= n + 3, "3 digests with both daemons in the group")
            owner, survivor = (a, b) if a.jobs.ownership.is_owner() else (b, a)  # type: ignore[union-attr]
            owner.stop()  # the owner goes, mid-run of both daemons
            runners[owner].join(timeout=60)
            assert not runners[owner].is_alive()
            _send(kafka_bootstrap, topics["raw"], _items(4, 6), junk=2)
            _wait(lambda: survivor.jobs.ownership.is_owner(), "the survivor owning partition 0")  # type: ignore[union-attr]
            _wait(lambda: a.stats.scored + b.stats.scored >= len(_items(0, 6)), "hours 4-6 scored")
            _wait(_settled(a, b), "the daemons' counters settled (no item or alert for 2 s)")
            done_at = time.time()
            _wait(lambda: any(datetime.strptime(d["period_end"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
                              .timestamp() > done_at + 2 for _, d in _digests(sink)), "a digest after the last tally")
            time.sleep(2.0)  # room for a duplicate to arrive
        finally:
            for d, r in runners.items():
                d.stop()
                if r.is_alive():
                    r.join(timeout=60)
        digests = _digests(sink)
        duplicates, rejected = sink.duplicates, sink.rejected

    ids = [i for i, _ in digests]
    assert duplicates == 0 and rejected == 0 and len(set(ids)) == len(ids), "a digest sent twice or badly signed"
    ends = sorted(datetime.strptime(d["period_end"], "%Y-%m-%dT%H:%M:%SZ") for _, d in digests)
    every = {ends[0] + timedelta(seconds=EVERY_S * i) for i in range(int((ends[-1] - ends[0]).total_seconds()) // EVERY_S + 1)}
    missing = every - set(ends)
    missed = sum(_runs(d, "missed") for d in (a, b))
    assert len(missing) <= missed, f"periods {sorted(missing)} were neither sent nor counted missed"
    assert len(digests) >= 10
    assert all(i == f"digest-{d['period_end']}" or i == f"digest-{d['period_end'][:10]}" for i, d in digests)
    # exactly one run per period across both daemons, and the jobs log agrees
    assert _runs(a, "ok") + _runs(b, "ok") == len(digests)
    assert _runs(a, "skipped_not_owner") + _runs(b, "skipped_not_owner") > 0
    assert _runs(a, "failed") + _runs(b, "failed") == 0
    log = KafkaJobLog(kafka_bootstrap, topics["jobs"], create=False)
    try:
        done = [r for r in log.read(0) if r.key.startswith(f"{group}/done/digest/")]
    finally:
        log.close()
    assert sorted(r.value["digest_id"] for r in done) == sorted(ids)
    assert {r.value["member"] for r in done} == {a.jobs.member, b.jobs.member}  # type: ignore[union-attr]
    # the last digest: the group's figures, summed over both daemons' tallies
    last = max((d for _, d in digests), key=lambda d: d["period_end"])
    assert last["items_scored"] == a.stats.scored + b.stats.scored >= len(_items(0, 6))
    assert last["dead_lettered"] == a.stats.dead_lettered + b.stats.dead_lettered == 5
    fired = Counter(f"{x.key_type}:{x.key}" for x in a.stats.alerts + b.stats.alerts if x.status == "firing")
    assert fired and last["alerts_raised"] == dict(fired)
    assert last["model_versions"] == ["stub-1"] and last["members"] == 2
    assert min(_runs(d, "ok", "housekeeping") for d in (a, b)) >= 1


def _period(name: str) -> datetime:
    return datetime.strptime(name, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


@pytest.mark.timeout(600)
def test_the_owner_killed_9_its_successor_catches_up_and_no_digest_is_sent_twice(
    kafka_bootstrap: str, new_topic: Callable[..., str], tmp_path: Path
) -> None:
    """Two daemon processes; the owner gets SIGKILL (no goodbye to the group, no last tally). Until the group
    drops it (session timeout, 6 s) nobody holds partition 0; the successor then catches up those periods.
    Every period is received once, or was claimed by the killed daemon (lost with it, at most one)."""
    secret = generate_secret()
    topics = {"raw": new_topic("raw", 4), "scored": new_topic("scored", 4), "dlq": new_topic("dlq", 1),
              "late": new_topic("late", 1), "jobs": new_topic("jobs", 1)}
    group = f"jobs9-{uuid.uuid4().hex[:8]}"
    _send(kafka_bootstrap, topics["raw"], _items(0, 2))
    env = {**os.environ, "FINSENTRY_TEST_JOBS_SECRET": secret, "PYTHONPATH": os.pathsep.join(
        [str(REPO_ROOT), str(HERE), os.environ.get("PYTHONPATH", "")])}
    log = KafkaJobLog(kafka_bootstrap, topics["jobs"], create=False)
    procs: dict[str, subprocess.Popen] = {}

    def start(name: str) -> None:
        overrides = _overrides(kafka_bootstrap, topics, group, sink.url, tmp_path / f"{name}.sqlite")
        with (tmp_path / f"{name}.log").open("w") as out:
            procs[name] = subprocess.Popen([sys.executable, str(HERE / "_jobs_member.py"), json.dumps(overrides)],
                                           env=env, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT)

    def done() -> list:
        return [r for r in log.read(0) if r.key.startswith(f"{group}/done/digest/")]

    try:
        with WebhookSink(secrets=[secret]) as sink:
            try:
                start("a")
                _wait(lambda: len(_digests(sink)) >= 2, "the first daemon's digests")
                start("b")
                _wait(lambda: len({r.value["member"] for r in done()}) == 2 or len(_digests(sink)) >= 12,
                      "the second daemon in the group")
                n = len(_digests(sink))
                _wait(lambda: len(_digests(sink)) >= n + 2, "2 digests with both daemons in the group")
                victim_member = done()[-1].value["member"]
                victim_pid = int(victim_member.rsplit("-", 2)[1])
                victim = next(p for p in procs.values() if p.pid == victim_pid)
                killed_ms = int(time.time() * 1000)
                victim.send_signal(signal.SIGKILL)
                victim.wait(timeout=30)
                _wait(lambda: any(r.value["member"] != victim_member and _ms(r.key) > killed_ms + 12_000
                                  for r in done()), "the successor's digests after the kill", 120)
                time.sleep(2.0)  # room for a duplicate
            finally:
                for p in procs.values():
                    if p.poll() is None:
                        p.send_signal(signal.SIGTERM)
                for p in procs.values():
                    p.wait(timeout=60)
            digests = _digests(sink)
            duplicates, rejected = sink.duplicates, sink.rejected
        records = log.read(0)
    finally:
        log.close()

    ids = [i for i, _ in digests]
    assert duplicates == 0 and rejected == 0 and len(set(ids)) == len(ids), "a digest sent twice or badly signed"
    claims: dict[str, str] = {}
    for r in records:  # the first claim of each period wins
        if r.key.startswith(f"{group}/claim/digest/") and r.value.get("kind") == "claim":
            claims.setdefault(r.key.rsplit("/", 1)[1], r.value["member"])
    dones = Counter(r.key.rsplit("/", 1)[1] for r in records if r.key.startswith(f"{group}/done/digest/"))
    assert all(n == 1 for n in dones.values()), "a period was run twice"
    received = {d["period_end"] for _, d in digests}
    first, last = min(received, key=_period), max(received, key=_period)
    every = [first]
    while every[-1] != last:
        every.append((_period(every[-1]) + timedelta(seconds=EVERY_S)).strftime("%Y-%m-%dT%H:%M:%SZ"))
    lost = [p for p in every if p not in received]
    assert all(claims.get(p) == victim_member for p in lost) and len(lost) <= 1, \
        f"periods {lost} not received (claims: {[claims.get(p) for p in lost]})"
    orphaned = [p for p in every if killed_ms < _period(p).timestamp() * 1000 < killed_ms + 5_000]
    assert orphaned and all(p in received and claims[p] != victim_member for p in orphaned), \
        "the periods with no owner (before the group dropped the killed daemon) were not caught up"


def _ms(done_key: str) -> int:
    return int(_period(done_key.rsplit("/", 1)[1]).timestamp() * 1000)
