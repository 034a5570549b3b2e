"""inference: score news items with a finsentry model on ONNX Runtime.

Public surface: :class:`Scorer` (tokenizer + ONNX session over a model
folder), :class:`ScoredItem` (the scored-topic record), :class:`ModelFolder`
and the registry helpers, and the exception hierarchy.
"""

from inference._batching import length_sorted_batches, padded_tokens
from inference._errors import InferenceError, ModelFolderError, ProviderError
from inference._manifest import ManifestError, sha256_file, verify_manifest, write_manifest
from inference._registry import ModelFolder, resolve_model_folder
from inference._scored import SENTIMENT_LABELS, ScoredItem
from inference._metrics import model_info, record_provider
from inference._scorer import DEFAULT_SUB_BATCH, Scorer, TextScores, Unscored, item_text, model_file
from inference._session import cgroup_cpu_limit, create_session, session_options, usable_cpu_count

__all__ = [
    "DEFAULT_SUB_BATCH",
    "cgroup_cpu_limit",
    "length_sorted_batches",
    "model_file",
    "model_info",
    "padded_tokens",
    "record_provider",
    "session_options",
    "InferenceError",
    "ManifestError",
    "ModelFolder",
    "ModelFolderError",
    "ProviderError",
    "SENTIMENT_LABELS",
    "ScoredItem",
    "Scorer",
    "TextScores",
    "Unscored",
    "create_session",
    "item_text",
    "resolve_model_folder",
    "sha256_file",
    "usable_cpu_count",
    "verify_manifest",
    "write_manifest",
]
