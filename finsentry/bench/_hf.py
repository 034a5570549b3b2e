"""The usual alternative: the same weights through a Hugging Face ``pipeline("text-classification")``.

finsentry's model is a MiniLM encoder with masked mean pooling and two linear
heads (``training._model.MultiTaskModel``); ``transformers`` has no
``AutoModelForSequenceClassification`` class for it (``BertForSequenceClassification``
classifies the pooled [CLS] token, not the mean). :class:`MeanPoolBertForSequenceClassification`
is that class: a ``BertPreTrainedModel`` with the encoder, the mean pooling and the
*sentiment* head, returning ``SequenceClassifierOutput(logits=...)``, loaded
with the fine-tuned fp32 weights of the training run (``best.pt``). The
pipeline then runs it in PyTorch on the CPU the way a user would: default
torch threads, the pipeline's own batching and padding.

Needs the ``train`` extra (torch, transformers): this module imports torch.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import BertConfig, BertModel, BertPreTrainedModel, PreTrainedTokenizerFast, pipeline
from transformers.modeling_outputs import SequenceClassifierOutput

from inference import SENTIMENT_LABELS

__all__ = ["MeanPoolBertForSequenceClassification", "hf_classifier", "hf_labels"]


class MeanPoolBertForSequenceClassification(BertPreTrainedModel):
    """BERT encoder + masked mean pooling + one linear classifier (sentiment), HF-pipeline compatible.

    ``forward(input_ids, attention_mask, token_type_ids=None)`` takes int64
    [batch, seq] tensors and returns logits float32 [batch, num_labels].
    Pooling: ``sum_t(h_t m_t) / max(sum_t m_t, 1e-9)`` (sentence-transformers'
    mean pooling, as in ``training._model.mean_pool``).
    """

    def __init__(self, config: BertConfig) -> None:
        super().__init__(config)
        self.bert = BertModel(config, add_pooling_layer=False)
        self.classifier = torch.nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, **_: object):  # noqa: D102
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                           token_type_ids=token_type_ids).last_hidden_state
        m = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1e-9)
        return SequenceClassifierOutput(logits=self.classifier(pooled))


def _load_model(run_dir: Path, base_config: Path) -> MeanPoolBertForSequenceClassification:
    config = BertConfig.from_json_file(str(base_config))
    config.num_labels = len(SENTIMENT_LABELS)
    config.id2label = dict(enumerate(SENTIMENT_LABELS))
    config.label2id = {v: k for k, v in config.id2label.items()}
    model = MeanPoolBertForSequenceClassification(config)
    state = torch.load(run_dir / "best.pt", map_location="cpu", weights_only=True)
    mapped = {k.replace("encoder.", "bert.", 1): v for k, v in state.items() if k.startswith("encoder.")}
    mapped |= {"classifier.weight": state["sentiment_head.weight"], "classifier.bias": state["sentiment_head.bias"]}
    missing, unexpected = model.load_state_dict(mapped, strict=False)
    if unexpected or [k for k in missing if "position_ids" not in k]:
        raise ValueError(f"{run_dir / 'best.pt'} does not fit: missing {missing}, unexpected {unexpected}")
    return model.eval()


def hf_classifier(run_dir: Path, model_folder: Path, base_config: Path | None = None):
    """A ``transformers`` text-classification pipeline over the fp32 weights of a training run.

    Args:
        run_dir: the training run folder holding ``best.pt`` (the trainer's state_dict).
        model_folder: the published model folder (its ``tokenizer.json`` and
            ``config.json`` max_length: the same tokenization as finsentry).
        base_config: the encoder's ``config.json`` (default: the bundled
            all-MiniLM-L6-v2, ``training._model.base_model_dir()``).

    Raises:
        FileNotFoundError: no ``best.pt`` or no base config.
        ValueError: the weights do not fit the architecture.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if not (run_dir / "best.pt").is_file():
        raise FileNotFoundError(f"no best.pt in {run_dir}")
    if base_config is None:
        from training._model import base_model_dir

        base_config = base_model_dir() / "config.json"
    max_length = int(__import__("json").loads((model_folder / "config.json").read_text())["max_length"])
    tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(model_folder / "tokenizer.json"), pad_token="[PAD]",
                                        unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]",
                                        mask_token="[MASK]", model_max_length=max_length)
    return pipeline("text-classification", model=_load_model(run_dir, base_config), tokenizer=tokenizer,
                    device=-1)


def hf_labels(classifier, texts: Sequence[str], batch_size: int) -> list[str]:
    """Top-1 label of each text through the pipeline (truncated to the model's max length)."""
    out = classifier(list(texts), batch_size=batch_size, truncation=True)
    return [o["label"] for o in out]
