#!/usr/bin/env python3
"""Wait until a Kafka broker answers a real client round trip.

Usage::

    wait_ready.py BOOTSTRAP [--timeout SECONDS] [--pid PID] [--log SERVER_LOG]

Repeatedly connects with kafka-python's ``KafkaAdminClient`` to ``BOOTSTRAP``
(``host:port``) and calls ``describe_cluster()``; the broker counts as ready once
that returns at least one broker and a controller id.  An open TCP port alone is
not enough: the request must be served.

The client negotiates API versions with the broker (``api_version`` is never
pinned: an old pin such as ``(0, 10, 1)`` selects request versions that Kafka 4.x
rejects).

Exit status:
    0  ready;
    1  not ready before the timeout (the last error is printed on stderr);
    2  usage error, or kafka-python is not installed;
    3  ``--pid`` was given and that process ended (the broker JVM died), or ``--log``
       was given and the broker logged a fatal startup error (after which Kafka 4.1
       can linger ~30 s before the JVM exits).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

#: Kafka 4.1 logs one of these when startup failed. After "Fatal error during broker
#: startup. Prepare to shutdown" the JVM can linger ~30 s before it exits.
FATAL_MARKERS = ("Fatal error during broker startup", "Fatal error during controller startup",
                 "Exiting Kafka due to fatal exception")


#: Seconds one connection + describe_cluster() attempt may take (a healthy local broker
#: answers in milliseconds).
PROBE_TIMEOUT_S = 3.0


def _pid_alive(pid: int) -> bool:
    """Return True if process ``pid`` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            # Field 3 (after the parenthesised command name) is the state.
            state = fh.read().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (OSError, IndexError):
        return True


def probe(bootstrap: str, timeout_s: float) -> dict:
    """Do one ``describe_cluster()`` round trip against ``bootstrap``.

    Args:
        bootstrap: ``host:port`` of the broker.
        timeout_s: upper bound in seconds for connecting and for the request.

    Returns:
        The cluster description (``brokers``, ``controller_id``, ``cluster_id``...).

    Raises:
        RuntimeError: the broker answered but reported no brokers or no controller.
        Exception: any kafka-python error (connection refused, timeout...).
    """
    from kafka.admin import KafkaAdminClient  # imported late: usage errors need no kafka

    timeout_ms = max(500, int(timeout_s * 1000))
    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap,
        client_id="finsentry-wait-ready",
        request_timeout_ms=timeout_ms,
        bootstrap_timeout_ms=timeout_ms,
        reconnect_backoff_ms=100,
        reconnect_backoff_max_ms=1000,
    )
    try:
        cluster = admin.describe_cluster()
    finally:
        admin.close()
    if not cluster.get("brokers"):
        raise RuntimeError(f"broker answered but lists no brokers: {cluster!r}")
    if cluster.get("controller_id", -1) is None or cluster.get("controller_id", -1) < 0:
        raise RuntimeError(f"broker answered but has no controller yet: {cluster!r}")
    return cluster


def _logged_fatal(log_path: Path | None) -> str | None:
    """Return the first fatal-startup log line of the broker log, or None."""
    if log_path is None:
        return None
    try:
        with log_path.open(encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if any(marker in line for marker in FATAL_MARKERS):
                    return line.strip()
    except OSError:
        pass
    return None


def wait_ready(
    bootstrap: str,
    timeout_s: float,
    pid: int | None = None,
    interval_s: float = 0.5,
    log_path: Path | None = None,
) -> int:
    """Poll ``bootstrap`` until it serves ``describe_cluster()``.

    Args:
        bootstrap: ``host:port`` of the broker.
        timeout_s: total seconds to wait.
        pid: if given, give up at once (exit code 3) when this process ends.
        interval_s: seconds to sleep between failed attempts.
        log_path: if given, give up at once (exit code 3) when this broker log
            contains Kafka's fatal-startup message.

    Returns:
        The process exit status described in the module docstring.
    """
    deadline = time.monotonic() + timeout_s
    last_error: BaseException | None = None
    attempts = 0
    while True:
        if pid is not None and not _pid_alive(pid):
            print(f"wait_ready: broker process {pid} exited before becoming ready", file=sys.stderr)
            return 3
        fatal = _logged_fatal(log_path)
        if fatal:
            print(f"wait_ready: broker startup failed: {fatal}", file=sys.stderr)
            return 3
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            print(
                f"wait_ready: {bootstrap} not ready after {timeout_s:.0f} s ({attempts} attempts); "
                f"last error: {last_error!r}",
                file=sys.stderr,
            )
            return 1
        attempts += 1
        try:
            # Short probes, so a dead JVM or a fatal log line is noticed quickly.
            probe(bootstrap, min(remaining, PROBE_TIMEOUT_S))
            return 0
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready yet"
            last_error = exc
        time.sleep(min(interval_s, max(0.0, deadline - time.monotonic())))


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description="Wait until a Kafka broker serves a describe_cluster() round trip.")
    parser.add_argument("bootstrap", help="broker address, host:port (e.g. 127.0.0.1:9092)")
    parser.add_argument("--timeout", type=float, default=90.0, help="seconds to wait (default 90)")
    parser.add_argument("--pid", type=int, default=None, help="stop waiting if this process (the broker JVM) ends")
    parser.add_argument("--log", type=Path, default=None, help="stop waiting if this broker log shows a fatal startup error")
    args = parser.parse_args(argv)
    if args.timeout <= 0:
        parser.error("--timeout must be positive")
    try:
        import kafka  # noqa: F401
    except ImportError:
        print(
            f"wait_ready: kafka-python is not installed for {sys.executable}; "
            "install it (pip install 'kafka-python>=3,<4') or set FINSENTRY_PYTHON",
            file=sys.stderr,
        )
        return 2
    # kafka-python logs every refused connection at WARNING/ERROR while the broker boots.
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    logging.getLogger("kafka").addHandler(logging.NullHandler())
    return wait_ready(args.bootstrap, args.timeout, args.pid, log_path=args.log)


if __name__ == "__main__":
    sys.exit(main())
