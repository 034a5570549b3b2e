"""Fault run: fuzzed malformed records among valid ones, through one ``finsentry run``.

Produces, interleaved at random into a fresh raw topic (4 partitions), the
first ``--valid`` real Benzinga items (valid ``NewsItem`` JSON) and ``--bad``
fuzzed records in nine kinds: bad UTF-8, truncated JSON, wrong types, missing
fields, huge fields (100 KB; every 100th 900 KB), deeply nested junk
(100,000 levels), junk inside an otherwise valid object, non-objects, empty
values and tombstones (``None``), naive timestamps. One daemon
(``finsentry run --idle-exit``) consumes them all.

Figures (JSON, also printed): ``crashes`` (daemon exits other than 0: must be
0), ``unaccounted`` (records with neither a scored record nor a dead letter:
must be 0), ``valid_not_scored`` (must be 0), ``bad_dead_lettered``,
``bad_accepted`` (fuzzed records that still were valid items, e.g. junk in an
extra key: scored, which is right), ``dead_letters_without_reason`` (must be
0), dead letters per reason.

Usage::

    python benchmarks/faults/malformed.py                # 10,000 bad + 10,000 valid
    python benchmarks/faults/malformed.py --short        # 600 bad + 600 valid (the CI version)
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from finsentry.broker import create_topics  # noqa: E402
from finsentry.demo import DEFAULT_FEED, default_data_dir  # noqa: E402
from finsentry.topics import read_topic  # noqa: E402
from ingest import make_producer, read_feed  # noqa: E402
from kill9 import broker_for, daemon_env, fault_topics, write_figures  # noqa: E402

KINDS = ("bad_utf8", "truncated_json", "wrong_types", "missing_fields", "huge_field", "deep_nesting",
         "junk_extra_key", "not_object", "empty_or_tombstone", "naive_time")


def _valid_dict(i: int) -> dict[str, object]:
    return {"id": f"bad-{i}", "source": "fuzz", "published_at": "2020-01-02T15:00:00+00:00",
            "title": f"Fuzz headline {i}", "tickers": ["FUZZ"]}


def fuzz(i: int, rng: random.Random) -> tuple[str, bytes | None]:
    """The ``i``-th fuzzed record: (kind, value bytes or None for a tombstone)."""
    kind = KINDS[i % len(KINDS)]
    d = _valid_dict(i)
    if kind == "bad_utf8":
        return kind, b'{"id": "' + bytes(rng.randrange(0x80, 0x100) for _ in range(16)) + b'"}'
    if kind == "truncated_json":
        text = json.dumps(d).encode()
        return kind, text[: rng.randrange(1, len(text) - 1)]
    if kind == "wrong_types":
        field = rng.choice(["title", "published_at", "source", "tickers", "id"])
        d[field] = rng.choice([[1, 2], {"x": {"y": 1}}, True, None, 3.5])
        return kind, json.dumps(d).encode()
    if kind == "missing_fields":
        for field in rng.sample(["id", "source", "published_at"], rng.randrange(1, 4)):
            d.pop(field)
        return kind, json.dumps(d).encode()
    if kind == "huge_field":
        d[rng.choice(["title", "body"])] = "x" * (900_000 if i % 100 == 4 else 100_000)
        return kind, json.dumps(d).encode()
    if kind == "deep_nesting":
        depth = 100_000
        return kind, (b"[" * depth + b"]" * depth) if i % 2 else (b'{"a":' * depth + b"1" + b"}" * depth)
    if kind == "junk_extra_key":
        d["junk"] = {"a": [[[{"b": None}]] * 3], "\u0000": "\udcff".encode("utf-8", "surrogatepass").hex()}
        return kind, json.dumps(d).encode()
    if kind == "not_object":
        return kind, rng.choice([b"[1, 2, 3]", b"42", b'"a string"', b"null", b"true"])
    if kind == "empty_or_tombstone":
        return kind, rng.choice([b"", None, b"   "])
    d["published_at"] = "2020-01-02T15:00:00"  # naive: refused (event time must be UTC)
    return kind, json.dumps(d).encode()


def run_malformed(bootstrap: str, workdir: Path, feed: Path, n_valid: int, n_bad: int, seed: int,
                  idle_exit_s: float) -> dict[str, object]:
    """One fault run (see the module docstring); returns the figures."""
    rng = random.Random(seed)
    topics = fault_topics("fuzz")
    raw, scored, dlq, late = topics["raw"], topics["scored"], topics["dlq"], topics["late"]
    create_topics(bootstrap, {raw: 4, scored: 4, dlq: 1, late: 1})
    valid = read_feed(feed, limit=n_valid).items
    plan: list[tuple[str, str | None, bytes | None, bytes]] = []  # kind, valid id, value, key
    plan += [("valid", item.id, item.to_json(), (item.tickers[0] if item.tickers else item.source).encode())
             for item in valid]
    plan += [(kind, None, value, f"k{i}".encode()) for i, (kind, value) in ((i, fuzz(i, rng)) for i in range(n_bad))]
    rng.shuffle(plan)
    producer = make_producer(bootstrap)
    futures = [producer.send(raw, key=key, value=value) for _, _, value, key in plan]
    producer.flush()
    where = [(f.get(timeout=60).partition, f.get(timeout=60).offset) for f in futures]
    producer.close()

    env = daemon_env(bootstrap, topics, workdir / "o.sqlite", None, log_level="ERROR")
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "finsentry", "run", "--idle-exit", str(idle_exit_s)],
                          env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=3600)
    seconds = time.monotonic() - started

    scored_ids = Counter(json.loads(v)["item_id"] for _, _, _, v in read_topic(bootstrap, scored, timeout_s=300))
    dead = [json.loads(v) for _, _, _, v in read_topic(bootstrap, dlq, timeout_s=300)]
    dead_at = {(d.get("partition"), d.get("offset")): d.get("reason") for d in dead}
    per_kind: dict[str, Counter[str]] = {}
    unaccounted = valid_not_scored = bad_dead = bad_accepted = 0
    for (kind, item_id, value, _), pos in zip(plan, where):
        outcome = "dead_letter" if pos in dead_at else None
        if outcome is None and kind != "valid":
            fuzz_id = _fuzz_id(value)
            outcome = "scored" if fuzz_id is not None and fuzz_id in scored_ids else None
        if outcome is None and kind == "valid" and item_id in scored_ids:
            outcome = "scored"
        per_kind.setdefault(kind, Counter())[outcome or "unaccounted"] += 1
        unaccounted += outcome is None
        valid_not_scored += kind == "valid" and outcome != "scored"
        bad_dead += kind != "valid" and outcome == "dead_letter"
        bad_accepted += kind != "valid" and outcome == "scored"
    return {
        "fault": "malformed records among valid ones",
        "valid": len(valid), "bad": n_bad, "seed": seed,
        "crashes": int(proc.returncode != 0),
        "daemon_exit": proc.returncode,
        "daemon_summary": proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr[-500:],
        "unaccounted": unaccounted,
        "valid_not_scored": valid_not_scored,
        "bad_dead_lettered": bad_dead,
        "bad_accepted": bad_accepted,
        "dead_letters_without_reason": sum(1 for d in dead if not d.get("reason")),
        "dead_letters_by_reason": dict(Counter(d.get("reason") for d in dead)),
        "outcome_by_kind": {k: dict(v) for k, v in sorted(per_kind.items())},
        "daemon_s": round(seconds, 1),
    }


def _fuzz_id(value: bytes | None) -> str | None:
    try:
        obj = json.loads(value or b"")
        return obj.get("id") if isinstance(obj, dict) and isinstance(obj.get("id"), str) else None
    except (ValueError, RecursionError):
        return None


def main(argv: list[str] | None = None) -> int:
    """Command line; prints the figures and writes them as JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--short", action="store_true", help="the CI version: 600 bad + 600 valid")
    ap.add_argument("--valid", type=int, default=None)
    ap.add_argument("--bad", type=int, default=None)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--idle-exit", type=float, default=5.0)
    ap.add_argument("--bootstrap", default=None, help="use this broker (default: start a local one)")
    ap.add_argument("--feed", type=Path, default=None, help="valid items' feed (default: the Benzinga sample)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    n_valid = args.valid or (600 if args.short else 10_000)
    n_bad = args.bad or (600 if args.short else 10_000)
    feed = args.feed or default_data_dir() / DEFAULT_FEED
    out = args.out or Path(__file__).with_name("malformed-short.json" if args.short else "malformed.json")
    with tempfile.TemporaryDirectory(prefix="finsentry-fuzz-") as tmp, broker_for(args.bootstrap, Path(tmp)) as bootstrap:
        figures = run_malformed(bootstrap, Path(tmp), feed, n_valid, n_bad, args.seed, args.idle_exit)
    write_figures(figures, "malformed.py", argv, out)
    ok = not (figures["crashes"] or figures["unaccounted"] or figures["valid_not_scored"]
              or figures["dead_letters_without_reason"])
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
