"""Scheduled jobs: the one-owner-per-group rule (owner partition + first claim in one log order), periods,
per-member tallies → group figures, the outbox's notices and pruning, and the [jobs] settings."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from alerts import Endpoint, Outbox, OutboxError, PendingDelivery, render_notice
from finsentry.config import ConfigError, load_settings
from finsentry.jobs import (
    ClaimGate,
    LogRecord,
    Ownership,
    Tally,
    claim_winner,
    digest_document,
    digest_id,
    fire_times,
    latest_period,
    sum_tallies,
)
from training import cron_trigger

UTC = timezone.utc


class ListLog:
    """A plain in-memory log with one order (what the jobs topic's single partition gives)."""

    def __init__(self) -> None:
        self.records: list[LogRecord] = []
        self.clock_ms = 0
        self._lock = threading.Lock()

    def append(self, key: str, value: Mapping[str, Any]) -> int:
        with self._lock:
            self.records.append(LogRecord(len(self.records), key, dict(value), self.clock_ms))
            return len(self.records) - 1

    def read(self, since_ms: int, through_offset: int | None = None) -> list[LogRecord]:
        with self._lock:
            first = next((r.offset for r in self.records if r.timestamp_ms >= since_ms), len(self.records))
            last = len(self.records) - 1 if through_offset is None else through_offset
            return [r for r in self.records if first <= r.offset <= last]


def _gate(log: ListLog, member: str, partitions: set[int], group: str = "g") -> ClaimGate:
    ownership = Ownership()
    ownership.update(partitions)
    return ClaimGate(group, member, ownership, log)


def test_only_the_holder_of_partition_0_claims() -> None:
    log = ListLog()
    a, b = _gate(log, "a", {0, 1}), _gate(log, "b", {2, 3})
    assert a.claim("digest", "P1", 0, 0).won
    result = b.claim("digest", "P1", 0, 0)
    assert not result.won and result.reason == "not_owner"
    assert [r.value["member"] for r in log.records] == ["a"]  # a non-owner writes nothing


def test_two_owners_during_a_handover_run_a_period_once() -> None:
    """Both believe they hold partition 0 (old owner not told yet): the first claim in the log wins."""
    log = ListLog()
    a, b = _gate(log, "a", {0}), _gate(log, "b", {0})
    first = a.claim("digest", "P1", 0, 0)
    second = b.claim("digest", "P1", 0, 0)
    assert first.won and not second.won and second.reason == "claimed" and second.winner == "a"
    # the next period: b claims first now, a loses
    assert b.claim("digest", "P2", 0, 0).won
    assert a.claim("digest", "P2", 0, 0).winner == "b"


def test_a_member_never_runs_a_period_twice_and_other_groups_do_not_interfere() -> None:
    log = ListLog()
    a = _gate(log, "a", {0})
    assert a.claim("digest", "P1", 0, 0).won
    again = a.claim("digest", "P1", 0, 0)  # its regular run and a catch-up run of the same period
    assert not again.won and again.reason == "done"
    other_group = _gate(log, "x", {0}, group="other")
    assert other_group.claim("digest", "P1", 0, 0).won  # same log, another group's key


def test_claims_race_from_threads_one_winner_per_period() -> None:
    log = ListLog()
    gates = [_gate(log, f"m{i}", {0}) for i in range(4)]
    wins: list[tuple[str, str]] = []
    lock = threading.Lock()

    def run(gate: ClaimGate) -> None:
        for p in range(50):
            if gate.claim("digest", f"P{p}", 0, 0).won:
                with lock:
                    wins.append((gate.member, f"P{p}"))

    threads = [threading.Thread(target=run, args=(g,)) for g in gates]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(p for _, p in wins) == sorted(f"P{p}" for p in range(50))  # each period exactly once


def test_claim_winner_is_the_first_claim_in_log_order() -> None:
    records = [LogRecord(5, "k", {"kind": "claim", "member": "late"}, 0),
               LogRecord(2, "k", {"kind": "done", "member": "x"}, 0),
               LogRecord(3, "k", {"kind": "claim", "member": "early"}, 0),
               LogRecord(1, "other", {"kind": "claim", "member": "o"}, 0)]
    assert claim_winner(records, "k") == "early" and claim_winner(records, "none") is None


def test_claim_reads_back_from_the_period_start() -> None:
    """Claims are stamped at or after the period: an old record with the same key (clock far back) is not read."""
    log = ListLog()
    a, b = _gate(log, "a", {0}), _gate(log, "b", {0})
    log.clock_ms = 1_000_000
    assert a.claim("digest", "P", 1_000_000, 1_000_000).won
    log.clock_ms = 1_000_500
    assert not b.claim("digest", "P", 1_000_000, 1_000_500).won


def test_ownership_calls_on_gain_once_per_gain() -> None:
    gains: list[int] = []
    own = Ownership(on_gain=lambda: gains.append(1))
    own.update({1, 2})
    own.update({0, 1})
    own.update({0, 3})
    assert own.is_owner() and len(gains) == 1
    own.update({3})
    own.update({0})
    assert len(gains) == 2


def test_periods_and_digest_ids() -> None:
    every3 = cron_trigger("*/3 * * * * *")
    now = datetime(2026, 11, 29, 18, 0, 7, 500_000, tzinfo=UTC)
    assert fire_times(every3, now - timedelta(seconds=10), now) == [
        datetime(2026, 11, 29, 18, 0, s, tzinfo=UTC) for s in (0, 3, 6)]
    assert latest_period(every3, now, 10) == datetime(2026, 11, 29, 18, 0, 6, tzinfo=UTC)
    daily = cron_trigger("0 0 * * *")
    assert latest_period(daily, now, 3600) is None  # midnight is older than the grace
    assert latest_period(daily, now, 86400) == datetime(2026, 11, 29, tzinfo=UTC)
    assert digest_id(datetime(2026, 11, 29, tzinfo=UTC)) == "digest-2026-11-29"
    assert digest_id(now.replace(microsecond=0)) == "digest-2026-11-29T18:00:07Z"
    with pytest.raises(ValueError, match="aware"):
        fire_times(every3, datetime(2026, 1, 1), now)


def _t(member: str, started: int, at: int, scored: int, dead: int = 0, raised: dict | None = None,
       version: str = "m1") -> Tally:
    return Tally(member, started, at, scored, dead, raised or {}, {}, version)


def test_sum_tallies_counts_each_member_once_over_the_span() -> None:
    tallies = [
        _t("a", 0, 50, 100, 1, {"ticker:X": 1}), _t("a", 0, 100, 150, 2, {"ticker:X": 1}),  # base at span start
        _t("a", 0, 150, 170, 2, {"ticker:X": 3}), _t("a", 0, 200, 400, 9, {"ticker:X": 4}, "m2"),
        _t("a", 0, 260, 999, 99),  # after the span's end: ignored
        _t("b", 120, 130, 5, 0, {"ticker:Y": 1}), _t("b", 120, 190, 30, 1, {"ticker:Y": 2}),  # started inside
        _t("c", 0, 40, 70), _t("c", 0, 90, 80),  # stopped before the span
    ]
    counts = sum_tallies(tallies, 100, 250)
    assert counts.items_scored == (400 - 150) + 30
    assert counts.dead_lettered == (9 - 2) + 1
    assert counts.raised == {"ticker:X": 3, "ticker:Y": 2}
    assert counts.model_versions == ["m1", "m2"] and counts.members == 2


def test_tally_round_trip_and_digest_document() -> None:
    t = _t("a", 1, 2, 3, 4, {"ticker:X": 5})
    assert Tally.from_dict(json.loads(json.dumps(t.to_dict()))) == t
    doc = digest_document("g", datetime(2026, 11, 29, tzinfo=UTC), 24, sum_tallies([t], 0, 10), "m1")
    assert doc["digest_id"] == "digest-2026-11-29" and doc["period_start"] == "2026-11-28T00:00:00Z"
    assert doc["items_scored"] == 3 and doc["alerts_raised"] == {"ticker:X": 5} and doc["alerts_raised_total"] == 5
    slack = json.loads(render_notice("slack", json.dumps(doc).encode()))
    assert "items scored 3" in slack["text"]
    with pytest.raises(ValueError, match="alertmanager"):
        render_notice("alertmanager", json.dumps(doc).encode())


def test_outbox_notice_is_idempotent_skips_alertmanager_and_renders_per_format(tmp_path: Path) -> None:
    native, am = Endpoint("http://127.0.0.1:1/a"), Endpoint("http://127.0.0.1:1/b", format="alertmanager")
    outbox = Outbox(tmp_path / "o.sqlite", [native, am])
    doc = json.dumps({"kind": "digest", "text": "hello", "b": 1, "a": 2}).encode()
    assert outbox.put_notice("digest-2026-11-29", "digest", doc, ("native", "slack")) is True
    assert outbox.put_notice("digest-2026-11-29", "digest", doc, ("native", "slack")) is False
    entries = outbox.entries()
    assert [(e.alert_id, e.status, e.endpoint_id) for e in entries] == [("digest-2026-11-29", "notice", native.id)]
    pending = outbox.next_pending(native.id)
    assert pending is not None and pending.msg_id == "digest-2026-11-29"
    body = outbox.body_for(pending, 0, lambda alerts: b"never", render_notice=lambda d: render_notice("native", d))
    assert body == b'{"a":2,"b":1,"kind":"digest","text":"hello"}'
    outbox.close()
    other = Outbox(tmp_path / "p.sqlite", [native])
    other.put_notice("n1", "digest", doc, ("native",))
    with pytest.raises(OutboxError, match="notice"):  # a renderer of alerts only cannot send a notice
        other.body_for(other.next_pending(native.id), 0, lambda alerts: b"")  # type: ignore[arg-type]
    other.close()


def test_prune_deletes_only_messages_delivered_before_the_retention(tmp_path: Path) -> None:
    ep = Endpoint("http://127.0.0.1:1/a")
    outbox = Outbox(tmp_path / "o.sqlite", [ep])
    for name in ("old", "new", "pending"):
        outbox.put_notice(name, "digest", b'{"text": ""}', ("native",), now=1000.0)
    outbox.mark_delivered(PendingDelivery(ep.id, "old", 0, 1000.0, 1000.0), 200, now=1000.0)
    outbox.mark_delivered(PendingDelivery(ep.id, "new", 0, 1000.0, 1000.0), 200, now=9000.0)
    assert outbox.prune(3600.0, now=10_000.0) == 1
    assert sorted(e.alert_id for e in outbox.entries()) == ["new", "pending"]
    with pytest.raises(ValueError):
        outbox.prune(0)
    outbox.close()


def test_jobs_settings_validation_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"jobs\.digest_cron: .*5 fields"):
        load_settings(jobs={"digest_cron": "0 0 *"})
    with pytest.raises(ConfigError, match=r"jobs\.misfire_grace_s"):
        load_settings(jobs={"misfire_grace_s": 0})
    with pytest.raises(ConfigError, match=r"jobs\.retention_hours"):
        load_settings(jobs={"retention_hours": 1})
    toml = tmp_path / "c.toml"
    toml.write_text('[jobs]\ndigest_cron = "*/5 * * * * *"\nrefresh_interval_s = 2\n')
    s = load_settings(toml)
    assert s.jobs.digest_cron == "*/5 * * * * *" and s.jobs.refresh_interval_s == 2 and s.jobs.enabled


