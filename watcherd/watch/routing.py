"""Filesystem events into what they mean for the library: a file to take (its lane settles
and hashes it), a rename or move (same row, new path), a deletion, a folder moved, moved in or
out, or deleted. The rows change here at once; files are read only by the lanes."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from watchdog.events import (
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileDeletedEvent,
    FileMovedEvent,
    FileSystemEvent,
)

from watcherd import logs
from watcherd.store import discovery
from watcherd.watch import sidecars
from watcherd.watch.ingest import Ingest
from watcherd.watch.lane import Lane
from watcherd.watch.rules import Rules

log = logs.get("watcherd.watch.routing")


@dataclass
class Counts:
    """What the watcher did since it started (logged when it stops)."""

    taken: int = 0
    moved: int = 0
    deleted: int = 0
    scans: int = 0


class Router:
    def __init__(self, conn: sqlite3.Connection, rules: Rules, lanes: Mapping[Path, Lane],
                 ingest: Ingest, counts: Counts) -> None:
        self.conn, self.rules, self.lanes = conn, rules, lanes
        self.ingest, self.counts = ingest, counts

    def lane(self, path: str) -> Lane | None:
        root = self.rules.root_of(path)
        return None if root is None else self.lanes.get(root)

    def handle(self, event: FileSystemEvent) -> None:
        src = os.fsdecode(event.src_path)
        dest = os.fsdecode(getattr(event, "dest_path", "") or "")
        if not event.is_directory and self._sidecar(event, src, dest):
            return
        if isinstance(event, DirMovedEvent):
            self._folder_moved(src, dest)
        elif isinstance(event, DirDeletedEvent):
            if not self.rules.excluded_folder(src):
                self.deleted_folder(src)
        elif isinstance(event, FileMovedEvent):
            self._file_moved(src, dest)
        elif isinstance(event, FileDeletedEvent):
            if self.rules.is_candidate(src):
                self.deleted([src])
        elif self.rules.is_candidate(src):
            self.mark(src, ready=isinstance(event, FileClosedEvent))

    def _sidecar(self, event: FileSystemEvent, src: str, dest: str) -> bool:
        """An XMP sidecar's event (written, renamed, moved in or out, removed)."""
        touched = [p for p in (src, dest) if p and sidecars.is_sidecar(self.rules, p)]
        if touched and isinstance(event, FileClosedEvent | FileMovedEvent | FileDeletedEvent):
            for path in touched:
                sidecars.changed(self.conn, path)
        return bool(touched)

    def _folder_moved(self, src: str, dest: str) -> None:
        src_in = bool(src) and not self.rules.excluded_folder(src)
        dest_in = bool(dest) and not self.rules.excluded_folder(dest)
        if src_in and dest_in:
            n = discovery.move_folder(self.conn, Path(src), Path(dest))
            self.ingest.folder_went_away(src, moved_to=dest)
            src_lane, dest_lane = self.lane(src), self.lane(dest)
            if src_lane is dest_lane and src_lane is not None:
                src_lane.moved_under(src, dest)
            else:
                if src_lane is not None:
                    src_lane.forget_under(src)
                if dest_lane is not None:
                    dest_lane.take_folder(dest)
            log.info("folder moved", path=dest, old_path=src, rows=n)
        elif dest_in:  # moved in from outside the tree, or from an excluded name
            lane = self.lane(dest)
            if lane is not None:
                lane.take_folder(dest)
        elif src_in:  # moved out of the tree, or to an excluded name
            self.deleted_folder(src)

    def _file_moved(self, src: str, dest: str) -> None:
        src_ok = bool(src) and self.rules.is_candidate(src)
        dest_ok = bool(dest) and self.rules.is_candidate(dest)
        if src_ok and dest_ok:
            self._forget(src)
            image_id = discovery.move_path(self.conn, src, dest)
            if image_id is None:
                self.mark(dest, ready=True)
            else:
                self.counts.moved += 1
                log.info("moved", image_id=image_id, path=dest, old_path=src)
            return
        if src_ok:
            self.deleted([src])
        if dest_ok:
            self.mark(dest, ready=True)  # renamed from a temporary name, or moved in

    def mark(self, path: str, *, ready: bool) -> None:
        lane = self.lane(path)
        if lane is not None:
            lane.mark(path, ready=ready)

    def _forget(self, path: str) -> None:
        self.ingest.went_away(path)
        lane = self.lane(path)
        if lane is not None:
            lane.forget(path)

    def deleted(self, paths: list[str]) -> None:
        for p in paths:
            self._forget(p)
        n = discovery.mark_deleted(self.conn, paths)
        if n:
            self.counts.deleted += n
            log.info("deleted", paths=paths)

    def deleted_folder(self, folder: str) -> None:
        self.ingest.folder_went_away(folder)
        lane = self.lane(folder)
        if lane is not None:
            lane.forget_under(folder)
        n = discovery.mark_folder_deleted(self.conn, Path(folder))
        if n:
            self.counts.deleted += n
            log.info("folder deleted", path=folder, rows=n)
