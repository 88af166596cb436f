"""How a lane takes one file: the file operations between "this file is complete" and a
``Hashed`` result. Runs on the lane's thread only (it reads the file and the lane's own
read-only database connection); the results go to the main loop through ``emit``.

A file whose row already has its size and mtime is skipped (a touch, a chmod, or taken by a live
event already); a file that changed while it was read settles again; a new file whose content
is a live row's whose file is gone is that photo, moved (``moved_from``).
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from watcherd import logs
from watcherd.store import discovery
from watcherd.watch.files import regular_file
from watcherd.watch.lane_results import Hashed, Result, Unreadable
from watcherd.watch.rules import Rules
from watcherd.watch.settle import SettleTracker

log = logs.get("watcherd.watch.lane")  # its events are the lane's, as they always were


class Hashing:
    """One lane's file taking: ``settle`` is the lane's tracker (a file still being written
    goes back to it), ``emit`` puts a result on the main loop's inbox."""

    def __init__(self, rules: Rules, settle: SettleTracker, emit: Callable[[Result], None],
                 clock: Callable[[], float]) -> None:
        self.rules, self.settle, self.emit, self.clock = rules, settle, emit, clock

    def take(self, conn: sqlite3.Connection, path: str, source: Literal["live", "scan"],
             hasher: Callable[[str], str]) -> bool:
        """Hash ``path`` with ``hasher`` and emit the result; True when it was hashed."""
        info = regular_file(path)
        if info is None:
            return False
        known = discovery.known(conn, path)
        if known and not known.deleted and (known.size, known.mtime) == (info.size, info.mtime):
            return False  # the file we have (a touch, a chmod, or taken by a live event already)
        started = self.clock()
        try:
            digest = hasher(path)
        except FileNotFoundError:
            return False  # deleted meanwhile: its event follows
        except OSError as exc:
            what = "unreadable" if exc.errno in (errno.EACCES, errno.EPERM) else "read error"
            reason = f"{what}: {exc.strerror or exc}"
            log.warning("cannot read file", path=path, reason=reason,
                        errno=errno.errorcode.get(exc.errno or 0, exc.errno))
            self.emit(Unreadable(path, reason, started))
            return False
        after = regular_file(path)
        if after is None:
            return False
        if (after.size, after.mtime) != (info.size, info.mtime):
            self.settle.mark(path, ready=False)  # still being written: wait until it settles
            return False
        moved_from = None if known else self._gone_twin(conn, digest, path)
        took = round((self.clock() - started) * 1000, 1)
        self.emit(Hashed(path, info.size, info.mtime, digest, started, source, moved_from, took))
        return True

    def _gone_twin(self, conn: sqlite3.Connection, digest: str,
                   path: str) -> tuple[int, str] | None:
        """A live row with this content whose file is gone: this file is that photo, moved
        (while watcherd was down, or before the scan reached its old folder)."""
        for image_id, other in discovery.live_twins(conn, digest, path):
            if os.path.lexists(other):
                continue
            root = self.rules.root_of(other)
            if root is None or not _listable_and_not_empty(root):
                continue  # its disk may just be unmounted: not a move
            return image_id, other
        return None


def _listable_and_not_empty(folder: Path) -> bool:
    with contextlib.suppress(OSError), os.scandir(folder) as it:
        return next(it, None) is not None
    return False
