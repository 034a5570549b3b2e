"""Exceptions raised by the ingest stage."""

from __future__ import annotations

__all__ = ["IngestError", "DecodeError", "FeedError"]


class IngestError(Exception):
    """Base class of every ingest error."""


class DecodeError(IngestError):
    """A Kafka record could not be decoded or validated into a NewsItem.

    Attributes:
        reason: short machine-readable cause (``not_json``, ``invalid``, ...).
        detail: human-readable explanation.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class FeedError(IngestError):
    """A historical feed file cannot be read (unknown format, missing columns)."""
