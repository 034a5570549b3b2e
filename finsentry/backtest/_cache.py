"""Score cache: the model's outputs per item id, one Parquet file per model version.

A backtest scores every item of a feed once per model version; re-running it
with other window or detector settings reads the scores back instead of
running the model. The cache key is the item id (``NewsItem.id``, the
idempotency key: the same id means the same item, see ``ingest``), the file
is ``<cache_dir>/scores-<model version>.parquet``.

:class:`CachingScorer` has the two members :class:`finsentry.pipeline.Pipeline`
and the daemon use from a :class:`inference.Scorer` (``score_items``,
``version``, ``provider``), so it plugs into ``build_pipeline(settings,
scorer=...)`` and the pipeline code stays exactly the daemon's.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from inference import ModelFolder, ScoredItem, Scorer, Unscored
from ingest import NewsItem

__all__ = ["CachingScorer", "ScoreCache"]

log = logging.getLogger(__name__)

_SCHEMA = pa.schema(
    [
        ("item_id", pa.string()),
        ("p_negative", pa.float64()),
        ("p_neutral", pa.float64()),
        ("p_positive", pa.float64()),
        ("label", pa.string()),
        ("score", pa.float64()),
        ("topic", pa.string()),
        ("topic_p", pa.float64()),
        ("truncated", pa.bool_()),
        ("unscored", pa.string()),  # Unscored.reason, or null for a scored item
    ]
)
# p_negative, p_neutral, p_positive, label, score, topic, topic_p, truncated, unscored
_Row = tuple[float, float, float, str, float, "str | None", float, bool, "str | None"]


class ScoreCache:
    """Model outputs keyed by item id for one model version, persisted as Parquet.

    Args:
        cache_dir: folder of the cache files (created on ``save``).
        model_version: the model folder's version (``Scorer.version``).

    Raises:
        OSError, pyarrow.ArrowInvalid: the existing cache file is unreadable.
    """

    def __init__(self, cache_dir: Path, model_version: str) -> None:
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", model_version)
        self.path = Path(cache_dir) / f"scores-{safe}.parquet"
        self.model_version = model_version
        self._rows: dict[str, _Row] = {}
        self._dirty = False
        if self.path.is_file():
            table = pq.read_table(self.path, schema=_SCHEMA)
            cols = [table.column(n).to_pylist() for n in _SCHEMA.names]
            self._rows = {cols[0][i]: tuple(c[i] for c in cols[1:]) for i in range(table.num_rows)}  # type: ignore[misc]

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, item_id: str) -> bool:
        return item_id in self._rows

    def get(self, item: NewsItem) -> ScoredItem | Unscored | None:
        """The cached result for ``item`` rebuilt with the item's own fields; None on a miss."""
        row = self._rows.get(item.id)
        if row is None:
            return None
        if row[8] is not None:
            return Unscored(row[8])
        # model_validate on a dict: measured faster than model_construct on pydantic 2.14
        return ScoredItem.model_validate({
            "item_id": item.id, "source": item.source, "published_at": item.published_at, "tickers": item.tickers,
            "title": item.title, "p_negative": row[0], "p_neutral": row[1], "p_positive": row[2], "label": row[3],
            "score": row[4], "topic": row[5], "topic_p": row[6], "truncated": row[7],
            "model_version": self.model_version,
        })

    def put(self, item_id: str, result: ScoredItem | Unscored) -> None:
        """Remember one result (kept in memory until :meth:`save`)."""
        if isinstance(result, Unscored):
            row: _Row = (0.0, 0.0, 0.0, "", 0.0, None, 0.0, False, result.reason)
        else:
            row = (result.p_negative, result.p_neutral, result.p_positive, result.label, result.score,
                   result.topic, result.topic_p, result.truncated, None)
        self._rows[item_id] = row
        self._dirty = True

    def save(self) -> None:
        """Write the cache atomically (temporary file + rename) if it changed."""
        if not self._dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        ids = list(self._rows)
        columns = [ids] + [[self._rows[i][k] for i in ids] for k in range(9)]
        table = pa.Table.from_arrays([pa.array(c, type=f.type) for c, f in zip(columns, _SCHEMA)], schema=_SCHEMA)
        tmp = self.path.with_suffix(f".tmp{os.getpid()}")
        pq.write_table(table, tmp)
        os.replace(tmp, self.path)
        self._dirty = False


class CachingScorer:
    """A :class:`inference.Scorer` front that answers from a :class:`ScoreCache`.

    The model is loaded only when an item is missing from the cache; new
    results are added to the cache (call ``cache.save()`` to persist).

    Args:
        model_path: model folder or registry (``settings.model.path``).
        cache_dir: folder of the cache files.
        device, intra_op_threads: passed to :class:`inference.Scorer` on a miss.

    Raises:
        inference.ModelFolderError: the model folder is incomplete or fails its manifest.
    """

    def __init__(self, model_path: Path, cache_dir: Path, device: str = "auto", intra_op_threads: int = 0) -> None:
        self._model_path = Path(model_path)
        self._device = device
        self._threads = intra_op_threads
        self.folder = ModelFolder.load(self._model_path)
        self.cache = ScoreCache(cache_dir, self.folder.version)
        self._scorer: Scorer | None = None
        self.hits = 0
        self.misses = 0

    @property
    def version(self) -> str:
        """The model version (the cache file's key)."""
        return self.folder.version

    @property
    def provider(self) -> str:
        """The execution provider, or ``"cache"`` while the model was not needed."""
        return self._scorer.provider if self._scorer is not None else "cache"

    def _model(self) -> Scorer:
        if self._scorer is None:
            self._scorer = Scorer(self._model_path, self._device, self._threads)  # type: ignore[arg-type]
        return self._scorer

    def score_items(self, items: Sequence[NewsItem]) -> list[ScoredItem | Unscored]:
        """Like :meth:`inference.Scorer.score_items`: one result per item, in order."""
        out: list[ScoredItem | Unscored | None] = [self.cache.get(it) for it in items]
        missing = [i for i, r in enumerate(out) if r is None]
        self.hits += len(items) - len(missing)
        if missing:
            self.misses += len(missing)
            fresh = self._model().score_items([items[i] for i in missing])
            for i, result in zip(missing, fresh):
                self.cache.put(items[i].id, result)
                out[i] = result
        return out  # type: ignore[return-value]

    def prefetch(self, items: Sequence[NewsItem], batch_size: int = 64,
                 on_done: Callable[[int], None] | None = None) -> int:
        """Score every item not in the cache yet, in batches; returns how many were scored.

        ``on_done(n)`` is called after each batch with the batch's size (progress bars).
        """
        by_id = {it.id: it for it in items}
        todo = [item_id for item_id in by_id if item_id not in self.cache]
        # similar lengths per batch: the scorer pads each batch to its longest text
        batch = sorted((by_id[i] for i in todo), key=lambda it: len(it.title) + len(it.body))
        for start in range(0, len(batch), batch_size):
            chunk = batch[start:start + batch_size]
            for it, result in zip(chunk, self._model().score_items(chunk)):
                self.cache.put(it.id, result)
            self.misses += len(chunk)
            if on_done is not None:
                on_done(len(chunk))
        return len(batch)
