"""End to end, as a user runs it: a real slice of the Benzinga feed, with a
burst of real negative headlines placed inside one window for one ticker, is
replayed into the real broker with ``finsentry replay``; ``finsentry run``
scores it with the committed model and must deliver exactly one firing
alert, for that ticker and window, to a real HTTP receiver, and none for the
quiet tickers; the only other message allowed is that alert's own resolved
notification (same id) once the ticker is calm again."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from alerts import Alert, WebhookSink
from finsentry.config import REPO_ROOT
from finsentry.demo import default_data_dir
from ingest import NewsItem, read_feed

pytestmark = pytest.mark.e2e

DATA = default_data_dir()
BENZINGA = DATA / "massive_stock_news_analyst_ratings_partial" / "analyst_ratings_processed.csv"
TWEETS_VALID = DATA / "twitter_financial_news_sentiment" / "sent_valid.csv"

SLICE_START = datetime(2020, 5, 1, tzinfo=timezone.utc)
SLICE_END = datetime(2020, 6, 11, tzinfo=timezone.utc)
BURST_TICKER = "ABBV"
BURST_START = datetime(2020, 5, 19, 14, 2, tzinfo=timezone.utc)
BURST_SIZE = 8


def _bearish_headlines(n: int) -> list[str]:
    """The first n Bearish (label 0) texts of the tweets validation file without links."""
    out: list[str] = []
    with TWEETS_VALID.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            text = " ".join(row["text"].split())
            if row["label"] == "0" and "http" not in text and len(text) > 30:
                out.append(text)
            if len(out) == n:
                return out
    raise AssertionError("not enough bearish headlines")


def _feed(tmp_path: Path) -> Path:
    background = read_feed(BENZINGA, start=SLICE_START, end=SLICE_END).items
    assert len(background) > 200, "the background slice should be a real stream"
    burst = [
        NewsItem(
            id=f"burst-{i}",
            source="injected",
            published_at=BURST_START + timedelta(minutes=6 * i),
            title=title,
            tickers=[BURST_TICKER],
        )
        for i, title in enumerate(_bearish_headlines(BURST_SIZE))
    ]
    path = tmp_path / "feed.jsonl"
    with path.open("wb") as fh:
        for item in sorted(background + burst, key=lambda it: it.published_at):
            fh.write(item.to_json() + b"\n")
    return path


def _cli(args: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "finsentry", *args],
        env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout,
    )
    assert proc.returncode == 0, f"finsentry {args[0]} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def test_burst_gives_exactly_one_alert_for_its_ticker_and_window(
    kafka_bootstrap: str, new_topic: Callable[..., str], tmp_path: Path
) -> None:
    if not BENZINGA.is_file():
        pytest.fail(f"shared data missing: {BENZINGA}")
    feed = _feed(tmp_path)
    raw, scored, dlq = new_topic("raw", 4), new_topic("scored", 4), new_topic("dlq", 1)
    with WebhookSink(out_path=tmp_path / "alerts.jsonl") as sink:
        env = {
            **os.environ,
            "FINSENTRY_KAFKA__BOOTSTRAP": kafka_bootstrap,
            "FINSENTRY_KAFKA__GROUP_ID": f"e2e-{uuid.uuid4().hex[:8]}",
            "FINSENTRY_KAFKA__RAW_TOPIC": raw,
            "FINSENTRY_KAFKA__SCORED_TOPIC": scored,
            "FINSENTRY_KAFKA__DLQ_TOPIC": dlq,
            "FINSENTRY_WEBHOOKS__URLS": json.dumps([sink.url]),
            "FINSENTRY_WEBHOOKS__OUTBOX_PATH": str(tmp_path / "outbox.sqlite"),
            "FINSENTRY_WINDOWS__SIZE_MINUTES": "60",
            "FINSENTRY_DETECTOR__MIN_NEGATIVE": "5",
            "FINSENTRY_DETECTOR__MIN_NEG_SHARE": "0.6",
        }
        replay = _cli(["replay", str(feed)], env, timeout=120)
        assert "replayed" in replay.stdout
        run = _cli(["run", "--idle-exit", "3"], env, timeout=600)
        received = list(sink.received)

    assert "alerts 1," in run.stdout, run.stdout + run.stderr
    firing = [(h, b) for h, b in received if b.get("status") == "firing"]
    assert len(firing) == 1, [body for _, body in received]
    headers, body = firing[0]
    alert = Alert.model_validate(body)
    others = [Alert.model_validate(b) for _, b in received if b.get("status") != "firing"]
    assert all(o.status == "resolved" and o.alert_id == alert.alert_id for o in others), others
    assert len(others) <= 1
    assert alert.key == BURST_TICKER
    # default windows: 60 min hopping by 5; the first to fire is the first that ends after the 5th burst item
    fifth = BURST_START + timedelta(minutes=6 * 4)
    first_end = fifth.replace(minute=fifth.minute - fifth.minute % 5, second=0) + timedelta(minutes=5)
    assert (alert.window_start, alert.window_end) == (first_end - timedelta(minutes=60), first_end)
    assert alert.n_negative >= 5
    assert sum(e.item_id.startswith("burst-") for e in alert.evidence) >= 5
    assert headers.get("webhook-id") == alert.alert_id
