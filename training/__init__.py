"""finsentry offline trainer: multi-task (sentiment + topic) MiniLM, ONNX export, int8 gate, publishing.

Public surface (importable without torch; torch/transformers are imported only
when training or exporting actually runs):

- :func:`train_main` — ``finsentry train`` / ``python -m training``.
- :func:`evaluate_main` — re-score a published model folder with ONNX Runtime.
- :func:`write_manifest`, :func:`verify_manifest`, :class:`ManifestError` — model folder integrity.
- :func:`load_labelled`, :class:`LabelledSet`, :class:`RejectedRow` — labelled data loading.
- :func:`classification_metrics` — accuracy / macro-F1 / per-class / confusion matrix.
- :func:`promote_if_better`, :func:`decide` — champion / challenger promotion.
- :func:`schedule_refresh`, :func:`run_refresh` — the scheduled refresh job (APScheduler).
- :data:`SENTIMENT_LABELS` — ``("negative", "neutral", "positive")``.
"""

from inference import ManifestError, sha256_file, verify_manifest, write_manifest

from ._cli import evaluate_main, module_main, train_main
from ._data import SENTIMENT_LABELS, LabelledSet, RejectedRow, load_labelled, load_phrasebank
from ._evaluate import classification_metrics
from ._promote import MAX_SET_DROP, PromotionDecision, decide, promote_if_better
from ._refresh import RefreshFailed, RefreshStats, cron_trigger, labelled_files, refresh_argv, run_refresh, schedule_refresh

__all__ = [
    "SENTIMENT_LABELS",
    "LabelledSet",
    "MAX_SET_DROP",
    "ManifestError",
    "PromotionDecision",
    "RefreshFailed",
    "RefreshStats",
    "RejectedRow",
    "classification_metrics",
    "cron_trigger",
    "decide",
    "evaluate_main",
    "labelled_files",
    "load_labelled",
    "load_phrasebank",
    "module_main",
    "promote_if_better",
    "refresh_argv",
    "run_refresh",
    "schedule_refresh",
    "sha256_file",
    "train_main",
    "verify_manifest",
    "write_manifest",
]
