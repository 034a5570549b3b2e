"""The SQLite outbox: WAL, durable idempotent puts, per-endpoint queues, frozen bodies,
grouping, dead letters, redelivery and disabled endpoints (no HTTP here)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from alerts import Alert, Endpoint, Evidence, Outbox, OutboxError, ThresholdDetector, WindowResult

START_MS = 1_704_186_000_000
HOUR_MS = 3_600_000
A = Endpoint("http://127.0.0.1:9/a", name="a")
B = Endpoint("http://127.0.0.1:9/b", name="b", group_wait_s=30)


def _alert(key: str = "AAPL", start_ms: int = START_MS) -> Alert:
    window = WindowResult(
        key_type="ticker", key=key, start_ms=start_ms, end_ms=start_ms + HOUR_MS,
        n=6, n_negative=5, n_neutral=1, n_positive=0, neg_share=5 / 6, mean_score=-0.61,
        evidence=(Evidence(item_id="i0", title=f"{key} falls", p_negative=0.9),), model_versions=("m1",),
    )
    alert = ThresholdDetector(5, 0.6).evaluate(window)
    assert alert is not None
    return alert


def _first(alerts: list[Alert]) -> bytes:
    return alerts[0].to_json() + b"|%d" % len(alerts)


def test_wal_mode_and_schema(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "deep" / "outbox.sqlite", [A])
    box.close()
    conn = sqlite3.connect(tmp_path / "deep" / "outbox.sqlite")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"messages", "deliveries", "dead_letters", "endpoints"} <= tables
    conn.close()


def test_put_is_idempotent_per_alert_and_status(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite", [A, B])
    alert = _alert()
    assert box.put(alert, now=100.0) is True
    assert box.put(alert, now=101.0) is False
    assert box.put(alert.resolved(), now=102.0) is True
    entries = box.entries()
    assert [(e.msg_id, e.endpoint, e.state) for e in entries] == [
        (alert.alert_id, "a", "pending"), (alert.alert_id, "b", "pending"),
        (f"{alert.alert_id}-resolved", "a", "pending"), (f"{alert.alert_id}-resolved", "b", "pending"),
    ]
    assert box.next_pending(A.id).next_at == 100.0  # type: ignore[union-attr]
    assert box.next_pending(B.id).next_at == 130.0  # type: ignore[union-attr]  (group_wait_s)
    box.close()
    with pytest.raises(OutboxError, match="closed"):
        box.put(alert)


def test_committed_puts_survive_without_close_and_new_endpoints_get_only_new_puts(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    first = Outbox(path, [A])
    old, new = _alert("AAPL"), _alert("MSFT")
    first.put(old, now=1.0)  # never closed: as after a crash
    second = Outbox(path, [A, B])
    assert [e.msg_id for e in second.entries()] == [old.alert_id]
    second.put(new, now=2.0)
    second.put(old, now=3.0)  # re-put after a crash: queued for B only, not again for A
    keys = sorted((e.endpoint, e.alert_id) for e in second.entries())
    assert keys == sorted([("a", old.alert_id), ("a", new.alert_id), ("b", new.alert_id), ("b", old.alert_id)])
    first.close()
    second.close()


def test_body_is_frozen_at_the_first_attempt(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite", [A])
    box.put(_alert(), now=1.0)
    pending = box.next_pending(A.id)
    assert pending is not None
    body = box.body_for(pending, 0, _first)
    assert box.body_for(pending, 0, lambda alerts: b"changed renderer") == body
    box.mark_retry(pending, next_at=50.0, status=500, error="HTTP 500")
    again = box.next_pending(A.id)
    assert again is not None and again.attempts == 1 and again.next_at == 50.0
    assert box.body_for(again, 0, lambda alerts: b"other") == body
    box.close()


def test_grouping_folds_repeats_of_one_key_family_within_the_window(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite", [B])
    lead, r1, r2 = (_alert("AAPL", START_MS + i * HOUR_MS) for i in range(3))
    other, late = _alert("MSFT"), _alert("AAPL", START_MS + 9 * HOUR_MS)
    for t, alert in [(0.0, lead), (5.0, r1), (6.0, other), (29.0, r2), (31.0, late)]:
        box.put(alert, now=t)
    pending = box.next_pending(B.id)
    assert pending is not None and pending.msg_id == lead.alert_id and pending.next_at == 30.0
    seen: list[list[str]] = []
    box.body_for(pending, B.group_wait_s, lambda alerts: seen.append([a.alert_id for a in alerts]) or b"{}")
    assert seen == [[lead.alert_id, r1.alert_id, r2.alert_id]]
    states = {e.alert_id: (e.state, e.grouped_into) for e in box.entries()}
    assert states[r1.alert_id] == states[r2.alert_id] == ("grouped", lead.alert_id)
    assert states[other.alert_id] == states[late.alert_id] == ("pending", None)
    box.mark_delivered(pending, 200)
    assert [p.msg_id for p in [box.next_pending(B.id)]] == [other.alert_id]
    box.close()


def test_dead_letters_redeliver_and_disabled_endpoints(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite", [A, B])
    a1, a2 = _alert("AAPL"), _alert("MSFT")
    box.put(a1, now=1.0)
    box.put(a2, now=2.0)
    pending = box.next_pending(A.id)
    assert pending is not None
    box.body_for(pending, 0, _first)
    box.mark_dead(pending, 503, "HTTP 503", "8 attempt(s) failed, the last: HTTP 503")
    (dead,) = box.entries(dead_only=True)
    assert (dead.alert_id, dead.endpoint, dead.attempts, dead.last_status) == (a1.alert_id, "a", 1, 503)
    assert dead.reason is not None and "8 attempt(s)" in dead.reason

    box.disable_endpoint(B.id, "HTTP 410 Gone")
    assert box.disabled_reason(B.id) == "HTTP 410 Gone" and box.disabled_reason(A.id) is None
    assert box.disabled_endpoints() == {"b": "HTTP 410 Gone"}
    assert box.dead_letter_pending(B.id, "endpoint disabled") == 2
    assert box.counts() == {"dead": 3, "pending": 1}

    woken: list[int] = []
    box.subscribe(lambda: woken.append(1))
    assert box.redeliver(a1.alert_id, now=10.0) == 2
    assert box.entries(dead_only=True)[0].alert_id == a2.alert_id
    again = [e for e in box.entries(alert_id=a1.alert_id) if e.endpoint == "a"][0]
    assert (again.state, again.attempts, again.reason) == ("pending", 0, None)
    assert woken == [1]
    assert box.enable_endpoint("b") == 1 and box.enable_endpoint("b") == 0
    assert box.redeliver(now=11.0) == 1
    assert box.redeliver() == 0
    box.close()


def test_reschedule_pending_makes_future_retries_due(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite", [A])
    box.put(_alert(), now=1.0)
    pending = box.next_pending(A.id)
    assert pending is not None
    box.mark_retry(pending, next_at=10_000.0, status=None, error="ConnectError")
    assert box.due_count(A.id, now=100.0) == 0
    assert box.reschedule_pending(A.id, now=100.0) == 1
    assert box.due_count(A.id, now=100.0) == 1
    box.close()


def test_retry_failed_now_brings_forward_only_deliveries_that_failed(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite", [A, B])
    failed, fresh = _alert("AAPL"), _alert("MSFT")
    box.put(failed, now=1.0)
    first = box.next_pending(A.id)
    assert first is not None and first.msg_id == failed.message_id
    box.mark_retry(first, next_at=10_000.0, status=None, error="ConnectError")
    box.put(fresh, now=200.0)  # never attempted, first attempt later (a configured first delay)
    con = sqlite3.connect(tmp_path / "o.sqlite")
    con.execute("UPDATE deliveries SET next_at = 500 WHERE msg_id = ?", (fresh.message_id,))
    con.commit()
    con.close()
    assert box.retry_failed_now(A.id, now=100.0) == 1
    assert box.due_count(A.id, now=100.0) == 1
    head = box.next_pending(A.id)
    assert head is not None and (head.msg_id, head.next_at) == (failed.message_id, 100.0)
    assert box.retry_failed_now(A.id, now=100.0) == 0  # already due
    assert box.due_count(B.id, now=100.0) == 1  # the other endpoint's queue is untouched (due since put)
    assert box.retry_failed_now(B.id, now=100.0) == 0  # B's delivery never failed
    box.close()


def test_unusable_path_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutboxError, match="cannot open outbox"):
        Outbox(blocker / "o.sqlite")


def test_messages_held_and_queued_together_keep_the_order_they_were_decided(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite", [A])
    decided = [_alert(f"K{i}", START_MS + i * HOUR_MS) for i in range(8)]
    decided = sorted(decided, key=lambda a: a.message_id, reverse=True)  # message ids sort the other way
    decided.insert(3, decided[1].resolved())
    assert box.hold(decided, now=50.0) == len(decided)
    assert [a.message_id for a in box.held()] == [a.message_id for a in decided]
    assert box.release([a.message_id for a in decided], now=100.0) == len(decided)
    sent = []
    while (pending := box.next_pending(A.id)) is not None:  # all queued at the same instant: row order decides
        sent.append(pending.msg_id)
        box.mark_delivered(pending, 200, now=101.0)
    assert sent == [a.message_id for a in decided]
    box.close()
