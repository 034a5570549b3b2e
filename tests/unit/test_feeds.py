"""Historical feed readers on the real shared data files (../shared/data beside the repo)."""

from __future__ import annotations

import csv
import json
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pytest

from ingest._errors import FeedError
from ingest._feeds import FORMATS, FeedResult, Rejected, detect_format, read_feed
from ingest._item import NewsItem

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
BENZINGA_DIR = DATA / "massive_stock_news_analyst_ratings_partial"
HEADLINES_DIR = DATA / "financial_news_headlines_cnbc_guardian_reuters"
BENZINGA = BENZINGA_DIR / "analyst_ratings_processed.csv"
BENZINGA_RAW = BENZINGA_DIR / "raw_analyst_ratings.csv"
CNBC = HEADLINES_DIR / "cnbc_headlines.csv"
GUARDIAN = HEADLINES_DIR / "guardian_headlines.csv"
REUTERS = HEADLINES_DIR / "reuters_headlines.csv"
STOCKNET = DATA / "stocknet"
TWITTER_SENT = DATA / "twitter_financial_news_sentiment" / "sent_train.csv"

needs_data = pytest.mark.skipif(
    not DATA.is_dir(), reason=f"shared data folder {DATA} is missing (it lives beside the repo as ../shared/data)"
)
UTC = timezone.utc


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def _read(path: Path) -> FeedResult:
    if not path.exists():
        pytest.skip(f"{path} is missing")
    return read_feed(path)


@pytest.fixture(scope="module")
def benzinga() -> FeedResult:
    return _read(BENZINGA)


@pytest.fixture(scope="module")
def cnbc() -> FeedResult:
    return _read(CNBC)


@pytest.fixture(scope="module")
def guardian() -> FeedResult:
    return _read(GUARDIAN)


@pytest.fixture(scope="module")
def reuters() -> FeedResult:
    return _read(REUTERS)


def by_title(result: FeedResult, title: str) -> NewsItem:
    matches = [it for it in result.items if it.title == title]
    assert len(matches) == 1, f"{len(matches)} items titled {title!r}"
    return matches[0]


def assert_well_formed(result: FeedResult) -> None:
    assert all(it.published_at.tzinfo is UTC for it in result.items)
    assert len({it.id for it in result.items}) == len(result.items), "ids not unique"
    times = [it.published_at for it in result.items]
    assert times == sorted(times)
    assert all(it.title for it in result.items)


# --------------------------------------------------------------------------- detection


@needs_data
@pytest.mark.parametrize(
    ("path", "fmt"),
    [
        (BENZINGA, "benzinga"),
        (BENZINGA_RAW, "benzinga_raw"),
        (CNBC, "cnbc"),
        (GUARDIAN, "guardian"),
        (REUTERS, "reuters"),
        (STOCKNET, "stocknet"),
        (STOCKNET / "tweet" / "preprocessed" / "AAPL", "stocknet"),
        (STOCKNET / "tweet" / "preprocessed" / "AAPL" / "2014-01-02", "stocknet"),
    ],
)
def test_detect_format_real_files(path: Path, fmt: str) -> None:
    if not path.exists():
        pytest.skip(f"{path} is missing")
    assert detect_format(path) == fmt


def test_detect_format_ignores_file_name(tmp_path: Path) -> None:
    fake = tmp_path / "cnbc_headlines.csv"
    fake.write_text("id,source,published_at,title\nx,s,2020-01-01T00:00:00Z,t\n")
    assert detect_format(fake) == "csv"


def test_unknown_csv_raises_feed_error_naming_columns_and_formats(tmp_path: Path) -> None:
    path = tmp_path / "prices.csv"
    path.write_text("Date,Open,Close\n2020-01-02,1,2\n")
    with pytest.raises(FeedError) as exc:
        detect_format(path)
    message = str(exc.value)
    assert "Date" in message and "Open" in message
    assert all(fmt in message for fmt in FORMATS)
    with pytest.raises(FeedError):
        read_feed(path)


@needs_data
def test_real_non_news_csv_is_unknown() -> None:
    if not TWITTER_SENT.exists():
        pytest.skip(f"{TWITTER_SENT} is missing")
    with pytest.raises(FeedError, match="text"):
        detect_format(TWITTER_SENT)


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(FeedError, match="no such file"):
        read_feed(tmp_path / "nope.csv")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(FeedError, match="empty"):
        detect_format(empty)
    with pytest.raises(FeedError, match="unknown feed format 'xml'"):
        read_feed(empty, "xml")


@needs_data
def test_explicit_format_with_wrong_header_raises() -> None:
    with pytest.raises(FeedError, match="not a cnbc file"):
        read_feed(GUARDIAN, "cnbc")


