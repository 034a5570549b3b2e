"""Pane-based windows against a plain model of the window semantics, and the detector's window interest.

``_Model`` keeps one dict per (window end, key), the way the operator's
docstring states the rules (an item joins each of its windows that ends
after the watermark that applies to it; first copy of a story wins in each
window still held; a window is returned once per closing, in ``(end, key)`` order).
Random streams (three partitions, jitter past the lateness, repeated
stories, idle partitions, rebalances, restores) must give the same results
through ``EventTimeWindows`` (panes) and through the model, and the detector
must give the same alerts whether ``advance`` gets its ``window_interest``
or returns every window.
"""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta, timezone

import pytest

from alerts import EventTimeWindows, SpikeDetector, ThresholdDetector, WindowCounts, story_key
from inference._scored import ScoredItem

T0 = datetime(2024, 1, 2, 9, 0, tzinfo=timezone.utc)
T0_MS = int(T0.timestamp()) * 1000
MIN = 60_000
_P = {"negative": (0.8, 0.15, 0.05), "neutral": (0.1, 0.8, 0.1), "positive": (0.05, 0.15, 0.8)}


class _Model:
    """The window rules, one list per (window end, key): slow and obvious."""

    def __init__(self, size: int, lateness: int, hop: int, kinds: tuple[str, ...]) -> None:
        self.size, self.lateness, self.hop, self.kinds = size, lateness, hop, kinds
        self.max_ms: dict[int, int] = {}
        self.assigned: set[int] = set()
        self.wm: int | None = None
        self.open: dict[int, dict[tuple[str, str], list[tuple[int, ScoredItem]]]] = {}  # in arrival order

    def keys(self, it: ScoredItem) -> list[tuple[str, str]]:
        out = [("ticker", t) for t in dict.fromkeys(it.tickers) if t and "ticker" in self.kinds]
        out += [("topic", it.topic)] if it.topic and "topic" in self.kinds else []
        return out + ([("market", "*")] if "market" in self.kinds else [])

    def ends(self, t: int) -> list[int]:
        last = t - t % self.hop + self.size
        return list(range(last - self.size + self.hop, last + 1, self.hop))

    def join(self, p: int, it: ScoredItem, floor: int | None) -> None:
        for end in self.ends(it.published_ms):
            if floor is None or end > floor:
                for key in self.keys(it):
                    self.open.setdefault(end, {}).setdefault(key, []).append((p, it))

    def add(self, p: int, it: ScoredItem) -> bool:
        marks = [m for m in (self.wm, None if p not in self.max_ms else self.max_ms[p] - self.lateness) if m is not None]
        floor = max(marks) if marks else None
        if floor is not None and self.ends(it.published_ms)[-1] <= floor:
            return False
        self.max_ms[p] = max(self.max_ms.get(p, it.published_ms), it.published_ms)
        self.join(p, it, floor)
        return True

    def restore(self, p: int, it: ScoredItem, closed_through: int) -> None:
        self.join(p, it, closed_through if self.wm is None else max(closed_through, self.wm))

    def revoke(self, gone: set[int]) -> None:
        for p in gone:
            self.max_ms.pop(p, None)
            self.assigned.discard(p)
        self.wm = None
        for end in list(self.open):
            for key in list(self.open[end]):
                kept = [e for e in self.open[end][key] if e[0] not in gone]
                self.open[end][key] = kept
                if not kept:
                    del self.open[end][key]
            if not self.open[end]:
                del self.open[end]

    def advance(self, idle: set[int]) -> list[tuple]:
        if self.max_ms and not any(p not in self.max_ms and p not in idle for p in self.assigned):
            active = [m - self.lateness for p, m in self.max_ms.items() if p not in idle]
            cand = min(active) if active else max(self.max_ms.values()) - self.lateness
            self.wm = cand if self.wm is None else max(self.wm, cand)
        out = []
        for end in sorted(e for e in self.open if self.wm is not None and e <= self.wm):
            for key, entries in sorted(self.open.pop(end).items()):
                first: dict[str, ScoredItem] = {}
                for _, it in entries:  # the first copy of each story still held counts
                    first.setdefault(story_key(it), it)
                items = list(first.values())
                top = sorted(items, key=lambda i: (-i.p_negative, i.item_id))[:10]
                out.append((key, end, len(items), [i.item_id for i in top],
                            sum(i.label == "negative" for i in items), math.fsum(i.score for i in items) / len(items)))
        return out


