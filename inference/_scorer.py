"""Scoring news items with a model folder on ONNX Runtime (no torch at run time)."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from inference._batching import length_sorted_batches
from inference._errors import ModelFolderError
from inference._metrics import record_provider
from inference._registry import ModelFolder
from inference._scored import SENTIMENT_LABELS, ScoredItem
from inference._session import CUDA, Device, create_session
from ingest import NewsItem

__all__ = ["DEFAULT_SUB_BATCH", "Scorer", "TextScores", "Unscored", "item_text", "model_file"]

#: Rows per ONNX Runtime call after length sorting, on the CPU. Measured on the
#: 2-core dev box with Benzinga headlines and the block-wise int8 model
#: (benchmarks/RESULTS.md, issue #4, run 3): 4-8 rows beat 32 by 1.2x in
#: micro-batches of 256 and by 2x in micro-batches of 32 (a 32-row call pads
#: every row to the longest of 32 unsorted-by-nature headlines).
DEFAULT_SUB_BATCH = 8
#: Rows per call on CUDA (unchanged from run 1: small calls starve a GPU; the
#: GPU bench sweeps it, benchmarks/gpu.sh).
CUDA_SUB_BATCH = 32
FP16_MODEL = "model.fp16.onnx"

_TAG = re.compile(r"<[^>]{0,500}>")
_SPACE = re.compile(r"\s+")


def _clean(text: str) -> str:
    """Unescape HTML entities, drop tags, collapse whitespace."""
    return _SPACE.sub(" ", _TAG.sub(" ", html.unescape(text))).strip()


def item_text(item: NewsItem, fields: Sequence[str] = ("title", "body"), separator: str = ". ") -> str:
    """The model text of an item: cleaned non-empty ``fields`` joined by ``separator``.

    >>> from datetime import datetime, timezone
    >>> it = NewsItem(id="1", source="x", published_at=datetime(2020, 1, 1, tzinfo=timezone.utc),
    ...               title="Acme &amp; Co <b>falls</b>", body="  ")
    >>> item_text(it)
    'Acme & Co falls'
    """
    parts = (_clean(str(getattr(item, f, "") or "")) for f in fields)
    return separator.join(p for p in parts if p)


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def model_file(folder: Path, device: Device, available: Sequence[str] | None = None) -> Path:
    """The ONNX file to load from a model folder for ``device``.

    ``model.fp16.onnx`` only when CUDA will be used (``device`` is ``auto`` or
    ``gpu`` and ``CUDAExecutionProvider`` is among ``available``) and the
    folder's ``manifest.json`` lists the file (so it is digest-checked like
    every file); otherwise ``model.onnx`` (the fp32 or int8 CPU model that
    the trainer's gate published). fp16 is never chosen for the CPU provider:
    ONNX Runtime's CPU kernels are tuned for fp32 and int8.

    Args:
        folder: a model folder.
        device: ``auto`` | ``cpu`` | ``gpu``.
        available: execution providers to assume (None: ``onnxruntime.get_available_providers()``).
    """
    if available is None:
        import onnxruntime as ort

        available = ort.get_available_providers()
    if device != "cpu" and CUDA in available and FP16_MODEL in _manifest_files(folder):
        return folder / FP16_MODEL
    return folder / "model.onnx"


def _manifest_files(folder: Path) -> set[str]:
    """File names listed in ``folder/manifest.json`` (empty when it is missing or unreadable)."""
    try:
        files = json.loads((folder / "manifest.json").read_text(encoding="utf-8")).get("files", {})
    except (OSError, ValueError, AttributeError):
        return set()
    return set(files) if isinstance(files, dict) else set()


@dataclass(frozen=True)
class Unscored:
    """An item the model did not score, and why (``empty_text``)."""

    reason: str


@dataclass(frozen=True)
class TextScores:
    """Scores of a batch of texts.

    Attributes:
        sentiment: float32 [n, 3] probabilities in ``SENTIMENT_LABELS`` order.
        topic: float32 [n, n_topics] probabilities, or ``None`` (no topic head).
        truncated: bool [n], True where the text exceeded the model's max length.
    """

    sentiment: np.ndarray
    topic: np.ndarray | None
    truncated: np.ndarray


class Scorer:
    """A loaded model: tokenizer + ONNX Runtime session.

    Args:
        model_path: a model folder or a registry (see ``inference._registry``).
        device: ``auto`` | ``cpu`` | ``gpu`` (see ``create_session``).
        intra_op_threads: 0 = cores available to this process.
        verify: check the manifest's sha256 digests before loading.
        sub_batch: most rows per ONNX Runtime call; a call's texts are sorted
            by token length and cut into sub-batches of this size (less padding).
            None: ``DEFAULT_SUB_BATCH`` on the CPU, ``CUDA_SUB_BATCH`` on CUDA.
        spin: let ONNX Runtime's idle threads busy-wait (see ``session_options``).

    Attributes:
        provider: the execution provider really in use (logged at load and
            exported as the ``provider`` label of ``finsentry_model_info``).

    Raises:
        ModelFolderError: the folder is incomplete or fails its manifest.
        ProviderError: ``device="gpu"`` without a usable CUDA provider.
    """

    def __init__(
        self,
        model_path: Path,
        device: Device = "auto",
        intra_op_threads: int = 0,
        verify: bool = True,
        sub_batch: int | None = None,
        spin: bool = True,
    ):
        if sub_batch is not None and sub_batch < 1:
            raise ValueError(f"sub_batch must be >= 1, got {sub_batch}")
        self.folder = ModelFolder.load(Path(model_path), verify=verify)
        self.model_file = model_file(self.folder.path, device)
        self.session = create_session(self.model_file, device, intra_op_threads, spin)
        if sub_batch is None:
            sub_batch = CUDA_SUB_BATCH if self.provider == CUDA else DEFAULT_SUB_BATCH
        self.sub_batch = sub_batch
        self.tokenizer = Tokenizer.from_file(str(self.folder.path / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=self.folder.max_length)
        self._pad_id = self._find_pad_id()
        self._input_names = [i.name for i in self.session.get_inputs()]
        self._output_names = [o.name for o in self.session.get_outputs()]
        if "sentiment_logits" not in self._output_names:
            raise ModelFolderError(
                f"{self.model_file}: no 'sentiment_logits' output (has {self._output_names})"
            )
        self._cuda = self.provider == CUDA
        record_provider(self.provider, self.version)

    @property
    def version(self) -> str:
        """The model folder's version string."""
        return self.folder.version

    @property
    def provider(self) -> str:
        """The execution provider really in use (e.g. ``CPUExecutionProvider``)."""
        return str(self.session.get_providers()[0])

    def _find_pad_id(self) -> int:
        for token in ("[PAD]", "<pad>"):
            tid = self.tokenizer.token_to_id(token)
            if tid is not None:
                return int(tid)
        return 0

    def encode(self, texts: Sequence[str]) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Tokenize texts into the session's declared inputs.

        Returns:
            (feeds, truncated): feeds maps each declared input name
            (``input_ids``, ``attention_mask``, optionally ``token_type_ids``)
            to int64 [batch, seq] padded to the longest text; truncated is
            bool [batch].
        """
        return self._feeds(self.tokenizer.encode_batch(list(texts)))

    def _feeds(self, encodings: Sequence) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Pad ``tokenizers`` encodings to the longest one (see :meth:`encode`)."""
        seq = max((len(e.ids) for e in encodings), default=1) or 1
        batch = len(encodings)
        ids = np.full((batch, seq), self._pad_id, dtype=np.int64)
        mask = np.zeros((batch, seq), dtype=np.int64)
        types = np.zeros((batch, seq), dtype=np.int64)
        truncated = np.zeros(batch, dtype=bool)
        for row, enc in enumerate(encodings):
            n = len(enc.ids)
            ids[row, :n] = enc.ids
            mask[row, :n] = 1
            types[row, :n] = enc.type_ids
            truncated[row] = bool(enc.overflowing)
        available = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        return {name: available[name] for name in self._input_names}, truncated

    def logits(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """Raw model outputs of texts, in input order.

        The texts are tokenized in one call, sorted by token length, cut into
        sub-batches of at most ``sub_batch`` rows (one ONNX Runtime call
        each, padded to its own longest row) and the outputs are written
        back at each text's input position.

        Args:
            texts: n strings.

        Returns:
            ``{output name: float32 [n, width]}`` for every graph output, plus
            ``"truncated"``: bool [n].
        """
        encodings = self.tokenizer.encode_batch(list(texts))
        out: dict[str, np.ndarray] = {"truncated": np.zeros(len(encodings), dtype=bool)}
        for rows in length_sorted_batches([len(e.ids) for e in encodings], self.sub_batch):
            feeds, truncated = self._feeds([encodings[i] for i in rows])
            out["truncated"][rows] = truncated
            for name, value in zip(self._output_names, self._run(feeds)):
                value = np.asarray(value, dtype=np.float32)
                if name not in out:
                    out[name] = np.zeros((len(encodings), value.shape[1]), dtype=np.float32)
                out[name][rows] = value
        return out

    def _run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """One ONNX Runtime call; on CUDA through IO binding (inputs copied once, outputs bound to host)."""
        if not self._cuda:
            return self.session.run(self._output_names, feeds)
        binding = self.session.io_binding()
        for name, value in feeds.items():
            binding.bind_cpu_input(name, value)
        for name in self._output_names:
            binding.bind_output(name, "cpu")
        self.session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()

    def score_texts(self, texts: Sequence[str]) -> TextScores:
        """Score raw texts (length-sorted sub-batches, see :meth:`logits`).

        Args:
            texts: n non-empty strings.

        Returns:
            TextScores with sentiment float32 [n, 3] and topic [n, n_topics],
            rows in input order.
        """
        if not texts:
            return TextScores(np.zeros((0, 3), np.float32), None, np.zeros(0, bool))
        outputs = self.logits(texts)
        sentiment = _softmax(outputs["sentiment_logits"])
        topic = outputs.get("topic_logits")
        topic_p = _softmax(topic) if topic is not None else None
        return TextScores(sentiment, topic_p, outputs["truncated"])

    def score_items(self, items: Sequence[NewsItem]) -> list[ScoredItem | Unscored]:
        """Score news items as one micro-batch.

        Returns:
            one entry per input item, in input order: its ScoredItem, or
            ``Unscored("empty_text")`` when nothing is left after cleaning.
        """
        texts = [item_text(item, self.folder.join_fields, self.folder.separator) for item in items]
        rows = [i for i, text in enumerate(texts) if text]
        scores = self.score_texts([texts[i] for i in rows])
        out: list[ScoredItem | Unscored] = [Unscored("empty_text")] * len(items)
        for row, i in enumerate(rows):
            out[i] = self._scored(items[i], scores, row)
        return out

    def _scored(self, item: NewsItem, scores: TextScores, row: int) -> ScoredItem:
        p_neg, p_neu, p_pos = (float(x) for x in scores.sentiment[row])
        topic, topic_p = None, 0.0
        if scores.topic is not None and self.folder.topic_labels:
            best = int(np.argmax(scores.topic[row]))
            topic, topic_p = self.folder.topic_labels[best], float(scores.topic[row, best])
        return ScoredItem(
            item_id=item.id,
            source=item.source,
            published_at=item.published_at,
            tickers=item.tickers,
            title=item.title,
            p_negative=round(p_neg, 6),
            p_neutral=round(p_neu, 6),
            p_positive=round(p_pos, 6),
            label=SENTIMENT_LABELS[int(np.argmax(scores.sentiment[row]))],
            score=round(p_pos - p_neg, 6),
            topic=topic,
            topic_p=round(topic_p, 6),
            truncated=bool(scores.truncated[row]),
            model_version=self.version,
        )