def test_config_check_names_a_digest_with_nowhere_to_go(capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from finsentry.cli import main

    monkeypatch.setenv("FINSENTRY_JOBS__DIGEST_CRON", "0 0 * * *")
    assert main(["config"]) == 2
    assert "jobs.digest_cron: set, but no native or slack webhook endpoint" in capsys.readouterr().err
    monkeypatch.setenv("FINSENTRY_WEBHOOKS__URLS", '["http://127.0.0.1:8765/alerts"]')
    assert main(["config"]) == 0
    assert '"digest_cron": "0 0 * * *"' in capsys.readouterr().out


class _Reloader:
    """A plain model-refresh target: sleeps ``seconds`` per check, or raises."""

    def __init__(self, seconds: float = 0.0, fail: bool = False) -> None:
        self.seconds, self.fail, self.calls = seconds, fail, 0

    def check_once(self) -> bool:
        self.calls += 1
        if self.fail:
            raise RuntimeError("registry unreadable")
        time.sleep(self.seconds)
        return False


def _jobs(tmp_path: Path, reloader: _Reloader) -> Any:
    from prometheus_client import CollectorRegistry

    from finsentry.jobs import DaemonJobs, JobSources

    settings = load_settings(jobs={"refresh_interval_s": 0.3, "housekeeping_cron": ""})
    sources = JobSources(stats=lambda: None, model_version=lambda: "m1")
    return DaemonJobs(settings, sources, Outbox(tmp_path / "o.sqlite"), reloader, CollectorRegistry(), ListLog())


def test_a_run_still_going_when_the_next_is_due_is_counted_missed(tmp_path: Path) -> None:
    jobs = _jobs(tmp_path, _Reloader(seconds=1.0)).start()
    try:
        time.sleep(2.5)
    finally:
        jobs.close()
    assert jobs.run_count("model-refresh", "ok") >= 1
    assert jobs.run_count("model-refresh", "missed") >= 1  # coalesced / max_instances: logged and counted


def test_a_failing_run_is_counted_and_the_scheduler_goes_on(tmp_path: Path) -> None:
    reloader = _Reloader(fail=True)
    jobs = _jobs(tmp_path, reloader).start()
    try:
        time.sleep(1.2)
    finally:
        jobs.close()
    assert reloader.calls >= 2 and jobs.run_count("model-refresh", "failed") == reloader.calls
    assert jobs.run_count("model-refresh", "ok") == 0


def test_the_old_reload_key_still_sets_the_refresh_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINSENTRY_OPS__RELOAD_CHECK_S", "0")
    assert load_settings().jobs.refresh_interval_s == 0
    monkeypatch.delenv("FINSENTRY_OPS__RELOAD_CHECK_S")
    assert load_settings().jobs.refresh_interval_s == 10


def test_alert_tally_counts_each_message_once() -> None:
    from types import SimpleNamespace

    from finsentry.jobs import AlertTally

    def alert(i: str, status: str, key: str) -> Any:
        return SimpleNamespace(message_id=f"{i}-{status}", status=status, key_type="ticker", key=key)

    tally = AlertTally(remember=3)
    for a in [alert("1", "firing", "X"), alert("2", "firing", "Y")]:
        tally.add(a)
    assert tally.totals() == ({"ticker:X": 1, "ticker:Y": 1}, {})
    for a in [alert("1", "firing", "X"), alert("1", "resolved", "X"), alert("3", "firing", "X")]:  # a repeat
        tally.add(a)
    assert tally.totals() == ({"ticker:X": 2, "ticker:Y": 1}, {"ticker:X": 1})
    tally.add(alert("2", "firing", "Y"))  # forgotten after 3 newer ids: counted again (memory stays bounded)
    assert tally.totals() == ({"ticker:X": 2, "ticker:Y": 2}, {"ticker:X": 1})