def _item(rng: random.Random, i: int, t: int) -> ScoredItem:
    label = rng.choice(["negative", "negative", "neutral", "positive"])
    p = _P[label]
    return ScoredItem(
        item_id=f"i{i}", source="test", published_at=T0 + timedelta(milliseconds=max(0, t)),
        tickers=tuple(rng.sample(["AAPL", "MSFT", "TSLA"], rng.randint(0, 2))),
        title=f"story {rng.randint(0, 40)}", p_negative=p[0], p_neutral=p[1], p_positive=p[2], label=label,
        score=round(p[2] - p[0] + rng.random() / 10, 3), topic=rng.choice([None, "Earnings", "M&A"]),
        model_version="m1",
    )


def _ops(seed: int, n: int = 400) -> list[tuple]:
    """A random schedule: adds on 3 partitions (jitter past the lateness), advances, revokes, restores."""
    rng = random.Random(seed)
    clock = {0: 0, 1: 5_000, 2: 9_000}
    ops: list[tuple] = [("assign", (0, 1, 2))]
    for i in range(n):
        p = rng.randrange(3)
        clock[p] += rng.randint(0, 40_000)
        jitter = rng.choice([0, 0, 0, -30_000, -3 * MIN, -12 * MIN])
        ops.append(("add", p, _item(rng, i, clock[p] + jitter)))
        r = rng.random()
        if r < 0.15:
            ops.append(("advance", tuple(q for q in range(3) if rng.random() < 0.2)))
        elif r < 0.16:
            gone = rng.randrange(3)
            ops += [("revoke", (gone,)), ("assign", (gone,))]
        elif r < 0.18:
            ops.append(("restore", p, _item(rng, 10_000 + i, clock[p] - rng.randint(0, 20 * MIN)),
                        clock[p] - rng.randint(0, 15 * MIN)))
    return ops + [("advance", (0, 1, 2))]


def _drive(w: EventTimeWindows | _Model, ops: list[tuple]) -> list[tuple]:
    out: list[tuple] = []
    real = isinstance(w, EventTimeWindows)
    for op in ops:
        if op[0] == "assign":
            w.assign_partitions(op[1]) if real else w.assigned.update(op[1])
        elif op[0] == "add":
            w.add(op[1], op[2])
        elif op[0] == "restore":
            w.restore(op[1], op[2], T0_MS + op[3])
        elif op[0] == "revoke":
            w.revoke_partitions(op[1]) if real else w.revoke(set(op[1]))
        elif real:
            out += [((r.key_type, r.key), r.end_ms, r.n, [e.item_id for e in r.evidence], r.n_negative, r.mean_score)
                    for r in w.advance(op[1])]
            out.append(("open", w.open_windows))
        else:
            out += w.advance(set(op[1]))
            out.append(("open", sum(len(keys) for keys in w.open.values())))
    return out


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("size_min,hop_min,kinds", [(10, 2, ("ticker", "topic", "market")), (6, 6, ("ticker",)),
                                                    (9, 3, ("ticker",))])
def test_panes_give_the_windows_of_the_plain_model(seed: int, size_min: int, hop_min: int, kinds: tuple) -> None:
    ops = _ops(seed, n=400)
    lateness = 4 * MIN
    got = _drive(EventTimeWindows(size_min * MIN, lateness, hop_min * MIN, kinds), ops)
    want = _drive(_Model(size_min * MIN, lateness, hop_min * MIN, kinds), ops)
    assert len(want) > 12
    assert got == want


