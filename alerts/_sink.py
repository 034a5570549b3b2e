"""A small webhook receiver (``finsentry webhook-sink``), standard library only.

``POST /alerts`` with a JSON body is answered 200 and recorded; a body that
is not JSON (or not UTF-8) is answered 400, a missing or oversized body
411/413, any other path 404. ``GET /healthz`` answers 200 (readiness probe).
Deliveries whose ``webhook-id`` was already received are stored too and
counted in ``duplicates``.

With secrets, every POST must carry valid Standard Webhooks headers
(``alerts._signing.Verifier``: a matching ``v1`` signature and a timestamp
within the tolerance); others are answered 401 and counted in ``rejected``.
Without secrets, unsigned (and signed) posts are accepted unchecked.

The server listens on IPv4 only.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from ._signing import DEFAULT_TOLERANCE_S, SignatureError, Verifier

__all__ = ["WebhookSink", "serve_forever"]

log = logging.getLogger(__name__)

ALERTS_PATH = "/alerts"
HEALTH_PATH = "/healthz"
#: Largest body accepted, bytes.
MAX_BODY_BYTES = 1 << 20


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: every answer sets content-length
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall
    timeout = 30  # seconds an idle keep-alive connection is kept
    server: "_Server"

    def do_POST(self) -> None:  # noqa: N802 (stdlib naming)
        length_header = self.headers.get("content-length")
        if length_header is None:
            self.close_connection = True
            self._answer(411, {"error": "content-length required"})
            return
        try:
            length = int(length_header)
        except ValueError:
            self.close_connection = True
            self._answer(400, {"error": "bad content-length"})
            return
        if length < 0 or length > MAX_BODY_BYTES:
            self.close_connection = True
            self._answer(413, {"error": "body too large"})
            return
        raw = self.rfile.read(length)  # read even when unused: keeps keep-alive in sync
        if self.path.split("?", 1)[0] != ALERTS_PATH:
            self._answer(404, {"error": "not found"})
            return
        if not self.server.sink._authentic(raw, dict(self.headers.items())):
            self._answer(401, {"error": "bad or missing webhook signature"})
            return
        try:
            payload = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            self._answer(400, {"error": "body is not JSON"})
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        duplicate = self.server.sink._record(headers, payload)
        self._answer(200, {"ok": True, "duplicate": duplicate})

    def do_GET(self) -> None:  # noqa: N802
        if self.path.split("?", 1)[0] == HEALTH_PATH:
            self._answer(200, {"ok": True})
        else:
            self._answer(404, {"error": "not found"})

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body, separators=(",", ":")).encode("utf-8")
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        log.debug("%s - " + format, self.address_string(), *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], sink: "WebhookSink") -> None:
        self.sink = sink
        super().__init__(address, _Handler)


class WebhookSink:
    """An HTTP server that records the alerts POSTed to it.

    Args:
        host: IPv4 address to listen on.
        port: TCP port; 0 picks a free one (see ``url``).
        out_path: when given, each received JSON body is appended to this
            file as one line (JSONL, sorted keys, compact); parents are created.
        echo: print a one-line summary of each delivery to stdout.
        secrets: Standard Webhooks secrets accepted (rotation: several);
            empty: signatures are not checked.
        tolerance_s: largest timestamp difference accepted, seconds, in (0, 300].

    Raises:
        SecretError, ValueError: a malformed secret or tolerance.
        OSError: from ``start`` when the address cannot be bound.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        out_path: Path | None = None,
        echo: bool = False,
        secrets: tuple[str, ...] | list[str] = (),
        tolerance_s: float = DEFAULT_TOLERANCE_S,
    ) -> None:
        self._verifier = Verifier(secrets, tolerance_s) if secrets else None
        self._rejected = 0
        self._host = host
        self._port = port
        self._out_path = Path(out_path) if out_path is not None else None
        self._echo = echo
        self._lock = threading.Lock()
        self._received: list[tuple[dict[str, str], Any]] = []
        self._seen_ids: set[str] = set()
        self._duplicates = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The alerts URL, e.g. ``http://127.0.0.1:PORT/alerts``.

        Raises:
            RuntimeError: when the sink is not started.
        """
        if self._server is None:
            raise RuntimeError("WebhookSink is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{ALERTS_PATH}"

    @property
    def received(self) -> list[tuple[dict[str, str], Any]]:
        """A snapshot of the deliveries so far: (lower-cased headers, parsed JSON)."""
        with self._lock:
            return list(self._received)

    @property
    def duplicates(self) -> int:
        """Deliveries whose ``webhook-id`` had already been received."""
        with self._lock:
            return self._duplicates

    @property
    def rejected(self) -> int:
        """Posts answered 401 for a bad or missing signature."""
        with self._lock:
            return self._rejected

    @property
    def verifies(self) -> bool:
        """True when signatures are checked."""
        return self._verifier is not None

    def _authentic(self, body: bytes, headers: dict[str, str]) -> bool:
        if self._verifier is None:
            return True
        lower = {k.lower(): v for k, v in headers.items()}
        try:
            self._verifier.verify(body, lower)
            return True
        except SignatureError as exc:
            with self._lock:
                self._rejected += 1
            log.warning("webhook sink: rejected a delivery (webhook-id %s): %s", lower.get("webhook-id"), exc)
            return False

    def start(self) -> "WebhookSink":
        """Bind and serve in a daemon thread; returns self.

        Raises:
            RuntimeError: when already started.
            OSError: when the address cannot be bound.
        """
        if self._server is not None:
            raise RuntimeError("WebhookSink is already started")
        if self._out_path is not None:
            self._out_path.parent.mkdir(parents=True, exist_ok=True)
        server = _Server((self._host, self._port), self)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="webhook-sink", daemon=True
        )
        self._thread.start()
        log.info("webhook sink listening on %s", self.url)
        return self

    def stop(self) -> None:
        """Stop serving and close the socket (idempotent)."""
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join()
        self._server = self._thread = None

    def __enter__(self) -> "WebhookSink":
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _record(self, headers: dict[str, str], payload: Any) -> bool:
        webhook_id = headers.get("webhook-id")
        with self._lock:
            duplicate = webhook_id is not None and webhook_id in self._seen_ids
            if webhook_id is not None:
                self._seen_ids.add(webhook_id)
            if duplicate:
                self._duplicates += 1
            self._received.append((headers, payload))
            if self._out_path is not None:
                line = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
                with self._out_path.open("a", encoding="utf-8") as fh:
                    fh.write(line + "\n")
            if self._echo:
                print(_summary(webhook_id, payload, duplicate), flush=True)
        return duplicate


def _summary(webhook_id: str | None, payload: Any, duplicate: bool) -> str:
    tag = " (duplicate)" if duplicate else ""
    if isinstance(payload, dict) and payload.get("version") == "4" and isinstance(payload.get("alerts"), list):
        return f"alertmanager {webhook_id}{tag}: {payload.get('status')} {payload.get('groupKey')} " \
               f"({len(payload['alerts'])} alert(s))"
    if isinstance(payload, dict) and set(payload) == {"text"}:
        first = str(payload["text"]).splitlines()[0] if payload["text"] else ""
        return f"slack {webhook_id}{tag}: {first}"
    if isinstance(payload, dict) and payload.get("kind") == "digest":
        return f"digest {webhook_id}{tag}: " + " / ".join(str(payload.get("text", "")).splitlines()[1:3])
    if isinstance(payload, dict) and "key" in payload:
        return (
            f"alert {webhook_id}{tag}: {payload.get('status')} {payload.get('key_type')}="
            f"{payload.get('key')} window {payload.get('window_start')}.."
            f"{payload.get('window_end')} n_negative={payload.get('n_negative')}/"
            f"{payload.get('n')} neg_share={payload.get('neg_share')} rule={payload.get('rule')}"
        )
    return f"delivery {webhook_id}{tag}: {type(payload).__name__}"


def serve_forever(
    host: str,
    port: int,
    out_path: Path | None,
    echo: bool = True,
    secrets: tuple[str, ...] | list[str] = (),
    tolerance_s: float = DEFAULT_TOLERANCE_S,
) -> None:
    """Run a WebhookSink until SIGINT or SIGTERM, then stop it cleanly.

    Prints the listening URL on stdout first (and whether signatures are
    verified, never the secrets). Must be called from the main thread
    (signal handlers); the previous handlers are restored on return.

    Raises:
        OSError: when the address cannot be bound.
        SecretError, ValueError: a malformed secret or tolerance; when not called from the main thread.
    """
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {
        sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        sink = WebhookSink(host=host, port=port, out_path=out_path, echo=echo, secrets=secrets,
                           tolerance_s=tolerance_s)
        with sink:
            print(f"webhook sink listening on {sink.url}", flush=True)
            if sink.verifies:
                print(f"webhook sink verifying signatures: {len(secrets)} secret(s), "
                      f"tolerance {tolerance_s:g} s", file=sys.stderr, flush=True)
            while not stop.wait(0.5):
                pass
            print(
                f"webhook sink stopping: {len(sink.received)} received, "
                f"{sink.duplicates} duplicate(s), {sink.rejected} rejected",
                file=sys.stderr,
                flush=True,
            )
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