# --------------------------------------------------------------------------- Benzinga


@needs_data
def test_benzinga_counts_and_repairs(benzinga: FeedResult) -> None:
    # 9,993 CSV records = 9,989 whole + 2 broken records split in two; both repaired.
    assert len(benzinga.items) == 9_991
    assert benzinga.rejected == []
    assert len(benzinga.notes) == 2
    assert all(it.id.startswith("benzinga-") and len(it.tickers) == 1 for it in benzinga.items)
    assert benzinga.format == "benzinga"
    assert_well_formed(benzinga)


@needs_data
def test_benzinga_broken_rows_joined(benzinga: FeedResult) -> None:
    ids = {it.id: it for it in benzinga.items}
    aaron = ids["benzinga-5714"]
    assert aaron.title == "Sterne Agee Provides Color on Aaron's"
    assert aaron.published_at == utc(2011, 7, 20, 10, 43)  # 06:43 -04:00
    assert aaron.tickers == ("AAN",)
    car = ids["benzinga-7021"]
    assert car.title == "Goldman Sachs Updates on Car Parts"
    assert car.tickers == ("AAP",)


@needs_data
def test_benzinga_offsets_and_multiline_titles(benzinga: FeedResult) -> None:
    first = {it.id: it for it in benzinga.items}["benzinga-0"]
    assert first.published_at == utc(2020, 6, 5, 14, 30)  # 10:30 -04:00
    assert first.tickers == ("A",)
    assert not any("\n" in it.title or "  " in it.title for it in benzinga.items)
    est = [it for it in benzinga.items if it.published_at.month == 1]
    assert est  # winter items carry -05:00 in the file
    assert min(it.published_at for it in benzinga.items) == utc(2009, 4, 29, 12, 48)


@needs_data
def test_benzinga_raw(benzinga: FeedResult) -> None:
    raw = _read(BENZINGA_RAW)
    assert (len(raw.items), len(raw.rejected)) == (100, 0)
    assert_well_formed(raw)
    ids = {it.id: it for it in raw.items}
    # explicit offset kept, seconds included
    assert ids["benzinga-0"].published_at == utc(2020, 6, 5, 14, 30, 54)
    assert ids["benzinga-0"].url and ids["benzinga-0"].url.startswith("https://www.benzinga.com/")
    # date-only "2020-05-22 00:00:00" → midnight New York (EDT) = 04:00 UTC
    midnights = [it for it in raw.items if it.published_at.minute == 0 and it.published_at.second == 0]
    assert len(midnights) >= 90
    assert all(it.published_at.hour in (4, 5) for it in midnights)
    # same upstream index → same id and title as in the processed file
    processed = {it.id: it.title for it in benzinga.items}
    assert all(processed[it.id] == it.title for it in raw.items)


def test_benzinga_unrepairable_fragment_rejected(tmp_path: Path) -> None:
    path = tmp_path / "bz.csv"
    path.write_text(
        ",title,date,stock\n"
        "1,Good one,2020-01-02 09:30:00-05:00,A\n"
        "2,Split title\n"
        ",2020-01-03 09:30:00-05:00,B\n"
        "3,Orphan fragment\n"
        "4,Also good,2020-01-04 09:30:00,C\n"
    )
    result = read_feed(path)
    assert [it.id for it in result.items] == ["benzinga-1", "benzinga-2", "benzinga-4"]
    assert result.items[2].published_at == utc(2020, 1, 4, 14, 30)  # naive → New York (EST)
    assert result.rejected == [Rejected(5, "field_count", "3,Orphan fragment")]
    assert len(result.notes) == 1 and "lines 3-4" in result.notes[0]


# --------------------------------------------------------------------------- CNBC


@needs_data
def test_cnbc_counts(cnbc: FeedResult) -> None:
    assert len(cnbc.items) == 2_800
    assert cnbc.rejected_by_reason() == {"empty_row": 280}
    assert all(r.raw == ",," for r in cnbc.rejected)
    assert_well_formed(cnbc)
    assert all(it.body for it in cnbc.items)  # Description → body
    assert cnbc.items[0].published_at == utc(2017, 12, 22, 23, 52)  # 6:52 PM EST
    assert cnbc.items[-1].published_at == utc(2020, 7, 17, 23, 51)  # 7:51 PM EDT


