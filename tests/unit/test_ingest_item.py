"""NewsItem validation, JSON decoding and dead letters."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from ingest import DeadLetter, DecodeError, NewsItem, decode_record, make_item_id

T0 = datetime(2020, 3, 9, 13, 30, tzinfo=timezone.utc)


def _item(**kw: object) -> NewsItem:
    base: dict[str, object] = {"id": "x1", "source": "test", "published_at": T0, "title": "Acme falls"}
    base.update(kw)
    return NewsItem(**base)  # type: ignore[arg-type]


@dataclass
class Rec:
    value: bytes | None
    topic: str = "news.raw"
    partition: int = 2
    offset: int = 41
    timestamp: int = 1583760600000
    key: bytes | None = b"AAPL"


def test_published_at_is_normalised_to_utc() -> None:
    eastern = timezone(timedelta(hours=-4))
    item = _item(published_at=datetime(2020, 6, 5, 10, 30, tzinfo=eastern))
    assert item.published_at == datetime(2020, 6, 5, 14, 30, tzinfo=timezone.utc)
    assert item.published_at.utcoffset() == timedelta(0)
    assert item.published_ms == 1591367400000


def test_naive_time_is_rejected_not_guessed() -> None:
    with pytest.raises(ValidationError, match="timezone"):
        _item(published_at=datetime(2020, 6, 5, 10, 30))


def test_tickers_are_upper_cased_and_deduplicated() -> None:
    item = _item(tickers=["aapl", " MSFT", "AAPL", ""])
    assert item.tickers == ("AAPL", "MSFT")
    assert item.primary_ticker == "AAPL"
    assert _item(tickers="tsla").tickers == ("TSLA",)


def test_json_round_trip() -> None:
    item = _item(tickers=["AAPL"], body="Body.", url="https://example.com/a")
    assert NewsItem.from_json(item.to_json()) == item


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\xff\xfe not utf8", "not_utf8"),
        (b"{not json", "not_json"),
        (b"[" * 100_000 + b"]" * 100_000, "not_json"),  # nested too deeply for the parser
        (b'{"a":' * 5000 + b"1" + b"}" * 5000, "not_json"),
        (b"[1, 2]", "not_object"),
        (b'{"id": "a", "source": "s"}', "invalid"),
        (b'{"id": "a", "source": "s", "published_at": "2020-01-01T00:00:00"}', "invalid"),
        (b'{"id": "a", "source": "s", "published_at": "yesterday"}', "invalid"),
        (None, "empty"),
    ],
)
def test_from_json_reasons(raw: bytes | None, reason: str) -> None:
    with pytest.raises(DecodeError) as info:
        NewsItem.from_json(raw)
    assert info.value.reason == reason
    assert info.value.detail


def test_missing_field_is_named_in_detail() -> None:
    with pytest.raises(DecodeError, match="published_at"):
        NewsItem.from_json(b'{"id": "a", "source": "s", "title": "t"}')


def test_decode_record_gives_dead_letter_with_position() -> None:
    dead = decode_record(Rec(b"oops"))
    assert isinstance(dead, DeadLetter)
    assert (dead.reason, dead.partition, dead.offset) == ("not_json", 2, 41)
    body = json.loads(dead.to_json())
    assert base64.b64decode(body["value_b64"]) == b"oops"
    assert body["topic"] == "news.raw" and body["offset"] == 41 and body["reason"] == "not_json"
    assert body["value_size"] == 4 and body["value_truncated"] is False


def test_a_huge_bad_record_makes_a_dead_letter_under_the_producer_limit() -> None:
    huge = b'{"id": "a", "title": "' + b"x" * 1_000_000  # truncated JSON near the 1 MiB broker limit
    body = decode_record(Rec(huge)).to_json()
    assert len(body) < 1024 * 1024 - 1024  # kafka-python's default max_request_size is 1 MiB
    got = json.loads(body)
    assert got["value_truncated"] is True and got["value_size"] == len(huge)
    assert base64.b64decode(got["value_b64"]) == huge[: len(base64.b64decode(got["value_b64"]))]


def test_decode_record_valid() -> None:
    item = _item()
    assert decode_record(Rec(item.to_json())) == item


def test_item_id_is_stable_and_distinct() -> None:
    a = make_item_id("cnbc", T0, "Stocks rally")
    assert a == make_item_id("cnbc", T0.astimezone(timezone(timedelta(hours=-5))), "Stocks rally")
    assert a != make_item_id("cnbc", T0, "Stocks fall")
    assert len(a) == 20
