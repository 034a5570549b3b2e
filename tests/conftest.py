"""Shared pytest fixtures for finsentry.

Kept light on purpose: only pytest and the standard library at module level, so unit
tests never pay for kafka-python, onnxruntime or torch imports.

Fixtures:
    kafka_bootstrap (session): address of a real Kafka broker. Uses
        ``$FINSENTRY_TEST_BOOTSTRAP`` when set; otherwise starts a
        :class:`finsentry.broker.LocalBroker` (Kafka 4.1.1, fresh data dir) for the whole
        session and stops it at the end.
    new_topic (function): factory ``make(name_prefix, partitions=1) -> str`` that creates
        a uniquely named topic on that broker and deletes it after the test.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

_REPO_ROOT = Path(__file__).resolve().parents[1]
# Run from a source checkout without installing: make the finsentry package importable.
if importlib.util.find_spec("finsentry") is None:
    sys.path.insert(0, str(_REPO_ROOT))
# Set when this session started its own broker: (bootstrap, start seconds).
_STARTED: dict[str, Any] = {}


def _require_kafka_python() -> None:
    try:
        import kafka  # noqa: F401
    except ImportError as exc:
        pytest.fail(
            f"kafka-python is not importable from {sys.executable} ({exc}); the Kafka fixtures "
            "need it: pip install 'kafka-python>=3,<4' (or install finsentry with its deps)",
            pytrace=False,
        )


def _import_broker_module() -> Any:
    """Import finsentry.broker lazily (stdlib only; keeps conftest import cheap)."""
    import finsentry.broker as broker_mod

    return broker_mod


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap address (``host:port``) of a real Kafka broker for this test session."""
    _require_kafka_python()
    external = os.environ.get("FINSENTRY_TEST_BOOTSTRAP", "").strip()
    if external:
        yield external
        return
    broker_mod = _import_broker_module()
    broker = broker_mod.LocalBroker(run_dir=tmp_path_factory.mktemp("kafka-broker"))
    try:
        bootstrap = broker.start()
    except broker_mod.BrokerError as exc:
        pytest.fail(f"could not start the local Kafka broker:\n{exc}", pytrace=False)
    _STARTED.update(bootstrap=bootstrap, seconds=broker.start_seconds)
    try:
        yield bootstrap
    finally:
        broker.stop()


@pytest.fixture
def new_topic(kafka_bootstrap: str) -> Iterator[Callable[..., str]]:
    """Factory creating uniquely named topics on ``kafka_bootstrap``.

    ``make(name_prefix, partitions=1)`` returns the new topic's name,
    ``f"{name_prefix}-{random hex}"``, once its metadata is visible. The topics are
    deleted when the test ends.
    """
    broker_mod = _import_broker_module()
    created: list[str] = []

    def make(name_prefix: str, partitions: int = 1) -> str:
        if not re.fullmatch(r"[A-Za-z0-9._-]{1,200}", name_prefix):
            raise ValueError(f"topic prefix must match [A-Za-z0-9._-]{{1,200}}, got {name_prefix!r}")
        name = f"{name_prefix}-{uuid.uuid4().hex[:12]}"
        broker_mod.create_topics(kafka_bootstrap, {name: partitions})
        created.append(name)
        return name

    yield make

    if created:
        from kafka.admin import KafkaAdminClient

        try:
            admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, client_id="finsentry-tests-cleanup")
            try:
                admin.delete_topics(created, raise_errors=False)
            finally:
                admin.close()
        except Exception as exc:  # noqa: BLE001 - cleanup must not fail the test
            print(f"warning: could not delete test topics {created}: {exc!r}", file=sys.stderr)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Report how long the session's own broker took to start."""
    if _STARTED:
        terminalreporter.write_line(
            f"finsentry: local Kafka broker {_STARTED['bootstrap']} started in {_STARTED['seconds']:.1f} s"
        )
