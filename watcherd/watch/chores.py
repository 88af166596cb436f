"""The watcher's chores between rounds of events, on the main loop's thread (they write the
database): every ``[broker] outbox_interval_seconds`` the model's identity, the watched roots,
the fleet, the outbox's re-sends, the scans' progress, lanes that stopped responding and the
ingest's stale state; once a day the purge of photos deleted long ago."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from pathlib import Path

from watcherd import logs
from watcherd.config import Config
from watcherd.dispatch.outbox import Outbox
from watcherd.fleet.monitor import FleetMonitor
from watcherd.store import admin
from watcherd.watch.ingest import Ingest
from watcherd.watch.lane import Lane
from watcherd.watch.model_state import ModelState
from watcherd.watch.tally import Scans

log = logs.get("watcherd.watch.loop")  # its events are the loop's, as they always were

STALLED_AFTER_S = 60.0  # a lane's file operation running this long: say so


class Chores:
    """The parts the chores look after, and ``stalled``: the roots whose lane has been in one
    file operation too long (the status line names them until they respond again)."""

    def __init__(self, cfg: Config, conn: sqlite3.Connection, *, model: ModelState,
                 lanes: Mapping[Path, Lane], outbox: Outbox, scans: Scans,
                 ingest: Ingest) -> None:
        self.cfg, self.conn, self.model, self.lanes = cfg, conn, model, lanes
        self.outbox, self.scans, self.ingest = outbox, scans, ingest
        self.stalled: set[Path] = set()

    def every_interval(self, fleet: FleetMonitor | None, stalled_after_s: float) -> None:
        """Every ``outbox_interval_seconds``: the model's identity, the roots, the fleet (None:
        not listened to), the outbox's re-sends, the scans' progress, stalled lanes, stale
        ingest state."""
        self.model.identify()
        for lane in self.lanes.values():
            lane.check_root()
        stale_before: dict[str, str] = {}
        if fleet is not None:
            fleet.tick()
            stale_before = fleet.early_resends()
        self.outbox.send_due(resend_stale=True, stale_before=stale_before)
        self.scans.report()
        self.check_stalled(stalled_after_s)
        self.ingest.prune()

    def purge(self) -> None:
        """``[database] keep_deleted_days``: remove rows of photos deleted longer ago."""
        days = self.cfg.database.keep_deleted_days
        if days <= 0:
            return
        r = admin.purge_deleted(self.conn, days)
        if r.images:
            log.info("purged deleted photos", images=r.images, thumbnails=r.thumbnails,
                     embeddings=r.embeddings, bytes=r.bytes, older_than_days=days)

    def check_stalled(self, after_s: float) -> None:
        for root, lane in self.lanes.items():
            stuck = lane.stalled_for()
            if stuck >= after_s and root not in self.stalled:
                self.stalled.add(root)
                log.error("watched folder is not responding: a file operation has been running "
                          "for a long time (a dead network mount?); the other folders go on",
                          path=str(root), seconds=round(stuck))
            elif stuck < after_s and root in self.stalled:
                self.stalled.discard(root)
                log.info("watched folder responds again", path=str(root))
