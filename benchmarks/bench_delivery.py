"""Webhook delivery figures: outbox write rate, delivery throughput, outage recovery.

Everything runs on this machine over loopback. The receiver is a separate
``finsentry webhook-sink`` process that verifies every Standard Webhooks
signature (so the sender's work and the receiver's do not share a GIL);
alerts are signed and in the native format.

1. ``put``: alerts/s written to the outbox (one fsync'd SQLite transaction each).
2. ``throughput``: alerts/s delivered to one receiver by one endpoint worker,
   from a pre-filled outbox to the last "delivered" mark (keep-alive HTTP/1.1,
   sequential: one request in flight per endpoint).
3. ``outage``: the receiver is down while alerts are queued and retried; then
   the delivery service is restarted (new outbox object and workers on the same
   file) with the receiver up: seconds until all are delivered, and the
   receiver's count of received and duplicate messages.

Usage::

    python benchmarks/bench_delivery.py [--n 2000] [--runs 3] [--outage-n 200] [--json]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import httpx  # noqa: E402
from prometheus_client import CollectorRegistry  # noqa: E402

from alerts import (  # noqa: E402
    Alert,
    DeliveryMetrics,
    DeliveryService,
    Endpoint,
    Evidence,
    Outbox,
    RetryPolicy,
    ThresholdDetector,
    WindowResult,
    generate_secret,
)

START_MS = 1_704_186_000_000


def _alerts(n: int, tag: str) -> list[Alert]:
    detector = ThresholdDetector(5, 0.6)
    out = []
    for i in range(n):
        key = f"{tag}{i:05d}"
        window = WindowResult(
            key_type="ticker", key=key, start_ms=START_MS, end_ms=START_MS + 3_600_000,
            n=8, n_negative=6, n_neutral=2, n_positive=0, neg_share=0.75, mean_score=-0.55,
            evidence=tuple(Evidence(item_id=f"{key}-{j}", title=f"{key} shares fall after guidance cut {j}",
                                    p_negative=0.9 - j / 100) for j in range(6)),
            model_versions=("bench",),
        )
        alert = detector.evaluate(window)
        assert alert is not None
        out.append(alert)
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Sink:
    """``finsentry webhook-sink`` in a child process, verifying signatures."""

    def __init__(self, port: int, secret: str, workdir: Path) -> None:
        env = {**os.environ, "BENCH_SECRET": secret, "PYTHONPATH": str(REPO_ROOT)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "finsentry", "--log-level", "ERROR", "webhook-sink", "--port", str(port),
             "--secret-env", "BENCH_SECRET", "--out", str(workdir / f"sink-{port}.jsonl")],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, cwd=workdir,
        )
        self.url = f"http://127.0.0.1:{port}/alerts"
        if not _wait(lambda: _healthy(port), 30):
            self.proc.kill()
            raise RuntimeError("webhook-sink did not start")

    def stop(self) -> tuple[int, int, int]:
        """Stop the sink; returns (received, duplicates, rejected) from its closing line."""
        self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=30)
        last = [ln for ln in err.splitlines() if "received" in ln][-1]
        # "webhook sink stopping: N received, D duplicate(s), R rejected"
        parts = last.split(":", 1)[1].split(",")
        return tuple(int(p.strip().split(" ")[0]) for p in parts)  # type: ignore[return-value]


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _wait(predicate: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def bench_put(workdir: Path, n: int) -> float:
    """Alerts/s written to the outbox (one endpoint queued per alert)."""
    outbox = Outbox(workdir / "put.sqlite", [Endpoint("http://127.0.0.1:9/x")])
    alerts = _alerts(n, "P")
    t0 = time.perf_counter()
    for alert in alerts:
        outbox.put(alert)
    elapsed = time.perf_counter() - t0
    outbox.close()
    return n / elapsed


def bench_throughput(workdir: Path, n: int, run: int) -> dict[str, float]:
    """Alerts/s from a pre-filled outbox to one signature-verifying receiver."""
    secret = generate_secret()
    sink = _Sink(_free_port(), secret, workdir)
    try:
        endpoint = Endpoint(sink.url, name="bench", secrets=(secret,))
        outbox = Outbox(workdir / f"tp{run}.sqlite", [endpoint])
        for alert in _alerts(n, f"R{run}x"):
            outbox.put(alert)
        metrics = DeliveryMetrics(CollectorRegistry())
        t0 = time.perf_counter()
        service = DeliveryService(outbox, RetryPolicy((0, 0.1, 1)), metrics, poll_s=0.05).start()
        ok = _wait(lambda: outbox.counts().get("delivered", 0) == n, 600)
        elapsed = time.perf_counter() - t0
        service.close()
    finally:
        received, duplicates, rejected = sink.stop()
    if not ok:
        raise RuntimeError("throughput run did not deliver everything")
    return {"alerts_per_s": n / elapsed, "seconds": elapsed, "received": received,
            "duplicates": duplicates, "rejected": rejected}


def bench_outage(workdir: Path, n: int, outage_s: float) -> dict[str, float]:
    """Receiver down while n alerts are queued; then a restart with the receiver up."""
    secret = generate_secret()
    port = _free_port()
    endpoint = Endpoint(f"http://127.0.0.1:{port}/alerts", name="outage", secrets=(secret,), connect_timeout_s=1)
    # A compressed schedule, then a long wait (no jitter: full jitter could make that wait short).
    policy = RetryPolicy((0, 0.2, 0.5, 1, 3600), cap_s=3600, jitter=False)
    path = workdir / "outage.sqlite"
    metrics = DeliveryMetrics(CollectorRegistry())
    service = DeliveryService(Outbox(path, [endpoint]), policy, metrics, poll_s=0.05).start()
    alerts = _alerts(n, "O")
    t0 = time.perf_counter()
    for alert in alerts:  # spread over the first half of the outage
        service.outbox.put(alert)
        time.sleep(outage_s / 2 / n)
    time.sleep(max(0.0, outage_s - (time.perf_counter() - t0)))
    during = service.outbox.counts()
    attempts_during = sum(e.attempts for e in service.outbox.entries())
    failed_during = metrics.value("finsentry_webhook_failed_total", endpoint="outage", reason="connect_error")
    service.close()

    sink = _Sink(port, secret, workdir)
    try:
        t1 = time.perf_counter()
        restarted = DeliveryService(Outbox(path, [endpoint]), policy, DeliveryMetrics(CollectorRegistry()),
                                    poll_s=0.05).start()
        ok = _wait(lambda: restarted.outbox.counts().get("delivered", 0) == n, 120)
        recovery = time.perf_counter() - t1
        restarted.close()
        again = DeliveryService(Outbox(path, [endpoint]), policy, DeliveryMetrics(CollectorRegistry()),
                                poll_s=0.05).start()  # a second restart must send nothing
        time.sleep(1.0)
        again.close()
    finally:
        received, duplicates, rejected = sink.stop()
    if not ok:
        raise RuntimeError("outage run did not deliver everything after the restart")
    return {
        "alerts": n, "outage_s": outage_s, "pending_at_restart": during.get("pending", 0),
        "delivered_during_outage": during.get("delivered", 0), "attempts_during_outage": attempts_during,
        "connect_errors_during_outage": failed_during, "recovery_s": recovery, "received": received,
        "duplicates": duplicates, "rejected": rejected, "lost": n - received + duplicates,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="alerts per throughput run")
    parser.add_argument("--runs", type=int, default=3, help="throughput runs (median reported)")
    parser.add_argument("--outage-n", type=int, default=200, help="alerts queued during the outage")
    parser.add_argument("--outage-s", type=float, default=3.0, help="seconds the receiver is down")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the outage run would log one warning per failed attempt
    with tempfile.TemporaryDirectory(prefix="bench-delivery-") as tmp:
        workdir = Path(tmp)
        put_rate = bench_put(workdir, min(args.n, 1000))
        runs = [bench_throughput(workdir, args.n, r) for r in range(args.runs)]
        outage = bench_outage(workdir, args.outage_n, args.outage_s)
    result = {
        "machine": f"{platform.node()} {os.cpu_count()} cores, Python {platform.python_version()}",
        "outbox_put_per_s": round(put_rate, 1),
        "delivery_alerts_per_s_median": round(statistics.median(r["alerts_per_s"] for r in runs), 1),
        "delivery_runs": [{k: round(v, 3) for k, v in r.items()} for r in runs],
        "outage": {k: round(v, 3) if isinstance(v, float) else v for k, v in outage.items()},
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"machine: {result['machine']}")
        print(f"outbox put (fsync per alert):       {result['outbox_put_per_s']:.0f} alerts/s")
        print(f"delivery, 1 signed native receiver: {result['delivery_alerts_per_s_median']:.0f} alerts/s "
              f"(median of {args.runs} x {args.n}; runs: "
              + ", ".join(f"{r['alerts_per_s']:.0f}" for r in runs) + ")")
        o = result["outage"]
        print(f"outage: {o['alerts']} alerts queued over {o['outage_s']} s with the receiver down -> "
              f"{o['pending_at_restart']} pending, {o['attempts_during_outage']} attempts; after restart all "
              f"delivered in {o['recovery_s']:.2f} s; received {o['received']}, duplicates {o['duplicates']}, "
              f"lost {o['lost']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
