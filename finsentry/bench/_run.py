"""Orchestration of ``finsentry bench``: the four measurements, a table and a JSON record."""

from __future__ import annotations

import logging
import platform
import statistics
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from finsentry.bench._data import load_headlines
from finsentry.bench._flops import bert_flops_per_item, int8_matmul_gops, matmul_gflops
from finsentry.bench._model import docs_per_s, finsentry_labels, time_finsentry, tokenize_seconds
from inference import Scorer, usable_cpu_count

__all__ = ["BenchConfig", "format_table", "run_bench"]

log = logging.getLogger(__name__)

DEFAULT_TRAIN_RUN = Path.home() / ".cache" / "finsentry" / "train-runs" / "minilm6-mt-20261129-e4"


@dataclass
class BenchConfig:
    """What ``finsentry bench`` measures (see the package docstring).

    Attributes:
        model: model folder or registry for finsentry's scorer.
        device: ``cpu`` | ``gpu`` | ``auto``.
        n: headlines for finsentry's model-only and end-to-end runs.
        hf_n: the first ``hf_n`` of them go through both finsentry and the HF
            pipeline for the ratio and the label agreement (the HF side is slow).
        repeats: interleaved rounds; medians are reported.
        batch_sizes: finsentry micro-batch sizes.
        hf_batch_sizes: HF pipeline batch sizes.
        train_run: training run folder with ``best.pt`` (the HF side's fp32 weights).
        bootstrap: a Kafka broker for the end-to-end run; None = start a local one.
        e2e, hf: run those parts.
    """

    model: Path
    device: str = "cpu"
    n: int = 2000
    hf_n: int = 500
    repeats: int = 3
    batch_sizes: tuple[int, ...] = (1, 8, 32, 64, 256)
    hf_batch_sizes: tuple[int, ...] = (1, 8, 32, 64)
    train_run: Path = DEFAULT_TRAIN_RUN
    bootstrap: str | None = None
    e2e: bool = True
    hf: bool = True
    sub_batch: int = 0  # rows per ONNX Runtime call; 0 = the scorer's default (inference.DEFAULT_SUB_BATCH)
    notes: list[str] = field(default_factory=list)


def _hf_side(cfg: BenchConfig, scorer: Scorer):
    """The HF pipeline, or None with the reason appended to ``cfg.notes``."""
    if not cfg.hf:
        cfg.notes.append("HF pipeline: skipped (--no-hf)")
        return None
    try:
        from finsentry.bench._hf import hf_classifier
    except ImportError as exc:
        cfg.notes.append(f"HF pipeline: skipped, torch/transformers not installed ({exc}); "
                         "pip install -e '.[train]' to compare")
        return None
    try:
        import transformers

        before = transformers.logging.get_verbosity()
        transformers.logging.set_verbosity(logging.CRITICAL)  # "model not in the supported list": expected, see _hf
        try:
            if not (cfg.train_run / "best.pt").is_file():
                cfg.notes.append(f"HF pipeline: no {cfg.train_run / 'best.pt'}; weights recovered from "
                                 f"{scorer.folder.path / 'model.onnx'} (dequantized, run in fp32 PyTorch)")
            return hf_classifier(cfg.train_run, scorer.folder.path)
        finally:
            transformers.logging.set_verbosity(before)
    except (FileNotFoundError, ValueError) as exc:
        cfg.notes.append(f"HF pipeline: skipped ({exc})")
        return None