def _alerts(ops, hop_min: int, detector, with_interest: bool) -> tuple[list[str], int, int]:
    w = EventTimeWindows(30 * MIN, 2 * MIN, hop_min * MIN, ("ticker", "topic", "market"))
    out, built = [], 0
    for op in ops:
        if op[0] == "assign":
            w.assign_partitions(op[1])
        elif op[0] == "add":
            w.add(op[1], op[2])
        elif op[0] == "revoke":
            w.revoke_partitions(op[1])
        elif op[0] == "restore":
            w.restore(op[1], op[2], T0_MS + op[3])
        else:
            closed = w.advance(op[1], detector.window_interest() if with_interest else None)
            built += len(closed)
            out += [a.to_json() for a in detector.evaluate_windows(closed, w.watermark_ms, w.hop_ms)]
    if isinstance(detector, SpikeDetector):  # the baselines learnt (from WindowCounts too) must agree as well
        out += [(k, s.mean, s.var, s.windows) for k, s in sorted(detector.baseline._state.items())]
    return out, built, w.closed_count


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("hop_min", [5, 30])
def test_window_interest_changes_no_alert(seed: int, hop_min: int) -> None:
    ops = _ops(100 + seed, n=600)
    for make in (lambda: SpikeDetector(3, 0.5, alpha=0.2, resolve_p=0.5), lambda: ThresholdDetector(3, 0.5)):
        every, built_all, closed_all = _alerts(ops, hop_min, make(), with_interest=False)
        some, built_some, closed_some = _alerts(ops, hop_min, make(), with_interest=True)
        assert some == every and len(every) > 0
        assert closed_some == closed_all == built_all >= built_some  # closed_count: windows that held items


def test_most_hopping_windows_of_a_sparse_stream_are_not_built() -> None:
    rng = random.Random(5)
    items, t = [], 0
    for i in range(3000):  # 200 tickers, one item every ~20 s, 20 % negative
        t += rng.randint(0, 40_000)
        label = rng.choices(["negative", "neutral", "positive"], [0.2, 0.6, 0.2])[0]
        p = _P[label]
        items.append(ScoredItem(
            item_id=f"s{i}", source="t", published_at=T0 + timedelta(milliseconds=t), tickers=(f"T{rng.randrange(200)}",),
            title=f"s {i}", p_negative=p[0], p_neutral=p[1], p_positive=p[2], label=label, score=p[2] - p[0],
            model_version="m1"))
    ops: list[tuple] = [("assign", (0,))] + [("add", 0, it) for it in items] + [("advance", (0,))]
    ops = [op for k, add in enumerate(ops) for op in ([add, ("advance", ())] if k % 50 == 0 else [add])]
    every, built_all, _ = _alerts(ops, 5, SpikeDetector(3, 0.6, alpha=0.05, resolve_p=0.2), with_interest=False)
    some, built_some, _ = _alerts(ops, 5, SpikeDetector(3, 0.6, alpha=0.05, resolve_p=0.2), with_interest=True)
    assert some == every and len(every) > 0
    assert built_some * 4 < built_all


