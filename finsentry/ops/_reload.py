"""Hot model reload: watch the registry's ``DEFAULT``, load and self-check beside the running model.

:meth:`ModelReloader.check_once` reads ``registry/DEFAULT``; the daemon's
scheduler runs it as the ``model-refresh`` job every ``jobs.refresh_interval_s``
seconds (:mod:`finsentry.jobs`, on a scheduler thread). When it names a folder
other than the one in use, it loads it (a second ``Scorer``, manifest verified) and runs
:func:`self_check`; a model that passes waits in a slot until the poll loop
takes it between two batches (:meth:`ModelReloader.take`), so every batch is
scored by exactly one model and its version goes on each ``ScoredItem``. A
model that fails is *refused*: logged with the reason, counted, and the old
one keeps running; it is not tried again until ``DEFAULT`` names something else.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

__all__ = ["ModelReloader", "SELF_CHECK_HEADLINES", "SelfCheckError", "self_check"]

log = logging.getLogger(__name__)

#: Fixed headlines every candidate model must score (one per class, one long, one odd).
SELF_CHECK_HEADLINES: tuple[str, ...] = (
    "Company shares plunge after profit warning and CEO resignation",
    "Company to hold annual shareholder meeting on Tuesday",
    "Company beats estimates and raises full-year guidance; shares jump",
    "Regulators " + "review the merger filing in detail " * 40,
    "ÜBER-Aktie: 10% ↑ — résultats & émoji 📈",
)


class SelfCheckError(Exception):
    """A candidate model failed its self-check; the message says which check."""


class _ScorerLike(Protocol):
    version: str

    def score_texts(self, texts: Sequence[str]) -> object: ...


def self_check(scorer: object, expected_topics: Sequence[str] | None = None,
               headlines: Sequence[str] = SELF_CHECK_HEADLINES) -> list[str]:
    """Score ``headlines`` with ``scorer`` and check the outputs.

    Checks: sentiment labels are ``SENTIMENT_LABELS``; sentiment probabilities
    are float [n, 3], finite, each row summing to 1 (±1e-3); a topic head, when
    the folder lists topic labels, gives [n, n_topics] finite probabilities;
    the topic label list equals ``expected_topics`` (the running model's)
    when given, since downstream keys depend on it.

    Returns:
        the predicted sentiment label of each headline.

    Raises:
        SelfCheckError: the first check that failed, with the numbers.
    """
    from inference import SENTIMENT_LABELS

    folder = scorer.folder  # type: ignore[attr-defined]
    if tuple(folder.sentiment_labels) != SENTIMENT_LABELS:
        raise SelfCheckError(f"sentiment labels {folder.sentiment_labels} != {SENTIMENT_LABELS}")
    if expected_topics is not None and tuple(folder.topic_labels) != tuple(expected_topics):
        raise SelfCheckError(f"topic labels differ from the running model's ({len(folder.topic_labels)} vs "
                             f"{len(expected_topics)}); a changed label set needs a restart")
    try:
        scores = scorer.score_texts(list(headlines))  # type: ignore[attr-defined]
    except Exception as exc:
        raise SelfCheckError(f"scoring the self-check headlines failed: {type(exc).__name__}: {exc}") from exc
    n = len(headlines)
    sent = np.asarray(scores.sentiment)
    if sent.shape != (n, 3) or not np.isfinite(sent).all():
        raise SelfCheckError(f"sentiment output shape {sent.shape} (want {(n, 3)}) or not finite")
    if not np.allclose(sent.sum(axis=1), 1.0, atol=1e-3):
        raise SelfCheckError(f"sentiment probabilities do not sum to 1: {sent.sum(axis=1)}")
    if folder.topic_labels:
        topic = None if scores.topic is None else np.asarray(scores.topic)
        want = (n, len(folder.topic_labels))
        if topic is None or topic.shape != want or not np.isfinite(topic).all():
            got = None if topic is None else topic.shape
            raise SelfCheckError(f"topic output shape {got} (want {want}, one column per topic label) or not finite")
    return [SENTIMENT_LABELS[int(i)] for i in sent.argmax(axis=1)]


def _read_default(registry: Path) -> str | None:
    try:
        return (registry / "DEFAULT").read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


class ModelReloader:
    """Checks ``registry/DEFAULT`` and prepares the next model off the poll loop (one caller at a time).

    Args:
        registry: the registry folder (holds ``DEFAULT``).
        current: folder name in use now (what ``DEFAULT`` named at start).
        load: builds a scorer from a model folder (raises on a bad folder).
        expected_topics: the running model's topic labels (see :func:`self_check`).
        on_refused: called with (folder name, reason) for each refusal (metrics).
    """

    def __init__(self, registry: Path, current: str, load: Callable[[Path], object],
                 expected_topics: Sequence[str] | None,
                 on_refused: Callable[[str, str], None] = lambda name, reason: None) -> None:
        self.registry = Path(registry)
        self._current = current
        self._load = load
        self._topics = None if expected_topics is None else tuple(expected_topics)
        self._on_refused = on_refused
        self._refused: str | None = None
        self._ready: tuple[str, object] | None = None
        self._lock = threading.Lock()

    def check_once(self) -> bool:
        """Read ``DEFAULT`` once; load and self-check a new target. True when a model is now waiting."""
        name = _read_default(self.registry)
        with self._lock:
            waiting = self._ready[0] if self._ready else None
        if name is None or name in (self._current, self._refused, waiting):
            return waiting is not None
        log.info("registry DEFAULT now names %s (running %s): loading it beside the running model", name, self._current)
        try:
            scorer = self._load(self.registry / name)
            labels = self_check(scorer, self._topics)
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            self._refused = name
            log.error("model %s refused, %s keeps running: %s", name, self._current, reason,
                      extra={"model_version": name, "reload": "refused"})
            self._on_refused(name, reason)
            return False
        log.info("model %s passed its self-check (headline labels %s); swapping at the next batch", name, labels)
        with self._lock:
            self._ready = (name, scorer)
        return True

    def take(self) -> object | None:
        """The checked model waiting to go in, or None; called by the poll loop between batches."""
        with self._lock:
            ready, self._ready = self._ready, None
        if ready is None:
            return None
        self._current, self._refused = ready[0], None
        return ready[1]
