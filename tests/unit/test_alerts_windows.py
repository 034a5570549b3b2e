"""Event-time tumbling windows: assignment, lateness, watermark, dedup, determinism."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest

from alerts import EVIDENCE_LIMIT, TumblingWindows, WindowResult
from inference._scored import ScoredItem

T0 = datetime(2024, 1, 2, 9, 0, tzinfo=timezone.utc)  # a multiple of 60 s
T0_MS = int(T0.timestamp()) * 1000
MIN = 60_000

_PROBS = {
    "negative": (0.8, 0.15, 0.05),
    "neutral": (0.1, 0.8, 0.1),
    "positive": (0.05, 0.15, 0.8),
}


def _item(
    item_id: str,
    offset_ms: int,
    tickers: tuple[str, ...] = ("AAPL",),
    label: str = "negative",
    p_negative: float | None = None,
    model_version: str = "m1",
) -> ScoredItem:
    p_neg, p_neu, p_pos = _PROBS[label]
    if p_negative is not None:
        p_neg, p_neu, p_pos = p_negative, (1 - p_negative) / 2, (1 - p_negative) / 2
    return ScoredItem(
        item_id=item_id,
        source="test",
        published_at=T0 + timedelta(milliseconds=offset_ms),
        tickers=tickers,
        title=f"title {item_id}",
        p_negative=p_neg,
        p_neutral=p_neu,
        p_positive=p_pos,
        label=label,
        score=p_pos - p_neg,
        model_version=model_version,
    )


def _keys(results: list[WindowResult]) -> list[tuple[str, int, int]]:
    return [(r.key, r.start_ms - T0_MS, r.n) for r in results]


def test_constructor_validates() -> None:
    with pytest.raises(ValueError):
        TumblingWindows(0, 0)
    with pytest.raises(ValueError):
        TumblingWindows(MIN, -1)


def test_window_assignment_at_boundaries() -> None:
    w = TumblingWindows(MIN, 0)
    assert w.window_of(T0_MS) == (T0_MS, T0_MS + MIN)
    assert w.window_of(T0_MS + MIN - 1) == (T0_MS, T0_MS + MIN)
    assert w.window_of(T0_MS + MIN) == (T0_MS + MIN, T0_MS + 2 * MIN)
    assert w.window_of(-1) == (-MIN, 0)  # floor, also before the epoch

    assert w.add(0, _item("start", 0))
    assert w.add(0, _item("last-ms", MIN - 1))
    assert w.add(0, _item("next", MIN))
    assert w.open_windows == 2
    # watermark = T0+60s: the first window [T0, T0+60s) closes, the second not
    results = w.advance()
    assert w.watermark_ms == T0_MS + MIN
    assert _keys(results) == [("AAPL", 0, 2)]
    assert results[0].end_ms == T0_MS + MIN
    assert {e.item_id for e in results[0].evidence} == {"start", "last-ms"}
    assert w.open_windows == 1


def test_result_aggregates_and_order() -> None:
    w = TumblingWindows(MIN, 0)
    w.add(0, _item("a", 1_000, ("MSFT", "AAPL", "MSFT"), "negative", 0.9, "m2"))
    w.add(0, _item("b", 2_000, ("AAPL",), "negative", 0.7, "m1"))
    w.add(0, _item("c", 3_000, ("AAPL",), "neutral"))
    w.add(0, _item("d", 4_000, ("AAPL",), "positive"))
    w.add(0, _item("e", MIN + 1, ("AAPL",), "negative"))
    w.add(0, _item("no-ticker", 2 * MIN + 5, ()))  # advances the watermark only
    results = w.advance()
    # ordered by (end, key); MSFT window counted "a" once despite the repeat
    assert _keys(results) == [("AAPL", 0, 4), ("MSFT", 0, 1), ("AAPL", MIN, 1)]
    aapl = results[0]
    assert (aapl.key_type, aapl.n_negative, aapl.n_neutral, aapl.n_positive) == ("ticker", 2, 1, 1)
    assert aapl.neg_share == pytest.approx(0.5)
    expected_mean = ((0.05 - 0.9) + (0.15 - 0.7) + 0.0 + (0.8 - 0.05)) / 4
    assert aapl.mean_score == pytest.approx(expected_mean)
    assert [e.item_id for e in aapl.evidence] == ["a", "b", "c", "d"]
    assert aapl.evidence[0].title == "title a" and aapl.evidence[0].p_negative == 0.9
    assert aapl.model_versions == ("m1", "m2")
    assert w.open_windows == 0


def test_evidence_is_capped_and_ties_break_on_item_id() -> None:
    w = TumblingWindows(MIN, 0)
    for i in range(15):
        w.add(0, _item(f"id{i:02d}", i, p_negative=0.9 if i % 2 else 0.6))
    w.add(0, _item("later", MIN))
    (result,) = w.advance()
    assert result.n == 15
    assert len(result.evidence) == EVIDENCE_LIMIT
    odd = [f"id{i:02d}" for i in range(1, 15, 2)]  # 7 items at 0.9
    even = [f"id{i:02d}" for i in range(0, 15, 2)][:3]
    assert [e.item_id for e in result.evidence] == odd + even


def test_out_of_order_within_lateness_is_counted() -> None:
    w = TumblingWindows(MIN, 10_000)
    assert w.add(0, _item("w2", MIN + 5_000))
    assert w.add(0, _item("w1-late-but-ok", MIN - 1))  # 5 s late: within 10 s
    assert w.late_count == 0
    assert w.advance() == []  # watermark T0+55s < end T0+60s
    assert w.watermark_ms == T0_MS + MIN - 5_000
    assert w.add(0, _item("w2b", MIN + 10_000))
    (result,) = w.advance()  # watermark T0+60s
    assert (result.start_ms, result.n) == (T0_MS, 1)
    assert result.evidence[0].item_id == "w1-late-but-ok"


def test_late_beyond_lateness_is_rejected_and_counted() -> None:
    w = TumblingWindows(MIN, 10_000)
    w.add(0, _item("ahead", MIN + 15_000))
    # late for its own partition (watermark T0+65s >= end T0+60s), even before advance
    assert not w.add(0, _item("too-late", MIN - 1))
    assert w.late_count == 1
    assert _keys(w.advance()) == []  # the late item opened no window
    # window closed by the operator watermark: late on any partition, even a new one
    assert not w.add(1, _item("closed-window", 30_000))
    assert w.late_count == 2
    assert w.add(1, _item("open-window", MIN + 30_000))
    assert w.late_count == 2


def test_lagging_partition_holds_watermark_until_idle() -> None:
    w = TumblingWindows(MIN, 10_000)
    w.add(0, _item("p0-a", 10_000))
    w.add(0, _item("p0-b", 2 * MIN + 15_000))  # partition 0 watermark: T0+125s
    w.add(1, _item("p1-a", 5_000, ("MSFT",)))  # partition 1 watermark: T0-5s
    assert w.advance() == []
    assert w.watermark_ms == T0_MS - 5_000
    assert w.partition_watermark_ms(0) == T0_MS + 2 * MIN + 5_000
    results = w.advance(idle_partitions={1})
    assert w.watermark_ms == T0_MS + 2 * MIN + 5_000
    assert _keys(results) == [("AAPL", 0, 1), ("MSFT", 0, 1)]
    # partition 1 active again: the watermark does not move backwards
    assert w.advance() == []
    assert w.watermark_ms == T0_MS + 2 * MIN + 5_000
    # every partition idle: the max of them
    w.add(1, _item("p1-b", 4 * MIN, ("MSFT",)))
    results = w.advance(idle_partitions=[0, 1])
    assert w.watermark_ms == T0_MS + 4 * MIN - 10_000
    assert _keys(results) == [("AAPL", 2 * MIN, 1)]
    assert w.open_windows == 1


def test_declared_partition_holds_watermark_until_seen_or_idle() -> None:
    w = TumblingWindows(MIN, 0)
    w.assign_partitions([0, 1])
    w.add(0, _item("p0", 5 * MIN))
    assert w.advance() == [] and w.watermark_ms is None
    assert w.add(1, _item("p1-old", 1_000))  # not late: partition 1 was waited for
    assert w.advance() == [] and w.watermark_ms == T0_MS + 1_000
    assert _keys(w.advance(idle_partitions=[1])) == [("AAPL", 0, 1)]
    w2 = TumblingWindows(MIN, 0)
    w2.assign_partitions([0, 1])
    w2.add(0, _item("p0-old", 1_000))
    w2.add(0, _item("p0", 5 * MIN))
    assert w2.advance() == []  # partition 1 not seen yet
    assert _keys(w2.advance(idle_partitions=[1])) == [("AAPL", 0, 1)]


def test_same_item_id_counts_once_per_window() -> None:
    w = TumblingWindows(MIN, 0)
    item = _item("dup", 1_000, ("AAPL", "MSFT"))
    assert w.add(0, item)
    assert w.add(0, item)
    assert w.add(1, item)  # redelivered on another partition
    w.add(0, _item("other", 2_000))
    w.add(0, _item("next", MIN))
    w.add(1, _item("next1", MIN))
    results = w.advance()
    assert _keys(results) == [("AAPL", 0, 2), ("MSFT", 0, 1)]
    assert w.duplicate_count == 4  # 2 repeats x 2 tickers


def _partition_streams(seed: int) -> dict[int, list[ScoredItem]]:
    """Three partitions, each mostly in order with jitter beyond the lateness."""
    rng = random.Random(seed)
    tickers = ["AAPL", "MSFT", "TSLA", "NVDA"]
    labels = ["negative", "neutral", "positive"]
    streams: dict[int, list[ScoredItem]] = {}
    for p in range(3):
        items = []
        t = p * 7_000
        for i in range(120):
            t += rng.randint(0, 9_000)
            jitter = rng.choice([0, 0, 0, -4_000, -12_000, -40_000])
            tick = tuple(rng.sample(tickers, rng.randint(0, 2)))
            items.append(
                _item(
                    f"p{p}-{i}",
                    max(0, t + jitter),
                    tick,
                    rng.choice(labels),
                    round(rng.random(), 3),
                    rng.choice(["m1", "m2"]),
                )
            )
        # a few redeliveries of the same item ids
        items[50:50] = [items[10], items[45]]
        streams[p] = items
    return streams


def _run(order: list[int], streams: dict[int, list[ScoredItem]]) -> tuple[list, int, int]:
    w = TumblingWindows(MIN, 10_000)
    w.assign_partitions(streams)
    cursors = dict.fromkeys(streams, 0)
    results: list[WindowResult] = []
    for p in order:
        w.add(p, streams[p][cursors[p]])
        cursors[p] += 1
        results.extend(w.advance())
    results.extend(w.advance(idle_partitions=list(streams)))
    return results, w.late_count, w.duplicate_count


def test_results_do_not_depend_on_interleaving() -> None:
    streams = _partition_streams(seed=7)
    sequential = [p for p in streams for _ in streams[p]]
    round_robin = [p for i in range(max(map(len, streams.values()))) for p in streams if i < len(streams[p])]
    shuffled = sequential.copy()
    random.Random(3).shuffle(shuffled)  # any permutation keeps each partition's own order

    base, late, dups = _run(sequential, streams)
    assert late > 0 and dups > 0 and len(base) > 10
    ends = [(r.end_ms, r.key) for r in base]
    assert ends == sorted(ends)
    for order in (round_robin, shuffled, list(reversed(sequential))):
        assert _run(order, streams) == (base, late, dups)


# -- hopping windows, key types, stories, heartbeats, lateness, DST ---------------------------------

from alerts import EventTimeWindows  # noqa: E402


def test_hopping_window_assignment() -> None:
    w = EventTimeWindows(60 * MIN, 0, hop_ms=5 * MIN)
    spans = w.windows_of(T0_MS + 7 * MIN)
    assert len(spans) == 12
    assert spans[0] == (T0_MS + 5 * MIN - 55 * MIN, T0_MS + 5 * MIN + 5 * MIN)
    assert spans[-1] == (T0_MS + 5 * MIN, T0_MS + 65 * MIN)
    assert all(s <= T0_MS + 7 * MIN < e for s, e in spans)
    with pytest.raises(ValueError):
        EventTimeWindows(60 * MIN, 0, hop_ms=7 * MIN)  # does not divide
    with pytest.raises(ValueError):
        EventTimeWindows(60 * MIN, 0, key_types=("sector",))


def test_hopping_windows_emit_every_hop_with_overlapping_counts() -> None:
    w = EventTimeWindows(10 * MIN, 0, hop_ms=5 * MIN)
    w.add(0, _item("a", 1 * MIN))
    w.add(0, _item("b", 6 * MIN))
    w.add(0, _item("end", 30 * MIN, tickers=("ZZZ",)))
    results = [(r.key, r.start_ms - T0_MS, r.n) for r in w.advance()]
    # ZZZ's windows [25, 35) and [30, 40) are still open at watermark 30 min
    assert results == [("AAPL", -5 * MIN, 1), ("AAPL", 0, 2), ("AAPL", 5 * MIN, 1)]


def test_topic_and_market_keys() -> None:
    w = EventTimeWindows(MIN, 0, key_types=("ticker", "topic", "market"))
    w.add(0, _item("a", 1_000).model_copy(update={"topic": "Earnings"}))
    w.add(0, _item("b", 2_000, tickers=()))
    w.add(0, _item("z", 2 * MIN, tickers=()))
    got = [(r.key_type, r.key, r.n) for r in w.advance()]
    assert got == [("market", "*", 2), ("ticker", "AAPL", 1), ("topic", "Earnings", 1)]


def test_repeated_story_counts_once_per_window_and_key() -> None:
    w = TumblingWindows(MIN, 0)
    first = _item("wire-1", 1_000)
    copy = first.model_copy(update={"item_id": "other-source-2", "title": "  TITLE wire-1!  "})
    w.add(0, first)
    w.add(0, copy)  # same words, other id and source: the same story
    w.add(0, _item("z", 2 * MIN))
    [result, *_] = w.advance()
    assert result.n == 1 and w.duplicate_count == 1


def test_heartbeat_closes_windows_of_a_quiet_partition() -> None:
    w = TumblingWindows(MIN, 10_000)
    w.assign_partitions([0, 1])
    w.add(0, _item("burst", 1_000))
    assert w.advance() == []  # partition 1 has said nothing yet
    w.heartbeat(1, T0_MS + 30 * MIN)
    assert w.advance() == []  # partition 0 is quiet: it holds the watermark at 1 s - 10 s
    w.heartbeat(0, T0_MS + 30 * MIN)
    assert _keys(w.advance()) == [("AAPL", 0, 1)]
    assert w.watermark_ms == T0_MS + 30 * MIN - 10_000
    w.heartbeat(0, T0_MS + 5 * MIN)  # an older heartbeat never moves a partition back
    assert w.partition_watermark_ms(0) == T0_MS + 30 * MIN - 10_000


def test_late_item_reports_its_lateness() -> None:
    w = TumblingWindows(MIN, 10_000)
    w.add(0, _item("now", 5 * MIN))
    w.advance()
    assert w.add_item(0, _item("old", 1_000)) == (5 * MIN - 10_000) - 1_000
    assert w.late_count == 1
    assert w.add_item(0, _item("ok", 5 * MIN - 5_000)) is None


def test_dst_change_offsets_are_one_hour_apart_in_utc() -> None:
    from datetime import timedelta as td
    from zoneinfo import ZoneInfo

    ny = ZoneInfo("America/New_York")  # 2024-03-10 02:00 EST -> 03:00 EDT
    before = datetime(2024, 3, 10, 1, 30, tzinfo=ny)
    after = datetime(2024, 3, 10, 3, 30, tzinfo=ny)
    assert after - before == td(hours=2) and after.astimezone(timezone.utc) - before.astimezone(timezone.utc) == td(hours=1)
    w = TumblingWindows(60 * MIN, 0)
    for i, t in enumerate((before, after)):
        w.add(0, _item(f"dst{i}", 0).model_copy(update={"published_at": t.astimezone(timezone.utc)}))
    w.heartbeat(0, int(after.timestamp() * 1000) + 60 * MIN)
    results = w.advance()
    assert [(r.start_ms, r.n) for r in results] == [
        (int(datetime(2024, 3, 10, 6, 0, tzinfo=timezone.utc).timestamp()) * 1000, 1),  # 01:30 EST = 06:30 UTC
        (int(datetime(2024, 3, 10, 7, 0, tzinfo=timezone.utc).timestamp()) * 1000, 1),  # 03:30 EDT = 07:30 UTC
    ]


def test_revoked_partition_leaves_watermark_and_open_windows() -> None:
    w = TumblingWindows(60 * MIN, 0, key_types=("ticker", "market"))
    w.assign_partitions([0, 1])
    w.add_item(0, _item("p0-a", 1 * MIN, ("AAPL",)))
    w.add_item(1, _item("p1-a", 2 * MIN, ("AAPL",)))
    w.add_item(1, _item("p1-m", 3 * MIN, ("MSFT",)))
    w.revoke_partitions([1])
    # partition 1 no longer holds the watermark back: partition 0 alone moves it
    w.heartbeat(0, T0_MS + 2 * 60 * MIN)
    results = w.advance()
    assert [(r.key_type, r.key, r.n) for r in results] == [("market", "*", 1), ("ticker", "AAPL", 1)]
    assert {e.item_id for r in results for e in r.evidence} == {"p0-a"}
    assert w.partition_watermark_ms(1) is None and w.open_windows == 0


def test_revoking_an_unknown_partition_is_harmless() -> None:
    w = TumblingWindows(60 * MIN, 0)
    w.add_item(0, _item("a", MIN))
    w.revoke_partitions([7])
    w.revoke_partitions([])
    w.heartbeat(0, T0_MS + 2 * 60 * MIN)
    assert [r.n for r in w.advance()] == [1]


def test_evidence_is_ranked_lazily_and_equals_its_tuple() -> None:
    w = TumblingWindows(60 * MIN, 0)
    for i in range(3):
        w.add_item(0, _item(f"i{i}", MIN + i, p_negative=0.5 + i / 10))
    w.heartbeat(0, T0_MS + 2 * 60 * MIN)
    (result,) = w.advance()
    ranked = tuple(result.evidence)
    assert [e.item_id for e in ranked] == ["i2", "i1", "i0"]
    assert result.evidence == ranked and ranked == result.evidence and len(result.evidence) == 3
    assert result.evidence[0].item_id == "i2" and list(result.evidence[1:]) == list(ranked[1:])
    assert hash(result.evidence) == hash(ranked)
