"""Labelled-data loading, label validation and seeded splits (no torch).

Loaders return :class:`LabelledSet` (texts + integer label ids in a fixed label
order) and record every row they reject (missing/empty text, unknown label)
in ``LabelledSet.rejected`` instead of silently dropping it.

Splits are *hash-based and stratified* so that they are reproducible from the
seed alone, independent of numpy/python versions:
within each label, items are ordered by ``sha256(f"{seed}:{text}")`` (hex,
ascending; ties broken by original row index) and the first
``round(fraction * n_label)`` items go to the held-out side.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inference import SENTIMENT_LABELS

log = logging.getLogger(__name__)

# finsentry's sentiment label order (ids 0, 1, 2) is the inference contract.

TWEET_SENTIMENT_MAP: dict[Any, str] = {0: "negative", 1: "positive", 2: "neutral"}
"""zeroshot/twitter-financial-news-sentiment raw labels: 0 Bearish, 1 Bullish, 2 Neutral."""

PHRASEBANK_MAP: dict[Any, str] = {"negative": "negative", "neutral": "neutral", "positive": "positive"}

#: ``../shared/data`` beside the repository checkout (as for the demo and the tests).
DEFAULT_DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"
SENTIMENT_DIR = "twitter_financial_news_sentiment"
TOPIC_DIR = "twitter_financial_news_topic"
PHRASEBANK_DIR = "financial_phrasebank_v1.0"
PHRASEBANK_FILE = "Sentences_50Agree.txt"

PHRASEBANK_TEST_SEED = 20240917
"""Seed of the fixed Financial PhraseBank 50Agree test split (see :func:`phrasebank_test_split`)."""
PHRASEBANK_TEST_FRACTION = 0.2


@dataclass(frozen=True)
class RejectedRow:
    """One input row that a loader refused.

    Attributes:
        row: 0-based data row index in the source (header not counted).
        reason: why it was rejected (``"unknown label"``, ``"empty text"``, ...).
        value: the offending raw value (label or text), ``repr``-ed and truncated.
    """

    row: int
    reason: str
    value: str


@dataclass
class LabelledSet:
    """Texts with integer labels.

    Attributes:
        name: short identifier (used as a key in metrics).
        texts: the input strings, one per item.
        labels: label ids, ``labels[i]`` indexes ``label_names``.
        label_names: names in id order.
        source: where the rows came from (path), for reports.
        rejected: rows the loader refused, with reasons.
    """

    name: str
    texts: list[str]
    labels: list[int]
    label_names: tuple[str, ...]
    source: str = ""
    rejected: list[RejectedRow] = field(default_factory=list)

    def __post_init__(self) -> None:
        if len(self.texts) != len(self.labels):
            raise ValueError(f"{self.name}: {len(self.texts)} texts but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, indices: Sequence[int], name: str | None = None) -> "LabelledSet":
        """Return the items at ``indices`` (in that order) as a new set (no rejected rows)."""
        return LabelledSet(
            name=name or self.name,
            texts=[self.texts[i] for i in indices],
            labels=[self.labels[i] for i in indices],
            label_names=self.label_names,
            source=self.source,
        )

    def concat(self, other: "LabelledSet", name: str | None = None) -> "LabelledSet":
        """This set's items followed by ``other``'s (same label names), rejected rows of both kept.

        Raises:
            ValueError: the label names differ.
        """
        if other.label_names != self.label_names:
            raise ValueError(f"cannot join {self.name} and {other.name}: label names differ")
        return LabelledSet(
            name=name or self.name,
            texts=self.texts + other.texts,
            labels=self.labels + other.labels,
            label_names=self.label_names,
            source=f"{self.source} + {other.source}",
            rejected=self.rejected + other.rejected,
        )

    def label_counts(self) -> dict[str, int]:
        """Items per label name, in label order."""
        c = Counter(self.labels)
        return {n: c.get(i, 0) for i, n in enumerate(self.label_names)}


def data_dir(path: str | os.PathLike[str] | None = None) -> Path:
    """Resolve the shared data root: ``path``, else ``$FINSENTRY_DATA_DIR``, else ``../shared/data`` beside the checkout."""
    if path:
        return Path(path)
    env = os.environ.get("FINSENTRY_DATA_DIR")
    return Path(env) if env else DEFAULT_DATA_DIR


def _read_rows(path: Path) -> list[dict[str, Any]]:
    """Read a CSV (``.csv``, real CSV parser: quoted embedded newlines are kept),
    Parquet (``.parquet``) or JSON-lines (``.jsonl``/``.ndjson``) file into dicts.

    Raises:
        ValueError: unsupported extension or a malformed JSON line.
    """
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with open(path, newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    if suffix in (".jsonl", ".ndjson"):
        rows = []
        with open(path, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as exc:
                        raise ValueError(f"{path}:{lineno}: bad JSON line: {exc}") from exc
        return rows
    raise ValueError(f"unsupported file type {suffix!r} for {path} (want .csv, .parquet or .jsonl)")


def _label_key(raw: Any) -> Any:
    """Normalise a raw label for map lookup: ints stay ints, numeric strings become
    ints (CSV gives ``"0"``), other strings are stripped."""
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float) and raw.is_integer():
        return int(raw)
    if isinstance(raw, str):
        s = raw.strip()
        if s.lstrip("-").isdigit():
            return int(s)
        return s
    return raw


def load_labelled(
    path: str | os.PathLike[str],
    *,
    label_names: Sequence[str],
    columns: Mapping[str, str] | None = None,
    label_map: Mapping[Any, str] | None = None,
    name: str | None = None,
    max_rejected_fraction: float = 0.05,
) -> LabelledSet:
    """Load a labelled CSV / Parquet / JSONL file with a column mapping and label validation.

    Args:
        path: ``.csv`` (header row, UTF-8), ``.parquet`` or ``.jsonl`` file.
        label_names: the output label order; ids are indexes into it.
        columns: ``{"text": <source column>, "label": <source column>}``;
            defaults to ``text`` and ``label``.
        label_map: raw label value -> label name. Without it a raw label is
            accepted if it is an integer id in ``range(len(label_names))`` or
            one of ``label_names``.
        name: set name for reports (default: file stem).
        max_rejected_fraction: if more than this fraction of rows is rejected,
            the file is assumed to be wrongly mapped and loading fails.

    Returns:
        The accepted rows, in file order, with ``rejected`` listing the others.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        KeyError: a mapped column is absent from the file.
        ValueError: unsupported format, or too many rejected rows.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(path)
    cols = {"text": "text", "label": "label", **(columns or {})}
    rows = _read_rows(path)
    if rows:
        missing = [c for c in (cols["text"], cols["label"]) if c not in rows[0]]
        if missing:
            raise KeyError(f"{path}: columns {missing} not found (have {sorted(rows[0])})")
    name = name or path.stem
    names = tuple(label_names)
    index = {n: i for i, n in enumerate(names)}
    if label_map is None:
        label_map = {**{i: n for i, n in enumerate(names)}, **{n: n for n in names}}
    norm_map = {_label_key(k): v for k, v in label_map.items()}
    bad_targets = sorted({v for v in norm_map.values() if v not in index})
    if bad_targets:
        raise ValueError(f"label_map targets {bad_targets} are not in label_names {list(names)}")

    texts: list[str] = []
    labels: list[int] = []
    rejected: list[RejectedRow] = []
    for i, row in enumerate(rows):
        text = row.get(cols["text"])
        raw = row.get(cols["label"])
        if not isinstance(text, str) or not text.strip():
            rejected.append(RejectedRow(i, "empty or missing text", repr(text)[:80]))
            continue
        key = _label_key(raw)
        try:
            target = norm_map.get(key)
        except TypeError:  # unhashable raw label
            target = None
        if target is None:
            rejected.append(RejectedRow(i, "unknown label", repr(raw)[:80]))
            continue
        texts.append(text)
        labels.append(index[target])
    return _finish(LabelledSet(name, texts, labels, names, str(path), rejected), len(rows), max_rejected_fraction)


