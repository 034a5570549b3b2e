"""finsentry offline trainer: multi-task (sentiment + topic) MiniLM, ONNX export, int8 gate, publishing.

Public surface (importable without torch; torch/transformers are imported only
when training or exporting actually runs):

- :func:`train_main` — ``finsentry train`` / ``python -m training``.
- :func:`evaluate_main` — re-score a published model folder with ONNX Runtime.
- :func:`write_manifest`, :func:`verify_manifest`, :class:`ManifestError` — model folder integrity.
- :func:`load_labelled`, :class:`LabelledSet`, :class:`RejectedRow` — labelled data loading.
- :func:`classification_metrics` — accuracy / macro-F1 / per-class / confusion matrix.
- :func:`promote_if_better`, :func:`decide` — champion / challenger promotion.
- :func:`make_fp16`, :func:`check_fp16`, :class:`Fp16CheckError` — the fp16 CUDA copy and its check against fp32.
- :func:`calibrate_heads`, :func:`fit_logit_offsets`, :func:`bake_logit_offsets` — per-class logit offsets
  tuned on the dev split (``finsentry train --calibrate``).
- :func:`schedule_refresh`, :func:`run_refresh` — the scheduled refresh job (APScheduler).
- :data:`SENTIMENT_LABELS` — ``("negative", "neutral", "positive")``.
"""

from inference import ManifestError, sha256_file, verify_manifest, write_manifest

from ._cli import evaluate_main, module_main, train_main
from ._data import SENTIMENT_LABELS, LabelledSet, RejectedRow, load_labelled, load_phrasebank
from ._calibrate import bake_logit_offsets, calibrate_heads, fit_logit_offsets
from ._evaluate import classification_metrics
from ._fp16 import FP16_ATOL, FP16_MIN_AGREEMENT, Fp16CheckError, check_fp16, make_fp16
from ._promote import MAX_SET_DROP, PromotionDecision, decide, promote_if_better
from ._refresh import RefreshFailed, RefreshStats, cron_trigger, labelled_files, refresh_argv, run_refresh, schedule_refresh

__all__ = [
    "FP16_ATOL",
    "FP16_MIN_AGREEMENT",
    "Fp16CheckError",
    "bake_logit_offsets",
    "calibrate_heads",
    "check_fp16",
    "fit_logit_offsets",
    "make_fp16",
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
