"""RSS 2.0 / RSS 1.0 / Atom feed reader: detection, RFC 2822 and RFC 3339 dates to UTC, rejections."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from finsentry.cli import main
from ingest._errors import FeedError
from ingest._feed_rss import FeedDateError, parse_feed_date
from ingest._feeds import FORMATS, FeedResult, detect_format, read_feed
from ingest._item import NewsItem, make_item_id

UTC = timezone.utc


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def rss2(*items: str, title: str = "Acme Wire") -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<rss version="2.0">\n'
        f"<channel><title>{title}</title><link>https://news.example.com/</link>\n"
        "<description>Markets</description>\n" + "\n".join(items) + "\n</channel>\n</rss>\n"
    )


def item(title: str | None, date: str | None, link: str = "https://news.example.com/a", extra: str = "") -> str:
    parts = ["<item>"]
    if title is not None:
        parts.append(f"<title>{title}</title>")
    parts.append(f"<link>{link}</link>")
    if date is not None:
        parts.append(f"<pubDate>{date}</pubDate>")
    return "".join(parts) + extra + "</item>"


def write(tmp_path: Path, text: str, name: str = "feed.xml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def titled(result: FeedResult, title: str) -> NewsItem:
    matches = [it for it in result.items if it.title == title]
    assert len(matches) == 1, f"{len(matches)} items titled {title!r}"
    return matches[0]


ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <title>Atom Markets</title>
  <id>urn:uuid:60a76c80-d399-11d9-b93C-0003939e0af6</id>
  <updated>2024-03-11T00:00:00Z</updated>
  <entry>
    <title>Zulu entry</title>
    <id>urn:1</id>
    <link href="https://atom.example.com/1"/>
    <published>2024-03-10T06:30:00Z</published>
    <updated>2024-03-11T09:00:00Z</updated>
  </entry>
  <entry>
    <title type="html">India &lt;b&gt;Nifty&lt;/b&gt; closes higher</title>
    <id>urn:2</id>
    <published>2024-03-10T12:00:00+05:30</published>
    <updated>2024-03-10T12:00:00+05:30</updated>
    <summary type="html">&lt;p&gt;Shares of &lt;a href="x"&gt;$INFY&lt;/a&gt; rose.&lt;/p&gt;&lt;p&gt;More.&lt;/p&gt;
    </summary>
  </entry>
  <entry>
    <title>Updated only</title>
    <id>urn:3</id>
    <updated>2024-03-09T23:15:00-05:00</updated>
  </entry>
  <entry>
    <title>Unknown local offset</title>
    <id>urn:4</id>
    <updated>2024-03-09T23:15:00-00:00</updated>
  </entry>
</feed>
"""

RDF = """<?xml version="1.0"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"
         xmlns="http://purl.org/rss/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/">
  <channel rdf:about="https://rdf.example.com/">
    <title>RDF Desk</title><link>https://rdf.example.com/</link><description>d</description>
  </channel>
  <item rdf:about="https://rdf.example.com/1">
    <title>RDF with offset</title><link>https://rdf.example.com/1</link>
    <dc:date>2024-03-10T08:30:00+02:00</dc:date>
  </item>
  <item rdf:about="https://rdf.example.com/2">
    <title>RDF no zone</title><link>https://rdf.example.com/2</link>
    <dc:date>2024-03-10T08:30:00</dc:date>
  </item>
</rdf:RDF>
"""


# --------------------------------------------------------------------------- RFC 2822 (RSS 2.0)


def test_rss2_rfc2822_zones_become_utc(tmp_path: Path) -> None:
    path = write(tmp_path, rss2(
        item("Plus zero", "Tue, 05 Mar 2024 14:00:00 +0000"),
        item("Minus five", "Tue, 05 Mar 2024 09:00:00 -0500"),
        item("Greenwich", "Tue, 05 Mar 2024 14:00:00 GMT"),
        item("Eastern standard", "Tue, 05 Mar 2024 09:00:00 EST"),
        item("Eastern daylight", "Mon, 15 Jul 2024 10:00:00 EDT"),
        item("Pacific with comment", "Mon, 15 Jul 2024 07:00:00 PDT (Pacific)"),
    ))
    result = read_feed(path)
    assert result.format == "rss" and result.rejected == []
    expected = {
        "Plus zero": utc(2024, 3, 5, 14), "Minus five": utc(2024, 3, 5, 14), "Greenwich": utc(2024, 3, 5, 14),
        "Eastern standard": utc(2024, 3, 5, 14), "Eastern daylight": utc(2024, 7, 15, 14),
        "Pacific with comment": utc(2024, 7, 15, 14),
    }
    for title, when in expected.items():
        got = titled(result, title).published_at
        assert got == when and got.tzinfo is UTC, title