def _finish(ds: LabelledSet, n_rows: int, max_rejected_fraction: float) -> LabelledSet:
    if ds.rejected:
        reasons = Counter(r.reason for r in ds.rejected)
        expected = set(reasons) == {"conflicting labels"}  # documented PhraseBank duplicates
        log.log(logging.INFO if expected else logging.WARNING,
            "%s: rejected %d of %d rows (%s); first: %s",
            ds.name, len(ds.rejected), n_rows, dict(reasons), ds.rejected[:3],
        )
    if n_rows and len(ds.rejected) / n_rows > max_rejected_fraction:
        raise ValueError(
            f"{ds.source}: {len(ds.rejected)} of {n_rows} rows rejected "
            f"(> {max_rejected_fraction:.0%}); wrong column or label mapping? first: {ds.rejected[:5]}"
        )
    return ds


def load_phrasebank(path: str | os.PathLike[str], name: str = "phrasebank",
                    max_rejected_fraction: float = 0.05) -> LabelledSet:
    """Load a Financial PhraseBank ``Sentences_*Agree.txt`` file.

    Format: latin-1, one ``sentence@label`` per line, split on the last ``@``;
    label in ``positive|neutral|negative``. Exact duplicate lines are kept once;
    sentences that occur with two different labels are rejected (reason
    ``"conflicting labels"``), so every sentence appears once with one label.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: more than ``max_rejected_fraction`` of the lines are unusable.
    """
    path = Path(path)
    lines = path.read_text(encoding="latin-1").splitlines()
    items: list[tuple[int, str, str]] = []
    rejected: list[RejectedRow] = []
    for i, line in enumerate(lines):
        if "@" not in line:
            rejected.append(RejectedRow(i, "no '@' separator", repr(line)[:80]))
            continue
        text, raw = line.rsplit("@", 1)
        text, raw = text.strip(), raw.strip()
        if not text:
            rejected.append(RejectedRow(i, "empty or missing text", repr(line)[:80]))
        elif raw not in PHRASEBANK_MAP:
            rejected.append(RejectedRow(i, "unknown label", repr(raw)[:80]))
        else:
            items.append((i, text, raw))
    labels_of: dict[str, set[str]] = {}
    for _, text, raw in items:
        labels_of.setdefault(text, set()).add(raw)
    texts: list[str] = []
    labels: list[int] = []
    done: set[str] = set()
    for i, text, raw in items:
        if len(labels_of[text]) > 1:
            rejected.append(RejectedRow(i, "conflicting labels", repr(text)[:80]))
            continue
        if text in done:
            continue  # exact duplicate line: keep the first
        done.add(text)
        texts.append(text)
        labels.append(SENTIMENT_LABELS.index(PHRASEBANK_MAP[raw]))
    ds = LabelledSet(name, texts, labels, SENTIMENT_LABELS, str(path), rejected)
    return _finish(ds, len(lines), max_rejected_fraction)


