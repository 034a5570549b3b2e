"""Metrics, baselines, ONNX Runtime scoring and Markdown reports (numpy; no torch).

Metric definitions follow scikit-learn (``sklearn.metrics.precision_recall_fscore_support``,
``zero_division=0``): per class *c*, precision = TP/(TP+FP), recall = TP/(TP+FN),
F1 = 2PR/(P+R) (0 when undefined); macro-F1 is the unweighted mean of the
per-class F1 over the classes present in either the gold labels or the
predictions (Sokolova & Lapalme 2009, "A systematic analysis of performance
measures for classification tasks"). Confusion matrix rows are gold labels,
columns predictions, both in label-id order.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._data import LabelledSet
from ._tokenize import encode, load_tokenizer, pad_batch

log = logging.getLogger(__name__)


def classification_metrics(
    y_true: Sequence[int], y_pred: Sequence[int], label_names: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and confusion matrix.

    Args:
        y_true: gold label ids, length n.
        y_pred: predicted label ids, length n.
        label_names: names in id order (len k).

    Returns:
        ``{"n", "accuracy", "macro_f1", "per_class": {name: {"precision", "recall",
        "f1", "support"}}, "confusion_matrix": int [k, k] as nested lists (rows gold)}``;
        ratios are floats in [0, 1].

    Raises:
        ValueError: length mismatch, empty input, or ids outside ``range(k)``.
    """
    t = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(y_pred, dtype=np.int64)
    k = len(label_names)
    if t.shape != p.shape or t.ndim != 1:
        raise ValueError(f"y_true {t.shape} and y_pred {p.shape} must be equal-length 1-D")
    if t.size == 0:
        raise ValueError("no items to score")
    if t.min() < 0 or p.min() < 0 or t.max() >= k or p.max() >= k:
        raise ValueError(f"label ids must be in [0, {k})")
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (t, p), 1)
    tp = np.diag(cm).astype(float)
    support = cm.sum(axis=1).astype(float)
    predicted = cm.sum(axis=0).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    present = (support > 0) | (predicted > 0)
    return {
        "n": int(t.size),
        "accuracy": float(tp.sum() / t.size),
        "macro_f1": float(f1[present].mean()),
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(label_names)
        },
        "confusion_matrix": cm.tolist(),
    }


# --------------------------------------------------------------------------- baselines


def majority_baseline(train: LabelledSet, test: LabelledSet) -> dict[str, Any]:
    """Predict the most frequent training label (lowest id on ties) for every test item."""
    counts = np.bincount(np.asarray(train.labels), minlength=len(train.label_names))
    pred = [int(counts.argmax())] * len(test)
    return classification_metrics(test.labels, pred, test.label_names)


