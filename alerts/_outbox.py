"""The durable alert outbox: one SQLite file in WAL mode.

``Outbox.put`` stores an alert message and one delivery row per configured
endpoint in one transaction, synced to disk (``synchronous=FULL``) before it
returns; the daemon calls it before committing the Kafka offsets that
produced the alert, so an alert is never lost between Kafka and the
receivers. The workers' bookkeeping (body frozen, attempt recorded,
delivered) commits with ``synchronous=NORMAL``: safe against a process
crash; after a power loss the last few marks may roll back, and those
deliveries are sent again with the same ``webhook-id`` (receivers
deduplicate). That trade makes delivery about 7x faster (benchmarks/RESULTS.md). Delivery workers (``alerts._delivery``) then move each row from
``pending`` to ``delivered`` or, after the last attempt or a refusal, to
``dead`` with a record in the ``dead_letters`` table.

Tables::

    messages(msg_id PK, alert_id, status, group_key, alert_json, created_at)
        UNIQUE(alert_id, status): put is idempotent per (alert id, status)
        a *notice* (``put_notice``: a non-alert message such as the daily
        digest) has status ``notice``, alert_id = msg_id = its idempotency
        key, group_key ``notice|<kind>`` and its JSON document in alert_json
    deliveries(endpoint_id, msg_id, state, attempts, next_at, created_at,
               updated_at, body, grouped_into, last_status, last_error, delivered_at)
        PK(endpoint_id, msg_id); state: pending | delivered | dead | grouped
        body: the exact bytes of the notification, frozen at the first attempt
    dead_letters(endpoint_id, msg_id, reason, dead_at)
    endpoints(endpoint_id PK, name, disabled_at, disabled_reason)

Times are Unix seconds (``time.time()``): they survive restarts. One
process delivers from one outbox file at a time (``DeliveryService`` holds a
lock); ``finsentry alerts`` may read and edit it meanwhile.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ._alert import Alert
from ._endpoint import Endpoint
from ._formats import group_key

__all__ = ["Outbox", "OutboxEntry", "OutboxError", "PendingDelivery"]

log = logging.getLogger(__name__)

_SCHEMA_VERSION = 1
#: One message row, kept once: a message already there is left as it is (idempotency).
_INSERT_MESSAGE = ("INSERT OR IGNORE INTO messages (msg_id, alert_id, status, group_key, alert_json, created_at) "
                   "VALUES (?, ?, ?, ?, ?, ?)")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    msg_id      TEXT PRIMARY KEY,
    alert_id    TEXT NOT NULL,
    status      TEXT NOT NULL,
    group_key   TEXT NOT NULL,
    alert_json  BLOB NOT NULL,
    created_at  REAL NOT NULL,
    UNIQUE (alert_id, status)
);
CREATE TABLE IF NOT EXISTS deliveries (
    endpoint_id  TEXT NOT NULL,
    msg_id       TEXT NOT NULL REFERENCES messages (msg_id),
    state        TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'dead', 'grouped')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_at      REAL NOT NULL,
    created_at   REAL NOT NULL,
    updated_at   REAL NOT NULL,
    body         BLOB,
    grouped_into TEXT,
    last_status  INTEGER,
    last_error   TEXT,
    delivered_at REAL,
    PRIMARY KEY (endpoint_id, msg_id)
);
CREATE INDEX IF NOT EXISTS deliveries_queue ON deliveries (endpoint_id, state, next_at);
CREATE TABLE IF NOT EXISTS dead_letters (
    endpoint_id TEXT NOT NULL,
    msg_id      TEXT NOT NULL,
    reason      TEXT NOT NULL,
    dead_at     REAL NOT NULL,
    PRIMARY KEY (endpoint_id, msg_id)
);
CREATE TABLE IF NOT EXISTS endpoints (
    endpoint_id     TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    disabled_at     REAL,
    disabled_reason TEXT
);
"""


class OutboxError(RuntimeError):
    """The outbox file cannot be opened or used (path, permissions, no WAL support)."""


