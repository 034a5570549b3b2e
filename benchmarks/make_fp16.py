"""Build ``model.fp16.onnx`` (the CUDA model) from a training run's fp32 ONNX export, outside the trainer.

    python benchmarks/make_fp16.py [RUN_DIR/model.fp32.onnx] [OUT=var/gpu/model.fp16.onnx] [--fp16-embeddings]

The trainer's publish step already puts this file, checked against fp32, in every published
model folder (``training._fp16``: fused BERT graph, float16 weights and compute, int64 inputs and
float32 outputs kept, word-embedding table as int8 rows unless ``--fp16-embeddings``). This script
calls the same :func:`training.make_fp16` for experiments (e.g. ``benchmarks/gpu.sh`` overriding
the published file). Needs the ``onnx`` package (``train`` extra).
"""

from __future__ import annotations

import sys
from pathlib import Path

from training import make_fp16
from training._model import base_model_dir

DEFAULT_SRC = Path.home() / ".cache/finsentry/train-runs/minilm6-mt-20261129-e4/model.fp32.onnx"


def main(argv: list[str]) -> int:
    flags = [a for a in argv if a.startswith("--")]
    argv = [a for a in argv if not a.startswith("--")]
    src = Path(argv[0]) if argv else DEFAULT_SRC
    out = Path(argv[1]) if len(argv) > 1 else Path("var/gpu/model.fp16.onnx")
    if not src.is_file():
        print(f"make_fp16: {src} not found (pass the training run's model.fp32.onnx)", file=sys.stderr)
        return 2
    try:
        base = base_model_dir()
    except FileNotFoundError:
        base = None  # ONNX Runtime detects heads and hidden size from the graph
    make_fp16(src, out, base, int8_embeddings="--fp16-embeddings" not in flags)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
