"""ingest: news items in, from feeds and from Kafka.

Public surface: :class:`NewsItem` (the raw-topic record), decoding of Kafka
records with dead letters for bad ones, Kafka client factories, feed readers
and replay into the raw topic.
"""

from ingest._decode import MAX_DEAD_VALUE_BYTES, DeadLetter, RecordLike, decode_record
from ingest._errors import DecodeError, FeedError, IngestError
from ingest._feeds import FORMATS, FeedResult, Rejected, detect_format, read_feed
from ingest._item import NewsItem, make_item_id
from ingest._kafka import make_consumer, make_producer
from ingest._replay import ReplayError, ReplayStats, record_key, replay_items
from ingest._tickers import TickerExtractor, extract_cashtags, load_aliases
from ingest._timestamps import (
    HEARTBEAT_KEY,
    LOG_APPEND_TIME,
    check_event_time,
    heartbeat_value,
    ingestion_ms,
    parse_heartbeat,
    record_event_ms,
)

__all__ = [
    "HEARTBEAT_KEY",
    "LOG_APPEND_TIME",
    "TickerExtractor",
    "check_event_time",
    "extract_cashtags",
    "heartbeat_value",
    "ingestion_ms",
    "load_aliases",
    "parse_heartbeat",
    "record_event_ms",
    "DeadLetter",
    "MAX_DEAD_VALUE_BYTES",
    "DecodeError",
    "FORMATS",
    "FeedError",
    "FeedResult",
    "IngestError",
    "NewsItem",
    "RecordLike",
    "ReplayError",
    "Rejected",
    "ReplayStats",
    "decode_record",
    "detect_format",
    "make_consumer",
    "make_item_id",
    "make_producer",
    "read_feed",
    "record_key",
    "replay_items",
]
