"""Test doubles and settings shared by the integration tests (the broker, windows and delivery stay real)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from finsentry.config import Settings, load_settings

from inference import ScoredItem
from ingest import NewsItem


class StubScorer:
    """Labels a title containing "falls" negative, anything else neutral (the windows are under test, not the model)."""

    version = "stub-1"
    provider = "stub"

    def score_items(self, items: Sequence[NewsItem]) -> list[ScoredItem]:
        """One ScoredItem per item, in order: p = (0.9, 0.05, 0.05) when negative, else (0.05, 0.9, 0.05)."""
        out = []
        for item in items:
            neg = "falls" in item.title
            p = (0.9, 0.05, 0.05) if neg else (0.05, 0.9, 0.05)
            out.append(ScoredItem(
                item_id=item.id, source=item.source, published_at=item.published_at, tickers=tuple(item.tickers),
                title=item.title, p_negative=p[0], p_neutral=p[1], p_positive=p[2],
                label="negative" if neg else "neutral", score=p[2] - p[0], model_version=self.version,
            ))
        return out


def daemon_settings(bootstrap: str, raw: str, scored: str, dlq: str, group: str, url: str, outbox: Path) -> Settings:
    """Settings for a daemon on existing topics delivering to ``url``: fast retries (0, 0.1 s, then 1 h), short timeouts."""
    return load_settings(
        kafka={"bootstrap": bootstrap, "group_id": group, "raw_topic": raw, "scored_topic": scored,
               "dlq_topic": dlq, "create_topics": False},
        webhooks={"urls": [url], "outbox_path": str(outbox), "retry_schedule_s": [0, 0.1, 3600],
                  "connect_timeout_s": 0.5, "drain_timeout_s": 2},
    )
