"""Joint fine-tuning of the encoder and both heads (torch imported lazily).

Recipe: each optimisation step takes one batch from ONE task (sentiment or
topic) and back-propagates that head's cross-entropy only; the batches of both
tasks are shuffled together each epoch (interleaved in proportion to their
sizes). AdamW (Loshchilov & Hutter 2019) with decoupled weight decay on
non-bias / non-LayerNorm weights, linear warm-up then linear decay to 0
(Devlin et al. 2019; same as ``transformers.get_linear_schedule_with_warmup``),
gradient-norm clipping at 1.0. Forward passes run under bf16 autocast where the
CPU supports it natively (fp32 master weights). Dynamic padding with length bucketing: within
mega-batches of 50 batches the items are sorted by length before cutting
batches, and the batch order is then shuffled. Model selection: the dev-split
checkpoint with the best mean of sentiment and topic macro-F1.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._data import (
    SENTIMENT_LABELS,
    LabelledSet,
    hash_split,
    load_tweet_sentiment,
    load_user_sentiment,
    parse_label_map,
    load_tweet_topic,
)
from ._evaluate import classification_metrics
from ._tokenize import encode, load_tokenizer, pad_batch

log = logging.getLogger(__name__)

TASKS = ("sentiment", "topic")


@dataclass
class TrainConfig:
    """Hyper-parameters and inputs of a training run.

    Attributes:
        epochs: passes over both training splits.
        seed: seeds python/numpy/torch RNGs, the dev split hash and batch order.
        batch_size: items per step (one task per step).
        max_length: training truncation in tokens, special tokens included.
        eval_max_length: truncation for dev evaluation (the inference maximum).
        lr: AdamW peak learning rate for the encoder.
        head_lr: AdamW peak learning rate for the two linear heads.
        weight_decay: decoupled weight decay (not on biases / LayerNorm).
        warmup_ratio: share of all steps spent in linear warm-up.
        dev_fraction: share of each train file held out (stratified, hashed) as dev.
        max_train_items: cap on train (and dev) items per task, for quick runs.
        threads: ``torch.set_num_threads``.
        evals_per_epoch: dev evaluations per epoch (last one at the epoch end).
        patience: stop after this many dev evaluations without improvement.
        base_model: local folder of the pretrained encoder (None: bundled MiniLM).
        data_dir: shared data root (None: ``$FINSENTRY_DATA_DIR`` or ../shared/data beside the checkout).
        progress: show a tqdm progress bar.
        precision: ``"auto"`` | ``"bf16"`` | ``"fp32"`` autocast for training steps
            (see :func:`resolve_precision`).
        sentiment_files: users' own labelled sentiment files, added to the
            tweets' train split (their dev share is split off the same way).
        text_column, label_column: column mapping of those files.
        label_map: ``"RAW=NAME,..."`` mapping their raw labels to
            negative / neutral / positive (default: ids 0-2 or the names).
    """

    epochs: int = 3
    seed: int = 13
    batch_size: int = 32
    max_length: int = 64
    eval_max_length: int = 128
    lr: float = 1e-4
    head_lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    dev_fraction: float = 0.1
    max_train_items: int | None = None
    threads: int = 2
    evals_per_epoch: int = 2
    patience: int = 3
    base_model: str | None = None
    data_dir: str | None = None
    progress: bool = True
    precision: str = "auto"
    sentiment_files: tuple[str, ...] = ()
    text_column: str = "text"
    label_column: str = "label"
    label_map: str | None = None


def resolve_precision(precision: str) -> str:
    """``"bf16"`` or ``"fp32"`` for training forward passes.

    ``"auto"`` picks bf16 autocast when oneDNN reports native bf16 support on
    this CPU (e.g. AVX512-BF16 / AMX: ~2.5x faster steps on the 2-core AMD EPYC
    build machine), else fp32. Master weights, optimiser state, the loss, dev
    evaluation and the exported model are always fp32.

    Raises:
        ValueError: unknown value.
    """
    import torch

    if precision not in ("auto", "bf16", "fp32"):
        raise ValueError(f"precision must be auto, bf16 or fp32, got {precision!r}")
    if precision != "auto":
        return precision
    try:
        ok = bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:  # pragma: no cover - private API may move
        ok = False
    return "bf16" if ok else "fp32"


@dataclass
class TaskData:
    """Train/dev data of one task."""

    task: str
    train: LabelledSet
    dev: LabelledSet
    train_ids: list[list[int]] = field(default_factory=list)
    dev_ids: list[list[int]] = field(default_factory=list)


@dataclass
class TrainResult:
    """Outcome of :func:`train`.

    Attributes:
        model: the MultiTaskModel with the selected (best dev) weights, in eval mode.
        tasks: per-task train/dev data (for baselines and reports).
        history: one dict per dev evaluation (step, epoch, losses, dev metrics).
        best: the selected evaluation's dict.
        wall_s: training wall time in seconds (data loading to best-weights restore).
        steps: optimisation steps actually run.
        precision: the resolved training precision (``"bf16"`` or ``"fp32"``).
    """

    model: Any
    tasks: dict[str, TaskData]
    history: list[dict[str, Any]]
    best: dict[str, Any]
    wall_s: float
    steps: int
    precision: str = "fp32"


def seed_everything(seed: int) -> None:
    """Seed python ``random``, numpy's legacy global RNG and torch."""
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def load_task_data(cfg: TrainConfig) -> dict[str, TaskData]:
    """Load both train files and split off the seeded, stratified dev sets.

    ``max_train_items`` keeps the first N items (per task) of a seeded shuffle of
    each side.
    """
    raw = {
        "sentiment": load_tweet_sentiment("train", cfg.data_dir),
        "topic": load_tweet_topic("train", cfg.data_dir),
    }
    user = load_user_sentiment(cfg.sentiment_files, cfg.text_column, cfg.label_column, parse_label_map(cfg.label_map))
    if user is not None:
        raw["sentiment"] = raw["sentiment"].concat(user, "sentiment_train")
        log.info("sentiment: %d user-labelled items added from %s", len(user), list(cfg.sentiment_files))
    out = {}
    rng = np.random.default_rng(cfg.seed)
    for task, ds in raw.items():
        keep, dev = hash_split(ds, cfg.dev_fraction, cfg.seed)
        if cfg.max_train_items is not None:
            keep = sorted(rng.permutation(keep)[: cfg.max_train_items].tolist())
            dev = sorted(rng.permutation(dev)[: cfg.max_train_items].tolist())
        out[task] = TaskData(task, ds.subset(keep, f"{task}_train"), ds.subset(dev, f"{task}_dev"))
        log.info("%s: %d train / %d dev items (%d rejected rows in source)", task, len(keep), len(dev), len(ds.rejected))
    return out


