"""Watched folders that go away and come back: a folder deleted and created again, a disk
unmounted and mounted again.

inotify drops its watch when a folder is deleted or its filesystem unmounted, and nothing tells
the watcher when the folder is back. ``Roots.changes()`` notices by one stat per folder (the
watcher calls it every outbox tick) and says which folders to stop and start watching. A folder
that is now a different one under the same name (another inode or device: re-created,
mounted over, unmounted down to its bare mount point) is both gone and back.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path

Ident = tuple[int, int]


def identity(path: Path) -> Ident | None:
    """(device, inode) of a folder that is there to be watched, else None."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISDIR(st.st_mode) else None


class Roots:
    def __init__(self, paths: Iterable[Path]) -> None:
        self._idents = {p: identity(p) for p in paths}

    def changes(self) -> tuple[list[Path], list[Path]]:
        """(gone, back) since the last call: folders that are no longer the folder we watch,
        and folders there to be watched anew."""
        gone: list[Path] = []
        back: list[Path] = []
        for path, before in self._idents.items():
            now = identity(path)
            if now == before:
                continue
            if before is not None:
                gone.append(path)
            if now is not None:
                back.append(path)
            self._idents[path] = now
        return gone, back