@needs_data
@pytest.mark.parametrize(
    ("title", "expected"),
    [
        # Fri 6 March 2020 7:31 PM: still EST (UTC-5) → next day 00:31 UTC
        ("Jim Cramer: 20 stock picks for the 'stay-at-home economy'", utc(2020, 3, 7, 0, 31)),
        # Mon 9 March 2020 7:56 PM: EDT since 8 March (UTC-4)
        ("Cramer's lightning round: Canopy Growth is 'too dicey' in a 'dicey environment'", utc(2020, 3, 9, 23, 56)),
        # Tue 5 Nov 2019 7:22 PM: EST again since 3 Nov
        ("Mea culpa — Twilio CEO assures Jim Cramer 'simple math error' will never happen again",
         utc(2019, 11, 6, 0, 22)),
        # Fri 17 July 2020 7:51 PM EDT
        ("Jim Cramer: A better way to invest in the Covid-19 vaccine gold rush", utc(2020, 7, 17, 23, 51)),
    ],
)
def test_cnbc_dst(cnbc: FeedResult, title: str, expected: datetime) -> None:
    assert by_title(cnbc, title).published_at == expected


def test_cnbc_dst_edges_and_weekday_check(tmp_path: Path) -> None:
    path = tmp_path / "cnbc.csv"
    path.write_text(
        "Headlines,Time,Description\n"
        'Fall back," 1:30  AM ET Sun, 3 Nov 2019",d\n'
        'Spring gap," 2:30  AM ET Sun, 10 March 2019",d\n'
        'Wrong day," 7:51  PM ET Mon, 17 July 2020",d\n'
        'Abbrev month," 9:05  AM ET Mon, 30 Sept 2019",d\n'
        'No time,,d\n'
        ',"7:00  PM ET Fri, 17 July 2020",d\n'
    )
    result = read_feed(path)
    assert [(r.line, r.reason) for r in result.rejected] == [
        (2, "ambiguous_local_time"),
        (3, "nonexistent_local_time"),
        (4, "weekday_mismatch"),
        (6, "missing_date"),
        (7, "empty_text"),
    ]
    assert [(it.title, it.published_at) for it in result.items] == [("Abbrev month", utc(2019, 9, 30, 13, 5))]


# --------------------------------------------------------------------------- Guardian


@needs_data
def test_guardian_counts(guardian: FeedResult) -> None:
    assert len(guardian.items) == 17_760
    assert guardian.rejected_by_reason() == {"month_only_date": 40}
    assert {r.raw.split(",", 1)[0] for r in guardian.rejected} == {"Jul-18", "Apr-18"}
    assert_well_formed(guardian)


@needs_data
def test_guardian_day_dates_are_london_midnight(guardian: FeedResult) -> None:
    london = {(it.published_at.hour, it.published_at.minute) for it in guardian.items}
    assert london == {(0, 0), (23, 0)}  # GMT / BST midnight
    assert guardian.items[0].published_at == utc(2017, 12, 17)  # 17-Dec-17, GMT
    assert guardian.items[-1].published_at == utc(2020, 7, 17, 23)  # 18-Jul-20 00:00 BST


@needs_data
def test_guardian_series_name_goes_to_body(guardian: FeedResult) -> None:
    item = by_title(guardian, "Bacardi's 'lady vodka': the latest in a long line of depressing gendered products")
    assert item.body == "The Week in Patriarchy"
    # 1,246 headlines carry a series name; one of them is among the month-only rejects
    assert sum(bool(it.body) for it in guardian.items) == 1_245
    assert sum("\n" in r.raw for r in guardian.rejected) == 1
    assert not any("\n" in it.title for it in guardian.items)


# --------------------------------------------------------------------------- Reuters


@needs_data
def test_reuters_counts_and_times(reuters: FeedResult) -> None:
    assert (len(reuters.items), len(reuters.rejected)) == (32_770, 0)
    assert_well_formed(reuters)
    assert {it.published_at.hour for it in reuters.items} == {4, 5}  # 00:00 EDT / EST
    assert reuters.items[0].published_at == utc(2018, 3, 20, 4)
    assert reuters.items[-1].published_at == utc(2020, 7, 18, 4)
    suffixed = [it for it in reuters.items if "-" in it.id]
    assert len(suffixed) == 79  # exact duplicate rows keep distinct, stable ids


# --------------------------------------------------------------------------- stability, windows


@needs_data
@pytest.mark.parametrize("path", [CNBC, REUTERS])
def test_ids_stable_across_reads(path: Path, cnbc: FeedResult, reuters: FeedResult) -> None:
    first = cnbc if path == CNBC else reuters
    again = read_feed(path)
    assert [it.id for it in again.items] == [it.id for it in first.items]
    assert again.items == first.items


@needs_data
def test_window_and_limit(reuters: FeedResult) -> None:
    start, end = utc(2020, 3, 1), utc(2020, 4, 1)
    window = read_feed(REUTERS, start=start, end=end)
    expected = [it for it in reuters.items if start <= it.published_at < end]
    assert window.items == expected and expected
    assert window.rejected == reuters.rejected
    limited = read_feed(REUTERS, start=start, limit=5)
    assert limited.items == expected[:5]
    with pytest.raises(ValueError, match="timezone-aware"):
        read_feed(REUTERS, start=datetime(2020, 3, 1))