def test_items_either_side_of_us_dst_change_are_one_hour_apart(tmp_path: Path) -> None:
    # 2024-03-10: US clocks jump 02:00 EST -> 03:00 EDT. Wall clocks differ by 2 h, the instants by 1 h.
    path = write(tmp_path, rss2(
        item("Before the change", "Sun, 10 Mar 2024 01:30:00 EST"),
        item("After the change", "Sun, 10 Mar 2024 03:30:00 EDT"),
    ))
    result = read_feed(path)
    before, after = titled(result, "Before the change"), titled(result, "After the change")
    assert before.published_at == utc(2024, 3, 10, 6, 30)
    assert after.published_at == utc(2024, 3, 10, 7, 30)
    assert after.published_at - before.published_at == timedelta(hours=1)


def test_item_fields_source_url_body_and_no_tickers(tmp_path: Path) -> None:
    extra = ("<description>&lt;p&gt;Shares of &lt;b&gt;$ACME&lt;/b&gt;\n  rose&lt;/p&gt;&lt;p&gt;Next&lt;/p&gt;"
             "</description><category>Markets</category><category>ACME</category>")
    path = write(tmp_path, rss2(item("Acme &amp; Co\n    beats estimates", "Tue, 05 Mar 2024 14:00:00 +0000",
                                     extra=extra)))
    (it,) = read_feed(path).items
    assert it.title == "Acme & Co beats estimates"
    assert it.body == "Shares of $ACME rose Next"
    assert it.url == "https://news.example.com/a"
    assert it.source == "Acme Wire"
    assert it.tickers == ()
    assert it.id == make_item_id("Acme Wire", utc(2024, 3, 5, 14), "Acme & Co beats estimates")


def test_source_falls_back_to_rss_and_override_wins(tmp_path: Path) -> None:
    doc = rss2(item("Headline", "Tue, 05 Mar 2024 14:00:00 +0000"), title="")
    path = write(tmp_path, doc)
    assert read_feed(path).items[0].source == "rss"
    assert read_feed(path, source="wire-x").items[0].source == "wire-x"


def test_ids_stable_across_reads_and_repeats_numbered(tmp_path: Path) -> None:
    same = item("Same headline", "Tue, 05 Mar 2024 14:00:00 +0000")
    path = write(tmp_path, rss2(same, same))
    first, again = read_feed(path), read_feed(path)
    base = make_item_id("Acme Wire", utc(2024, 3, 5, 14), "Same headline")
    assert [it.id for it in first.items] == [base, f"{base}-2"]
    assert first.items == again.items


# --------------------------------------------------------------------------- rejections


