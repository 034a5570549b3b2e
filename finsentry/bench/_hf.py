"""The usual alternative: the same weights through a Hugging Face ``pipeline("text-classification")``.

finsentry's model is a MiniLM encoder with masked mean pooling and two linear
heads (``training._model.MultiTaskModel``); ``transformers`` has no
``AutoModelForSequenceClassification`` class for it (``BertForSequenceClassification``
classifies the pooled [CLS] token, not the mean). :class:`MeanPoolBertForSequenceClassification`
is that class: a ``BertPreTrainedModel`` with the encoder, the mean pooling and the
*sentiment* head, returning ``SequenceClassifierOutput(logits=...)``, loaded
with the fine-tuned fp32 weights of the training run (``best.pt``), or on a
fresh clone the weights recovered from the published ONNX model. The
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


def _trainer_state(run_dir: Path, model_folder: Path) -> tuple[dict[str, torch.Tensor], Path]:
    """The trainer's state_dict: ``run_dir/best.pt`` when there is one, else recovered from ``model.onnx``."""
    best = run_dir / "best.pt"
    if best.is_file():
        return torch.load(best, map_location="cpu", weights_only=True), best
    from ._onnx_weights import state_dict_from_onnx

    onnx_path = model_folder / "model.onnx"
    return {k: torch.from_numpy(v) for k, v in state_dict_from_onnx(onnx_path).items()}, onnx_path


def _load_model(state: dict[str, torch.Tensor], source: Path, base_config: Path) -> MeanPoolBertForSequenceClassification:
    config = BertConfig.from_json_file(str(base_config))
    config.num_labels = len(SENTIMENT_LABELS)
    config.id2label = dict(enumerate(SENTIMENT_LABELS))
    config.label2id = {v: k for k, v in config.id2label.items()}
    model = MeanPoolBertForSequenceClassification(config)
    mapped = {k.replace("encoder.", "bert.", 1): v for k, v in state.items() if k.startswith("encoder.")}
    mapped |= {"classifier.weight": state["sentiment_head.weight"], "classifier.bias": state["sentiment_head.bias"]}
    missing, unexpected = model.load_state_dict(mapped, strict=False)
    if unexpected or [k for k in missing if "position_ids" not in k]:
        raise ValueError(f"{source} does not fit: missing {missing}, unexpected {unexpected}")
    return model.eval()


def hf_classifier(run_dir: Path, model_folder: Path, base_config: Path | None = None):
    """A ``transformers`` text-classification pipeline over the fp32 weights of a training run.

    Without ``run_dir/best.pt`` (a fresh clone: training runs are not
    shipped) the weights are recovered from the published ``model.onnx``
    (``finsentry.bench._onnx_weights``: the shipped model's effective
    weights, int8 rounding included) and run in fp32 PyTorch.

    Args:
        run_dir: the training run folder holding ``best.pt`` (the trainer's state_dict), if any.
        model_folder: the published model folder (its ``tokenizer.json`` and
            ``config.json`` max_length: the same tokenization as finsentry).
        base_config: the encoder's ``config.json`` (default: the bundled
            all-MiniLM-L6-v2, ``training._model.base_model_dir()``).

    Raises:
        FileNotFoundError: no base config.
        ValueError: the weights do not fit the architecture.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if base_config is None:
        from training._model import base_model_dir

        base_config = base_model_dir() / "config.json"
    max_length = int(__import__("json").loads((model_folder / "config.json").read_text())["max_length"])
    tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(model_folder / "tokenizer.json"), pad_token="[PAD]",
                                        unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]",
                                        mask_token="[MASK]", model_max_length=max_length)
    state, source = _trainer_state(run_dir, model_folder)
    return pipeline("text-classification", model=_load_model(state, source, base_config), tokenizer=tokenizer,
                    device=-1)


def hf_labels(classifier, texts: Sequence[str], batch_size: int) -> list[str]:
    """Top-1 label of each text through the pipeline (truncated to the model's max length)."""
    out = classifier(list(texts), batch_size=batch_size, truncation=True)
    return [o["label"] for o in out]