def fit_tfidf_lr(train: LabelledSet, dev: LabelledSet | None = None, seed: int = 0, cs: Sequence[float] = (1.0, 10.0)):
    """TF-IDF (word 1-2-grams, sublinear tf, min_df=2 when >= 1000 docs) + multinomial
    logistic regression (scikit-learn, lbfgs). ``C`` is chosen from ``cs`` by dev
    macro-F1 when ``dev`` is given (else the first value). Returns a fitted
    ``sklearn.pipeline.Pipeline``.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    def make(c: float):
        return make_pipeline(
            TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2 if len(train) >= 1000 else 1),
            LogisticRegression(C=c, max_iter=2000, random_state=seed),
        )

    best, best_f1 = None, -1.0
    for c in cs if dev is not None and len(dev) else cs[:1]:
        pipe = make(c).fit(train.texts, train.labels)
        if dev is None or not len(dev):
            return pipe
        f1 = classification_metrics(dev.labels, pipe.predict(dev.texts), dev.label_names)["macro_f1"]
        log.info("tfidf+lr C=%s dev macro-F1 %.4f", c, f1)
        if f1 > best_f1:
            best, best_f1 = pipe, f1
    return best


def tfidf_baseline(pipe, test: LabelledSet) -> dict[str, Any]:
    """Score a fitted TF-IDF + LR pipeline on ``test``."""
    pred = pipe.predict(test.texts)
    if len(test) and len(set(pred) - set(range(len(test.label_names)))):
        raise ValueError("baseline predicted ids outside the label set")
    return classification_metrics(test.labels, [int(x) for x in pred], test.label_names)


# --------------------------------------------------------------------------- ONNX Runtime


class OnnxClassifier:
    """Score texts with an exported multi-task ONNX model through ONNX Runtime (CPU).

    Args:
        onnx_path: the ``.onnx`` file (inputs ``input_ids``, ``attention_mask``
            int64 [batch, seq]; outputs ``sentiment_logits`` float32 [batch, 3],
            ``topic_logits`` float32 [batch, 20]).
        tokenizer_path: ``tokenizer.json`` (or its folder).
        max_length: truncation length in tokens, special tokens included.
        threads: ONNX Runtime intra-op threads.
    """

    def __init__(self, onnx_path: str | os.PathLike[str], tokenizer_path: str | os.PathLike[str],
                 max_length: int = 128, threads: int = 2) -> None:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(onnx_path), sess_options=so, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.tokenizer = load_tokenizer(tokenizer_path, max_length)

    def logits(self, texts: Sequence[str], batch_size: int = 64) -> dict[str, np.ndarray]:
        """Logits per output name, float32 [n, classes], rows in input order.

        Items are scored in length-sorted batches (less padding), then reordered.
        """
        seqs = encode(self.tokenizer, texts)
        order = np.argsort([len(s) for s in seqs], kind="stable")
        out: dict[str, list[np.ndarray]] = {n: [] for n in self.output_names}
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            ids, mask = pad_batch([seqs[i] for i in idx])
            feeds = {"input_ids": ids, "attention_mask": mask}
            res = self.session.run(self.output_names, {k: v for k, v in feeds.items() if k in self.input_names})
            for name, arr in zip(self.output_names, res):
                out[name].append(arr)
        inv = np.empty_like(order)
        inv[order] = np.arange(len(order))
        return {n: np.concatenate(v)[inv] for n, v in out.items()}


EVAL_TASK = {
    "tweets_sentiment_validation": "sentiment_logits",
    "tweets_topic_validation": "topic_logits",
    "phrasebank_50agree_test": "sentiment_logits",
}
"""Evaluation set name -> the model output that scores it."""


def predict_sets(clf: OnnxClassifier, sets: dict[str, LabelledSet], batch_size: int = 64) -> dict[str, np.ndarray]:
    """Predicted label ids (argmax of the set's head) per evaluation set, int64 [n]."""
    preds = {}
    for name, ds in sets.items():
        logits = clf.logits(ds.texts, batch_size=batch_size)[EVAL_TASK[name]]
        preds[name] = logits.argmax(axis=1).astype(np.int64)
    return preds


def load_eval_sets(data_root: str | os.PathLike[str] | None = None, max_items: int | None = None) -> dict[str, LabelledSet]:
    """The three reported test sets (never used for training or model selection):
    tweets sentiment ``sent_valid.csv``, tweets topic ``validation.parquet`` and the
    fixed Financial PhraseBank 50Agree 20 % test split. ``max_items`` keeps N evenly
    spaced items of each (quick runs only; the files come in same-label runs)."""
    from ._data import load_tweet_sentiment, load_tweet_topic, phrasebank_test_split

    sets = {
        "tweets_sentiment_validation": load_tweet_sentiment("valid", data_root),
        "tweets_topic_validation": load_tweet_topic("validation", data_root),
        "phrasebank_50agree_test": phrasebank_test_split(data_root),
    }
    for k, v in sets.items():
        v.name = k
        if max_items is not None and len(v) > max_items:
            idx = np.unique(np.linspace(0, len(v) - 1, max_items).round().astype(int)).tolist()
            sets[k] = v.subset(idx, name=k)
    return sets


# --------------------------------------------------------------------------- reports


def _md(text: str) -> str:
    """Escape a label for a Markdown table cell (topic names contain ``|``)."""
    return str(text).replace("|", "\\|")


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


SET_TITLES = {
    "tweets_sentiment_validation": "Tweets sentiment (validation)",
    "tweets_topic_validation": "Tweets topic (validation)",
    "phrasebank_50agree_test": "PhraseBank 50Agree (20 % test)",
}


def markdown_summary(evaluation: dict[str, dict[str, Any]], systems: Sequence[tuple[str, str]]) -> str:
    """Markdown table: one row per evaluation set, accuracy / macro-F1 (in %) per system.

    Args:
        evaluation: ``{set_name: {system_key: metrics dict from classification_metrics}}``.
        systems: ``(system_key, column title)`` pairs, in column order.
    """
    head = "| Test set | n | " + " | ".join(f"{t} acc | {t} macro-F1" for _, t in systems) + " |"
    sep = "|---|---:|" + "---:|---:|" * len(systems)
    rows = [head, sep]
    for name, by_sys in evaluation.items():
        n = next((m["n"] for m in by_sys.values() if isinstance(m, dict) and "n" in m), 0)
        cells = []
        for key, _ in systems:
            m = by_sys.get(key)
            cells += [_pct(m["accuracy"]) if m else "–", _pct(m["macro_f1"]) if m else "–"]
        rows.append(f"| {SET_TITLES.get(name, name)} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def markdown_per_class(name: str, m: dict[str, Any]) -> str:
    """Per-class precision / recall / F1 (%) and support table for one metrics dict."""
    rows = [f"**{SET_TITLES.get(name, name)}** (accuracy {_pct(m['accuracy'])}, macro-F1 {_pct(m['macro_f1'])})", "",
            "| class | precision | recall | F1 | support |", "|---|---:|---:|---:|---:|"]
    for cls, v in m["per_class"].items():
        rows.append(f"| {_md(cls)} | {_pct(v['precision'])} | {_pct(v['recall'])} | {_pct(v['f1'])} | {v['support']} |")
    return "\n".join(rows)


def markdown_confusion(name: str, m: dict[str, Any], label_names: Sequence[str]) -> str:
    """Confusion matrix (rows gold, columns predicted) as a Markdown table.

    With more than 5 labels the columns are headed by label id (rows carry ``id name``).
    """
    wide = len(label_names) > 5
    cols = [str(i) for i in range(len(label_names))] if wide else [_md(n) for n in label_names]
    rows_h = [f"{i} {_md(n)}" if wide else _md(n) for i, n in enumerate(label_names)]
    rows = [f"Confusion matrix, {SET_TITLES.get(name, name)} (rows gold, columns predicted):", "",
            "| gold \\ pred | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    for n, r in zip(rows_h, m["confusion_matrix"]):
        rows.append(f"| {n} | " + " | ".join(str(x) for x in r) + " |")
    return "\n".join(rows)


def evaluate_folder(folder: str | os.PathLike[str], data_root: str | os.PathLike[str] | None = None,
                    max_items: int | None = None, threads: int = 2, batch_size: int = 64) -> dict[str, dict[str, Any]]:
    """Verify a published model folder's manifest and score its ``model.onnx`` on the
    three evaluation sets with ONNX Runtime.

    Returns:
        ``{set_name: metrics dict}`` (see :func:`classification_metrics`).

    Raises:
        inference.ManifestError: the folder fails verification.
    """
    import json

    from inference import verify_manifest

    folder = Path(folder)
    verify_manifest(folder)
    cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    labels = json.loads((folder / "labels.json").read_text(encoding="utf-8"))
    clf = OnnxClassifier(folder / "model.onnx", folder / "tokenizer.json", int(cfg["max_length"]), threads)
    sets = load_eval_sets(data_root, max_items)
    preds = predict_sets(clf, sets, batch_size)
    out = {}
    for name, ds in sets.items():
        head = "topic" if EVAL_TASK[name] == "topic_logits" else "sentiment"
        if list(labels[head]) != list(ds.label_names):
            raise ValueError(f"labels.json {head} {labels[head]} != data labels {list(ds.label_names)}")
        out[name] = classification_metrics(ds.labels, preds[name], ds.label_names)
    return out
