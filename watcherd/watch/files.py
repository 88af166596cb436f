"""Filesystem facts about one file: lstat without following links, and its content hash."""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass

HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class FileInfo:
    path: str
    size: int
    mtime: float


def regular_file(path: str) -> FileInfo | None:
    """lstat a path: a FileInfo for a regular file (never through a symlink), else None."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return FileInfo(path, st.st_size, st.st_mtime)


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()
