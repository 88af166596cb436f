"""Read-only access that needs no numpy: the connection search and the web server open, the
key of a stored model, and the live row at a path. What ``watcherd search`` needs before it
knows whether a running ``watcherd serve`` answers it (see :mod:`watcherd.web.client`)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

_BUSY_TIMEOUT_MS = 30_000
# A one-pass scan reads ~30% faster through mmap than through read() per page.
_MMAP_BYTES = 1 << 34


@dataclass(frozen=True, order=True)
class ModelKey:
    """Which stored vectors: ``embeddings.model`` and ``embeddings.pretrained``."""

    model: str
    pretrained: str

    def describe(self) -> str:
        return repr(self.model) + (f" pretrained {self.pretrained!r}" if self.pretrained else "")


def connect_readonly(path: str | Path, *, mmap: bool = False) -> sqlite3.Connection:
    """A read-only connection (search never writes; its user may not be allowed to).

    ``mmap`` speeds up one-pass scans; a long-lived process leaves it off so that the pages it
    read once are not counted in its resident memory. Raises FileNotFoundError without a file.
    """
    file = Path(path).resolve()
    if not file.is_file():
        raise FileNotFoundError(f"no database at {file}")
    conn = sqlite3.connect(f"file:{quote(str(file))}?mode=ro", uri=True, isolation_level=None,
                           timeout=_BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
    if mmap:
        conn.execute(f"PRAGMA mmap_size = {_MMAP_BYTES}")
    return conn


def live_image_at(conn: sqlite3.Connection, paths: Sequence[str]) -> int | None:
    """The id of the live row at the first of ``paths`` that has one."""
    for path in paths:
        row = conn.execute("SELECT id FROM images WHERE path = ? AND deleted_at IS NULL",
                           (path,)).fetchone()
        if row is not None:
            return int(row[0])
    return None
