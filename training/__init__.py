"""finsentry offline trainer: multi-task (sentiment + topic) MiniLM, ONNX export, int8 gate, publishing.

Public surface (importable without torch; torch/transformers are imported only
when training or exporting actually runs):

- :func:`train_main` — ``finsentry train`` / ``python -m training``.
- :func:`evaluate_main` — re-score a published model folder with ONNX Runtime.
- :func:`write_manifest`, :func:`verify_manifest`, :class:`ManifestError` — model folder integrity.
- :func:`load_labelled`, :class:`LabelledSet`, :class:`RejectedRow` — labelled data loading.
- :func:`classification_metrics` — accuracy / macro-F1 / per-class / confusion matrix.
- :data:`SENTIMENT_LABELS` — ``("negative", "neutral", "positive")``.
"""

from inference import ManifestError, sha256_file, verify_manifest, write_manifest

from ._cli import evaluate_main, module_main, train_main
from ._data import SENTIMENT_LABELS, LabelledSet, RejectedRow, load_labelled, load_phrasebank
from ._evaluate import classification_metrics

__all__ = [
    "SENTIMENT_LABELS",
    "LabelledSet",
    "ManifestError",
    "RejectedRow",
    "classification_metrics",
    "evaluate_main",
    "load_labelled",
    "load_phrasebank",
    "module_main",
    "sha256_file",
    "train_main",
    "verify_manifest",
    "write_manifest",
]
