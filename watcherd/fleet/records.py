"""What the watcher writes down about the fleet, once :mod:`watcherd.fleet.liveness` has judged
it: kept apart from :mod:`watcherd.fleet.monitor`, which hears the workers and decides what to
do, because this is the part that touches SQLite (on the outbox's thread, which owns the
connection).

- a death: one more attempt for each photo the dead process had announced it was working on,
  ``failed`` with the reason at ``[broker] max_attempts`` (``store/outcomes``);
- photos a live worker holds: their ``*_queued_at`` moves to now, so the outbox's stale re-send
  never duplicates work that is only waiting in a worker's prefetch;
- one ``workers`` row per worker process (``store/workers``), and the rows not heard from for
  ``FORGET_ROWS_AFTER_S`` deleted.

Every write may raise :class:`sqlite3.OperationalError` (locked past the busy timeout): the
monitor tries again at its next tick. Its log lines are the monitor's
(``watcherd.fleet.monitor``), as they were before this module held them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime

from watcherd import logs
from watcherd.fleet.liveness import DEAD, Death, Fleet, WorkerView
from watcherd.store import outcomes, schema, workers

# The monitor's logger: these are the lines it wrote before this module held them.
log = logs.get("watcherd.fleet.monitor")

FORGET_ROWS_AFTER_S = 3600.0  # workers rows not heard from for this long are deleted
FORGET_EVERY_S = 60.0  # how often to look for such rows


class FleetRecords:
    """The fleet's writes to the database: deaths charged to photos, held photos kept queued,
    the ``workers`` rows."""

    def __init__(self, conn: sqlite3.Connection, max_attempts: int,
                 wall: Callable[[], float]) -> None:
        self.conn = conn
        self.max_attempts = max_attempts
        self.wall = wall
        self._next_forget = 0.0

    def charge_death(self, death: Death, kind: schema.Kind) -> None:
        """One more attempt for each photo the dead process was working on; logged."""
        reason = outcomes.timed_out_reason(death.timed_out) if death.timed_out \
            else outcomes.died_reason
        charged = outcomes.died_while_processing(self.conn, kind, death.busy,
                                                 self.max_attempts,
                                                 reason) if death.busy else []
        log.warning("worker process died", worker=death.worker, worker_pid=death.pid,
                    cause=death.cause, task=kind,
                    working_on=[i for i, _ in death.busy],
                    attempts={c.image_id: c.attempts for c in charged},
                    failed=[c.image_id for c in charged if c.failed],
                    held=len(death.orphaned))
        for c in charged:
            if c.failed:
                log.warning("failed", image_id=c.image_id, task=kind,
                            reason=reason(c.attempts))

    def keep_held(self, fleet: Fleet) -> None:
        """The photos live workers hold stay queued as of now (no stale re-send)."""
        for kind in schema.KINDS:
            held = fleet.held_by_live(kind)
            if held:
                outcomes.still_queued(self.conn, kind, sorted(held))

    def save_rows(self, fleet: Fleet, now: float) -> None:
        """The ``workers`` rows of the workers that changed; ``now`` is the monitor's clock."""
        wall_now = self.wall()
        rows = [self._row(w, wall_now - (now - w.last_seen)) for w in fleet.changed()]
        workers.save_workers(self.conn, rows)

    def forget_old_rows(self, now: float) -> None:
        """Every ``FORGET_EVERY_S``: delete the rows not heard from for ``FORGET_ROWS_AFTER_S``."""
        if now >= self._next_forget:
            self._next_forget = now + FORGET_EVERY_S
            workers.forget_workers(self.conn,
                                   last_seen_before=schema.iso_ago(FORGET_ROWS_AFTER_S))

    @staticmethod
    def _row(w: WorkerView, last_seen_wall: float) -> workers.WorkerRow:
        hb = w.heartbeat
        assert hb is not None
        return workers.WorkerRow(
            name=hb.name, role=hb.role, host=hb.host, pid=hb.pid,
            state=DEAD if w.liveness == DEAD else hb.state, message=hb.message,
            model=hb.model, pretrained=hb.pretrained, device=hb.device,
            started_at=hb.started_at,
            last_seen=schema.now_iso(datetime.fromtimestamp(last_seen_wall, UTC)),
            processed=hb.processed, rss_kb=hb.rss_kb,
        )
