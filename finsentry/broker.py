"""Local single-node Apache Kafka broker for the demo and the integration tests.

This module is a thin, typed layer over ``deploy/kafka/broker.sh``, which assembles
Kafka 4.1.1 from Maven Central jars (cached under ``$FINSENTRY_KAFKA_HOME``, default
``~/.cache/finsentry/kafka-4.1.1``) and runs it with plain ``java`` as a combined KRaft
broker+controller on ``127.0.0.1``. Each broker gets a fresh data directory inside its
run directory; :meth:`LocalBroker.stop` ends the JVM and deletes the run directory.
:meth:`LocalBroker.halt` ends the JVM but keeps the run directory, and
:meth:`LocalBroker.resume` starts it again on the same data and ports (fault tests).

Example::

    with LocalBroker() as broker:
        create_topics(broker.bootstrap, {"news.raw": 4}, log_append_time={"news.raw"})
        ...

Importing this module needs only the standard library; :func:`create_topics` imports
kafka-python when called.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Collection
from pathlib import Path
from types import TracebackType

__all__ = ["BROKER_SCRIPT", "BrokerError", "LocalBroker", "create_topics"]

log = logging.getLogger(__name__)

#: The shell script that fetches, starts and stops the broker.
BROKER_SCRIPT: Path = Path(__file__).resolve().parents[1] / "deploy" / "kafka" / "broker.sh"

_RUN_MARKER = ".finsentry-kafka-run"  # written by broker.sh start into every run dir
_BOOTSTRAP_RE = re.compile(r"^127\.0\.0\.1:\d{1,5}$")
#: The characters Kafka allows in a topic name (``org.apache.kafka.common.internals.Topic``), a regex class body.
TOPIC_CHARS = "A-Za-z0-9._-"
_TOPIC_RE = re.compile(rf"[{TOPIC_CHARS}]{{1,249}}")


def is_topic_name(name: str) -> bool:
    """Whether Kafka accepts ``name`` as a topic name: 1-249 of ``TOPIC_CHARS``, not ``.`` or ``..``."""
    return bool(_TOPIC_RE.fullmatch(name)) and name not in (".", "..")
# Seconds allowed on top of the readiness timeout for a cold jar fetch and the format step.
_START_OVERHEAD_S = 300.0


class BrokerError(RuntimeError):
    """The local broker could not be started, stopped or queried.

    The message includes the script's stderr, which on a failed start holds the tail
    of the broker log.
    """


def _script() -> Path:
    """Return the path of ``broker.sh``; raise :class:`BrokerError` if it is missing."""
    if not BROKER_SCRIPT.is_file():
        raise BrokerError(
            f"broker script not found at {BROKER_SCRIPT}; LocalBroker needs the finsentry "
            "source tree (deploy/kafka/broker.sh next to the finsentry package)"
        )
    if shutil.which("bash") is None:
        raise BrokerError("bash is required to run deploy/kafka/broker.sh")
    return BROKER_SCRIPT


class LocalBroker:
    """A real single-node Kafka 4.1.1 broker running in a background JVM on 127.0.0.1.

    Args:
        run_dir: directory for ``server.properties``, the KRaft data dir (``data/``), the
            logs (``logs/server.log``), ``broker.pid`` and ``bootstrap``. It must not hold
            KRaft data already (a data dir is never reused). ``None`` (default) creates a
            temporary directory. :meth:`stop` deletes the run directory either way.
        port: client (PLAINTEXT) port on 127.0.0.1; ``None`` picks a free port. The
            controller port is always picked freely.
        start_timeout_s: seconds :meth:`start` waits for the broker to serve a client
            round trip after the JVM is launched (default 90).
        stop_timeout_s: seconds :meth:`stop` waits after SIGTERM before SIGKILL
            (default 30).

    The JVM is tied to this Python process: if the process dies without calling
    :meth:`stop`, a watchdog started by the script terminates the broker (the run
    directory is then left behind).
    """

    def __init__(
        self,
        run_dir: Path | None = None,
        port: int | None = None,
        *,
        start_timeout_s: float = 90.0,
        stop_timeout_s: float = 30.0,
    ) -> None:
        if port is not None and not 1 <= port <= 65535:
            raise ValueError(f"port must be in 1..65535, got {port}")
        if start_timeout_s <= 0 or stop_timeout_s <= 0:
            raise ValueError("start_timeout_s and stop_timeout_s must be positive")
        self._requested_run_dir = Path(run_dir) if run_dir is not None else None
        self._run_dir: Path | None = self._requested_run_dir
        self._port = port
        self._start_timeout_s = float(start_timeout_s)
        self._stop_timeout_s = float(stop_timeout_s)
        self._bootstrap: str | None = None
        #: Wall-clock seconds the last :meth:`start` took, from launching the script to a
        #: successful client round trip (includes the jar fetch when the cache was cold).
        #: ``None`` before the first successful start.
        self.start_seconds: float | None = None

    # ------------------------------------------------------------------ properties
    @property
    def bootstrap(self) -> str:
        """The broker's client address, ``"127.0.0.1:PORT"``.

        Raises:
            BrokerError: the broker has not been started (or was stopped).
        """
        if self._bootstrap is None:
            raise BrokerError("broker is not running; call start() first")
        return self._bootstrap

    @property
    def run_dir(self) -> Path | None:
        """The run directory, or ``None`` before :meth:`start` when a temp dir is used."""
        return self._run_dir

    @property
    def pid(self) -> int | None:
        """PID of the broker JVM as recorded in ``broker.pid``, or ``None``."""
        if self._run_dir is None:
            return None
        try:
            return int((self._run_dir / "broker.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    # ------------------------------------------------------------------ lifecycle
    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["FINSENTRY_PYTHON"] = sys.executable
        env["FINSENTRY_KAFKA_OWNER_PID"] = str(os.getpid())
        env["FINSENTRY_KAFKA_START_TIMEOUT"] = str(max(1, round(self._start_timeout_s)))
        env["FINSENTRY_KAFKA_STOP_TIMEOUT"] = str(max(1, round(self._stop_timeout_s)))
        return env

    def start(self) -> str:
        """Start the broker (fetching the jars first if they are not cached) and wait
        until it serves a ``describe_cluster()`` round trip.

        Returns:
            The bootstrap address ``"127.0.0.1:PORT"``. Calling ``start()`` on a running
            broker returns the same address without starting another one.

        Raises:
            BrokerError: the script is missing, Maven/java failed, the run dir holds old
                data, the JVM died, or the broker was not ready within
                ``start_timeout_s`` seconds. The message carries the broker log tail.
        """
        if self._bootstrap is not None:
            return self._bootstrap
        script = _script()
        owns_dir = self._requested_run_dir is None
        if owns_dir:
            self._run_dir = Path(tempfile.mkdtemp(prefix="finsentry-kafka-"))
        assert self._run_dir is not None
        cmd = ["bash", str(script), "start", str(self._run_dir)]
        if self._port is not None:
            cmd.append(str(self._port))
        t0 = time.monotonic()
        try:
            proc = subprocess.run(
                cmd,
                env=self._env(),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=self._start_timeout_s + _START_OVERHEAD_S,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            self._cleanup_failed_start(owns_dir)
            raise BrokerError(f"broker.sh start did not return within {exc.timeout:.0f} s") from exc
        elapsed = time.monotonic() - t0
        lines = proc.stdout.strip().splitlines()
        bootstrap = lines[-1].strip() if lines else ""
        if proc.returncode != 0 or not _BOOTSTRAP_RE.match(bootstrap):
            detail = proc.stderr.strip() or proc.stdout.strip()
            self._cleanup_failed_start(owns_dir)
            raise BrokerError(
                f"local Kafka broker failed to start (exit {proc.returncode}, run dir {self._run_dir}):\n{detail}"
            )
        self._bootstrap = bootstrap
        self.start_seconds = elapsed
        log.info("local Kafka broker ready on %s in %.1f s (run dir %s)", bootstrap, elapsed, self._run_dir)
        return bootstrap

    def _cleanup_failed_start(self, owns_dir: bool) -> None:
        """After a failed start: the script already killed the JVM; drop our temp dir."""
        if owns_dir and self._run_dir is not None:
            self._run_script_stop(check=False)
            shutil.rmtree(self._run_dir, ignore_errors=True)
            self._run_dir = None

    def _run_script_stop(self, check: bool) -> None:
        assert self._run_dir is not None
        proc = subprocess.run(
            ["bash", str(_script()), "stop", str(self._run_dir)],
            env=self._env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=self._stop_timeout_s + 30.0,
            check=False,
        )
        if check and proc.returncode != 0:
            raise BrokerError(f"broker.sh stop failed (exit {proc.returncode}):\n{proc.stderr.strip()}")

    def stop(self) -> None:
        """Stop the broker (SIGTERM, SIGKILL after ``stop_timeout_s`` seconds), wait for
        the JVM to end, and delete the run directory. Safe to call more than once and
        on a broker that was never started.

        Raises:
            BrokerError: the script failed (for instance the run dir was not created by
                ``broker.sh start``, so it is not deleted).
        """
        if self._run_dir is None:
            return
        # Only a dir that broker.sh start prepared (it writes the marker first) is stopped
        # and deleted; an untouched user-supplied dir is left alone.
        if (self._run_dir / _RUN_MARKER).exists():
            self._run_script_stop(check=True)
        self._bootstrap = None
        if self._requested_run_dir is None:
            self._run_dir = None

    def halt(self) -> None:
        """Stop the broker JVM (SIGTERM: a controlled shutdown; SIGKILL after ``stop_timeout_s``)
        but keep the run directory, its data dir and its ports, for :meth:`resume`
        (``broker.sh halt``). For fault tests: a broker that goes away and comes back.

        Raises:
            BrokerError: the broker is not running, or the script failed.
        """
        if self._bootstrap is None or self._run_dir is None:
            raise BrokerError("broker is not running; nothing to halt")
        self._script_call("halt", timeout_s=self._stop_timeout_s + 30.0)

    def resume(self) -> str:
        """Start a halted broker again on the same data dir, config and ports
        (``broker.sh resume``) and wait until it serves a client round trip.

        Returns:
            The bootstrap address, the same as before :meth:`halt`.

        Raises:
            BrokerError: never started, still running, a port was taken meanwhile, or the
                broker was not ready within ``start_timeout_s`` (the message holds the log tail).
        """
        if self._bootstrap is None or self._run_dir is None:
            raise BrokerError("broker was never started (or was stopped); call start() first")
        out = self._script_call("resume", timeout_s=self._start_timeout_s + _START_OVERHEAD_S)
        lines = out.strip().splitlines()
        if not lines or lines[-1].strip() != self._bootstrap:
            raise BrokerError(f"broker.sh resume printed {lines[-1:]!r}, expected {self._bootstrap!r}")
        return self._bootstrap

    def _script_call(self, command: str, timeout_s: float) -> str:
        """Run ``broker.sh COMMAND RUN_DIR``; return its stdout. Raises BrokerError when it fails."""
        assert self._run_dir is not None
        try:
            proc = subprocess.run(
                ["bash", str(_script()), command, str(self._run_dir)],
                env=self._env(), stdin=subprocess.DEVNULL, capture_output=True, text=True,
                timeout=timeout_s, check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise BrokerError(f"broker.sh {command} did not return within {exc.timeout:.0f} s") from exc
        if proc.returncode != 0:
            raise BrokerError(f"broker.sh {command} failed (exit {proc.returncode}):\n{proc.stderr.strip()}")
        return proc.stdout

    def is_running(self) -> bool:
        """Return True if the recorded broker JVM is alive (``broker.sh status``)."""
        if self._run_dir is None or not self._run_dir.exists():
            return False
        proc = subprocess.run(
            ["bash", str(_script()), "status", str(self._run_dir)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        return proc.returncode == 0

    def log_tail(self, n: int = 50) -> str:
        """Return the last ``n`` lines of the broker log (``RUN_DIR/logs/server.log``),
        or ``""`` when there is no log (never started, or stopped and deleted)."""
        if n <= 0 or self._run_dir is None:
            return ""
        path = self._run_dir / "logs" / "server.log"
        try:
            with path.open(encoding="utf-8", errors="replace") as fh:
                return "".join(deque(fh, maxlen=n))
        except OSError:
            return ""

    # ------------------------------------------------------------------ context manager
    def __enter__(self) -> LocalBroker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = self._bootstrap or "stopped"
        return f"LocalBroker({state}, run_dir={self._run_dir})"


#: Configs of the topics finsentry creates. Record timestamps are event times
#: (``published_at``), which may lie in the future (scheduled releases, bad
#: feeds): Kafka 4 rejects timestamps over 1 h ahead by default, so finsentry's
#: topics accept any, and finsentry's own time rules judge them.
TOPIC_CONFIGS: dict[str, str] = {"message.timestamp.after.max.ms": str(2**63 - 1)}
#: Added to :data:`TOPIC_CONFIGS` for the raw topic: the broker stamps each record with its append
#: time, the ingestion time that ``ingest.check_event_time`` judges ``published_at`` by (whoever
#: produced the record). Not for the scored topic, which is sought by its CreateTime (published time).
LOG_APPEND_TIME_CONFIGS: dict[str, str] = {"message.timestamp.type": "LogAppendTime"}


def create_topics(
    bootstrap: str,
    topics: dict[str, int],
    replication: int = 1,
    *,
    timeout_s: float = 30.0,
    log_append_time: Collection[str] = (),
) -> None:
    """Create topics (name -> partition count) and wait until their metadata is visible.

    New topics get :data:`TOPIC_CONFIGS` (any record timestamp accepted), and
    those named in ``log_append_time`` also :data:`LOG_APPEND_TIME_CONFIGS`
    (record timestamp = the broker's append time, ms UTC): pass the raw topic
    there, so the future-timestamp rule has a reference.

    Topics that already exist are left as they are (``TopicAlreadyExistsError`` is
    ignored; a warning is logged when the existing partition count differs), so the
    call is idempotent.

    Args:
        bootstrap: broker address(es), ``"host:port[,host:port...]"``.
        topics: mapping of topic name to number of partitions (>= 1).
        replication: replication factor for new topics (1 for the local broker).
        timeout_s: seconds for the create request and, separately, for the topics to
            show a leader for every partition in the broker metadata.
        log_append_time: topics of ``topics`` to create with ``message.timestamp.type=LogAppendTime``
            (an existing topic keeps its config).

    Raises:
        ValueError: invalid topic name, partition count or replication factor, or a
            ``log_append_time`` topic that is not in ``topics``.
        ImportError: kafka-python is not installed.
        kafka.errors.KafkaError: the broker rejected a topic (e.g.
            ``InvalidReplicationFactorError``) or could not be reached;
            ``kafka.errors.KafkaTimeoutError`` when the topics did not become visible
            within ``timeout_s``.
    """
    if not topics:
        return
    for name, partitions in topics.items():
        if not is_topic_name(name):
            raise ValueError(f"invalid Kafka topic name {name!r}")
        if partitions < 1:
            raise ValueError(f"topic {name!r}: partitions must be >= 1, got {partitions}")
    if replication < 1:
        raise ValueError(f"replication must be >= 1, got {replication}")
    stray = set(log_append_time) - set(topics)
    if stray:
        raise ValueError(f"log_append_time names topics not being created: {sorted(stray)}")

    import kafka.errors as errors
    from kafka.admin import KafkaAdminClient

    timeout_ms = int(timeout_s * 1000)
    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap,
        client_id="finsentry-create-topics",
        request_timeout_ms=timeout_ms,
        bootstrap_timeout_ms=timeout_ms,
    )
    try:
        result = admin.create_topics(
            {
                name: {"num_partitions": n, "replication_factor": replication,
                       "configs": {**TOPIC_CONFIGS, **(LOG_APPEND_TIME_CONFIGS if name in log_append_time else {})}}
                for name, n in topics.items()
            },
            timeout_ms=timeout_ms,
            raise_errors=False,
        )
        existing: list[str] = []
        for entry in result.get("topics", []):
            error_type = errors.for_code(entry.get("error_code", 0))
            if error_type is errors.NoError:
                continue
            if error_type is errors.TopicAlreadyExistsError:
                existing.append(entry["name"])
                continue
            raise error_type(f"creating topic {entry.get('name')!r} failed: {entry.get('error_message')}")
        admin.wait_for_topics(list(topics), timeout_ms=timeout_ms)
        if existing:
            for info in admin.describe_topics(existing):
                want = topics.get(info.get("name", ""))
                have = len(info.get("partitions") or [])
                if want is not None and have != want:
                    log.warning(
                        "topic %r already exists with %d partitions (requested %d); left unchanged",
                        info.get("name"),
                        have,
                        want,
                    )
    finally:
        admin.close()