@dataclass(frozen=True, slots=True)
class PendingDelivery:
    """The next delivery of an endpoint's queue.

    Attributes:
        endpoint_id, msg_id: the row's key.
        attempts: attempts made so far.
        next_at: when the next attempt is due, Unix seconds.
        created_at: when the message was queued for this endpoint, Unix seconds.
    """

    endpoint_id: str
    msg_id: str
    attempts: int
    next_at: float
    created_at: float


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One delivery row as ``finsentry alerts list`` shows it.

    Attributes:
        alert_id, status, msg_id: the message.
        endpoint_id, endpoint: the endpoint's id and name (name "?" when unknown).
        state: ``pending``, ``delivered``, ``dead`` or ``grouped``.
        attempts: attempts made.
        last_status: last HTTP status (None: no answer).
        last_error: why the last attempt failed.
        reason: why it was dead-lettered (dead rows only).
        grouped_into: message id of the notification that carried it (grouped rows).
        created_at, updated_at: Unix seconds.
    """

    alert_id: str
    status: str
    msg_id: str
    endpoint_id: str
    endpoint: str
    state: str
    attempts: int
    last_status: int | None
    last_error: str | None
    reason: str | None
    grouped_into: str | None
    created_at: float
    updated_at: float


class Outbox:
    """The durable queue between alert detection and webhook delivery.

    Thread-safe: each thread uses its own SQLite connection; writes are
    serialised by SQLite (``BEGIN IMMEDIATE``, 10 s busy timeout).

    Args:
        path: the SQLite file; parent folders are created.
        endpoints: the endpoints every new alert is queued for (none: the
            alert is stored but not queued; e.g. ``finsentry alerts``).

    Raises:
        OutboxError: the file cannot be created/opened, or WAL mode is refused.
    """

    def __init__(self, path: Path | str, endpoints: Sequence[Endpoint] = ()) -> None:
        self._path = Path(path)
        self._endpoints = tuple(endpoints)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []
        self._closed = False
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            conn = self._conn()
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise OutboxError(f"outbox {self._path}: SQLite refused WAL mode (got {mode!r})")
            if conn.execute("PRAGMA user_version").fetchone()[0] == 0:
                with self._tx(durable=True) as c:
                    for statement in filter(str.strip, _SCHEMA.split(";")):
                        c.execute(statement)
                    c.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
            self._instance_id = self._ensure_meta(conn)
            with self._tx() as c:
                for ep in self._endpoints:
                    c.execute(
                        "INSERT INTO endpoints (endpoint_id, name) VALUES (?, ?) "
                        "ON CONFLICT (endpoint_id) DO UPDATE SET name = excluded.name",
                        (ep.id, ep.name),
                    )
        except (sqlite3.Error, OSError) as exc:
            raise OutboxError(f"cannot open outbox {self._path}: {exc}") from exc

    # -- plumbing ----------------------------------------------------------------

    @property
    def path(self) -> Path:
        """The SQLite file."""
        return self._path

    @property
    def instance_id(self) -> str:
        """A random id (32 hex digits) made when this outbox file was first opened, and kept in it.

        A daemon restarted on the same outbox keeps its id: its alert claims
        (``finsentry._alert_claims``) stay its own.
        """
        return self._instance_id

    def _ensure_meta(self, conn: sqlite3.Connection) -> str:
        """The tables an outbox of schema 1 gains (``meta``: the instance id; ``held``), made on first open
        (written only then: later opens only read); returns the instance id."""
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if {"meta", "held"} <= tables:
            row = conn.execute("SELECT value FROM meta WHERE name = 'instance_id'").fetchone()
            if row is not None:
                return str(row[0])
        with self._tx(durable=True) as c:
            c.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
            c.execute("CREATE TABLE IF NOT EXISTS held (msg_id TEXT PRIMARY KEY, held_at REAL NOT NULL)")
            c.execute("INSERT OR IGNORE INTO meta (name, value) VALUES ('instance_id', ?)", (uuid.uuid4().hex,))
            return str(c.execute("SELECT value FROM meta WHERE name = 'instance_id'").fetchone()[0])

    @property
    def endpoints(self) -> tuple[Endpoint, ...]:
        """The endpoints new alerts are queued for."""
        return self._endpoints

    def _conn(self) -> sqlite3.Connection:
        if self._closed:
            raise OutboxError(f"outbox {self._path} is closed")
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self._path, timeout=10.0, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA busy_timeout=10000")
            self._local.conn = conn
            self._local.synchronous = "FULL"
            with self._lock:
                self._all.append(conn)
        return conn

    @contextmanager
    def _tx(self, durable: bool = False) -> Iterator[sqlite3.Connection]:
        """A write transaction; ``durable``: fsync'd at commit (FULL), else NORMAL."""
        conn = self._conn()
        level = "FULL" if durable else "NORMAL"
        if self._local.synchronous != level:
            conn.execute(f"PRAGMA synchronous={level}")
            self._local.synchronous = level
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def subscribe(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` after each ``put``/``redeliver`` that queued something (wakes workers)."""
        with self._lock:
            self._listeners.append(listener)

    def _notify(self) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener()

    def close(self) -> None:
        """Close every connection (idempotent); later calls raise OutboxError."""
        with self._lock:
            self._closed = True
            conns, self._all = self._all, []
        for conn in conns:
            conn.close()

    # -- the producer side ------------------------------------------------------

    def put(self, alert: Alert, now: float | None = None) -> bool:
        """Store ``alert`` and queue it for every endpoint; durable on return.

        Idempotent on (alert id, status): putting the same message again
        queues it only for endpoints that never had it, and never re-sends
        what was delivered; a held message (:meth:`hold`) stays held.

        Args:
            alert: the alert (its ``status`` picks the message).
            now: queueing time, Unix seconds (default: the clock).

        Returns:
            True when the message was new to the outbox.

        Raises:
            OutboxError: the outbox is closed or the write failed (disk full, ...).
        """
        now = time.time() if now is None else now
        return self._store(
            (alert.message_id, alert.alert_id, alert.status, group_key(alert), alert.to_json(), now),
            [(ep.id, alert.message_id, now + ep.group_wait_s, now, now) for ep in self._endpoints],
            f"alert {alert.alert_id}",
        )

    def hold(self, alerts: Sequence[Alert], now: float | None = None) -> int:
        """Store alert messages without queueing them (one durable transaction): they wait for :meth:`release`
        or :meth:`discard`.

        Used by the daemon around its alert claims (``finsentry._alert_claims``):
        hold, claim, then release what it won and discard what another daemon
        claimed first; a crash in between leaves them held, and :meth:`held`
        gives them back at the next start. A message already stored (held,
        queued or delivered) is left as it is.

        Returns:
            How many messages were new (and are now held).

        Raises:
            OutboxError: the outbox is closed or the write failed.
        """
        now = time.time() if now is None else now
        new = 0
        try:
            with self._tx(durable=True) as c:
                for alert in alerts:
                    if c.execute(_INSERT_MESSAGE, (alert.message_id, alert.alert_id, alert.status, group_key(alert),
                                                   alert.to_json(), now)).rowcount == 1:
                        c.execute("INSERT INTO held (msg_id, held_at) VALUES (?, ?)", (alert.message_id, now))
                        new += 1
        except sqlite3.Error as exc:
            raise OutboxError(f"outbox {self._path}: could not hold {len(alerts)} alert(s): {exc}") from exc
        return new

    def held(self) -> list[Alert]:
        """The held alert messages in the order they were held (row order, not the wall clock; see :meth:`hold`)."""
        rows = self._conn().execute(
            "SELECT h.msg_id, m.alert_json FROM held h JOIN messages m USING (msg_id) ORDER BY h.rowid")
        out: list[Alert] = []
        for msg_id, body in rows.fetchall():
            try:
                out.append(Alert.from_json(body))
            except ValueError as exc:  # written by an older version? kept held, reported, never crashing a start
                log.error("outbox %s: held message %s does not decode: %s", self._path, msg_id, exc)
        return out

    def release(self, msg_ids: Sequence[str], now: float | None = None) -> int:
        """Queue held messages for every endpoint and stop holding them (one durable transaction); wake the workers.

        Ids that are not held are ignored. Returns how many were released.

        Raises:
            OutboxError: the outbox is closed or the write failed.
        """
        now = time.time() if now is None else now
        released = self._unhold(msg_ids, "release", lambda c, msg_id: c.executemany(
            "INSERT OR IGNORE INTO deliveries (endpoint_id, msg_id, state, next_at, created_at, updated_at) "
            "VALUES (?, ?, 'pending', ?, ?, ?)",
            [(ep.id, msg_id, now + ep.group_wait_s, now, now) for ep in self._endpoints],
        ))
        if released:
            self._notify()
        return released

    def discard(self, msg_ids: Sequence[str]) -> int:
        """Delete held messages (another daemon sends them); ids that are not held are ignored.

        Returns how many were deleted.

        Raises:
            OutboxError: the outbox is closed or the write failed.
        """
        return self._unhold(msg_ids, "discard",
                            lambda c, msg_id: c.execute("DELETE FROM messages WHERE msg_id = ?", (msg_id,)))

    def _unhold(self, msg_ids: Sequence[str], what: str, then: Callable[[sqlite3.Connection, str], object]) -> int:
        """In one durable transaction, stop holding each held id and call ``then(conn, msg_id)``; returns how many."""
        done = 0
        if not msg_ids:
            return 0
        try:
            with self._tx(durable=True) as c:
                for msg_id in msg_ids:
                    if c.execute("DELETE FROM held WHERE msg_id = ?", (msg_id,)).rowcount == 1:
                        then(c, msg_id)
                        done += 1
        except sqlite3.Error as exc:
            raise OutboxError(f"outbox {self._path}: could not {what} {len(msg_ids)} message(s): {exc}") from exc
        return done

    def put_notice(self, msg_id: str, kind: str, doc: bytes, formats: Sequence[str], now: float | None = None) -> bool:
        """Store a notice (a non-alert message, e.g. the daily digest) and queue it; durable on return.

        Idempotent on ``msg_id`` (the ``webhook-id`` every attempt and every
        re-send carries): a second put of the same id queues nothing new.

        Args:
            msg_id: the notice's idempotency key, e.g. ``digest-2026-11-29``.
            kind: what it is (``digest``); stored in its group key.
            doc: the notice as JSON bytes (rendered per endpoint by ``render_notice``).
            formats: the endpoint formats that take notices; other endpoints are skipped.
            now: queueing time, Unix seconds (default: the clock).

        Returns:
            True when the notice was new to the outbox.

        Raises:
            OutboxError: the outbox is closed or the write failed.
        """
        now = time.time() if now is None else now
        return self._store(
            (msg_id, msg_id, "notice", f"notice|{kind}", doc, now),
            [(ep.id, msg_id, now, now, now) for ep in self._endpoints if ep.format in formats],
            f"notice {msg_id}",
        )

    def _store(self, message: tuple[object, ...], deliveries: list[tuple[object, ...]], what: str) -> bool:
        """Insert one message row and its pending delivery rows in one durable transaction; wake the workers.

        ``message``: (msg_id, alert_id, status, group_key, body, created_at); ``deliveries``: (endpoint_id,
        msg_id, next_at, created_at, updated_at) each. Both inserts ignore rows already there (idempotency).
        Returns True when the message was new. Raises ``OutboxError`` naming ``what`` when the write fails.
        """
        try:
            with self._tx(durable=True) as c:
                new = c.execute(_INSERT_MESSAGE, message).rowcount == 1
                if not c.execute("SELECT 1 FROM held WHERE msg_id = ?", (message[0],)).fetchone():  # held: see hold
                    c.executemany(
                        "INSERT OR IGNORE INTO deliveries (endpoint_id, msg_id, state, next_at, created_at, "
                        "updated_at) VALUES (?, ?, 'pending', ?, ?, ?)",
                        deliveries,
                    )
        except sqlite3.Error as exc:
            raise OutboxError(f"outbox {self._path}: could not store {what}: {exc}") from exc
        self._notify()
        return new

    def prune(self, older_than_s: float, now: float | None = None) -> int:
        """Delete messages whose every delivery was delivered (or grouped into one) before ``now - older_than_s``.

        Dead letters and pending deliveries are kept (an operator decides
        about those). A pruned alert is forgotten: a window decided again
        after this (a rebuild never reaches that far back when the retention
        is longer than the window size plus the allowed lateness) would be
        queued again, so keep the retention well above that span.

        Args:
            older_than_s: retention, seconds (> 0).
            now: Unix seconds (default: the clock).

        Returns:
            How many messages were deleted (with their delivery rows).

        Raises:
            ValueError: ``older_than_s`` <= 0.
            OutboxError: the write failed.
        """
        if older_than_s <= 0:
            raise ValueError(f"retention must be > 0 seconds, got {older_than_s}")
        cutoff = (time.time() if now is None else now) - older_than_s
        try:
            with self._tx() as c:
                ids = [r[0] for r in c.execute(
                    "SELECT msg_id FROM deliveries GROUP BY msg_id HAVING "
                    "sum(state NOT IN ('delivered', 'grouped')) = 0 AND max(updated_at) < ?", (cutoff,))]
                ids += [r[0] for r in c.execute(  # stored with no endpoint to deliver to (and not held)
                    "SELECT msg_id FROM messages m WHERE created_at < ? AND NOT EXISTS "
                    "(SELECT 1 FROM deliveries d WHERE d.msg_id = m.msg_id) AND NOT EXISTS "
                    "(SELECT 1 FROM held h WHERE h.msg_id = m.msg_id)", (cutoff,))]
                c.executemany("DELETE FROM deliveries WHERE msg_id = ?", [(m,) for m in ids])
                c.executemany("DELETE FROM messages WHERE msg_id = ?", [(m,) for m in ids])
        except sqlite3.Error as exc:
            raise OutboxError(f"outbox {self._path}: prune failed: {exc}") from exc
        return len(ids)

    # -- the worker side --------------------------------------------------------

    def next_pending(self, endpoint_id: str) -> PendingDelivery | None:
        """The endpoint's pending delivery with the earliest ``next_at`` (due or not), or None.

        Ties (messages queued together) go in the order they were queued (row order), which is the
        order the detector decided them: a firing message before its resolved one.
        """
        row = self._conn().execute(
            "SELECT msg_id, attempts, next_at, created_at FROM deliveries "
            "WHERE endpoint_id = ? AND state = 'pending' ORDER BY next_at, created_at, rowid LIMIT 1",
            (endpoint_id,),
        ).fetchone()
        return None if row is None else PendingDelivery(endpoint_id, row[0], row[1], row[2], row[3])

    def due_count(self, endpoint_id: str, now: float | None = None) -> int:
        """Pending deliveries of the endpoint whose next attempt is due at ``now``."""
        now = time.time() if now is None else now
        return int(self._conn().execute(
            "SELECT count(*) FROM deliveries WHERE endpoint_id = ? AND state = 'pending' AND next_at <= ?",
            (endpoint_id, now),
        ).fetchone()[0])

    def body_for(
        self,
        pending: PendingDelivery,
        group_window_s: float,
        render: Callable[[list[Alert]], bytes],
        now: float | None = None,
        render_notice: Callable[[bytes], bytes] | None = None,
    ) -> bytes:
        """The notification body of ``pending``, frozen at its first call.

        A notice (see ``put_notice``) is rendered by ``render_notice(doc)``
        and never grouped.

        At the first call, pending never-attempted deliveries of the same
        endpoint and group key queued within ``group_window_s`` after this one
        become ``grouped`` into it, and ``render([lead, *repeats])`` is stored;
        later calls (retries, restarts) return the stored bytes.

        Raises:
            OutboxError: the row is gone, or the database failed.
        """
        now = time.time() if now is None else now
        ep, msg = pending.endpoint_id, pending.msg_id
        with self._tx() as c:
            row = c.execute(
                "SELECT d.body, m.alert_json, m.group_key FROM deliveries d JOIN messages m USING (msg_id) "
                "WHERE d.endpoint_id = ? AND d.msg_id = ?",
                (ep, msg),
            ).fetchone()
            if row is None:
                raise OutboxError(f"no delivery of {msg} to endpoint {ep}")
            if row[0] is not None:
                return bytes(row[0])
            members = []
            if str(row[2]).startswith("notice|"):
                if render_notice is None:
                    raise OutboxError(f"{msg} is a notice and no notice renderer was given")
                body = render_notice(bytes(row[1]))
                c.execute("UPDATE deliveries SET body = ?, updated_at = ? WHERE endpoint_id = ? AND msg_id = ?",
                          (body, now, ep, msg))
                return body
            if group_window_s > 0:
                members = c.execute(
                    "SELECT d.msg_id, m.alert_json FROM deliveries d JOIN messages m USING (msg_id) "
                    "WHERE d.endpoint_id = ? AND d.state = 'pending' AND d.body IS NULL AND d.attempts = 0 "
                    "AND m.group_key = ? AND d.msg_id != ? AND d.created_at <= ? ORDER BY d.created_at, d.rowid",
                    (ep, row[2], msg, pending.created_at + group_window_s),
                ).fetchall()
            body = render([Alert.from_json(row[1])] + [Alert.from_json(m[1]) for m in members])
            c.execute("UPDATE deliveries SET body = ?, updated_at = ? WHERE endpoint_id = ? AND msg_id = ?",
                      (body, now, ep, msg))
            c.executemany(
                "UPDATE deliveries SET state = 'grouped', grouped_into = ?, updated_at = ? "
                "WHERE endpoint_id = ? AND msg_id = ?",
                [(msg, now, ep, m[0]) for m in members],
            )
        return body

    def mark_delivered(self, pending: PendingDelivery, status: int, now: float | None = None) -> None:
        """Record a 2xx answer: the delivery (and its grouped repeats) is done."""
        now = time.time() if now is None else now
        with self._tx() as c:
            c.execute(
                "UPDATE deliveries SET state = 'delivered', attempts = attempts + 1, last_status = ?, "
                "last_error = NULL, delivered_at = ?, updated_at = ? WHERE endpoint_id = ? AND msg_id = ?",
                (status, now, now, pending.endpoint_id, pending.msg_id),
            )

    def mark_retry(
        self, pending: PendingDelivery, next_at: float, status: int | None, error: str, now: float | None = None
    ) -> None:
        """Record a failed attempt that will be retried at ``next_at`` (Unix seconds)."""
        now = time.time() if now is None else now
        with self._tx() as c:
            c.execute(
                "UPDATE deliveries SET attempts = attempts + 1, next_at = ?, last_status = ?, last_error = ?, "
                "updated_at = ? WHERE endpoint_id = ? AND msg_id = ?",
                (next_at, status, error, now, pending.endpoint_id, pending.msg_id),
            )

    def mark_dead(
        self, pending: PendingDelivery, status: int | None, error: str, reason: str, now: float | None = None
    ) -> None:
        """Record a last failed attempt and move the delivery to the dead letters."""
        now = time.time() if now is None else now
        with self._tx() as c:
            c.execute(
                "UPDATE deliveries SET state = 'dead', attempts = attempts + 1, last_status = ?, last_error = ?, "
                "updated_at = ? WHERE endpoint_id = ? AND msg_id = ?",
                (status, error, now, pending.endpoint_id, pending.msg_id),
            )
            c.execute("INSERT OR REPLACE INTO dead_letters VALUES (?, ?, ?, ?)",
                      (pending.endpoint_id, pending.msg_id, reason, now))

    def dead_letter_pending(self, endpoint_id: str, reason: str, now: float | None = None) -> int:
        """Move every pending delivery of the endpoint to the dead letters (without an attempt).

        Returns:
            How many were moved.
        """
        now = time.time() if now is None else now
        with self._tx() as c:
            ids = [r[0] for r in c.execute(
                "SELECT msg_id FROM deliveries WHERE endpoint_id = ? AND state = 'pending'", (endpoint_id,))]
            c.executemany("UPDATE deliveries SET state = 'dead', updated_at = ? WHERE endpoint_id = ? AND msg_id = ?",
                          [(now, endpoint_id, m) for m in ids])
            c.executemany("INSERT OR REPLACE INTO dead_letters VALUES (?, ?, ?, ?)",
                          [(endpoint_id, m, reason, now) for m in ids])
        return len(ids)

    def reschedule_pending(self, endpoint_id: str, now: float | None = None) -> int:
        """Make every pending delivery of the endpoint due now (used at start).

        Returns:
            How many were brought forward.
        """
        now = time.time() if now is None else now
        with self._tx() as c:
            return c.execute(
                "UPDATE deliveries SET next_at = ? WHERE endpoint_id = ? AND state = 'pending' AND next_at > ?",
                (now, endpoint_id, now),
            ).rowcount

    def retry_failed_now(self, endpoint_id: str, now: float | None = None) -> int:
        """Make the endpoint's pending deliveries that already failed at least once due at ``now``.

        Called when a delivery to the endpoint succeeded: the receiver is back, so
        deliveries waiting out a long backoff (up to hours, ``RetryPolicy``) go now,
        oldest first (the queue orders by ``next_at``, then ``created_at``). Never
        attempted deliveries keep their ``next_at`` (a configured first delay).

        Returns:
            How many were brought forward.
        """
        now = time.time() if now is None else now
        with self._tx() as c:
            return c.execute(
                "UPDATE deliveries SET next_at = ? WHERE endpoint_id = ? AND state = 'pending' "
                "AND attempts > 0 AND next_at > ?",
                (now, endpoint_id, now),
            ).rowcount

    # -- endpoints ------------------------------------------------------------------

    def disable_endpoint(self, endpoint_id: str, reason: str, now: float | None = None) -> None:
        """Mark the endpoint disabled (persistent until ``enable_endpoint``)."""
        now = time.time() if now is None else now
        with self._tx(durable=True) as c:
            c.execute(
                "INSERT INTO endpoints (endpoint_id, name, disabled_at, disabled_reason) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (endpoint_id) DO UPDATE SET disabled_at = excluded.disabled_at, "
                "disabled_reason = excluded.disabled_reason",
                (endpoint_id, endpoint_id, now, reason),
            )

    def disabled_reason(self, endpoint_id: str) -> str | None:
        """Why the endpoint is disabled, or None when it is enabled."""
        row = self._conn().execute(
            "SELECT disabled_reason FROM endpoints WHERE endpoint_id = ? AND disabled_at IS NOT NULL",
            (endpoint_id,),
        ).fetchone()
        return None if row is None else str(row[0])

    def enable_endpoint(self, name_or_id: str) -> int:
        """Re-enable endpoints by name or id; returns how many were disabled and now are not."""
        with self._tx(durable=True) as c:
            return c.execute(
                "UPDATE endpoints SET disabled_at = NULL, disabled_reason = NULL "
                "WHERE (name = ? OR endpoint_id = ?) AND disabled_at IS NOT NULL",
                (name_or_id, name_or_id),
            ).rowcount

    def disabled_endpoints(self) -> dict[str, str]:
        """``{name: reason}`` of the disabled endpoints."""
        rows = self._conn().execute(
            "SELECT name, disabled_reason FROM endpoints WHERE disabled_at IS NOT NULL ORDER BY name")
        return {r[0]: r[1] for r in rows}

    # -- operators (finsentry alerts) ----------------------------------------------

    def entries(self, dead_only: bool = False, alert_id: str | None = None) -> list[OutboxEntry]:
        """Delivery rows, oldest first; only dead letters when ``dead_only``."""
        sql = (
            "SELECT m.alert_id, m.status, d.msg_id, d.endpoint_id, coalesce(e.name, '?'), d.state, d.attempts, "
            "d.last_status, d.last_error, dl.reason, d.grouped_into, d.created_at, d.updated_at "
            "FROM deliveries d JOIN messages m USING (msg_id) "
            "LEFT JOIN endpoints e USING (endpoint_id) "
            "LEFT JOIN dead_letters dl ON dl.endpoint_id = d.endpoint_id AND dl.msg_id = d.msg_id "
            "WHERE (? = 0 OR d.state = 'dead') AND (? IS NULL OR m.alert_id = ?) "
            "ORDER BY d.created_at, d.msg_id, e.name"
        )
        rows = self._conn().execute(sql, (int(dead_only), alert_id, alert_id)).fetchall()
        return [OutboxEntry(*row) for row in rows]

    def counts(self) -> dict[str, int]:
        """Delivery rows per state."""
        rows = self._conn().execute("SELECT state, count(*) FROM deliveries GROUP BY state")
        return {state: n for state, n in rows}

    def redeliver(self, alert_id: str | None = None, now: float | None = None) -> int:
        """Queue dead letters again: those of ``alert_id``, or all when None.

        The body stays the one frozen at the first attempt (same bytes, same
        ``webhook-id``); the attempt count starts again from zero.

        Returns:
            How many deliveries were queued again.
        """
        now = time.time() if now is None else now
        with self._tx(durable=True) as c:
            keys = c.execute(
                "SELECT d.endpoint_id, d.msg_id FROM deliveries d JOIN messages m USING (msg_id) "
                "WHERE d.state = 'dead' AND (? IS NULL OR m.alert_id = ?)",
                (alert_id, alert_id),
            ).fetchall()
            c.executemany(
                "UPDATE deliveries SET state = 'pending', attempts = 0, next_at = ?, updated_at = ? "
                "WHERE endpoint_id = ? AND msg_id = ?",
                [(now, now, ep, msg) for ep, msg in keys],
            )
            c.executemany("DELETE FROM dead_letters WHERE endpoint_id = ? AND msg_id = ?", keys)
        if keys:
            self._notify()
        return len(keys)