def make_batches(lengths: list[int], batch_size: int, rng: np.random.Generator, bucket: int = 50) -> list[list[int]]:
    """Shuffle, sort by length within chunks of ``bucket * batch_size`` items, cut into
    batches (the last one may be short). Batch order is shuffled by the caller."""
    perm = rng.permutation(len(lengths))
    batches: list[list[int]] = []
    chunk = bucket * batch_size
    for start in range(0, len(perm), chunk):
        part = sorted(perm[start : start + chunk].tolist(), key=lambda i: lengths[i])
        batches += [part[j : j + batch_size] for j in range(0, len(part), batch_size)]
    return batches


def linear_warmup_decay(warmup: int, total: int):
    """LR multiplier: ``step/warmup`` during warm-up, then ``(total-step)/(total-warmup)``, floored at 0."""

    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        return max(0.0, (total - step) / max(1, total - warmup))

    return f


def predict_torch(model, seqs: list[list[int]], task: str, batch_size: int = 128) -> np.ndarray:
    """Argmax label ids int64 [n] for ``task``'s head, length-sorted batches, no grad."""
    import torch

    model.eval()
    order = np.argsort([len(s) for s in seqs], kind="stable")
    pred = np.empty(len(seqs), dtype=np.int64)
    head = 0 if task == "sentiment" else 1
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            ids, mask = pad_batch([seqs[i] for i in idx])
            logits = model(torch.from_numpy(ids), torch.from_numpy(mask))[head]
            pred[idx] = logits.argmax(dim=1).numpy()
    return pred


