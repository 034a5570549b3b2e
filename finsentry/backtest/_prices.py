"""Daily price files for the event study.

Accepted layouts (Yahoo Finance exports, as in ``../shared/data``):

* a folder of per-ticker CSVs named ``<TICKER>.csv`` (StockNet ``price/raw``)
  or ``<TICKER>_historical_data.csv`` (the 7-ticker yfinance set);
* one per-ticker CSV (the ticker is the file name, as above);
* one long CSV with a ``Ticker`` (or ``Symbol``) column.

Each file needs a ``Date`` column (ISO ``YYYY-MM-DD``) and ``Adj Close``
(used: split- and dividend-adjusted) or, failing that, ``Close``. A missing
column, an unparseable date, a duplicate date or a price that is not a
positive number is an error naming the file and the first offending lines.
A row whose price is empty or Yahoo's ``null`` (a day without a quote, e.g.
StockNet ``PTR``/``REX``/``SNP`` 2016-06-29) is a missing day: left out of the
series and listed in :attr:`PriceSet.missing`, never silently. Dates are
exchange trading days (no time zone; the close is taken
as 16:00 America/New_York).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

__all__ = ["default_market", "PriceError", "PriceSet", "load_price_set", "load_prices"]

def default_market() -> Path:
    """The shared S&P 500 index file: ``sp500_index_daily/^GSPC.csv`` under ``finsentry.demo.default_data_dir()``."""
    from finsentry.demo import default_data_dir

    return default_data_dir() / "sp500_index_daily" / "^GSPC.csv"

_SUFFIX = "_historical_data"
_SHOW = 10


class PriceError(ValueError):
    """A price file is missing, lacks a required column or holds bad rows (named in the message)."""


@dataclass
class PriceSet:
    """Prices for an event study.

    Attributes:
        stocks: ticker (upper case) -> adjusted close, indexed by trading day
            (``pandas.Timestamp``, naive date), ascending.
        market: the market index close on the same kind of index.
        source: where the stock prices came from.
        market_source: where the index came from.
        missing: ``"TICKER YYYY-MM-DD"`` of each row without a quote (``null``/empty).
    """

    stocks: dict[str, pd.Series]
    market: pd.Series
    source: str
    market_source: str
    missing: list[str]


def _ticker_of(path: Path) -> str:
    stem = path.stem
    if stem.endswith(_SUFFIX):
        stem = stem[: -len(_SUFFIX)]
    return stem.lstrip("^").upper()


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise PriceError(f"{path}: unreadable price file: {exc}") from None


def _lines(mask: pd.Series, frame: pd.DataFrame, col: str) -> str:
    bad = frame.index[mask]
    shown = ", ".join(f"line {i + 2} ({frame.at[i, col]!r})" for i in bad[:_SHOW])
    more = f" and {len(bad) - _SHOW} more" if len(bad) > _SHOW else ""
    return f"{shown}{more}"


_NO_QUOTE = ("", "null", "NULL", "NaN", "nan")


def _series(frame: pd.DataFrame, path: Path, label: str, missing: list[str] | None = None) -> pd.Series:
    cols = {c.strip(): c for c in frame.columns}
    price_col = cols.get("Adj Close") or cols.get("Close")
    absent = [c for c, ok in (("Date", "Date" in cols), ("Adj Close or Close", price_col)) if not ok]
    if absent:
        raise PriceError(f"{path}{label}: missing column(s) {', '.join(absent)}; columns found {list(frame.columns)}")
    if frame.empty:
        raise PriceError(f"{path}{label}: no price rows (header only)")
    frame = frame.reset_index(drop=True)
    dates = pd.to_datetime(frame[cols["Date"]].str.strip(), format="%Y-%m-%d", errors="coerce")
    if dates.isna().any():
        raise PriceError(f"{path}{label}: unparseable dates (want YYYY-MM-DD): {_lines(dates.isna(), frame, cols['Date'])}")
    raw = frame[price_col].str.strip()
    no_quote = raw.isin(_NO_QUOTE)
    prices = pd.to_numeric(raw.where(~no_quote, "nan"), errors="coerce")
    bad = (prices.isna() & ~no_quote) | (prices <= 0)
    if bad.any():
        raise PriceError(f"{path}{label}: missing or non-positive {price_col.strip()!r}: "
                         f"{_lines(bad, frame, price_col)}")
    dup = dates.duplicated()
    if dup.any():
        raise PriceError(f"{path}{label}: duplicate dates: {_lines(dup, frame, cols['Date'])}")
    if missing is not None:
        missing.extend(f"{label.strip(' []')} {d:%Y-%m-%d}" for d in dates[no_quote])
    keep = (~no_quote).to_numpy()
    return pd.Series(prices.to_numpy(float)[keep], index=pd.DatetimeIndex(dates[keep]),
                     name=label.strip(" []")).sort_index()


def load_prices(path: Path | str, missing: list[str] | None = None) -> dict[str, pd.Series]:
    """Read a price folder or file into ``ticker -> adjusted close`` series.

    ``missing`` (when given) receives ``"TICKER YYYY-MM-DD"`` for each day without a quote.

    Raises:
        PriceError: no such path, no CSV in the folder, a missing column, a bad
            date or price (the message names the file and lines).
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() == ".csv" and p.is_file())
        if not files:
            raise PriceError(f"{path}: no .csv price files in this folder")
        return {_ticker_of(f): _series(_read_csv(f), f, f" [{_ticker_of(f)}]", missing) for f in files}
    if not path.is_file():
        raise PriceError(f"{path}: no such price file or folder")
    frame = _read_csv(path)
    ticker_col = next((c for c in frame.columns if c.strip().lower() in ("ticker", "symbol")), None)
    if ticker_col is None:
        return {_ticker_of(path): _series(frame, path, f" [{_ticker_of(path)}]", missing)}
    out: dict[str, pd.Series] = {}
    for ticker, part in frame.groupby(frame[ticker_col].str.strip().str.upper(), sort=True):
        if not ticker:
            raise PriceError(f"{path}: empty {ticker_col!r} on {_lines(frame[ticker_col].str.strip() == '', frame, ticker_col)}")
        out[str(ticker)] = _series(part, path, f" [{ticker}]", missing)
    return out


def load_price_set(prices: Path | str, market: Path | str | None = None) -> PriceSet:
    """Stock prices plus the market index (one series) for the event study.

    Raises:
        PriceError: see :func:`load_prices`; also a market file holding more than one series.
    """
    missing: list[str] = []
    stocks = load_prices(prices, missing)
    market = market if market is not None else default_market()
    idx = load_prices(market, missing)
    if len(idx) != 1:
        raise PriceError(f"{market}: a market file must hold one index series, found {sorted(idx)}")
    return PriceSet(stocks, next(iter(idx.values())), str(prices), str(market), missing)
