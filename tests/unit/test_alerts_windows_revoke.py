"""EventTimeWindows.revoke_partitions: a rebalance takes partitions away from a window operator."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from alerts import EventTimeWindows, TumblingWindows
from inference._scored import ScoredItem

T0 = datetime(2024, 1, 2, 9, 0, tzinfo=timezone.utc)  # a multiple of 60 s
T0_MS = int(T0.timestamp()) * 1000
MIN = 60_000


def _item(item_id: str, offset_ms: int, tickers: tuple[str, ...] = ("AAPL",), title: str | None = None) -> ScoredItem:
    return ScoredItem(
        item_id=item_id, source="test", published_at=T0 + timedelta(milliseconds=offset_ms), tickers=tickers,
        title=title or f"title {item_id}", p_negative=0.8, p_neutral=0.15, p_positive=0.05, label="negative",
        score=-0.75, model_version="m1",
    )


def _closed(windows: EventTimeWindows, idle: tuple[int, ...] = ()) -> list[tuple[str, int, int]]:
    return [(r.key, r.start_ms - T0_MS, r.n) for r in windows.advance(idle)]


def test_revoked_partition_no_longer_holds_the_watermark() -> None:
    w = TumblingWindows(MIN, 0)
    w.assign_partitions([0, 1])
    w.add_item(0, _item("a", 10_000, ("AAPL",)))
    w.add_item(1, _item("b", 20_000, ("MSFT",)))
    w.add_item(0, _item("c", 3 * MIN, ("AAPL",)))
    assert _closed(w) == []  # partition 1 (max 0:20) holds the watermark
    w.revoke_partitions([1])
    assert w.partition_watermark_ms(1) is None
    # partition 1's MSFT window went with it; AAPL [0, 1 min) closes on partition 0 alone
    assert _closed(w) == [("AAPL", 0, 1)]
    assert w.watermark_ms == T0_MS + 3 * MIN


def test_revoked_partition_items_leave_open_windows_including_mixed_keys() -> None:
    w = EventTimeWindows(MIN, 0, key_types=("ticker", "market"))
    w.assign_partitions([0, 1])
    w.add_item(0, _item("a", 1_000, ("AAPL",)))
    w.add_item(1, _item("b", 2_000, ("AAPL", "MSFT")))  # a second-ticker item on another partition
    w.add_item(1, _item("c", 3_000, ("MSFT",)))
    assert w.open_windows == 3  # AAPL, MSFT, market
    w.revoke_partitions([1])
    assert w.open_windows == 2  # MSFT had only partition 1's items
    w.heartbeat(0, T0_MS + 2 * MIN)
    assert _closed(w) == [("*", 0, 1), ("AAPL", 0, 1)]  # market before ticker


def test_revoke_of_every_partition_empties_the_operator_and_a_reassignment_starts_clean() -> None:
    w = TumblingWindows(MIN, 0)
    w.assign_partitions([0])
    w.add_item(0, _item("a", 1_000))
    w.revoke_partitions([0])
    assert w.open_windows == 0 and w.oldest_open_start_ms is None and w.partition_watermark_ms(0) is None
    assert _closed(w) == []
    # the same partition comes back (rebuilt by the caller): nothing of before is counted twice
    w.assign_partitions([0])
    w.restore(0, _item("a", 1_000), closed_through_ms=T0_MS - MIN)
    w.add_item(0, _item("a", 1_000))  # re-consumed: the same story counts once
    w.add_item(0, _item("z", 2 * MIN))
    assert _closed(w) == [("AAPL", 0, 1)]


def test_watermark_moves_back_once_after_a_rebalance_so_an_adopted_partition_is_not_late() -> None:
    w = TumblingWindows(MIN, 0)
    w.assign_partitions([0])
    w.add_item(0, _item("a", 10 * MIN, ("AAPL",)))
    assert _closed(w, idle=(0,)) == [] and w.watermark_ms == T0_MS + 10 * MIN
    w.revoke_partitions([])  # a rebalance that took nothing away, and gave partition 1
    w.assign_partitions([1])
    w.heartbeat(1, T0_MS + 2 * MIN)  # its last committed record (what the rebuild sets)
    assert w.add_item(1, _item("b", 2 * MIN + 5_000, ("MSFT",))) is None  # not late: partition 1 is at 0:02
    w.add_item(1, _item("c", 4 * MIN, ("MSFT",)))
    assert _closed(w, idle=(0,)) == [("MSFT", 2 * MIN, 1)]
    assert w.watermark_ms == T0_MS + 4 * MIN


def test_revoking_unknown_or_no_partitions_keeps_the_windows() -> None:
    w = TumblingWindows(MIN, 0)
    w.add_item(0, _item("a", 1_000))
    w.revoke_partitions([5])
    w.revoke_partitions(())
    assert w.open_windows == 1
    w.add_item(0, _item("z", 2 * MIN))
    assert _closed(w) == [("AAPL", 0, 1)]


def test_closed_windows_release_their_partition_bookkeeping() -> None:
    w = TumblingWindows(MIN, 0)
    for i in range(50):
        w.add_item(0, _item(f"i{i}", i * MIN))
    w.advance()
    w.revoke_partitions([0])
    assert w.open_windows == 0
