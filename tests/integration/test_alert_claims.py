"""Against the real broker (a stub scorer stands in for the model): a daemon that dies after storing
(or after claiming) a turn's alerts and before committing does not make the partition's next owner
send them again, and loses nothing once it is back on its outbox (finsentry._alert_claims).

The "kill" is an exception raised inside the loop at that point: the daemon closes its consumer
without committing, as a killed process leaves its group.
"""

from __future__ import annotations

import socket
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _kill_after_storing(daemon: Daemon) -> None:
    """Die at the first commit that follows a stored alert (the outbox has it; the offsets are not committed)."""
    commit = daemon._commit

    def commit_or_die(done: object) -> None:
        if daemon.stats.alerts:
            raise Killed("after the outbox write, before the commit")
        commit(done)  # type: ignore[arg-type]

    daemon._commit = commit_or_die  # type: ignore[method-assign]


def _kill_after_claiming(daemon: Daemon) -> None:
    """Die at the first outbox write of an alert (its claim is in the log; the outbox does not have it)."""
    def put_or_die(alert: Alert, now: float | None = None) -> bool:
        raise Killed("after the claim, before the outbox write")

    daemon.outbox.put = put_or_die  # type: ignore[method-assign]


@pytest.mark.parametrize("kill", [_kill_after_storing, _kill_after_claiming], ids=["stored", "claimed"])
def test_the_next_owner_does_not_resend_and_the_killed_daemon_delivers_once_back(
    kill: Callable[[Daemon], None], kafka_bootstrap: str, new_topic: Callable[..., str], tmp_path: Path
) -> None:
    raw, scored, dlq = new_topic("raw", 1), new_topic("scored", 1), new_topic("dlq", 1)
    _produce(kafka_bootstrap, raw)
    group, port = f"claims-{uuid.uuid4().hex[:8]}", _free_port()
    url = f"http://127.0.0.1:{port}/alerts"  # the receiver is down until A's restart: nothing leaves early
    a_settings = daemon_settings(kafka_bootstrap, raw, scored, dlq, group, url, tmp_path / "a.sqlite")
    b_settings = daemon_settings(kafka_bootstrap, raw, scored, dlq, group, url, tmp_path / "b.sqlite")

    a = Daemon(a_settings, _pipeline())
    kill(a)
    with pytest.raises(Killed):
        a.run(idle_exit_s=1.0)
    assert _committed(kafka_bootstrap, group, raw) in (None, 0)  # the alert turn was not committed

    b = Daemon(b_settings, _pipeline())  # the partition's next owner: decides the same window again
    b_stats = b.run(idle_exit_s=1.0)
    assert b_stats.consumed == 5 and b.claims.claimed_elsewhere == 1 and not b_stats.alerts
    assert _committed(kafka_bootstrap, group, raw) == 5
    b_outbox = Outbox(tmp_path / "b.sqlite")
    assert b_outbox.counts() == {}  # B stored nothing: A claimed the message first
    b_outbox.close()

    with WebhookSink(port=port) as sink:
        again = Daemon(a_settings, _pipeline())  # A back on its outbox: nothing left to consume
        again_stats = again.run(idle_exit_s=1.5)
        received = list(sink.received)
    assert again_stats.consumed == 0
    assert len(received) == 1 and sink.duplicates == 0  # delivered once, by the daemon that claimed it
    assert Alert.model_validate(received[0][1]).key == "ACME"