def test_an_episode_opened_in_one_advance_sees_its_later_windows_of_that_advance() -> None:
    # key K fires at window end 10 and must see window end 15 (calm) in the same advance to resolve
    det = SpikeDetector(2, 0.5, alpha=0.5, resolve_p=0.8)
    w = EventTimeWindows(10 * MIN, 0, 5 * MIN)
    mk = lambda i, t, label: ScoredItem(  # noqa: E731
        item_id=f"k{i}", source="t", published_at=T0 + timedelta(milliseconds=t), tickers=("K",), title=f"k {i}",
        p_negative=_P[label][0], p_neutral=_P[label][1], p_positive=_P[label][2], label=label,
        score=_P[label][2] - _P[label][0], model_version="m1")
    w.add(0, mk(1, 1 * MIN, "negative"))
    w.add(0, mk(2, 2 * MIN, "negative"))
    w.add(0, mk(3, 12 * MIN, "positive"))
    w.add(0, mk(4, 13 * MIN, "positive"))
    w.add(0, mk(5, 14 * MIN, "positive"))
    w.heartbeat(0, T0_MS + 40 * MIN)
    closed = w.advance((), det.window_interest())
    statuses = [a.status for a in det.evaluate_windows(closed, w.watermark_ms, w.hop_ms)]
    assert statuses == ["firing", "resolved"]
    assert [(r.end_ms - T0_MS) // MIN for r in closed] == [5, 10, 15, 20]


def test_sliding_counts_follow_panes_in_and_out() -> None:
    from alerts._slide import SlidingCounts

    s = SlidingCounts(hop_ms=5, min_negative=2)
    a, b = ("ticker", "A"), ("ticker", "B")
    s.push(5, [a], {a: 1})
    s.push(10, [a, b], {a: 1})
    assert (s.present, s.reaching) == ({a: 2, b: 1}, {a})
    with pytest.raises(ValueError):
        s.push(20, [], {})  # not the next pane
    s.negative_joined(b)
    s.key_joined(b)
    s.pop([a], {a: 1})  # pane 5 leaves
    assert (s.lo_ms, s.hi_ms, s.present, s.negatives, s.reaching) == (10, 10, {a: 1, b: 2}, {a: 1, b: 1}, set())
    s.pop([a, b], {a: 1, b: 1})
    assert (s.lo_ms, s.present, s.negatives) == (None, {}, {})


def test_closed_count_skips_windows_a_key_never_held() -> None:
    def item(i: int, minutes: float, ticker: str) -> ScoredItem:
        p = _P["neutral"]
        return ScoredItem(item_id=f"c{i}", source="t", published_at=T0 + timedelta(minutes=minutes), tickers=(ticker,),
                          title=f"c {i}", p_negative=p[0], p_neutral=p[1], p_positive=p[2], label="neutral",
                          score=p[2] - p[0], model_version="m1")

    w = EventTimeWindows(10 * MIN, 0, 5 * MIN)
    w.assign_partitions([0])
    w.add(0, item(1, 0, "AAA"))
    w.heartbeat(0, T0_MS + 17 * MIN)
    assert w.add_item(0, item(2, 12, "BBB")) is None  # partially late (watermark 17 min): joins [10, 20) only
    w.restore(0, item(3, 6, "CCC"), T0_MS + 12 * MIN)  # windows ending by 12 min were decided: joins [5, 15) only
    w.heartbeat(0, T0_MS + 60 * MIN)
    got = [(r.key, (r.end_ms - T0_MS) // MIN) for r in w.advance()]
    assert got == [("AAA", 5), ("AAA", 10), ("CCC", 15), ("BBB", 20)]
    assert w.closed_count == len(got)


def test_learning_windows_count_stories_repeated_across_panes_once() -> None:
    # re-sent headlines 6-20 minutes apart: the same story in two panes of one key, no copy inside a pane
    rng = random.Random(11)
    items, t, sent = [], 0, []
    for i in range(4000):
        t += rng.randint(0, 30_000)
        ticker = f"T{rng.randrange(40)}"
        earlier = [s for s in sent[-400:] if s[1] == ticker and 6 * MIN <= t - s[0] <= 20 * MIN and s[3]]
        again = rng.choice(earlier) if earlier and rng.random() < 0.4 else None
        title = again[2] if again else f"fresh {i}"
        if again:
            sent[sent.index(again)] = (*again[:3], False)  # re-sent once, into another pane: never a copy in one pane
        sent.append((t, ticker, title, again is None))
        label = "negative" if "fresh" in title and rng.random() < 0.3 else rng.choice(["neutral", "positive"])
        if title != f"fresh {i}":  # a re-sent story keeps its label
            label = next(it.label for it in reversed(items) if it.title == title)
        p = _P[label]
        items.append(ScoredItem(
            item_id=f"r{i}", source="t", published_at=T0 + timedelta(milliseconds=t), tickers=(ticker,), title=title,
            p_negative=p[0], p_neutral=p[1], p_positive=p[2], label=label, score=p[2] - p[0], model_version="m1"))

    def run(with_interest: bool) -> tuple[list, int]:
        det = SpikeDetector(4, 0.6, alpha=0.05, resolve_p=0.2)
        w = EventTimeWindows(60 * MIN, 0, 5 * MIN)
        w.assign_partitions([0])
        out, light = [], 0
        for k, it in enumerate(items, 1):
            w.add(0, it)
            if k % 40 == 0 or k == len(items):
                if k == len(items):
                    w.heartbeat(0, it.published_ms + 3 * 60 * MIN)
                closed = w.advance((), det.window_interest() if with_interest else None)
                light += sum(isinstance(r, WindowCounts) for r in closed)
                out += [a.to_json() for a in det.evaluate_windows(closed, w.watermark_ms, w.hop_ms)]
        out += [(key, s.mean, s.var, s.windows) for key, s in sorted(det.baseline._state.items())]
        return out, light

    every, none_light = run(False)
    some, light = run(True)
    assert none_light == 0 and light > 100  # learning windows came as counts
    assert some == every  # same alerts and the same baselines: each story counted once per window


@pytest.mark.parametrize("minute", [0, 17, 33, 58])
def test_a_learning_window_with_one_pane_counts_that_panes_negatives(minute: int) -> None:
    # one negative item in the first hour: the learning window [0, 60) holds a single pane, not its last one
    det = SpikeDetector(5, 0.6)
    w = EventTimeWindows(60 * MIN, 0, 5 * MIN)
    p = _P["negative"]
    w.add(0, ScoredItem(item_id="x", source="t", published_at=T0 + timedelta(minutes=minute), tickers=("K",),
                        title="k falls", p_negative=p[0], p_neutral=p[1], p_positive=p[2], label="negative",
                        score=p[2] - p[0], model_version="m1"))
    w.heartbeat(0, T0_MS + 3 * 60 * MIN)
    det.baseline_phase_ms = T0_MS % (60 * MIN)
    learnt = [r for r in w.advance((), det.window_interest()) if r.start_ms == T0_MS]
    assert [(type(r).__name__, r.n, r.n_negative) for r in learnt] == [("WindowCounts", 1, 1)]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("gap_ms", [8_000, 60_000, 40 * MIN])
def test_every_window_built_with_the_interest_has_the_counts_of_the_full_run(seed: int, gap_ms: int) -> None:
    # WindowCounts and WindowResults built with the detector's interest carry the n and negatives of the
    # same window built without it (every window returned): summed panes, merged panes, and windows of
    # which a single pane holds items (the sparsest stream)
    rng = random.Random(seed)
    ops: list[tuple] = [("assign", (0,))]
    t = 0
    for i in range(1500):
        t += rng.randint(0, gap_ms)
        label = rng.choices(["negative", "neutral", "positive"], [0.4, 0.4, 0.2])[0]
        p = _P[label]
        title = f"s {rng.randrange(300)}" if rng.random() < 0.3 else f"u {i}"
        ops.append(("add", 0, ScoredItem(
            item_id=f"c{i}", source="t", published_at=T0 + timedelta(milliseconds=t), tickers=(f"T{rng.randrange(15)}",),
            title=title, p_negative=p[0], p_neutral=p[1], p_positive=p[2], label=label, score=p[2] - p[0],
            model_version="m1")))
        if i % 40 == 0:
            ops.append(("advance", ()))
    ops.append(("advance", (0,)))

    def built(with_interest: bool) -> dict[tuple, tuple[int, int]]:
        det = SpikeDetector(3, 0.6, alpha=0.05, resolve_p=0.2)
        w = EventTimeWindows(60 * MIN, 2 * MIN, 5 * MIN)
        out: dict[tuple, tuple[int, int]] = {}
        for op in ops:
            if op[0] == "assign":
                w.assign_partitions(op[1])
            elif op[0] == "add":
                w.add(op[1], op[2])
            else:
                closed = w.advance(op[1], det.window_interest() if with_interest else None)
                det.evaluate_windows(closed, w.watermark_ms, w.hop_ms)
                out.update(((r.key, r.end_ms), (r.n, r.n_negative)) for r in closed)
        return out

    every, some = built(False), built(True)
    assert some and all(every[k] == v for k, v in some.items())