def train(cfg: TrainConfig, run_dir: str | Path, tokenizer_path: str | Path | None = None) -> TrainResult:
    """Fine-tune encoder + heads jointly; keep the best dev checkpoint.

    Writes ``best.pt`` (state_dict), ``history.json`` and ``train_config.json``
    into ``run_dir``.

    Args:
        cfg: run configuration.
        run_dir: output folder for checkpoints and logs (created).
        tokenizer_path: ``tokenizer.json`` to use (default: the base model's).

    Raises:
        FileNotFoundError: data or base model missing.
        FloatingPointError: the loss became NaN/inf.
    """
    import torch
    from tqdm.auto import tqdm

    from ._model import base_model_dir, build_model

    t0 = time.perf_counter()
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "train_config.json").write_text(json.dumps(asdict(cfg), indent=2), encoding="utf-8")
    torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)

    base = Path(cfg.base_model) if cfg.base_model else base_model_dir()
    tok_train = load_tokenizer(tokenizer_path or base, cfg.max_length)
    tok_eval = load_tokenizer(tokenizer_path or base, cfg.eval_max_length)
    tasks = load_task_data(cfg)
    for td in tasks.values():
        td.train_ids = encode(tok_train, td.train.texts)
        td.dev_ids = encode(tok_eval, td.dev.texts)

    n_topic = len(tasks["topic"].train.label_names)
    model = build_model(base, n_sentiment=len(SENTIMENT_LABELS), n_topic=n_topic, attn_implementation="eager")

    decay, no_decay, heads = [], [], []
    for name, p in model.named_parameters():
        if name.startswith(("sentiment_head", "topic_head")):
            heads.append(p)
        elif p.ndim == 1 or "LayerNorm" in name or name.endswith(".bias"):
            no_decay.append(p)
        else:
            decay.append(p)
    opt = torch.optim.AdamW(
        [
            {"params": decay, "lr": cfg.lr, "weight_decay": cfg.weight_decay},
            {"params": no_decay, "lr": cfg.lr, "weight_decay": 0.0},
            {"params": heads, "lr": cfg.head_lr, "weight_decay": cfg.weight_decay},
        ]
    )
    per_epoch = sum(math.ceil(len(td.train_ids) / cfg.batch_size) for td in tasks.values())
    total = per_epoch * cfg.epochs
    warmup = int(round(cfg.warmup_ratio * total))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, linear_warmup_decay(warmup, total))
    eval_at = {int(round(per_epoch * (k + 1) / cfg.evals_per_epoch)) for k in range(cfg.evals_per_epoch)}
    log.info("steps: %d per epoch x %d epochs = %d (warm-up %d); dev eval at in-epoch steps %s",
             per_epoch, cfg.epochs, total, warmup, sorted(eval_at))

    precision = resolve_precision(cfg.precision)
    log.info("training precision: %s autocast (weights, optimiser and evaluation in fp32)", precision)
    rng = np.random.default_rng(cfg.seed + 1)
    loss_fn = torch.nn.CrossEntropyLoss()
    history: list[dict[str, Any]] = []
    best: dict[str, Any] | None = None
    best_state: dict[str, Any] | None = None
    since_best = 0
    step = 0
    ema = {t: None for t in TASKS}
    stop = False
    bar = tqdm(total=total, desc="train", unit="step", disable=not cfg.progress, mininterval=2.0)
    for epoch in range(cfg.epochs):
        plan: list[tuple[str, list[int]]] = []
        for task, td in tasks.items():
            plan += [(task, b) for b in make_batches([len(s) for s in td.train_ids], cfg.batch_size, rng)]
        order = rng.permutation(len(plan))
        model.train()
        for k, j in enumerate(order, start=1):
            task, idx = plan[j]
            td = tasks[task]
            ids, mask = pad_batch([td.train_ids[i] for i in idx])
            y = torch.tensor([td.train.labels[i] for i in idx], dtype=torch.long)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                logits = model(torch.from_numpy(ids), torch.from_numpy(mask))[0 if task == "sentiment" else 1]
            loss = loss_fn(logits.float(), y)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"non-finite loss at step {step} ({task})")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            step += 1
            lv = float(loss.detach())
            ema[task] = lv if ema[task] is None else 0.98 * ema[task] + 0.02 * lv
            bar.update(1)
            bar.set_postfix({t: f"{v:.3f}" for t, v in ema.items() if v is not None}, refresh=False)
            if step % 100 == 0:
                log.info("step %d/%d epoch %d loss_ema %s lr %.2e", step, total, epoch + 1,
                         {t: round(v, 4) for t, v in ema.items() if v is not None}, sched.get_last_lr()[0])
            if k in eval_at:
                rec = _dev_eval(model, tasks, cfg)
                rec.update(step=step, epoch=epoch + 1, epoch_fraction=round(k / per_epoch, 3),
                           loss_ema={t: v for t, v in ema.items()}, elapsed_s=round(time.perf_counter() - t0, 1))
                history.append(rec)
                improved = best is None or rec["score"] > best["score"]
                log.info("dev @ step %d: sentiment acc %.4f mF1 %.4f | topic acc %.4f mF1 %.4f | score %.4f%s",
                         step, rec["sentiment"]["accuracy"], rec["sentiment"]["macro_f1"],
                         rec["topic"]["accuracy"], rec["topic"]["macro_f1"], rec["score"],
                         "  (best)" if improved else "")
                if improved:
                    best, since_best = rec, 0
                    best_state = {k2: v.detach().clone() for k2, v in model.state_dict().items()}
                    torch.save(best_state, run_dir / "best.pt")
                else:
                    since_best += 1
                    if since_best >= cfg.patience:
                        log.info("early stop: %d evaluations without improvement", since_best)
                        stop = True
                        break
                model.train()
        if stop:
            break
    bar.close()
    assert best is not None and best_state is not None
    model.load_state_dict(best_state)
    model.eval()
    wall = time.perf_counter() - t0
    (run_dir / "history.json").write_text(json.dumps({"history": history, "best": best}, indent=2), encoding="utf-8")
    log.info("training done in %.1f s (%d steps); best dev score %.4f at step %d", wall, step, best["score"], best["step"])
    return TrainResult(model, tasks, history, best, wall, step, precision)


def _dev_eval(model, tasks: dict[str, TaskData], cfg: TrainConfig) -> dict[str, Any]:
    rec: dict[str, Any] = {}
    for task, td in tasks.items():
        pred = predict_torch(model, td.dev_ids, task)
        m = classification_metrics(td.dev.labels, pred, td.dev.label_names)
        rec[task] = {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "n": m["n"]}
    rec["score"] = float(np.mean([rec[t]["macro_f1"] for t in TASKS]))
    return rec
