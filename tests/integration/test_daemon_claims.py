"""Against the real broker (a stub scorer stands in for the model): a daemon that dies between holding
a turn's alerts and committing the turn (after the hold, after the claim, or after the release) does
not make the partition's next owner send them again, and loses nothing once it is back on its outbox
(finsentry._alert_claims).

The "kill" is an exception raised inside the loop at that point: the daemon closes its consumer
without committing, as a killed process leaves its group.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from _stubs import daemon_settings  # tests/integration is on sys.path under pytest
from test_daemon_outbox import _committed, _pipeline, _produce

from alerts import Alert, Outbox, WebhookSink
from finsentry.daemon import Daemon

pytestmark = pytest.mark.integration


class Killed(Exception):
    """Stands for kill -9 at the marked point."""


def _kill_after_release(daemon: Daemon) -> None:
    """Die at the first commit that follows a sent alert (queued in the outbox; the offsets not committed)."""
    commit = daemon._commit

    def commit_or_die(done: object, hold: bool = False) -> None:
        if daemon.stats.alerts:
            raise Killed("after the release, before the commit")
        commit(done, hold)  # type: ignore[arg-type]

    daemon._commit = commit_or_die  # type: ignore[method-assign]


def _kill_after_claim(daemon: Daemon) -> None:
    """Die at the first release: the message is held in the outbox and claimed in the log."""
    def release_or_die(msg_ids: object, now: float | None = None) -> int:
        raise Killed("after the claim, before the release")

    daemon.outbox.release = release_or_die  # type: ignore[method-assign]


def _kill_after_hold(daemon: Daemon) -> None:
    """Die at the first claim: the message is held in the outbox, not claimed."""
    def claim_or_die(alerts: object) -> None:
        raise Killed("after the hold, before the claim")

    daemon.claims.claim = claim_or_die  # type: ignore[method-assign]


@pytest.mark.parametrize(("kill", "sender"), [(_kill_after_release, "A"), (_kill_after_claim, "A"),
                                              (_kill_after_hold, "B")], ids=["released", "claimed", "held"])
def test_a_killed_daemon_and_the_next_owner_send_each_alert_once(
    kill: Callable[[Daemon], None], sender: str, kafka_bootstrap: str, new_topic: Callable[..., str],
    tmp_path: Path
) -> None:
    raw, scored, dlq = new_topic("raw", 1), new_topic("scored", 1), new_topic("dlq", 1)
    _produce(kafka_bootstrap, raw)
    group = f"claims-{uuid.uuid4().hex[:8]}"
    with WebhookSink() as sink:
        a_settings = daemon_settings(kafka_bootstrap, raw, scored, dlq, group, sink.url, tmp_path / "a.sqlite")
        b_settings = daemon_settings(kafka_bootstrap, raw, scored, dlq, group, sink.url, tmp_path / "b.sqlite")
        a = Daemon(a_settings, _pipeline())
        kill(a)
        with pytest.raises(Killed):
            a.run(idle_exit_s=1.0)
        assert _committed(kafka_bootstrap, group, raw) in (None, 0)  # the alert turn was not committed

        b = Daemon(b_settings, _pipeline())  # the partition's next owner: decides the same window again
        b_stats = b.run(idle_exit_s=1.0)
        assert b_stats.consumed == 5 and _committed(kafka_bootstrap, group, raw) == 5
        assert b.claims.claimed_elsewhere == (1 if sender == "A" else 0)

        again = Daemon(a_settings, _pipeline())  # A back on its outbox: nothing left to consume
        again_stats = again.run(idle_exit_s=1.5)
        assert again_stats.consumed == 0
        assert again.claims.claimed_elsewhere == (1 if sender == "B" else 0)
        received = list(sink.received)
    assert len(received) == 1 and sink.duplicates == 0, received  # sent once, by the daemon that claimed it
    assert Alert.model_validate(received[0][1]).key == "ACME"
    for name in ("a.sqlite", "b.sqlite"):
        outbox = Outbox(tmp_path / name)
        assert outbox.held() == []  # nothing left waiting anywhere
        outbox.close()
