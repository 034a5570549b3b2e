"""Kafka clients configured the way finsentry uses them (kafka-python)."""

from __future__ import annotations

from collections.abc import Iterable

from kafka import KafkaConsumer, KafkaProducer

__all__ = ["make_consumer", "make_producer"]


def make_producer(bootstrap: str, **overrides: object) -> KafkaProducer:
    """A producer for finsentry's topics: ``acks=all``, idempotent retries.

    Values and keys are raw bytes (callers encode). Extra kafka-python
    options can be passed as keyword arguments.
    """
    options: dict[str, object] = {
        "bootstrap_servers": bootstrap,
        "acks": "all",
        "linger_ms": 5,
        "retries": 10,
        "max_in_flight_requests_per_connection": 1,
        "client_id": "finsentry-producer",
    }
    options.update(overrides)
    return KafkaProducer(**options)


def make_consumer(
    bootstrap: str,
    group_id: str,
    topics: Iterable[str],
    auto_offset_reset: str = "earliest",
    max_poll_interval_ms: int = 300_000,
    session_timeout_ms: int = 10_000,
    **overrides: object,
) -> KafkaConsumer:
    """A consumer-group member with manual commits (offsets are committed
    only after an item's outputs are written: at-least-once).
    """
    options: dict[str, object] = {
        "bootstrap_servers": bootstrap,
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": auto_offset_reset,
        "max_poll_interval_ms": max_poll_interval_ms,
        "session_timeout_ms": session_timeout_ms,
        "heartbeat_interval_ms": max(1000, session_timeout_ms // 3),
        "client_id": f"finsentry-{group_id}",
    }
    options.update(overrides)
    consumer = KafkaConsumer(**options)
    consumer.subscribe(list(topics))
    return consumer
