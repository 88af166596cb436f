"""Reconcile a watched folder against the database, one folder at a time.

What inotify missed (files added or removed while the daemon was down, event-queue overflows,
network filesystems) is found here. The scan is a stream: each ``step()`` lists one folder,
reads that folder's rows (an indexed lookup), and says which files to take and which rows are
gone. Memory stays at one folder's listing plus the set of folders visited, whatever the size of
the library, and the caller can hash and record files while the scan goes on.

Rules that keep a library safe:
- A folder that cannot be listed (permissions, an I/O error, a watched root that is missing) says
  nothing about its files: its rows, and the rows below it, are left alone.
- A watched root that is completely empty while the database has photos under it is far more
  often a disk that is not mounted (its bare mount point) than a library emptied while watcherd
  was stopped: the scan leaves its rows alone. Deletions seen live by inotify are still recorded.
- Folders and files the rules exclude are not entered; rows under a folder that became excluded
  are gone (``finish()``).
"""

from __future__ import annotations

import errno
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from watcherd.store import discovery, schema
from watcherd.watch.files import FileInfo
from watcherd.watch.rules import Rules


@dataclass
class FolderDiff:
    """One folder's reconcile: files to take (new or changed), rows whose file is gone."""

    folder: str
    listed_at: str  # rows were read, then the folder listed, from this time on
    take: list[FileInfo] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)
    unchanged: int = 0
    sidecars: list[FileInfo] = field(default_factory=list)  # XMP sidecars (see watch/sidecars)


@dataclass
class Progress:
    folders: int = 0
    files: int = 0
    unchanged: int = 0
    to_take: int = 0
    gone: int = 0


class Scan:
    """The reconcile of one root. Call ``step()`` until it returns None, then ``finish()``."""

    def __init__(self, conn: sqlite3.Connection, root: Path, rules: Rules,
                 recursive: bool = True) -> None:
        self.conn = conn
        self.root = str(root)
        self.rules = rules
        self.recursive = recursive
        self.progress = Progress()
        # folders that could not be listed, with the reason: rows under them are left alone
        self.skipped: list[tuple[str, str]] = []
        self._stack = [self.root]
        self._visited: set[str] = set()
        self.started_at = schema.now_iso()

    def step(self) -> FolderDiff | None:
        """List the next folder and compare it with its rows; None when every folder is done."""
        while self._stack:
            folder = self._stack.pop()
            # Rows first, then the listing: a photo that arrives in between has no row in
            # ``known`` (never 'gone'), and rows changed after ``listed_at`` (a move onto a
            # path the listing did not have yet) are never marked deleted for it.
            listed_at = schema.now_iso()
            known = discovery.rows_in_folder(self.conn, folder)
            try:
                with os.scandir(folder) as it:
                    entries = list(it)
            except OSError as exc:
                # A subfolder that vanished mid-scan really is gone (finish() says so); anything
                # else, or the root itself, leaves its rows alone.
                if folder == self.root or exc.errno != errno.ENOENT:
                    self.skipped.append((folder, exc.strerror or str(exc)))
                continue
            if folder == self.root and not entries and discovery.has_live_rows_under(self.conn,
                                                                           Path(folder)):
                self.skipped.append((folder, "folder is empty (disk not mounted?)"))
                continue
            self._visited.add(folder)
            self.progress.folders += 1
            return self._diff(folder, entries, known, listed_at)
        return None

    def _diff(self, folder: str, entries: list[os.DirEntry[str]], known: dict[str, discovery.Known],
              listed_at: str) -> FolderDiff:
        diff = FolderDiff(folder, listed_at)
        present: set[str] = set()
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    if self.recursive and not self.rules.excluded_name(entry.name):
                        self._stack.append(entry.path)
                    continue
                if not entry.is_file(follow_symlinks=False):
                    continue
                if not self.rules.file_name_ok(entry.name):
                    if self.rules.sidecar_name_ok(entry.name):
                        st = entry.stat(follow_symlinks=False)
                        diff.sidecars.append(FileInfo(entry.path, st.st_size, st.st_mtime))
                    continue
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            present.add(entry.path)
            self.progress.files += 1
            k = known.get(entry.path)
            if k is not None and not k.deleted and (k.size, k.mtime) == (st.st_size,
                                                                         st.st_mtime):
                diff.unchanged += 1
            else:
                diff.take.append(FileInfo(entry.path, st.st_size, st.st_mtime))
        diff.gone = [p for p, k in known.items() if not k.deleted and p not in present]
        self.progress.unchanged += diff.unchanged
        self.progress.to_take += len(diff.take)
        self.progress.gone += len(diff.gone)
        return diff

    def finish(self) -> list[str]:
        """Folders with live rows that the walk did not visit (deleted, moved away while we
        were down, excluded now), except those under a folder it could not list: every row
        directly in them that has not changed since ``started_at`` is gone (a folder created
        while the scan ran, after its parent was listed, holds only newer rows)."""
        if self._stack:
            raise RuntimeError("finish() before the walk is done")
        if not self.recursive or any(f == self.root for f, _ in self.skipped):
            return []
        skipped = tuple(f.rstrip("/") + "/" for f, _ in self.skipped)
        return [f for f in discovery.live_folders_under(self.conn, Path(self.root),
                                                        before=self.started_at)
                if f not in self._visited and not (f + "/").startswith(skipped)]


@dataclass
class ScanResult:
    to_take: list[FileInfo] = field(default_factory=list)
    unchanged: int = 0
    deleted: int = 0
    unreadable: list[tuple[str, str]] = field(default_factory=list)


def reconcile(conn: sqlite3.Connection, root: Path, rules: Rules,
              recursive: bool = True) -> ScanResult:
    """The whole scan at once, in the caller's thread: rows whose file is gone are marked
    deleted; files that are new or changed are returned for the caller to take."""
    scan = Scan(conn, root, rules, recursive)
    result = ScanResult()
    while (diff := scan.step()) is not None:
        result.to_take.extend(diff.take)
        result.unchanged += diff.unchanged
        if diff.gone:
            result.deleted += discovery.mark_deleted(conn, diff.gone, before=diff.listed_at)
    for folder in scan.finish():
        result.deleted += discovery.mark_folder_files_deleted(conn, folder, before=scan.started_at)
    result.unreadable = scan.skipped
    return result


def walk(root: Path, rules: Rules, recursive: bool = True) -> Iterator[FileInfo]:
    """Every file under root that the rules take (symlinks are never followed)."""
    stack = [str(root)]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    if recursive and not rules.excluded_name(entry.name):
                        stack.append(entry.path)
                elif entry.is_file(follow_symlinks=False) and rules.file_name_ok(entry.name):
                    st = entry.stat(follow_symlinks=False)
                    yield FileInfo(entry.path, st.st_size, st.st_mtime)
            except OSError:
                continue
