"""Quality and cost of every variant of one training run, side by side (issue #3).

Variants: the run's fp32 ONNX export, its int8 copies (block-wise ``MatMulNBits``, the
shipped CPU model; ``quantize_dynamic`` per tensor and per channel), the fp16 CUDA copy
with int8 word-embedding rows (the shipped one) and with fp16 embeddings (both run here on
the CPU execution provider, for their quality; speed on a CPU is not what they are for), and the fp32 model with per-class logit offsets fitted on the dev split
(``training._calibrate``; "forced": applied although the trainer's cross-validation rule
rejects them, to show what they would do). No variant is trained here.

* quality: accuracy and macro-F1 on the three frozen evaluation sets, by the trainer's
  evaluation code (``training._evaluate``: ONNX Runtime CPU, max 128 tokens);
* cost: forward FLOPs per item (``finsentry.bench._flops.bert_flops_per_item``: Kaplan et
  al. 2020 Table 1, attention term doubled for a bidirectional encoder) at the mean token
  length of the speed texts, and BERT-base's (12 layers, d 768, d_ff 3072) for the ratio;
  CPU items/s of :class:`inference.Scorer` (length-sorted sub-batches, CPU provider) over
  ``--n`` Benzinga headlines in micro-batches of 256, the variants interleaved round by
  round, median of ``--repeats`` rounds.

Usage (writes JSON; prints Markdown tables)::

    PYTHONPATH=. python benchmarks/model_variants.py --run ~/.cache/finsentry/train-runs/minilm6-mt-20261129-e4 \\
        --json var/model-variants.json

On a crowded machine, ``--recorded FOLDER`` skips the quality scoring (about 7,100 items per
variant) and takes each variant's accuracy / macro-F1 from what the trainer recorded with the
same evaluation code: the published folder's ``metrics.json`` (fp32, its int8 model, the fp16
check) and the run's ``metrics.json`` (its int8 gate candidates); the offset variants are then
left out. Speed is always measured.
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
from finsentry.bench._flops import bert_flops_per_item
from finsentry.bench._model import time_finsentry
from inference import Scorer
from training._calibrate import calibrate_heads
from training._cli import _dev_tasks
from training._evaluate import EVAL_TASK, OnnxClassifier, classification_metrics, load_eval_sets
from training._export import quantize_int8, quantize_int8_blockwise
from training._fp16 import make_fp16
from training._model import base_model_dir

MODELS = Path(__file__).resolve().parents[1] / "models"
MODEL_FOLDER = MODELS / (MODELS / "DEFAULT").read_text(encoding="utf-8").strip()  # tokenizer, config, labels


def _folder(tmp: Path, name: str, onnx: Path) -> Path:
    """A model folder (tokenizer, config, labels of the shipped one) holding ``onnx`` as model.onnx."""
    d = tmp / name
    d.mkdir()
    for f in ("tokenizer.json", "labels.json", "config.json"):
        shutil.copy(MODEL_FOLDER / f, d / f)
    (d / "manifest.json").write_text(json.dumps({"version": name, "files": {}}))
    (d / "model.onnx").symlink_to(onnx.resolve())
    return d


def _quality(logits: dict[str, np.ndarray], sets: dict) -> dict[str, dict[str, float]]:
    out = {}
    for k, ds in sets.items():
        m = classification_metrics(ds.labels, logits[k].argmax(1), ds.label_names)
        out[k] = {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"]}
    return out


def _set_logits(path: Path, sets: dict, tokenizer: Path) -> dict[str, np.ndarray]:
    clf = OnnxClassifier(path, tokenizer, 128, 2)
    return {k: clf.logits(ds.texts)[EVAL_TASK[k]] for k, ds in sets.items()}


def _offset_variants(run: Path, fp32_logits: dict[str, np.ndarray], tokenizer: Path) -> tuple[dict, dict]:
    """Eval-set logits with dev-fitted offsets (forced on both heads; on the sentiment head only) and the record."""
    training = json.loads((run / "metrics.json").read_text(encoding="utf-8"))["training"]
    tasks = _dev_tasks(training, None)
    clf = OnnxClassifier(run / "model.fp32.onnx", tokenizer, 128, 2)
    heads = {"sentiment_logits": "sentiment", "topic_logits": "topic"}
    dev = {o: clf.logits(tasks[t].dev.texts)[o] for o, t in heads.items()}
    rec = calibrate_heads(dev, {o: np.asarray(tasks[t].dev.labels) for o, t in heads.items()},
                          {o: list(tasks[t].dev.label_names) for o, t in heads.items()}, int(training["seed"]))
    fitted = {o: np.array(list((r["offsets"] or r["fitted_offsets_if_not_applied"]).values()), np.float32)
              for o, r in rec.items()}

    def shifted(outputs: tuple[str, ...]) -> dict[str, np.ndarray]:
        res = {}
        for k, lg in fp32_logits.items():
            o = EVAL_TASK[k]
            res[k] = lg + fitted[o][None, :] if o in outputs else lg
        return res

    return ({"fp32 + dev offsets, both heads (forced)": shifted(("sentiment_logits", "topic_logits")),
             "fp32 + dev offsets, sentiment head only (forced)": shifted(("sentiment_logits",))}, rec)


def _recorded_quality(folder: Path, run: Path, files: dict[str, Path]) -> dict[str, dict]:
    """Quality per variant from the trainer's records (see the module docstring)."""
    pub = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    gate = json.loads((run / "metrics.json").read_text(encoding="utf-8"))["quantization_gate"]["candidates"]
    pick = lambda m: {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"]}  # noqa: E731
    ev = pub["evaluation"]
    quality = {
        "fp32": {k: pick(v["model_fp32"]) for k, v in ev.items()},
        "int8-blockwise (shipped CPU model)": {k: pick(v["model"]) for k, v in ev.items()},
        "int8-dynamic per tensor": {k: {"accuracy": v["int8_accuracy"], "macro_f1": v["int8_macro_f1"]}
                                    for k, v in gate["int8-dynamic"]["sets"].items()},
        "int8-dynamic per channel": {k: {"accuracy": v["int8_accuracy"], "macro_f1": v["int8_macro_f1"]}
                                     for k, v in gate["int8-dynamic-per-channel"]["sets"].items()},
        "fp16 + int8 word-embedding rows (shipped CUDA model, run on the CPU EP)":
            {k: pick(v) for k, v in pub["fp16_check"]["quality"].items()},
    }
    return {name: {"quality": quality[name], "size_mb": path.stat().st_size / 1e6, "quality_source": "recorded"}
            for name, path in files.items() if name in quality} | {
        name: {"quality": None, "size_mb": path.stat().st_size / 1e6} for name, path in files.items() if name not in quality}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", type=Path, required=True, help="training run folder with model.fp32.onnx and metrics.json")
    ap.add_argument("--n", type=int, default=2000, help="Benzinga headlines for the speed rounds")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--recorded", type=Path, default=None, metavar="FOLDER",
                    help="published folder of this run: take quality from the recorded metrics instead of scoring")
    args = ap.parse_args()
    tokenizer = base_model_dir() / "tokenizer.json"
    sets = load_eval_sets()
    heads = load_headlines(args.n)
    fp32 = args.run / "model.fp32.onnx"
    res: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="model-variants-") as tmp_s:
        tmp = Path(tmp_s)
        files = {
            "fp32": fp32,
            "int8-blockwise (shipped CPU model)": quantize_int8_blockwise(fp32, tmp / "blockwise.onnx"),
            "int8-dynamic per tensor": quantize_int8(fp32, tmp / "dyn.onnx", per_channel=False),
            "int8-dynamic per channel": quantize_int8(fp32, tmp / "dynpc.onnx", per_channel=True),
            "fp16 + int8 word-embedding rows (shipped CUDA model, run on the CPU EP)":
                make_fp16(fp32, tmp / "fp16.onnx", base_model_dir()),
            "fp16, fp16 embeddings (on the CPU EP)": make_fp16(fp32, tmp / "fp16e.onnx", base_model_dir(),
                                                                int8_embeddings=False),
        }
        if args.recorded is None:
            del files["fp16, fp16 embeddings (on the CPU EP)"]  # keep the measured run within reach
            logits = {name: _set_logits(path, sets, tokenizer) for name, path in files.items()}
            offsets, calibration = _offset_variants(args.run, logits["fp32"], tokenizer)
            for name, lg in logits.items():
                res[name] = {"quality": _quality(lg, sets), "size_mb": files[name].stat().st_size / 1e6,
                             "agreement_with_fp32": {k: float(np.mean(lg[k].argmax(1) == logits["fp32"][k].argmax(1)))
                                                     for k in sets}}
            for name, lg in offsets.items():
                res[name] = {"quality": _quality(lg, sets), "size_mb": None, "same_cost_as": "fp32"}
        else:
            calibration = None
            res = _recorded_quality(args.recorded, args.run, files)
        scorers = {name: Scorer(_folder(tmp, f"v{i}", path), "cpu", verify=False, intra_op_threads=2)
                   for i, (name, path) in enumerate(files.items())}
        for sc in scorers.values():
            sc.score_texts(heads[:64])
        speeds: dict[str, list[float]] = {k: [] for k in scorers}
        for _ in range(args.repeats):
            for k, sc in scorers.items():
                speeds[k].append(time_finsentry(sc, heads, 256))
        mean_tokens = float(np.mean([len(e.ids) for e in scorers["fp32"].tokenizer.encode_batch(heads)]))
    for k, v in speeds.items():
        res[k]["items_per_s_cpu"] = statistics.median(v)
        res[k]["items_per_s_runs"] = v
        res[k]["speed_vs_fp32"] = statistics.median(v) / statistics.median(speeds["fp32"])
    flops = bert_flops_per_item(mean_tokens)
    base = bert_flops_per_item(mean_tokens, layers=12, hidden=768, ffn=3072, head_outputs=3)
    cost = {"mean_tokens": mean_tokens, "gflops_per_item": flops / 1e9, "bert_base_gflops_per_item": base / 1e9,
            "fewer_flops_than_bert_base": base / flops, "n_headlines": args.n, "repeats": args.repeats,
            "micro_batch": 256, "threads": 2}
    out = {"variants": res, "cost": cost, "calibration": calibration}
    names = list(sets)
    print(f"FLOPs per item at {mean_tokens:.1f} tokens: {flops / 1e9:.3f} GFLOP; BERT-base {base / 1e9:.3f} "
          f"GFLOP ({base / flops:.1f}x more)\n")
    print("| variant | " + " | ".join(f"{s} acc / F1" for s in names) + " | size MB | CPU items/s (median) | vs fp32 |")
    print("|---" * (len(names) + 4) + "|")
    for k, r in res.items():
        q = r["quality"] or {s: {"accuracy": float("nan"), "macro_f1": float("nan")} for s in names}
        speed = (f"{r['items_per_s_cpu']:.0f} | {r['speed_vs_fp32']:.2f}x" if "items_per_s_cpu" in r
                 else "= fp32 | = fp32")
        size = f"{r['size_mb']:.1f}" if r["size_mb"] else "= fp32"
        print(f"| {k} | " + " | ".join(f"{100 * q[s]['accuracy']:.1f} / {100 * q[s]['macro_f1']:.1f}" for s in names)
              + f" | {size} | {speed} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
