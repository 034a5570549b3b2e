"""The ``finsentry`` command line.

Commands: ``run`` (the daemon), ``replay`` (a historical feed into Kafka),
``score`` (texts from the command line), ``webhook-sink`` (a local alert
receiver), ``alerts`` (list and re-send the outbox's deliveries),
``train`` / ``evaluate`` (the offline trainer, needs the ``[train]`` extra
for ``train``), ``demo`` (everything end to end on a local broker),
``config check`` (validate and print the effective configuration, secrets
masked), ``backtest`` (a feed through the pipeline in process or via Kafka,
with an event study and a report).
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from finsentry import __version__
from finsentry.config import ConfigError, Settings, load_settings
from finsentry.gc_tuning import freeze_heap, tune_gc
from finsentry.logs import setup_logging

if TYPE_CHECKING:
    from alerts import Outbox

__all__ = ["main"]

log = logging.getLogger("finsentry")


def _utc(text: str) -> datetime:
    """Parse an ISO 8601 time for --from/--to; a naive one is taken as UTC and said so in --help."""
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="finsentry", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"finsentry {__version__}")
    parser.add_argument("--config", type=Path, help="TOML config file (default: $FINSENTRY_CONFIG)")
    parser.add_argument("--log-level", default=None, type=str.upper, choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                        help="DEBUG, INFO, WARNING, ERROR (default: the config's log_level)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the daemon: consume, score, window, alert")
    run.add_argument("--idle-exit", type=float, default=None, metavar="S",
                     help="exit after S seconds without records once caught up (default: run forever)")

    rep = sub.add_parser("replay", help="produce a historical feed into the raw topic")
    rep.add_argument("file", type=Path, help="feed file (Benzinga, CNBC, Guardian, Reuters CSV; RSS/Atom XML; "
                     "JSONL; CSV; Parquet; StockNet folder)")
    rep.add_argument("--format", dest="fmt", default=None, help="feed format (default: detected)")
    rep.add_argument("--speed", type=float, default=None, help="speed factor (default: as fast as possible)")
    rep.add_argument("--limit", type=int, default=None, help="at most N items")
    rep.add_argument("--from", dest="start", type=_utc, default=None, help="first event time (ISO 8601; naive = UTC)")
    rep.add_argument("--to", dest="end", type=_utc, default=None, help="end event time, exclusive")
    rep.add_argument("--topic", default=None, help="target topic (default: kafka.raw_topic)")
    rep.add_argument("--heartbeat-every", type=float, default=60.0, metavar="S",
                     help="heartbeat records into every partition each S seconds of feed time (0: none)")

    ev = sub.add_parser(
        "eval-detector", help="recall, false alerts and delay of the detector on real feeds",
        description="Replay a real feed as background through the configured windows and detector, inject bursts "
                    "of real negative headlines (known size, time, ticker), and report per burst size the recall, "
                    "the false alerts per ticker-day on the background, and the median delay from a burst's END to "
                    "the alert (negative when the alert comes before the burst is over).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ev.add_argument("--background", type=Path, default=None, help="background feed (default: the Benzinga file)")
    ev.add_argument("--bearish", type=Path, default=None, help="CSV of labelled tweets (default: sent_valid.csv)")
    ev.add_argument("--sizes", type=_int_list, default=(3, 5, 8, 12), help="burst sizes, comma-separated")
    ev.add_argument("--bursts", type=_positive_int, default=30, help="bursts per size")
    ev.add_argument("--burst-minutes", type=_positive_int, default=30, help="each burst's span, minutes")
    ev.add_argument("--seed", type=int, default=7, help="seed of the burst plan")
    ev.add_argument("--out", type=Path, default=None, help="write the JSON here")

    beat = sub.add_parser("heartbeat", help="write wall-clock heartbeat records into every raw-topic partition")
    beat.add_argument("--every", type=float, default=10.0, metavar="S", help="seconds between heartbeats")
    beat.add_argument("--count", type=int, default=None, help="stop after N rounds (default: until Ctrl-C)")

    score = sub.add_parser("score", help="score texts with the model and print labels and probabilities")
    score.add_argument("texts", nargs="+", help="texts to score")
    score.add_argument("--model", type=Path, default=None, help="model folder or registry (default: model.path)")
    score.add_argument("--json", action="store_true", help="print JSON lines")

    sink = sub.add_parser("webhook-sink", help="a local webhook receiver that prints and stores alerts")
    sink.add_argument("--host", default="127.0.0.1")
    sink.add_argument("--port", type=int, default=8765)
    sink.add_argument("--out", type=Path, default=Path("var/alerts.jsonl"), help="JSONL file of received alerts")
    sink.add_argument("--secret-env", metavar="VAR", default=None,
                      help="verify Standard Webhooks signatures with the secret(s) in this environment variable")
    sink.add_argument("--secret-file", type=Path, metavar="PATH", default=None,
                      help="... or in this file (whitespace-separated; several = rotation)")
    sink.add_argument("--tolerance", type=float, default=300.0, metavar="S",
                      help="largest webhook-timestamp difference accepted, seconds, <= 300 (default 300)")

    alerts = sub.add_parser("alerts", help="list and re-send alert deliveries in the outbox (webhooks.outbox_path)")
    alerts_sub = alerts.add_subparsers(dest="alerts_command", required=True, metavar="ACTION")
    alerts_list = alerts_sub.add_parser("list", help="deliveries in the outbox, oldest first")
    alerts_list.add_argument("--dead", action="store_true", help="only the dead letters")
    redeliver = alerts_sub.add_parser("redeliver", help="queue dead letters again (the running daemon sends them)")
    which = redeliver.add_mutually_exclusive_group(required=True)
    which.add_argument("alert_id", nargs="?", help="the alert whose dead letters to re-send")
    which.add_argument("--all-dead", action="store_true", help="every dead letter")
    enable = alerts_sub.add_parser("enable", help="re-enable an endpoint disabled by an HTTP 410 answer")
    enable.add_argument("endpoint", help="endpoint name or id (see `finsentry alerts list`)")

    demo = sub.add_parser("demo", help="local broker + replay of real news + daemon + webhook receiver")
    demo.add_argument("--workdir", type=Path, default=Path("var/demo"), help="where outputs are written")
    demo.add_argument("--feed", type=Path, default=None, help="feed to replay (default: the Benzinga sample)")
    demo.add_argument("--limit", type=int, default=None, help="replay at most N items")
    demo.add_argument("--window-minutes", type=float, default=1440.0,
                      help="tumbling window size for the demo (default: one day; the sample feed is sparse)")
    demo.add_argument("--min-negative", type=int, default=5, help="alert threshold: negative items per window")
    demo.add_argument("--min-neg-share", type=float, default=0.6, help="alert threshold: negative share per window")

    refresh = sub.add_parser("refresh", help="retrain on the training.refresh_cron schedule, promote if better")
    refresh.add_argument("--now", action="store_true", help="run one refresh now and exit")

    _add_backtest_parser(sub)

    bench = sub.add_parser("bench", help="scoring throughput: finsentry vs a HF pipeline, end to end, vs the CPU limit")
    bench.add_argument("--n", type=int, default=2000, help="Benzinga headlines to score (default 2000)")
    bench.add_argument("--hf-n", type=int, default=500, help="of which compared with the HF pipeline (default 500)")
    bench.add_argument("--repeats", type=int, default=3, help="interleaved rounds; medians reported (default 3)")
    bench.add_argument("--batch-sizes", type=_int_list, default=(1, 8, 32, 64, 256), help="finsentry micro-batches")
    bench.add_argument("--hf-batch-sizes", type=_int_list, default=(1, 8, 32, 64), help="HF pipeline batch sizes")
    bench.add_argument("--train-run", type=Path, default=None, help="training run with best.pt (the HF side)")
    bench.add_argument("--bootstrap", default=None, help="Kafka broker for the end-to-end part (default: start one)")
    bench.add_argument("--device", choices=("cpu", "gpu", "auto"), default="cpu")
    bench.add_argument("--sub-batch", type=int, default=0, help="rows per ONNX Runtime call (default: the scorer's)")
    bench.add_argument("--no-hf", action="store_true", help="skip the HF pipeline")
    bench.add_argument("--no-e2e", action="store_true", help="skip the end-to-end run through Kafka")
    bench.add_argument("--json", type=Path, default=Path("var/bench.json"), help="where to write the JSON record")

    config = sub.add_parser("config", help="validate and print the effective configuration (secrets masked)")
    config.add_argument("action", nargs="?", choices=["check"], default="check",
                        help="check (the default): validate, check the model folder and webhook secrets, print")
    sub.add_parser("train", help="fine-tune, evaluate and export a model (see finsentry train --help)", add_help=False)
    sub.add_parser("evaluate", help="evaluate a model folder (see finsentry evaluate --help)", add_help=False)
    return parser


def _add_backtest_parser(sub: argparse._SubParsersAction) -> None:
    bt = sub.add_parser("backtest", help="replay a historical feed through the pipeline; alerts, event study, report")
    bt.add_argument("feed", type=Path, help="feed file or StockNet folder (any `replay` format)")
    bt.add_argument("--out", type=Path, required=True, help="output folder (alerts, scored items, summary, report)")
    bt.add_argument("--format", dest="fmt", default=None, help="feed format (default: detected)")
    bt.add_argument("--from", dest="start", type=_utc, default=None, help="first event time (ISO 8601; naive = UTC)")
    bt.add_argument("--to", dest="end", type=_utc, default=None, help="end event time, exclusive")
    bt.add_argument("--prices", type=Path, default=None,
                    help="price folder (<TICKER>.csv or <TICKER>_historical_data.csv) or one CSV: event study")
    bt.add_argument("--market", type=Path, default=None, help="market index CSV (default: the shared S&P 500 file)")
    bt.add_argument("--cache-dir", type=Path, default=Path("var/score-cache"), help="score cache folder")
    bt.add_argument("--via-kafka", action="store_true",
                    help="also replay through Kafka and the daemon and check the alerts are identical")
    bt.add_argument("--bootstrap", default=None,
                    help="broker for --via-kafka (default: kafka.bootstrap if it answers, else a local broker)")
    bt.add_argument("--sweep", action="append", default=[], metavar="KEY=V1,V2",
                    help="compare settings, e.g. detector.min_negative=3,5,8 (repeat for a grid)")
    bt.add_argument("--no-report", action="store_true", help="skip report.html and the plots")


def _cmd_backtest(args: argparse.Namespace, settings: Settings) -> int:
    from finsentry.backtest import BacktestOptions, parse_sweep, run_backtest

    opts = BacktestOptions(
        feed=args.feed, out_dir=args.out, fmt=args.fmt, start=args.start, end=args.end, prices=args.prices,
        market=args.market, cache_dir=args.cache_dir, via_kafka=args.via_kafka, bootstrap=args.bootstrap,
        sweep=parse_sweep(args.sweep), report=not args.no_report,
    )
    result = run_backtest(opts, settings)
    s = result.summary
    print(f"{s['feed']['items']} items ({s['feed']['rejected']} rejected), {s['pipeline']['windows_closed']} windows, "
          f"{s['pipeline']['alerts']} alerts -> {result.out_dir}")
    if "event_study" in s and not s["event_study"]["events"]:
        print("event study: 0 events (no alert on a ticker with enough prices); see summary.json")
    elif "event_study" in s:
        e = s["event_study"]
        print(f"event study: {e['events']} events, mean CAR[0,+1] {e['mean_car_0_1']:.4%} (t {e['t_car_0_1']:.2f}), "
              f"mean CAR[0,+5] {e['mean_car_0_5']:.4%} (t {e['t_car_0_5']:.2f}), precision {e['precision']:.3f}, "
              f"recall {e['recall']:.3f}, base rate {e['base_rate']:.3f}")
    if "via_kafka" in s:
        v = s["via_kafka"]
        print(f"via Kafka: {v['alerts']} alerts, identical to in-process: {v['identical']}")
        if not v["identical"]:
            print(f"finsentry backtest: the Kafka run's alerts differ from the in-process ones (only in process: "
                  f"{v['only_in_process'][:5]}, only via Kafka: {v['only_via_kafka'][:5]}); see summary.json",
                  file=sys.stderr)
            return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``finsentry`` script; returns the exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] in ("train", "evaluate"):
        import training  # deferred: the trainer is optional and heavy

        setup_logging("INFO")
        entry = training.train_main if args_list[0] == "train" else training.evaluate_main
        return entry(args_list[1:])
    args = _parser().parse_args(args_list)
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"finsentry: {exc}", file=sys.stderr)
        return 2
    setup_logging(args.log_level or settings.log_level, settings.log_format)
    tune_gc()
    handler = _COMMANDS[args.command]
    try:
        return handler(args, settings)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a clear one-line error for the user; details at DEBUG (a daemon's: at ERROR)
        log.log(logging.ERROR if args.command == "run" else logging.DEBUG, "%s failed", args.command, exc_info=True)
        print(f"finsentry {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


def _cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from finsentry.daemon import Daemon

    daemon = Daemon(settings)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: daemon.stop())
    freeze_heap()  # model, tokenizer, clients: long-lived from here on
    stats = daemon.run(idle_exit_s=args.idle_exit)
    print(
        f"consumed {stats.consumed}, scored {stats.scored}, dead-lettered {stats.dead_lettered}, "
        f"late {stats.late}, windows closed {stats.windows_closed}, "
        f"alerts {stats.alerts_firing}, resolved {stats.alerts_resolved}, "
        f"alert messages claimed by another daemon {daemon.claims.claimed_elsewhere}"
    )
    return 0


def _cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    from tqdm import tqdm

    from finsentry.broker import create_topics
    from ingest import make_producer, read_feed, replay_items

    feed = read_feed(args.file, args.fmt, start=args.start, end=args.end, limit=args.limit)
    for rej in feed.rejected[:20]:
        log.warning("rejected line %s: %s (%s)", rej.line, rej.reason, rej.raw[:80])
    if len(feed.rejected) > 20:
        log.warning("... %d rejected rows in all", len(feed.rejected))
    k = settings.kafka
    topic = args.topic or k.raw_topic
    if k.create_topics:
        create_topics(k.bootstrap, {topic: k.partitions}, log_append_time={topic})
    producer = make_producer(k.bootstrap)
    try:
        with tqdm(total=len(feed.items), unit="item", desc="replay", disable=None) as bar:
            every_ms = round(args.heartbeat_every * 1000) or None
            partitions = (producer.partitions_for(topic) or set()) if every_ms else set()
            stats = replay_items(feed.items, producer, topic, speed=args.speed, on_sent=lambda _: bar.update(),
                                 heartbeat_every_ms=every_ms, partitions=partitions)
    finally:
        producer.close()
    print(f"replayed {stats.sent} items ({feed.format}) to {topic} in {stats.seconds:.1f} s; "
          f"{len(feed.rejected)} rows rejected; {stats.heartbeats} heartbeats")
    return 0


def _cmd_score(args: argparse.Namespace, settings: Settings) -> int:
    from inference import SENTIMENT_LABELS, Scorer

    empty = [t for t in args.texts if not t.strip()]
    if empty:  # as the pipeline does: no text, no score (its records get reason empty_text)
        print(f"finsentry score: {len(empty)} empty or whitespace-only text(s): nothing to score (empty_text)",
              file=sys.stderr)
        return 2
    scorer = Scorer(args.model or settings.model.path, settings.model.device, settings.model.intra_op_threads)
    scores = scorer.score_texts(args.texts)
    for i, text in enumerate(args.texts):
        probs = {label: round(float(p), 4) for label, p in zip(SENTIMENT_LABELS, scores.sentiment[i])}
        label = max(probs, key=probs.__getitem__)
        topic = None
        if scores.topic is not None and scorer.folder.topic_labels:
            topic = scorer.folder.topic_labels[int(scores.topic[i].argmax())]
        if args.json:
            print(json.dumps({"text": text, "label": label, "probabilities": probs, "topic": topic,
                              "model_version": scorer.version}))
        else:
            shown = "  ".join(f"{k}={v:.3f}" for k, v in probs.items())
            print(f"{label:<8}  {shown}  topic={topic}  | {text}")
    return 0


def _cmd_sink(args: argparse.Namespace, settings: Settings) -> int:
    from alerts import load_secrets, serve_forever

    secrets = load_secrets(args.secret_env, args.secret_file)
    serve_forever(args.host, args.port, args.out, echo=True, secrets=secrets, tolerance_s=args.tolerance)
    return 0


def _cmd_alerts(args: argparse.Namespace, settings: Settings) -> int:
    from alerts import Outbox

    path = settings.webhooks.outbox_path
    if not path.is_file():
        print(f"no outbox at {path} (nothing was queued yet, or set webhooks.outbox_path)", file=sys.stderr)
        return 1
    outbox = Outbox(path)
    try:
        if args.alerts_command == "list":
            return _alerts_list(outbox, args.dead)
        if args.alerts_command == "enable":
            n = outbox.enable_endpoint(args.endpoint)
            print(f"enabled {n} endpoint(s) named {args.endpoint!r}" if n else f"no disabled endpoint {args.endpoint!r}")
            return 0 if n else 1
        n = outbox.redeliver(None if args.all_dead else args.alert_id)
        for name, reason in outbox.disabled_endpoints().items():
            print(f"warning: endpoint {name} is disabled ({reason}); `finsentry alerts enable {name}` first",
                  file=sys.stderr)
        if not n:
            print("no dead letter " + ("in the outbox" if args.all_dead else f"for alert {args.alert_id}"))
            return 1
        print(f"queued {n} dead letter(s) again; a running daemon sends them within seconds, else at its next start")
        return 0
    finally:
        outbox.close()


def _alerts_list(outbox: Outbox, dead_only: bool) -> int:
    entries = outbox.entries(dead_only=dead_only)
    for name, reason in outbox.disabled_endpoints().items():
        print(f"# endpoint {name} DISABLED: {reason}")
    print(f"{'state':<9} {'alert_id':<24} {'status':<8} {'endpoint':<28} {'tries':>5} {'last':>4}  "
          f"{'updated (UTC)':<19}  detail")
    for e in entries:
        updated = datetime.fromtimestamp(e.updated_at, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        detail = e.reason or e.last_error or (f"grouped into {e.grouped_into}" if e.grouped_into else "")
        print(f"{e.state:<9} {e.alert_id:<24} {e.status:<8} {e.endpoint:<28} {e.attempts:>5} "
              f"{e.last_status or '-':>4}  {updated}  {detail}")
    counts = outbox.counts()
    print(f"# {len(entries)} shown; in the outbox: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    return 0


def _cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from finsentry.demo import run_demo

    run_demo(
        settings,
        workdir=args.workdir,
        feed=args.feed,
        limit=args.limit,
        window_minutes=args.window_minutes,
        min_negative=args.min_negative,
        min_neg_share=args.min_neg_share,
    )
    return 0


def _cmd_refresh(args: argparse.Namespace, settings: Settings) -> int:
    from apscheduler.schedulers.blocking import BlockingScheduler

    from training import cron_trigger, run_refresh, schedule_refresh

    t = settings.training

    def once() -> int:
        return run_refresh(t.registry, t.refresh_data_dir, t.train_args)

    if args.now:
        return once()
    if not t.refresh_cron:
        print("finsentry refresh: set training.refresh_cron (or pass --now)", file=sys.stderr)
        return 2
    trigger = cron_trigger(t.refresh_cron)
    scheduler = BlockingScheduler(timezone="UTC")
    stats = schedule_refresh(scheduler, trigger, once, t.misfire_grace_s)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: scheduler.shutdown(wait=False))
    log.info("model refresh scheduled: %s (UTC); next run %s", t.refresh_cron,
             trigger.get_next_fire_time(None, datetime.now(timezone.utc)))
    scheduler.start()
    print(f"refresh runs {stats.runs}, failures {stats.failures}, missed {stats.missed}")
    return 0


def _positive_int(text: str) -> int:
    """``"30"`` -> ``30``; argparse turns the ValueError into a usage error."""
    value = int(text)
    if value < 1:
        raise ValueError(f"expected a positive integer, got {text!r}")
    return value


def _int_list(text: str) -> tuple[int, ...]:
    """``"1,8,32"`` -> ``(1, 8, 32)``; argparse turns the ValueError into a usage error."""
    values = tuple(int(v) for v in text.split(",") if v.strip())
    if not values or min(values) < 1:
        raise ValueError(f"expected positive integers separated by commas, got {text!r}")
    return values


def _cmd_bench(args: argparse.Namespace, settings: Settings) -> int:
    import json

    from finsentry.bench import BenchConfig, format_table, run_bench

    cfg = BenchConfig(model=settings.model.path, device=args.device, n=args.n, hf_n=min(args.hf_n, args.n),
                      repeats=args.repeats, batch_sizes=args.batch_sizes, hf_batch_sizes=args.hf_batch_sizes,
                      bootstrap=args.bootstrap, e2e=not args.no_e2e, hf=not args.no_hf,
                      sub_batch=args.sub_batch)
    if args.train_run is not None:
        cfg.train_run = args.train_run
    result = run_bench(cfg)
    print(format_table(result))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"JSON written to {args.json}")
    return 0


def _cmd_eval_detector(args: argparse.Namespace, settings: Settings) -> int:
    from finsentry.demo import default_data_dir
    from finsentry.eval_detector import evaluate_detector, format_table, write_result

    data = default_data_dir()
    background = args.background or data / "massive_stock_news_analyst_ratings_partial" / "analyst_ratings_processed.csv"
    bearish = args.bearish or data / "twitter_financial_news_sentiment" / "sent_valid.csv"
    sizes = tuple(args.sizes)
    result = evaluate_detector(settings, background, bearish, sizes, args.bursts, args.burst_minutes, args.seed)
    if args.out:
        write_result(result, args.out)
    print(format_table(result.doc))
    bg = result.doc["background"]
    print(f"background: {bg['items']} items, {bg['ticker_days']} ticker-days, {bg['false_alerts']} alerts")
    return 0


def _cmd_heartbeat(args: argparse.Namespace, settings: Settings) -> int:
    import time

    from kafka import KafkaConsumer

    from ingest import HEARTBEAT_KEY, heartbeat_value, make_producer

    k = settings.kafka
    probe = KafkaConsumer(bootstrap_servers=k.bootstrap, group_id=None, enable_auto_commit=False)
    try:  # one metadata fetch: a missing topic would make the producer wait 60 s, then time out
        exists = k.raw_topic in probe.topics()
    finally:
        probe.close()
    if not exists:
        print(f"finsentry heartbeat: raw topic {k.raw_topic!r} (kafka.raw_topic) does not exist on {k.bootstrap}: "
              "start the daemon first (it creates its topics) or create it", file=sys.stderr)
        return 2
    producer = make_producer(k.bootstrap)
    rounds = 0
    try:
        while args.count is None or rounds < args.count:
            now_ms = time.time_ns() // 1_000_000  # the live clock: this command is the wall-clock edge
            for partition in sorted(producer.partitions_for(k.raw_topic) or ()):
                producer.send(k.raw_topic, key=HEARTBEAT_KEY, value=heartbeat_value(now_ms), partition=partition,
                              timestamp_ms=now_ms)
            producer.flush()
            rounds += 1
            if args.count is None or rounds < args.count:
                time.sleep(args.every)
    finally:
        producer.close()
    print(f"sent {rounds} heartbeat rounds to {k.raw_topic}")
    return 0


def _cmd_config(args: argparse.Namespace, settings: Settings) -> int:
    """Print the effective configuration (secrets masked), then check what loading alone cannot."""
    from finsentry.ops import mask_secrets

    print(json.dumps(mask_secrets(settings.model_dump(mode="json")), indent=2))
    problems = _config_problems(settings)
    for problem in problems:
        print(f"finsentry config check: {problem}", file=sys.stderr)
    print("configuration OK" if not problems else f"{len(problems)} problem(s)", file=sys.stderr)
    return 0 if not problems else 2


def _config_problems(settings: Settings) -> list[str]:
    """Checks beyond the schema: the model folder loads (manifest verified), webhook secrets are set."""
    from alerts import load_secrets
    from finsentry.ops import mask_url
    from inference import ModelFolder

    problems: list[str] = []
    try:
        ModelFolder.load(settings.model.path)
    except Exception as exc:
        problems.append(f"model.path: {exc}")
    endpoints = settings.webhooks.all_endpoints()
    for endpoint in endpoints:
        try:
            load_secrets(endpoint.secret_env, endpoint.secret_file)
        except Exception as exc:
            problems.append(f"webhook {endpoint.name or mask_url(endpoint.url)}: {exc}")
    if settings.jobs.enabled and settings.jobs.digest_cron and not any(e.format in ("native", "slack")
                                                                       for e in endpoints):
        problems.append("jobs.digest_cron: set, but no native or slack webhook endpoint takes the digest")
    return problems


_COMMANDS = {
    "run": _cmd_run,
    "backtest": _cmd_backtest,
    "replay": _cmd_replay,
    "score": _cmd_score,
    "webhook-sink": _cmd_sink,
    "alerts": _cmd_alerts,
    "demo": _cmd_demo,
    "refresh": _cmd_refresh,
    "config": _cmd_config,
    "bench": _cmd_bench,
    "heartbeat": _cmd_heartbeat,
    "eval-detector": _cmd_eval_detector,
}

if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
