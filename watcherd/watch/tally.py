"""The reconcile scans as the watcher follows them: which roots are being scanned, and a typed
tally per root (files new or changed, unchanged, rows gone, rows recorded), kept in the
``scans`` table while a scan runs and when it ends."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from watcherd import logs
from watcherd.store import discovery
from watcherd.watch.lane import Lane
from watcherd.watch.lane_results import ScanFinished
from watcherd.watch.rules import Rules

log = logs.get("watcherd.watch.tally")


@dataclass
class Tally:
    new_or_changed: int = 0
    unchanged: int = 0
    deleted: int = 0  # rows whose file (or folder) the scan found gone
    taken: int = 0  # files the scan found that are recorded so far


class Scans:
    def __init__(self, conn: sqlite3.Connection, rules: Rules,
                 lanes: Mapping[Path, Lane]) -> None:
        self.conn, self.rules, self.lanes = conn, rules, lanes
        self.tallies: dict[Path, Tally] = {}
        self.pending: set[Path] = set()  # roots whose scan has not finished
        self.finished = 0

    def start(self, folders: Iterable[Path] | None = None) -> None:
        """Reconcile these watched roots, or folders below them (default: every root)."""
        for folder in folders or list(self.lanes):
            root = self.rules.root_of(str(folder))
            if root is None:
                continue
            self.pending.add(root)
            self.tallies.setdefault(root, Tally())
            discovery.set_scan(self.conn, str(root), "scanning")
            self.lanes[root].request_scan(folder)

    def recorded(self, path: str) -> None:
        """A file the scan found is recorded."""
        root = self.rules.root_of(path)
        if root is not None and root in self.tallies:
            self.tallies[root].taken += 1

    def gone(self, root: Path, rows: int) -> None:
        if root in self.tallies:
            self.tallies[root].deleted += rows

    def done(self, item: ScanFinished) -> None:
        p = item.progress
        tally = self.tallies.setdefault(item.root, Tally())
        tally.new_or_changed, tally.unchanged = p.to_take, p.unchanged
        self.pending.discard(item.root)
        self.finished += 1
        message = "; ".join(f"{f}: {r}" for f, r in item.skipped)[:500] or None
        discovery.set_scan(self.conn, str(item.root), "done", folders=p.folders, files=p.files,
                           to_take=p.to_take, taken=tally.taken, gone=tally.deleted,
                           message=message, finished=True)
        log.info("scan done", root=str(item.root), folders=p.folders, files=p.files,
                 new_or_changed=p.to_take, unchanged=p.unchanged, deleted=tally.deleted,
                 duration_ms=round(item.duration_s * 1000))

    def report(self) -> None:
        """The progress of running scans, in ``scans``."""
        for root, lane in self.lanes.items():
            if lane.scan is None:
                continue
            p, tally = lane.scan.progress, self.tallies.get(root, Tally())
            discovery.set_scan(self.conn, str(root), "scanning", folders=p.folders, files=p.files,
                               to_take=p.to_take, taken=tally.taken, gone=tally.deleted)

    def log_progress(self) -> None:
        for root, lane in self.lanes.items():
            if lane.scan is not None:
                p = lane.scan.progress
                log.info("scan progress", root=str(root), folders=p.folders, files=p.files,
                         new_or_changed=p.to_take, unchanged=p.unchanged,
                         recorded=self.tallies.get(root, Tally()).taken, waiting=lane.waiting())

    def totals(self, folders: Iterable[Path]) -> dict[str, int]:
        """`watcherd scan`'s figures over the roots of ``folders``."""
        out = {"new_or_changed": 0, "unchanged": 0, "deleted": 0}
        for root in {self.rules.root_of(str(folder)) for folder in folders}:
            tally = self.tallies.get(root) if root is not None else None
            if tally is not None:
                out["new_or_changed"] += tally.new_or_changed
                out["unchanged"] += tally.unchanged
                out["deleted"] += tally.deleted
        return out
