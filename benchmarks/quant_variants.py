"""int8 variants of one training run, side by side: label agreement with fp32 and speed.

For each variant of ``onnxruntime.quantization.quantize_dynamic`` (which nodes
stay fp32), and the block-wise ``MatMulNBits`` variant
(``training._export.quantize_int8_blockwise``), this scores with finsentry's own :class:`inference.Scorer` (length
sorting, sub-batches, truncation, CPU provider):

* label agreement with the run's fp32 ONNX model on the three held-out
  evaluation sets of the trainer's gate (tweets sentiment / topic validation,
  Financial PhraseBank 50Agree test) and on ``--n`` Benzinga headlines
  (sentiment head);
* batch-composition dependence: the share of headlines whose sentiment label
  differs between scoring alone (batch 1) and in micro-batches of 256
  (dynamic activation quantisation computes one scale per tensor, so the other
  rows of a batch move an item's logits);
* model-only docs/s on the headlines at micro-batch 256 (median of
  ``--repeats`` interleaved rounds).

Usage (writes JSON; prints a Markdown table)::

    PYTHONPATH=. python benchmarks/quant_variants.py --run ~/.cache/finsentry/train-runs/minilm6-mt-20261129-e4 \
        --json var/quant-variants.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
from pathlib import Path

import numpy as np

from finsentry.bench._data import load_headlines
from finsentry.bench._model import time_finsentry
from inference import Scorer
from training._evaluate import EVAL_TASK, load_eval_sets
from training._export import int8_exclusions, quantize_int8, quantize_int8_blockwise

MODELS = Path(__file__).resolve().parents[1] / "models"
MODEL_FOLDER = MODELS / (MODELS / "DEFAULT").read_text(encoding="utf-8").strip()  # tokenizer, config, labels

#: variant name -> keyword arguments of ``training._export.quantize_int8``
VARIANTS: dict[str, dict] = {
    "int8-per-channel (all MatMul/Gemm/Gather)": {},
    "heads fp32": {"keep_fp32": ("heads",)},
    "heads + attention MatMuls fp32": {"keep_fp32": ("heads", "attention")},
    "heads + FFN-out fp32": {"keep_fp32": ("heads", "ffn_out")},
    "heads + last layer fp32": {"keep_fp32": ("heads", "last_layer")},
    "heads + attention + FFN-out fp32": {"keep_fp32": ("heads", "attention", "ffn_out")},
    # MatMulNBits 8-bit blocks of 64, activations per row and block (what the trainer's gate tries first)
    "int8-blockwise": {"blockwise": True},
}


def _folder(tmp: Path, name: str, onnx: Path) -> Path:
    """A model folder (tokenizer, config, labels of the shipped one) holding ``onnx`` as model.onnx."""
    d = tmp / name
    d.mkdir()
    for f in MODEL_FOLDER.iterdir():
        if f.name not in ("model.onnx", "README.md", "metrics.json"):  # manifest kept, not verified
            shutil.copy(f, d / f.name)
    (d / "model.onnx").symlink_to(onnx.resolve())
    return d


def _labels(scorer: Scorer, texts: list[str], head: str, batch: int) -> np.ndarray:
    out = []
    for i in range(0, len(texts), batch):
        lg = scorer.logits(texts[i : i + batch])
        out.append(lg[head].argmax(1))
    return np.concatenate(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", type=Path, required=True, help="training run folder with model.fp32.onnx")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", nargs="*", help="variant names to run (default all)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    heads = load_headlines(args.n)
    sets = {k: v.texts for k, v in load_eval_sets().items()}
    sets["benzinga_headlines"] = heads
    head_of = dict(EVAL_TASK, benzinga_headlines="sentiment_logits")
    fp32 = args.run / "model.fp32.onnx"
    variants = {k: v for k, v in VARIANTS.items() if not args.only or k in args.only}
    res: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="quant-variants-") as tmp_s:
        tmp = Path(tmp_s)
        scorers = {"fp32": Scorer(_folder(tmp, "fp32", fp32), "cpu", verify=False)}
        for i, (name, kw) in enumerate(variants.items()):
            q = (quantize_int8_blockwise(fp32, tmp / f"v{i}.onnx") if kw.get("blockwise")
                 else quantize_int8(fp32, tmp / f"v{i}.onnx", per_channel=True, **kw))
            scorers[name] = Scorer(_folder(tmp, f"v{i}", q), "cpu", verify=False)
            res[name] = {"size_mb": q.stat().st_size / 1e6,
                         "fp32_nodes": sorted(int8_exclusions(fp32, kw.get("keep_fp32", ())))}
        ref = {s: _labels(scorers["fp32"], t, head_of[s], 256) for s, t in sets.items()}
        res["fp32"] = {"size_mb": fp32.stat().st_size / 1e6}
        for name in variants:
            sc = scorers[name]
            res[name]["agreement"] = {s: float(np.mean(_labels(sc, t, head_of[s], 256) == ref[s]))
                                      for s, t in sets.items()}
            alone = _labels(sc, heads, "sentiment_logits", 1)
            res[name]["batch1_vs_batch256_label_diff"] = float(np.mean(alone != _labels(sc, heads, "sentiment_logits", 256)))
        speeds: dict[str, list[float]] = {k: [] for k in scorers}
        for k, sc in scorers.items():
            sc.score_texts(heads[:64])
        for _ in range(args.repeats):
            for k, sc in scorers.items():
                speeds[k].append(time_finsentry(sc, heads, 256))
        for k in scorers:
            res[k]["docs_per_s_b256"] = statistics.median(speeds[k])
            res[k]["speed_vs_fp32"] = res[k]["docs_per_s_b256"] / statistics.median(speeds["fp32"])
    names = list(sets)
    print("| variant | size MB | " + " | ".join(f"agree {s}" for s in names)
          + " | batch 1 vs 256 label diff | docs/s b256 | vs fp32 |")
    print("|---" * (len(names) + 5) + "|")
    for k, r in res.items():
        ag = r.get("agreement", {})
        print(f"| {k} | {r['size_mb']:.1f} | " + " | ".join(f"{100 * ag[s]:.2f} %" if s in ag else "100 %" for s in names)
              + f" | {100 * r.get('batch1_vs_batch256_label_diff', 0):.2f} % | {r['docs_per_s_b256']:.0f} | "
              f"{r['speed_vs_fp32']:.2f}x |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
