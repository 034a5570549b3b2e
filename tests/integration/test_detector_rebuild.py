"""Against the real broker (a stub scorer stands in for the model): a daemon restarted while an alert
episode is open (spike detector, hopping windows) rebuilds the episode from the scored topic, so the
receiver gets one firing alert and, when the news calms down, one resolved message with the same id:
no second firing alert for the same episode."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from _stubs import StubScorer, daemon_settings  # tests/integration is on sys.path under pytest
from test_window_rebuild import _send  # one producer of partition-0 records for both rebuild tests

from alerts import Alert, EventTimeWindows, SpikeDetector, WebhookSink
from finsentry.daemon import Daemon
from finsentry.pipeline import Pipeline
from ingest import NewsItem

pytestmark = pytest.mark.integration

T0 = datetime(2020, 5, 19, 14, 0, tzinfo=timezone.utc)


def _pipeline() -> Pipeline:
    windows = EventTimeWindows(3_600_000, 0, 300_000)  # 60 min hopping by 5, the daemon's default shape
    return Pipeline(StubScorer(), windows, SpikeDetector(5, 0.6))  # type: ignore[arg-type]


def _item(name: str, minutes: int, title: str, ticker: str = "ACME") -> NewsItem:
    return NewsItem(id=name, source="t", published_at=T0 + timedelta(minutes=minutes), title=title, tickers=[ticker])


@pytest.mark.parametrize("rebuild_hours", [48.0, 0.0])
@pytest.mark.timeout(240)
def test_restart_during_an_episode_sends_no_second_firing_alert(
    kafka_bootstrap: str, new_topic: Callable[..., str], tmp_path: Path, rebuild_hours: float
) -> None:
    raw, scored, dlq = new_topic("raw", 1), new_topic("scored", 1), new_topic("dlq", 1)
    group = f"episode-{uuid.uuid4().hex[:8]}"
    # before the restart: 6 negatives in 25 minutes fire; an item of another ticker moves the watermark on
    _send(kafka_bootstrap, raw, [_item(f"a{i}", 5 * i, f"ACME falls {i}") for i in range(6)]
          + [_item("o1", 70, "Other news", "OTHER")])
    with WebhookSink() as sink:
        settings = daemon_settings(kafka_bootstrap, raw, scored, dlq, group, sink.url, tmp_path / "outbox.sqlite")
        settings = settings.model_copy(update={"detector": settings.detector.model_copy(
            update={"state_rebuild_hours": rebuild_hours})})
        first = Daemon(settings, _pipeline()).run(idle_exit_s=1.0)
        assert [a.status for a in first.alerts] == ["firing"]
        # after the restart: the burst goes on (still firing), then quiet news much later ends the episode
        _send(kafka_bootstrap, raw, [_item(f"b{i}", 75 + 5 * i, f"ACME falls again {i}") for i in range(6)]
              + [_item("o2", 300, "Other news later", "OTHER")])
        second = Daemon(settings, _pipeline()).run(idle_exit_s=1.0)
        received = [Alert.model_validate(body) for _, body in sink.received]
    firing_id = first.alerts[0].alert_id
    if rebuild_hours:
        assert [(a.alert_id, a.status) for a in second.alerts] == [(firing_id, "resolved")]
        assert sorted((a.alert_id, a.status) for a in received) == [(firing_id, "firing"), (firing_id, "resolved")]
    else:  # without the rebuild the restarted daemon opens the episode again: what the rebuild prevents
        assert [a.status for a in second.alerts] == ["firing", "resolved"]
        assert second.alerts[0].alert_id != firing_id
    assert sink.duplicates == 0