def test_bad_dates_and_missing_title_are_rejected_with_reasons_and_lines(tmp_path: Path) -> None:
    path = write(tmp_path, rss2(
        item("Good", "Tue, 05 Mar 2024 14:00:00 +0000"),
        item("No zone", "Tue, 05 Mar 2024 14:00:00"),
        item("Minus zero", "Tue, 05 Mar 2024 14:00:00 -0000"),
        item("Unknown zone", "Tue, 05 Mar 2024 14:00:00 XYZ"),
        item("Garbage", "sometime last Tuesday"),
        item(None, "Tue, 05 Mar 2024 14:00:00 +0000"),
        item("No date", None),
        item("Wrong weekday", "Wed, 05 Mar 2024 14:00:00 +0000"),
    ))
    result = read_feed(path)
    assert [it.title for it in result.items] == ["Good"]
    assert [r.reason for r in result.rejected] == [
        "naive_time", "naive_time", "bad_date", "bad_date", "empty_text", "missing_date", "weekday_mismatch"]
    # rss2(): four header lines, then one item per line from line 5
    assert [r.line for r in result.rejected] == [6, 7, 8, 9, 10, 11, 12]
    assert "XYZ" in result.rejected[2].detail and "unknown time zone" in result.rejected[2].detail
    assert "-0000" in result.rejected[1].detail
    assert result.rejected[0].raw.startswith("<item><title>No zone</title>")
    assert result.rejected_by_reason() == {"naive_time": 2, "bad_date": 2, "empty_text": 1, "missing_date": 1,
                                           "weekday_mismatch": 1}


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Tue, 05 Mar 2024 14:00:00", "naive_time"),
        ("Tue, 05 Mar 2024 14:00:00 -0000", "naive_time"),
        ("Tue, 05 Mar 2024 14:00:00 XYZ", "bad_date"),
        ("Tue, 05 Mar 2024 14:00:00 CET", "bad_date"),
        ("Tue, 05 Mar 2024 14:00:00 A", "bad_date"),  # military letter: sign unreliable (RFC 2822 §4.3)
        ("Tue, 05 Mar 2024 14:00:00 +0175", "bad_date"),
        ("Tue, 05 Mar 2024 25:00:00 +0000", "bad_date"),
        ("not a date", "bad_date"),
        ("", "bad_date"),
        ("2024-03-10T06:30:00", "naive_time"),
        ("2024-03-10", "naive_time"),
        ("2024-03-10T06:30:00-00:00", "naive_time"),
        ("2024-13-10T06:30:00Z", "bad_date"),
    ],
)
def test_parse_feed_date_refuses_to_guess(text: str, reason: str) -> None:
    with pytest.raises(FeedDateError) as exc:
        parse_feed_date(text)
    assert exc.value.reason == reason


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Tue, 05 Mar 2024 14:00:00 +0100", utc(2024, 3, 5, 13)),
        ("5 Mar 24 14:00 UT", utc(2024, 3, 5, 14)),
        ("Tue, 05 Mar 2024 14:00:00 Z", utc(2024, 3, 5, 14)),
        ("Tue, 05 Mar 2024 08:00:00 cst", utc(2024, 3, 5, 14)),
        ("Tue, 05 Mar 2024 07:00:00 MST", utc(2024, 3, 5, 14)),
        ("Tue, 05 Mar 2024 15:00:00 +01:00", utc(2024, 3, 5, 14)),
        ("2024-03-05T19:30:00+05:30", utc(2024, 3, 5, 14)),
        ("2024-03-05T14:00:00.250Z", utc(2024, 3, 5, 14, 0, 0, 250_000)),
    ],
)
def test_parse_feed_date_accepts_zoned_forms(text: str, expected: datetime) -> None:
    got = parse_feed_date(text)
    assert got == expected and got.tzinfo is UTC


# --------------------------------------------------------------------------- Atom and RSS 1.0


def test_atom_rfc3339_z_and_offset(tmp_path: Path) -> None:
    result = read_feed(write(tmp_path, ATOM))
    assert result.format == "rss"
    zulu = titled(result, "Zulu entry")
    assert zulu.published_at == utc(2024, 3, 10, 6, 30)  # <published>, not the later <updated>
    assert zulu.url == "https://atom.example.com/1" and zulu.source == "Atom Markets"
    india = titled(result, "India Nifty closes higher")  # type="html" title reduced to text
    assert india.published_at == utc(2024, 3, 10, 6, 30)
    assert india.body == "Shares of $INFY rose. More." and india.url is None  # no <link>: not the urn id
    assert titled(result, "Updated only").published_at == utc(2024, 3, 10, 4, 15)
    assert [(r.reason, r.line) for r in result.rejected] == [("naive_time", 26)]


def test_rss10_rdf(tmp_path: Path) -> None:
    result = read_feed(write(tmp_path, RDF))
    assert [(it.title, it.published_at, it.source) for it in result.items] == [
        ("RDF with offset", utc(2024, 3, 10, 6, 30), "RDF Desk")]
    assert [(r.reason, r.line) for r in result.rejected] == [("naive_time", 11)]


def test_malformed_xml_is_read_leniently_with_a_note(tmp_path: Path) -> None:
    path = write(tmp_path, rss2(item("Rallies", "Tue, 05 Mar 2024 14:00:00 +0000",
                                     extra="<description>up<br>again</description>"),  # <br> never closed
                                item("Undated", "Tue, 05 Mar 2024 14:00:00")))
    result = read_feed(path)
    assert [(it.title, it.published_at) for it in result.items] == [("Rallies", utc(2024, 3, 5, 14))]
    assert result.notes and "flagged" in result.notes[0] and "mismatched tag" in result.notes[0]
    (rej,) = result.rejected
    assert rej.reason == "naive_time" and rej.line is None and rej.raw == "Tue, 05 Mar 2024 14:00:00"


# --------------------------------------------------------------------------- detection and read_feed


