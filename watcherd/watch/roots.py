"""Watched folders that go away and come back: a folder deleted and created again, a disk
unmounted and mounted again.

inotify drops its watch when a folder is deleted or its filesystem unmounted, and nothing tells
the watcher when the folder is back. Each root's lane compares ``identity()`` with the last one
every outbox tick (one stat, in the lane's thread, so a hung mount stalls nothing else). A
folder that is now a different one under the same name (another inode or device: re-created,
mounted over, unmounted down to its bare mount point) is both gone and back.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

Ident = tuple[int, int]


def identity(path: Path) -> Ident | None:
    """(device, inode) of a folder that is there to be watched, else None."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISDIR(st.st_mode) else None