def _model_only(cfg: BenchConfig, scorer: Scorer, texts: list[str], hf) -> dict[str, Any]:
    sub = texts[: cfg.hf_n]
    fs: dict[int, list[float]] = {b: [] for b in cfg.batch_sizes}
    fs_sub: dict[int, list[float]] = {b: [] for b in cfg.batch_sizes}
    hf_rates: dict[int, list[float]] = {b: [] for b in cfg.hf_batch_sizes}
    scorer.score_texts(texts[:64])  # warm-up
    if hf is not None:
        hf(sub[:8], batch_size=8, truncation=True)
    for r in range(cfg.repeats):
        for b in cfg.batch_sizes:
            fs[b].append(time_finsentry(scorer, texts, b))
            fs_sub[b].append(time_finsentry(scorer, sub, b))
        if hf is not None:
            for b in cfg.hf_batch_sizes:
                hf_rates[b].append(docs_per_s(len(sub), lambda b=b: hf(sub, batch_size=b, truncation=True)))
        log.info("bench round %d/%d done", r + 1, cfg.repeats)
    med = {b: statistics.median(v) for b, v in fs.items()}
    med_sub = {b: statistics.median(v) for b, v in fs_sub.items()}
    best = max(med, key=med.__getitem__)
    out: dict[str, Any] = {"finsentry_docs_per_s_by_batch": med, "finsentry_best_batch": best,
                           "finsentry_docs_per_s": med[best], "finsentry_runs": fs}
    if hf is not None:
        hf_med = {b: statistics.median(v) for b, v in hf_rates.items()}
        hf_best = max(hf_med, key=hf_med.__getitem__)
        best_sub = max(med_sub, key=med_sub.__getitem__)
        from finsentry.bench._hf import hf_labels

        ours, theirs = finsentry_labels(scorer, sub, best_sub), hf_labels(hf, sub, hf_best)
        out |= {"hf_pipeline_docs_per_s_by_batch": hf_med, "hf_best_batch": hf_best,
                "hf_pipeline_docs_per_s": hf_med[hf_best], "hf_runs": hf_rates,
                "finsentry_docs_per_s_same_items": med_sub[best_sub],
                "ratio": med_sub[best_sub] / hf_med[hf_best],
                "label_agreement": float(np.mean([a == b for a, b in zip(ours, theirs)])), "compared_items": len(sub)}
    return out


def _e2e(cfg: BenchConfig, scorer: Scorer, texts: list[str], best_batch: int) -> dict[str, Any]:
    if not cfg.e2e:
        cfg.notes.append("end to end: skipped (--no-e2e)")
        return {}
    from finsentry.bench._e2e import run_e2e
    from finsentry.broker import BrokerError, LocalBroker

    with tempfile.TemporaryDirectory(prefix="finsentry-bench-") as tmp:
        broker = None
        try:
            bootstrap = cfg.bootstrap
            if bootstrap is None:
                broker = LocalBroker(run_dir=Path(tmp) / "broker")
                bootstrap = broker.start()
            res = run_e2e(bootstrap, scorer, texts, Path(tmp), max_batch=max(best_batch, 32))
        except (BrokerError, TimeoutError) as exc:
            cfg.notes.append(f"end to end: failed ({exc})")
            return {}
        finally:
            if broker is not None:
                broker.stop()
    return {"e2e_docs_per_s": res.docs_per_s, "e2e_latency_ms": res.latency,
            "p99_ms_at_50pct": res.latency["50%"]["p99"], "p50_ms_at_50pct": res.latency["50%"]["p50"]}


def _limit(scorer: Scorer, texts: list[str], docs_s: float) -> dict[str, Any]:
    lengths = [len(e.ids) for e in scorer.tokenizer.encode_batch(texts)]
    mean_len = float(np.mean(lengths))
    flops = bert_flops_per_item(mean_len)
    gflops = matmul_gflops()
    int8 = int8_matmul_gops()
    reached = flops * docs_s / 1e9
    tok_s = tokenize_seconds(scorer, texts)
    return {"mean_tokens": mean_len, "model_flops_per_item": flops, "matmul_gflops": gflops,
            "int8_matmul_gops": int8, "finsentry_gflops": reached, "fraction_of_matmul_limit": reached / gflops,
            "fraction_of_int8_matmul_limit": reached / int8 if int8 else None,
            "tokenize_share": tok_s * docs_s / len(texts)}


