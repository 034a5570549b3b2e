"""The operations HTTP endpoint: ``/healthz``, ``/readyz`` and ``/metrics``.

A ``http.server.ThreadingHTTPServer`` on its own daemon thread (standard
library; prometheus-client only renders the text format). Answers:

* ``GET /healthz`` - liveness: 200 ``ok`` while the poll loop has turned
  within ``stall_s``; 503 with the reason otherwise (a supervisor restarts).
* ``GET /readyz`` - readiness: 200 when every check passes, else 503; the
  body is JSON ``{"ready": bool, "checks": {name: bool}, "detail": {...}}``.
* ``GET /metrics`` - Prometheus text format 0.0.4: the daemon's registry,
  then prometheus-client's global one (webhook delivery, process metrics).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

__all__ = ["OpsServer", "Probe"]

log = logging.getLogger(__name__)

#: A probe returns (passed, detail shown in the body).
Probe = Callable[[], tuple[bool, str]]


class OpsServer:
    """Serve health, readiness and metrics on ``host:port`` from a background thread.

    Args:
        host: address to bind (``127.0.0.1`` keeps it local; ``0.0.0.0`` for a scraper elsewhere).
        port: TCP port; 0 picks a free one (see :attr:`port`).
        liveness: the liveness probe.
        readiness: named readiness probes, all must pass.
        registries: rendered in order by ``/metrics`` (default: the global registry only).

    Raises:
        OSError: the address cannot be bound (e.g. the port is in use).
    """

    def __init__(self, host: str, port: int, liveness: Probe, readiness: dict[str, Probe],
                 registries: Sequence[CollectorRegistry] = (REGISTRY,)) -> None:
        self._liveness = liveness
        self._readiness = dict(readiness)
        self._registries = list(registries)
        self._httpd = ThreadingHTTPServer((host, port), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound TCP port."""
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:9464``."""
        return f"http://{self._httpd.server_address[0]}:{self.port}"

    def start(self) -> "OpsServer":
        """Start serving on a daemon thread; returns self."""
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="finsentry-ops", daemon=True)
        self._thread.start()
        log.info("ops endpoint on %s (/healthz, /readyz, /metrics)", self.url)
        return self

    def close(self) -> None:
        """Stop serving and release the port (idempotent)."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()

    def readiness(self) -> tuple[bool, dict[str, bool], dict[str, str]]:
        """Run every readiness probe: (all passed, {name: passed}, {name: detail})."""
        checks: dict[str, bool] = {}
        detail: dict[str, str] = {}
        for name, probe in self._readiness.items():
            try:
                checks[name], detail[name] = probe()
            except Exception as exc:  # a failing probe is a failed check, never a crash
                checks[name], detail[name] = False, f"{type(exc).__name__}: {exc}"
        return all(checks.values()), checks, detail

    def metrics_text(self) -> bytes:
        """The ``/metrics`` body."""
        return b"".join(generate_latest(r) for r in self._registries)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                path = self.path.split("?", 1)[0]
                if path == "/healthz":
                    ok, detail = server._liveness()
                    self._send(200 if ok else 503, "text/plain; charset=utf-8", (detail + "\n").encode())
                elif path == "/readyz":
                    ready, checks, detail = server.readiness()
                    body = json.dumps({"ready": ready, "checks": checks, "detail": detail}).encode()
                    self._send(200 if ready else 503, "application/json", body)
                elif path == "/metrics":
                    self._send(200, CONTENT_TYPE_LATEST, server.metrics_text())
                else:
                    self._send(404, "text/plain; charset=utf-8", b"not found: try /healthz, /readyz, /metrics\n")

            def _send(self, status: int, content_type: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - scrapes are not news
                log.debug("ops %s - " + format, self.address_string(), *args)

        return Handler