def test_detection_from_content_not_name(tmp_path: Path) -> None:
    doc = rss2(item("Headline", "Tue, 05 Mar 2024 14:00:00 +0000"))
    assert detect_format(write(tmp_path, doc, "feed.xml")) == "rss"
    disguised = write(tmp_path, doc, "cnbc_headlines.csv")
    assert detect_format(disguised) == "rss"
    assert read_feed(disguised).items[0].title == "Headline"
    assert detect_format(write(tmp_path, ATOM, "atom")) == "rss"
    assert detect_format(write(tmp_path, RDF, "rdf.txt")) == "rss"
    commented = '<?xml version="1.0"?>\n<!-- generated -->\n<!DOCTYPE rss>\n' + doc.split("\n", 1)[1]
    assert detect_format(write(tmp_path, commented, "c.xml")) == "rss"
    assert "rss" in FORMATS


@pytest.mark.parametrize(
    "doc",
    [
        '<?xml version="1.0"?>\n<catalog><book id="1"><title>Not news</title></book></catalog>\n',
        '<feed><title>no Atom namespace</title></feed>\n',
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description/></rdf:RDF>\n',
    ],
)
def test_non_feed_xml_is_an_unknown_format(tmp_path: Path, doc: str) -> None:
    path = write(tmp_path, doc, "x.xml")
    with pytest.raises(FeedError, match="unknown feed format") as exc:
        detect_format(path)
    assert all(fmt in str(exc.value) for fmt in FORMATS)
    with pytest.raises(FeedError):
        read_feed(path)


def test_explicit_rss_format_on_a_csv_raises(tmp_path: Path) -> None:
    path = write(tmp_path, "id,source,published_at,title\nx,s,2020-01-01T00:00:00Z,t\n", "items.csv")
    with pytest.raises(FeedError, match="not an RSS or Atom feed"):
        read_feed(path, "rss")


def test_read_feed_window_and_limit(tmp_path: Path) -> None:
    path = write(tmp_path, rss2(
        item("d3", "Sun, 03 Mar 2024 12:00:00 +0000"),
        item("d1", "Fri, 01 Mar 2024 12:00:00 +0000"),
        item("d2", "Sat, 02 Mar 2024 07:00:00 EST"),
        item("d4", "Mon, 04 Mar 2024 12:00:00 +0000"),
        item("bad", "Mon, 04 Mar 2024 12:00:00"),
    ))
    full = read_feed(path)
    assert [it.title for it in full.items] == ["d1", "d2", "d3", "d4"]  # sorted by published_at
    window = read_feed(path, start=utc(2024, 3, 2, 12), end=utc(2024, 3, 4, 12))
    assert [it.title for it in window.items] == ["d2", "d3"]  # 07:00 EST = 12:00 UTC is inside; end exclusive
    assert window.rejected == full.rejected and len(window.rejected) == 1
    assert [it.title for it in read_feed(path, "rss", limit=2).items] == ["d1", "d2"]
    with pytest.raises(ValueError, match="timezone-aware"):
        read_feed(path, start=datetime(2024, 3, 2))


# --------------------------------------------------------------------------- finsentry replay


class _Producer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes, int]] = []

    def send(self, topic: str, key: bytes, value: bytes, timestamp_ms: int) -> None:
        self.sent.append((topic, key, value, timestamp_ms))

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_finsentry_replay_accepts_rss(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    import finsentry.broker
    import ingest

    producer = _Producer()
    monkeypatch.delenv("FINSENTRY_CONFIG", raising=False)
    monkeypatch.setattr(ingest, "make_producer", lambda *_a, **_k: producer)
    monkeypatch.setattr(finsentry.broker, "create_topics", lambda *_a, **_k: None)
    path = write(tmp_path, rss2(
        item("Before the change", "Sun, 10 Mar 2024 01:30:00 EST"),
        item("After the change", "Sun, 10 Mar 2024 03:30:00 EDT"),
        item("Undated", "Sun, 10 Mar 2024 03:30:00"),
    ), "wire.csv")
    assert main(["replay", str(path), "--topic", "t", "--heartbeat-every", "0"]) == 0
    out = capsys.readouterr().out
    assert "(rss)" in out and "1 rows rejected" in out
    sent = [NewsItem.from_json(value) for _t, _k, value, _ts in producer.sent]
    assert [it.title for it in sent] == ["Before the change", "After the change"]
    assert [ts for *_rest, ts in producer.sent] == [it.published_ms for it in sent]
    assert sent[1].published_ms - sent[0].published_ms == 3_600_000


def test_replay_help_lists_rss(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["replay", "--help"])
    assert "RSS/Atom" in capsys.readouterr().out