def run_bench(cfg: BenchConfig) -> dict[str, Any]:
    """Run the benchmark; returns the JSON record (see the package docstring for the fields).

    Raises:
        FileNotFoundError: the headlines file is missing.
        inference.InferenceError: the model cannot be loaded.
    """
    texts = load_headlines(cfg.n)
    scorer = Scorer(cfg.model, cfg.device, **({"sub_batch": cfg.sub_batch} if cfg.sub_batch else {}))
    hf = _hf_side(cfg, scorer)
    result: dict[str, Any] = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": platform.node(),
        "cpu": platform.processor() or platform.machine(), "usable_cores": usable_cpu_count(),
        "provider": scorer.provider, "model": scorer.version, "model_file": scorer.model_file.name,
        "sub_batch": scorer.sub_batch,
        "headlines": len(texts), "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()},
    }
    result |= _model_only(cfg, scorer, texts, hf)
    result |= _limit(scorer, texts, result["finsentry_docs_per_s"])
    result |= _e2e(cfg, scorer, texts, result["finsentry_best_batch"])
    if "e2e_docs_per_s" in result:
        result["e2e_vs_model_only"] = result["e2e_docs_per_s"] / result["finsentry_docs_per_s"]
    for key in ("hf_pipeline_docs_per_s", "ratio", "label_agreement", "e2e_docs_per_s", "p99_ms_at_50pct"):
        result.setdefault(key, None)
    result["notes"] = list(cfg.notes)
    return result


def _f(value: Any, fmt: str = "{:,.1f}") -> str:
    return "n/a" if value is None else fmt.format(value)


def format_table(r: dict[str, Any]) -> str:
    """The human-readable table of a :func:`run_bench` record."""
    rows = [("provider / model", f"{r['provider']} / {r['model_file']} ({r['model']})"),
            ("headlines (mean tokens)", f"{r['headlines']} ({r['mean_tokens']:.1f})")]
    for b, v in r["finsentry_docs_per_s_by_batch"].items():
        rows.append((f"finsentry docs/s, micro-batch {b}", _f(v)))
    for b, v in (r.get("hf_pipeline_docs_per_s_by_batch") or {}).items():
        rows.append((f"HF pipeline docs/s, batch {b}", _f(v)))
    rows += [
        ("finsentry best docs/s", f"{_f(r['finsentry_docs_per_s'])} (batch {r['finsentry_best_batch']})"),
        ("HF pipeline best docs/s", _f(r["hf_pipeline_docs_per_s"])),
        ("ratio on the same items", _f(r["ratio"], "{:.2f}x")),
        ("label agreement", _f(r["label_agreement"], "{:.2%}")),
        ("matmul limit GFLOP/s (fp32)", _f(r["matmul_gflops"])),
        ("model GFLOP per item", _f(r["model_flops_per_item"] / 1e9, "{:.3f}")),
        ("int8 matmul limit GOP/s (ORT, FFN shape)", _f(r["int8_matmul_gops"])),
        ("finsentry GFLOP/s (of fp32 / int8 limit)", f"{r['finsentry_gflops']:.1f} ({r['fraction_of_matmul_limit']:.0%}"
         f" / {_f(r['fraction_of_int8_matmul_limit'], '{:.0%}')})"),
        ("tokenization share of model time", _f(r["tokenize_share"], "{:.1%}")),
        ("end to end docs/s (vs model-only)",
         f"{_f(r['e2e_docs_per_s'])} ({_f(r.get('e2e_vs_model_only'), '{:.0%}')})"),
    ]
    for share, lat in (r.get("e2e_latency_ms") or {}).items():
        rows.append((f"latency at {share} ({lat['rate']:.0f} docs/s) p50 / p99 ms", f"{lat['p50']:.0f} / {lat['p99']:.0f}"))
    width = max(len(k) for k, _ in rows)
    lines = [f"{k:<{width}}  {v}" for k, v in rows] + [f"note: {n}" for n in r["notes"]]
    return "\n".join(lines)
