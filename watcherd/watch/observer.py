"""The observer: watchdog's inotify observer with two things it lacks, or the polling one.

- **Excluded folders get no inotify watch.** watchdog's recursive watch has no exclude hook, so
  ``_Group`` overrides how its watch group adds watches (initially, for new and moved-in folders)
  and drops the watches of a folder renamed to an excluded name. A Synology ``@eaDir`` (one
  folder per photo) would otherwise double the watches a library needs.
- **A kernel queue overflow is a call, not a log line.** ``_Group.on_queue_overflow`` calls
  ``on_overflow`` (the watcher then rescans). Both hooks rely on watchdog's watch-group internals,
  which is why pyproject pins watchdog to the 7.1 series, and why tests check them against the
  real kernel (``tests/unit/test_watch.py``: a folder renamed to an excluded name;
  ``tests/daemon/test_inotify_limits.py``: an overflow).

The polling observer (``[watch] polling``, or when inotify is out of watches) lists folders
through a filter that leaves excluded folders out.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from watchdog.observers.api import DEFAULT_OBSERVER_TIMEOUT, BaseObserver
from watchdog.observers.inotify import InotifyFullEmitter, InotifyWatchGroup
from watchdog.observers.inotify_c import InotifyFD
from watchdog.observers.polling import PollingObserverVFS

from watcherd.watch.rules import Rules


@dataclass
class _Group(InotifyWatchGroup):
    rules: Rules | None = None
    on_overflow: Callable[[], None] | None = field(default=None)

    def _skip(self, path: bytes) -> bool:
        return self.rules is not None and path != self.path and self.rules.excluded_folder(
            os.fsdecode(path))

    def _add_all_callbacks(self, path: bytes) -> None:
        if self._skip(path):
            return
        self._add_callback(path)
        if not (self.is_recursive and os.path.isdir(path)):
            return
        for root, dirnames, _ in os.walk(path, followlinks=False):
            keep = []
            for name in dirnames:
                full = os.path.join(root, name)
                if os.path.islink(full) or self._skip(full):
                    continue
                keep.append(name)
                self._add_callback(full)
            dirnames[:] = keep  # prune: never descend into an excluded folder

    def _move_watches(self, move_src_path: bytes, move_dst_path: bytes) -> bool:
        watched = super()._move_watches(move_src_path, move_dst_path)
        if watched and self._skip(move_dst_path):
            prefix = move_dst_path + b"/"
            gone = [wd for p, wd in self._active_callbacks_by_path.items()
                    if p == move_dst_path or p.startswith(prefix)]
            self._remove_callbacks(gone)
        return watched

    def on_queue_overflow(self) -> None:
        super().on_queue_overflow()
        if self.on_overflow is not None:
            self.on_overflow()


class _Emitter(InotifyFullEmitter):
    def __init__(self, *args: Any, rules: Rules, on_overflow: Callable[[], None],
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rules = rules
        self._on_overflow = on_overflow

    def on_thread_start(self) -> None:
        self._inotify = _Group(
            self._inotify_fd, os.fsencode(self.watch.path), is_recursive=self.watch.is_recursive,
            event_mask=self.get_event_mask_from_filter(), follow_symlink=False,
            rules=self._rules, on_overflow=self._on_overflow)


class InotifyObserver(BaseObserver):
    """watchdog's InotifyObserver with ``_Emitter`` (full move events, excludes, overflow)."""

    def __init__(self, rules: Rules, on_overflow: Callable[[], None], *,
                 timeout: float = DEFAULT_OBSERVER_TIMEOUT) -> None:
        self._inotify_fd = InotifyFD()
        self._inotify_fd.start()
        super().__init__(_Emitter, timeout=timeout, inotify_fd=self._inotify_fd, rules=rules,
                         on_overflow=on_overflow)

    def on_thread_stop(self) -> None:
        super().on_thread_stop()
        self._inotify_fd.stop()
        self._inotify_fd.join()

    def watched_folders(self) -> list[str]:
        """Every folder with an inotify watch now (for tests and `status`)."""
        out: list[str] = []
        for emitter in list(self._emitters):
            group = getattr(emitter, "_inotify", None)
            if group is not None:
                out.extend(os.fsdecode(p) for p in group._active_callbacks_by_path)
        return out


def polling_observer(rules: Rules, interval: float) -> BaseObserver:
    def listdir(path: str | None) -> Iterator[os.DirEntry[str]]:
        for entry in os.scandir(path):
            if entry.is_dir(follow_symlinks=False) and rules.excluded_folder(entry.path):
                continue
            yield entry

    return PollingObserverVFS(os.lstat, listdir, polling_interval=interval)