@needs_data
def test_source_override(tmp_path: Path) -> None:
    result = read_feed(REUTERS, source="reuters-processed", limit=3)
    assert {it.source for it in result.items} == {"reuters-processed"}


# --------------------------------------------------------------------------- StockNet


@needs_data
def test_stocknet() -> None:
    if not STOCKNET.exists():
        pytest.skip(f"{STOCKNET} is missing")
    result = read_feed(STOCKNET)
    # 106,338 lines hold 85,959 distinct tweets, 12,859 of them under several tickers (PROVENANCE).
    assert (len(result.items), len(result.rejected)) == (85_959, 0)
    assert sum(len(it.tickers) > 1 for it in result.items) == 12_859
    assert_well_formed(result)
    assert result.items[0].source == "stocknet"


# --------------------------------------------------------------------------- generic formats


def _items() -> list[NewsItem]:
    return [
        NewsItem(id="a1", source="wire", published_at=utc(2020, 3, 9, 23, 56), title="Stocks slide",
                 body="Body, with comma\nand newline", url="https://x.test/a", tickers=("AAPL", "MSFT")),
        NewsItem(id="b2", source="wire", published_at=utc(2020, 3, 7, 0, 31), title="Oil jumps"),
    ]


def test_jsonl_round_trip_and_bad_lines(tmp_path: Path) -> None:
    items = _items()
    lines = [items[0].to_json().decode(), "", "{not json", items[1].to_json().decode(),
             json.dumps({"source": "wire", "published_at": "2020-01-01 10:00:00", "title": "naive"}),
             "[1, 2]", json.dumps({"published_at": "2020-01-01T10:00:00+01:00", "title": "no id"})]
    path = tmp_path / "feed.jsonl"
    path.write_text("\n".join(lines) + "\n")
    assert detect_format(path) == "jsonl"
    result = read_feed(path, source="default-src")
    assert [(r.line, r.reason) for r in result.rejected] == [(3, "not_json"), (5, "naive_time"), (6, "not_object")]
    assert result.rejected[0].raw == "{not json"
    derived = [it for it in result.items if it.title == "no id"][0]
    assert derived.source == "default-src" and len(derived.id) == 20
    assert derived.published_at == utc(2020, 1, 1, 9)
    assert [it for it in result.items if it.title != "no id"] == sorted(items, key=lambda it: it.published_at)
    assert read_feed(path, source="default-src").items == result.items


def test_csv_round_trip_and_bad_row(tmp_path: Path) -> None:
    items = _items()
    path = tmp_path / "feed.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "source", "published_at", "title", "body", "url", "tickers"])
        for it in items:
            writer.writerow([it.id, it.source, it.published_at.isoformat(), it.title, it.body,
                             it.url or "", "|".join(it.tickers)])
        writer.writerow(["c3", "wire", "2020-01-01T00:00:00Z", "too", "many", "", "", "fields"])
        writer.writerow(["d4", "wire", "yesterday", "bad date", "", "", ""])
        writer.writerow(["", "wire", "2020-01-01T00:00:00+00:00", "comma tickers", "", "", "aapl, msft"])
    assert detect_format(path) == "csv"
    result = read_feed(path)
    # the first item's body spans two physical lines, so the bad rows start at lines 5 and 6
    assert [(r.line, r.reason) for r in result.rejected] == [(5, "field_count"), (6, "bad_date")]
    assert result.items[1:] == sorted(items, key=lambda it: it.published_at)
    assert result.items[0].tickers == ("AAPL", "MSFT")


def test_csv_duplicate_given_id_rejected(tmp_path: Path) -> None:
    path = tmp_path / "dup.csv"
    path.write_text("id,published_at,title,source\nx,2020-01-01T00:00:00Z,one,s\nx,2020-01-02T00:00:00Z,two,s\n")
    result = read_feed(path)
    assert [it.title for it in result.items] == ["one"]
    assert [(r.line, r.reason) for r in result.rejected] == [(3, "duplicate_id")]


def test_parquet_round_trip(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    items = _items()
    frame = pd.DataFrame([it.model_dump() for it in items])
    frame["tickers"] = frame["tickers"].map(list)
    path = tmp_path / "feed.parquet"
    frame.to_parquet(path)
    assert detect_format(path) == "parquet"
    result = read_feed(path)
    assert result.rejected == []
    assert result.items == sorted(items, key=lambda it: it.published_at)
    naive = frame.assign(published_at=frame["published_at"].dt.tz_localize(None))
    naive.to_parquet(path)
    assert {r.reason for r in read_feed(path).rejected} == {"naive_time"}
