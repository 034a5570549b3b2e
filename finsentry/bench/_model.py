"""Model-only throughput: finsentry's scorer and the HF pipeline, timed side by side."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from inference import SENTIMENT_LABELS, Scorer

__all__ = ["docs_per_s", "finsentry_labels", "time_finsentry", "tokenize_seconds"]


def docs_per_s(n: int, fn: Callable[[], object]) -> float:
    """``n / seconds`` of one call of ``fn``."""
    t = time.perf_counter()
    fn()
    return n / (time.perf_counter() - t)


def time_finsentry(scorer: Scorer, texts: Sequence[str], batch_size: int) -> float:
    """docs/s of ``scorer.score_texts`` over ``texts`` in windows of ``batch_size`` (one daemon micro-batch each)."""
    def run() -> None:
        for i in range(0, len(texts), batch_size):
            scorer.score_texts(texts[i : i + batch_size])

    return docs_per_s(len(texts), run)


def finsentry_labels(scorer: Scorer, texts: Sequence[str], batch_size: int) -> list[str]:
    """Sentiment label of each text, scored in windows of ``batch_size``."""
    labels: list[str] = []
    for i in range(0, len(texts), batch_size):
        labels += [SENTIMENT_LABELS[k] for k in scorer.score_texts(texts[i : i + batch_size]).sentiment.argmax(1)]
    return labels


def tokenize_seconds(scorer: Scorer, texts: Sequence[str]) -> float:
    """Seconds the scorer's tokenizer takes for ``texts`` (one ``encode_batch``)."""
    t = time.perf_counter()
    scorer.tokenizer.encode_batch(list(texts))
    return time.perf_counter() - t
