"""Build the CUDA model file ``model.fp16.onnx`` from a training run's fp32 ONNX export.

    python benchmarks/make_fp16.py [RUN_DIR/model.fp32.onnx] [OUT=var/gpu/model.fp16.onnx]

ONNX Runtime's transformer optimizer fuses the BERT graph (Attention,
SkipLayerNormalization, BiasGelu; ``model_type="bert"``, 12 heads, hidden 384 for
MiniLM-L6) and converts weights and activations to float16, keeping the graph's
int64 inputs and float32 outputs (``keep_io_types``) so the scorer feeds it like
the CPU model. The scorer loads ``model.fp16.onnx`` from a model folder, when
CUDA is in use and the manifest lists the file (``inference.model_file``).
Needs the ``onnx`` package (``train`` extra). Run on a CPU machine; the file
then travels to the GPU machine (benchmarks/gpu.sh).
"""

from __future__ import annotations

import sys
from pathlib import Path

from onnxruntime.transformers.optimizer import optimize_model

DEFAULT_SRC = Path.home() / ".cache/finsentry/train-runs/minilm6-mt-20261129-e4/model.fp32.onnx"


def main(argv: list[str]) -> int:
    src = Path(argv[0]) if argv else DEFAULT_SRC
    out = Path(argv[1]) if len(argv) > 1 else Path("var/gpu/model.fp16.onnx")
    if not src.is_file():
        print(f"make_fp16: {src} not found (pass the training run's model.fp32.onnx)", file=sys.stderr)
        return 2
    model = optimize_model(str(src), model_type="bert", num_heads=12, hidden_size=384, opt_level=1, use_gpu=True)
    print("fused:", model.get_fused_operator_statistics())
    model.convert_float_to_float16(keep_io_types=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save_model_to_file(str(out))
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
