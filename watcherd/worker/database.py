"""The workers' database connection, and what a locked database means to a task.

One retry layer: SQLite's busy timeout (``[database] busy_timeout_seconds``, 30 s by default).
Its busy handler waits and retries inside the statement, for every process alike, with no
Python code in the loop; WAL readers never block, so only another writer can make a worker
wait, and watcherd's write transactions are short. There is no retry loop above it: a lock that
outlasts the timeout is not contention any more (a long transaction held open by something
else), and waiting again in Python, then again in Celery, only multiplied the wait (30 s x 6 x
5) and hid the cause. When it is exhausted the task gives its message back to the queue (no
attempt is counted: attempts count worker deaths only) and says why on the row.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterable

from watcherd import logs
from watcherd.store import outcomes, schema

log = logs.get("watcherd.worker.database")

_local = threading.local()
NOTE_TIMEOUT_MS = 1000  # how long the note about a lock may wait for the lock itself


def database(path: str, busy_timeout_s: float) -> sqlite3.Connection:
    """One connection per process and thread (prefork children must not share the parent's)."""
    key = (os.getpid(), path)
    conn = getattr(_local, "db", None)
    if conn is None or conn[0] != key:
        _local.db = (key, schema.connect(path, migrate_schema=False,
                                         busy_timeout_ms=int(busy_timeout_s * 1000)))
    return _local.db[1]


def is_locked(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and (
        "locked" in str(exc) or "busy" in str(exc))


def locked_reason(busy_timeout_s: float) -> str:
    return (f"database locked for {busy_timeout_s:g} s (another program holds a write "
            "transaction open); the task went back to the queue")


def note_locked(conn: sqlite3.Connection, kind: schema.Kind, items: Iterable[tuple[int, str]],
                busy_timeout_s: float) -> None:
    """Log the lock and, if the database lets us within a second, say it on the rows (they
    stay pending; the message goes back to the queue)."""
    items = list(items)
    reason = locked_reason(busy_timeout_s)
    log.warning("database locked; giving the task back to the queue", task=kind,
                image_ids=[i for i, _ in items], reason=reason)
    schema.set_busy_timeout(conn, NOTE_TIMEOUT_MS)
    try:
        for image_id, sha256 in items:
            outcomes.note_error(conn, kind, image_id, sha256, reason)
    except sqlite3.OperationalError as exc:
        log.warning("could not note the lock on the rows", task=kind, error=str(exc))
    finally:
        schema.set_busy_timeout(conn, int(busy_timeout_s * 1000))
