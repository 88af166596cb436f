"""The observer the watcher listens to: inotify, or polling (``[watch] polling``, or when
inotify's limits are reached, with the sysctl that raises them in the log). Events go on the
loop's inbox; a folder that comes back (re-created, re-mounted) is watched anew."""

from __future__ import annotations

import contextlib
import errno
import queue
from collections.abc import Callable
from pathlib import Path
from typing import Any

from watchdog.events import (
    DirDeletedEvent,
    DirMovedEvent,
    FileAttribEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers.api import BaseObserver, ObservedWatch

from watcherd import logs
from watcherd.config import WatchConfig
from watcherd.watch.observer import InotifyObserver, polling_observer
from watcherd.watch.rules import Rules

log = logs.get("watcherd.watch.observing")

INOTIFY_HELP = (
    "inotify limit reached ({what}); falling back to polling, which is slower. Raise the limit: "
    "`sysctl fs.inotify.max_user_watches=524288` (persist it in /etc/sysctl.d/90-watcherd.conf), "
    "then restart watcherd"
)
EVENTS = (FileClosedEvent, FileCreatedEvent, FileModifiedEvent, FileAttribEvent,
          FileDeletedEvent, FileMovedEvent, DirMovedEvent, DirDeletedEvent)


class _Handler(FileSystemEventHandler):
    def __init__(self, inbox: queue.Queue[Any]) -> None:
        self.inbox = inbox

    def on_any_event(self, event: FileSystemEvent) -> None:
        # FileAttribEvent: a chmod/chown can make an unreadable file readable (`install -m`
        # creates 0600, closes, then chmods); the lane skips files whose row is unchanged.
        if isinstance(event, EVENTS):
            self.inbox.put(event)


class Observing:
    def __init__(self, w: WatchConfig, rules: Rules, inbox: queue.Queue[Any],
                 on_overflow: Callable[[], None]) -> None:
        self.w, self.rules, self.on_overflow = w, rules, on_overflow
        self.handler = _Handler(inbox)
        self.observer: BaseObserver | None = None
        self.watches: dict[Path, ObservedWatch] = {}
        self.polling = w.polling

    def start(self) -> None:
        w = self.w
        if not self.polling:
            observer: BaseObserver | None = None
            try:
                observer = InotifyObserver(self.rules, self.on_overflow)
                for path in w.paths:
                    self.watches[path] = observer.schedule(self.handler, str(path),
                                                           recursive=w.recursive)
                observer.start()
                log.info("watching", paths=[str(p) for p in w.paths], observer="inotify",
                         exclude=list(self.rules.exclude))
                self.observer = observer
                return
            except OSError as exc:
                if exc.errno not in (errno.ENOSPC, errno.EMFILE):
                    raise
                if observer is not None:
                    observer.stop()
                what = "max_user_watches" if exc.errno == errno.ENOSPC else "max_user_instances"
                log.error(INOTIFY_HELP.format(what=what), error=str(exc))
                self.polling = True
        observer = polling_observer(self.rules, w.polling_interval_seconds)
        self.watches.clear()
        for path in w.paths:
            self.watches[path] = observer.schedule(self.handler, str(path), recursive=w.recursive)
        observer.start()
        log.info("watching", paths=[str(p) for p in w.paths], observer="polling",
                 interval_s=w.polling_interval_seconds, exclude=list(self.rules.exclude))
        self.observer = observer

    def rewatch(self, path: Path) -> None:
        """Watch a watched folder again once it is back: inotify dropped its watch when it
        went (the old watch stayed until now: unscheduling it earlier could drop deletion
        events not delivered yet)."""
        watch = self.watches.pop(path, None)
        if self.observer is None:
            return
        if watch is not None:
            with contextlib.suppress(KeyError, OSError):
                self.observer.unschedule(watch)
        try:
            self.watches[path] = self.observer.schedule(self.handler, str(path),
                                                        recursive=self.w.recursive)
        except OSError as exc:  # e.g. out of inotify watches: the periodic scan still runs
            log.error("cannot watch folder", path=str(path), error=str(exc))
        else:
            log.info("watching folder again", path=str(path))

    def close(self) -> None:
        if self.observer is not None:
            self.observer.stop()
            self.observer.join(timeout=5)
