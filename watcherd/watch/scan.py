"""Reconcile watched folders against the database: what inotify missed (files added or removed
while the daemon was down, event-queue overflows, network filesystems) is found here.

Also the rules for which names count as images (``is_candidate``), shared with the watcher.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import sqlite_utils

from watcherd.store import db

TEMP_SUFFIXES = (".part", ".tmp", "~", ".crdownload", ".partial", ".swp")


def is_candidate(path: str, extensions: Sequence[str]) -> bool:
    """An image name we take: a known extension (any case), not a temporary name."""
    name = os.path.basename(path)
    if not name or name.startswith(".") or name.lower().endswith(TEMP_SUFFIXES):
        return False
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return ext in extensions


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


def walk(root: Path, extensions: Sequence[str], recursive: bool,
         errors: list[tuple[str, OSError]] | None = None) -> Iterator[FileInfo]:
    """Every candidate regular file under root. Symlinks (files and folders) are not followed,
    so a link pointing outside the watched tree, or a link loop, is never entered. Folders that
    cannot be listed are skipped and, when ``errors`` is given, appended to it."""
    stack = [str(root)]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError as exc:  # unreadable or vanished folder
            if errors is not None:
                errors.append((folder, exc))
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    if recursive and not entry.name.startswith("."):
                        stack.append(entry.path)
                elif entry.is_file(follow_symlinks=False) and is_candidate(entry.path,
                                                                           extensions):
                    st = entry.stat(follow_symlinks=False)
                    yield FileInfo(entry.path, st.st_size, st.st_mtime)
            except OSError:
                continue


@dataclass
class ScanResult:
    to_take: list[FileInfo] = field(default_factory=list)
    unchanged: int = 0
    deleted: int = 0
    # folders that could not be listed, with the reason: rows under them were left alone
    unreadable: list[tuple[str, str]] = field(default_factory=list)


def reconcile(conn: sqlite_utils.Database, root: Path, extensions: Sequence[str],
              recursive: bool = True) -> ScanResult:
    """Compare ``root`` with the database. Rows whose file is gone are marked deleted now (first,
    so a file moved while we were down is recognised by its content); files that are new or
    changed (size or mtime) are returned for the caller to take."""
    known = db.known_under(conn, root)
    result = ScanResult()
    seen: set[str] = set()
    errors: list[tuple[str, OSError]] = []
    for info in walk(root, extensions, recursive, errors):
        seen.add(info.path)
        k = known.get(info.path)
        if k is not None and not k.deleted and k.size == info.size and k.mtime == info.mtime:
            result.unchanged += 1
        else:
            result.to_take.append(info)
    gone = [p for p, k in known.items() if not k.deleted and p not in seen]
    if not recursive:
        gone = [p for p in gone if os.path.dirname(p) == str(root)]
    # A folder we cannot list (permissions, an I/O error, a watched root that is missing or
    # not mounted) says nothing about its files: leave their rows alone rather than mark a
    # whole library deleted. A subfolder that vanished mid-scan (ENOENT) really is gone.
    skipped = [(f, exc.strerror or str(exc)) for f, exc in errors
               if f == str(root) or exc.errno != errno.ENOENT]
    if gone and not skipped and _empty(root):
        # Every photo gone and the folder bare: far more often a disk that is not mounted
        # (its bare mount point) than a library emptied while watcherd was stopped. Deletions
        # seen live by inotify are still recorded; the scan alone does not wipe a library.
        skipped = [(str(root), "folder is empty (disk not mounted?)")]
    if skipped:
        prefixes = tuple(f.rstrip("/") + "/" for f, _ in skipped)
        gone = [p for p in gone if not p.startswith(prefixes)]
        result.unreadable = skipped
    result.deleted = db.mark_deleted(conn, gone) if gone else 0
    return result


def _empty(folder: Path) -> bool:
    try:
        with os.scandir(folder) as it:
            return next(it, None) is None
    except OSError:
        return False