def hash_split(
    ds: LabelledSet, fraction: float, seed: int
) -> tuple[list[int], list[int]]:
    """Seeded stratified split by hashing (see module docstring for the exact rule).

    Args:
        ds: the set to split.
        fraction: share of each label that goes to the held-out side, in [0, 1].
        seed: any integer; part of the hash key.

    Returns:
        ``(keep, held_out)`` index lists, each in ascending original order.

    Raises:
        ValueError: ``fraction`` outside [0, 1].
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    by_label: dict[int, list[tuple[str, int]]] = {}
    for i, (text, lab) in enumerate(zip(ds.texts, ds.labels)):
        key = hashlib.sha256(f"{seed}:{text}".encode("utf-8")).hexdigest()
        by_label.setdefault(lab, []).append((key, i))
    held: list[int] = []
    for lab in sorted(by_label):
        ranked = sorted(by_label[lab])
        k = int(round(fraction * len(ranked)))
        held.extend(i for _, i in ranked[:k])
    held_set = set(held)
    keep = [i for i in range(len(ds)) if i not in held_set]
    return keep, sorted(held)


# --------------------------------------------------------------------------- datasets


def load_tweet_sentiment(split: str, root: str | os.PathLike[str] | None = None) -> LabelledSet:
    """zeroshot/twitter-financial-news-sentiment (MIT), ``split`` in ``{"train", "valid"}``,
    mapped to ``SENTIMENT_LABELS`` (0 Bearish -> negative, 1 Bullish -> positive, 2 Neutral -> neutral)."""
    path = data_dir(root) / SENTIMENT_DIR / f"sent_{split}.csv"
    return load_labelled(path, label_names=SENTIMENT_LABELS, label_map=TWEET_SENTIMENT_MAP,
                         name=f"tweets_sentiment_{split}")


def parse_label_map(spec: str | None) -> dict[Any, str] | None:
    """Parse ``"Bearish=negative,Bullish=positive,2=neutral"`` into a label map.

    Raw values that look like integers are mapped as ints too (CSV readers may
    give either). ``None`` or ``""`` gives ``None`` (labels taken as ids or names).

    Raises:
        ValueError: an entry without ``=``.
    """
    if not spec:
        return None
    out: dict[Any, str] = {}
    for part in spec.split(","):
        if "=" not in part:
            raise ValueError(f"label map entry {part!r} is not RAW=NAME")
        raw, name = (x.strip() for x in part.split("=", 1))
        out[raw] = name
        if raw.lstrip("-").isdigit():
            out[int(raw)] = name
    return out


def load_user_sentiment(
    paths: Sequence[str | os.PathLike[str]],
    text_column: str = "text",
    label_column: str = "label",
    label_map: Mapping[Any, str] | None = None,
) -> LabelledSet | None:
    """Users' own labelled sentiment files (CSV / Parquet / JSONL), joined into one set.

    Rejected rows are reported (logged with their reasons) and kept in
    ``rejected``. Returns ``None`` when ``paths`` is empty.

    Raises:
        FileNotFoundError, KeyError, ValueError: as :func:`load_labelled`.
    """
    joined: LabelledSet | None = None
    for path in paths:
        ds = load_labelled(path, label_names=SENTIMENT_LABELS, columns={"text": text_column, "label": label_column},
                           label_map=label_map, name=Path(path).stem)
        if ds.rejected:
            log.warning("%s: %d rows rejected, e.g. %s", path, len(ds.rejected), ds.rejected[:3])
        joined = ds if joined is None else joined.concat(ds, "user_sentiment")
    return joined


def topic_label_names(root: str | os.PathLike[str] | None = None) -> tuple[str, ...]:
    """The 20 topic names in id order, from ``classes.txt``.

    Raises:
        ValueError: the file does not hold exactly 20 distinct non-empty names.
    """
    path = data_dir(root) / TOPIC_DIR / "classes.txt"
    names = tuple(n.strip() for n in path.read_text(encoding="utf-8").splitlines() if n.strip())
    if len(names) != 20 or len(set(names)) != 20:
        raise ValueError(f"{path}: expected 20 distinct topic names, got {len(names)}")
    return names


def load_tweet_topic(split: str, root: str | os.PathLike[str] | None = None) -> LabelledSet:
    """zeroshot/twitter-financial-news-topic (MIT), ``split`` in ``{"train", "validation"}``; ids 0..19."""
    path = data_dir(root) / TOPIC_DIR / f"{split}.parquet"
    return load_labelled(path, label_names=topic_label_names(root), name=f"tweets_topic_{split}")


def phrasebank_test_split(root: str | os.PathLike[str] | None = None) -> LabelledSet:
    """The fixed Financial PhraseBank 50Agree test split (EVALUATION ONLY: CC BY-NC-SA 3.0).

    Rule: load ``Sentences_50Agree.txt`` with :func:`load_phrasebank` (dedup,
    conflicting-label sentences dropped), then :func:`hash_split` with
    ``fraction=0.2`` and ``seed=PHRASEBANK_TEST_SEED`` (20240917); the held-out
    20 % per label is the test set, in file order.
    """
    ds = load_phrasebank(data_dir(root) / PHRASEBANK_DIR / PHRASEBANK_FILE, name="phrasebank_50agree")
    _, test = hash_split(ds, PHRASEBANK_TEST_FRACTION, PHRASEBANK_TEST_SEED)
    out = ds.subset(test, name="phrasebank_50agree_test")
    out.rejected = ds.rejected
    return out
