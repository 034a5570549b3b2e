"""Ticker extraction: cashtags, alias CSV on word boundaries, case rules, sources."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest import FeedError, TickerExtractor, extract_cashtags, load_aliases


def test_cashtags() -> None:
    text = "$AAPL up, $brk.b, $5 and $1.2bn are money, US$ no, x$TSLA no, ($msft) yes, $GOOGL, $AAPL again"
    assert extract_cashtags(text) == ["AAPL", "BRK.B", "MSFT", "GOOGL"]
    assert extract_cashtags("$TOOLONG $ABCDEF") == []


def test_aliases_word_boundaries_and_case_rules(tmp_path: Path) -> None:
    csv = tmp_path / "aliases.csv"
    csv.write_text("alias,ticker\nApple,aapl\nGeneral Electric,GE\nGE,GE\nIBM,IBM\nApple Hospitality,APLE\n")
    ex = TickerExtractor(load_aliases(csv))
    assert ex.extract("Pineapple prices; ge ratio") == ((), ())
    assert ex.extract("APPLE and General electric rally") == (("AAPL", "GE"), ("alias", "alias"))
    assert ex.extract("ibm is lower case, IBM is not") == (("IBM",), ("alias",))
    assert ex.extract("Apple Hospitality REIT") == (("APLE",), ("alias",))  # longest alias wins the position
    assert ex.extract("$TSLA and Apple", given=["XOM"]) == (("XOM",), ("feed",))  # the feed said what it is about
    assert ex.extract("$TSLA and Apple") == (("TSLA", "AAPL"), ("cashtag", "alias"))
    always = TickerExtractor(load_aliases(csv), only_missing=False)
    assert always.extract("$TSLA and Apple", given=["XOM"]) == (("XOM", "TSLA", "AAPL"), ("feed", "cashtag", "alias"))


def test_bad_alias_csv_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("name,symbol\nApple,AAPL\n")
    with pytest.raises(FeedError, match="alias,ticker"):
        load_aliases(bad)
    empty = tmp_path / "empty.csv"
    empty.write_text("alias,ticker\nApple,\n")
    with pytest.raises(FeedError, match=":2: empty"):
        load_aliases(empty)
    with pytest.raises(FeedError, match="cannot read"):
        load_aliases(tmp_path / "missing.csv")
