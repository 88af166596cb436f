"""The main loop's side of taking files: lane results become rows, many per transaction.

A result can be stale by the time it is applied: the file was deleted or moved away after its
lane started hashing it. ``Ingest`` remembers when paths and folders went away (events handled
by the main loop) and drops results that started before that, so a hash in flight never brings
a deleted photo back.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import time
from collections.abc import Callable, Sequence

from watcherd import logs
from watcherd.dispatch.current_model import CurrentModel
from watcherd.store import discovery, schema
from watcherd.watch.lane_results import Hashed, Unreadable

log = logs.get("watcherd.watch.ingest")

FORGET_AFTER_S = 300.0  # far longer than any single hash takes
BATCH = 500


class Ingest:
    """Records lane results and remembers what went away meanwhile. ``reuse``: what a new row
    may copy from an identical one; its model is ``model``'s key once the watcher knows it (the
    configured names until then)."""

    def __init__(self, conn: sqlite3.Connection, reuse: discovery.Reuse, *,
                 model: CurrentModel | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.conn = conn
        self._reuse = reuse
        self.model = model if model is not None else CurrentModel()
        self.clock = clock
        self._gone_paths: dict[str, float] = {}
        self._gone_folders: dict[str, tuple[float, str | None]] = {}  # prefix -> (when, moved to)
        self.retake: list[str] = []  # new paths of stale results whose folder was renamed
        self.stats = {"taken": 0, "new": 0, "moved": 0, "stale": 0, "unreadable": 0}

    def went_away(self, path: str) -> None:
        self._gone_paths[path] = self.clock()

    def folder_went_away(self, folder: str, moved_to: str | None = None) -> None:
        """Deleted, moved out, or (``moved_to``) renamed inside the tree: a result that started
        before is stale; for a rename its file is taken again under the new name."""
        self._gone_folders[folder.rstrip("/") + "/"] = (
            self.clock(), None if moved_to is None else moved_to.rstrip("/") + "/")

    def _stale(self, path: str, started: float) -> bool:
        t = self._gone_paths.get(path)
        if t is not None and t >= started:
            return True
        for prefix, (when, moved_to) in self._gone_folders.items():
            if when >= started and path.startswith(prefix):
                if moved_to is not None:
                    self.retake.append(moved_to + path[len(prefix):])
                return True
        return False

    @property
    def reuse(self) -> discovery.Reuse:
        key = self.model.key
        if key is None:
            return self._reuse
        return dataclasses.replace(self._reuse, model=key[0], pretrained=key[1])

    def prune(self) -> None:
        horizon = self.clock() - FORGET_AFTER_S
        for key in [k for k, t in self._gone_paths.items() if t < horizon]:
            del self._gone_paths[key]
        for key in [k for k, (t, _) in self._gone_folders.items() if t < horizon]:
            del self._gone_folders[key]

    def apply(self, results: Sequence[Hashed | Unreadable]) -> int:
        """Record results in transactions of up to ``BATCH``; returns how many rows have new
        work (new or changed content), i.e. whether the outbox has something to send."""
        work = 0
        reuse = self.reuse
        for start in range(0, len(results), BATCH):
            batch = results[start:start + BATCH]
            chunk = [r for r in batch if not self._stale(r.path, r.started)]
            self.stats["stale"] += len(batch) - len(chunk)
            if not chunk:
                continue
            logged: list[tuple[str, dict[str, object]]] = []
            now = schema.now_iso()
            with schema.transaction(self.conn) as c:
                for r in chunk:
                    if isinstance(r, Unreadable):
                        image_id = discovery.unreadable_in(c, r.path, r.reason)
                        self.stats["unreadable"] += 1
                        logged.append(("failed", {"image_id": image_id, "path": r.path,
                                                  "reason": r.reason}))
                        continue
                    rec = discovery.record_in(c, r.path, r.size, r.mtime, r.sha256, reuse,
                                              moved_from=r.moved_from, now=now)
                    self.stats["taken"] += 1
                    if rec.action in ("new", "changed"):
                        work += 1
                        self.stats["new"] += 1
                    elif rec.action == "moved":
                        self.stats["moved"] += 1
                    fields: dict[str, object] = {"image_id": rec.id, "path": r.path,
                                                 "action": rec.action, "size": r.size,
                                                 "source": r.source,
                                                 "duration_ms": r.duration_ms}
                    if rec.action == "moved" and r.moved_from:
                        fields["old_path"] = r.moved_from[1]
                    logged.append(("recorded", fields))
            for event, fields in logged:
                (log.warning if event == "failed" else log.info)(event, **fields)
        return work
