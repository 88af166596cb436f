"""Feeding ``metadata_due`` (``watcherd.store.metadata``) to the thumbnail workers as
``watcherd.metadata`` tasks: photos whose metadata must be read again without their pixels
(the backfill after an upgrade; sidecars written, changed or removed later).

Like a thumbnail backlog, it is sent in slices while the thumbnails queue is short, so new
photos never wait behind it; sidecar changes go first, then the newest photos. A message lost
on the way (its row still due long after it was sent, with the queue empty) is sent again;
a photo sent ``[broker] max_attempts`` times without a result gets a row that says so."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass

from celery import Celery

from watcherd import logs
from watcherd.broker.app import METADATA_TASK, queue_names
from watcherd.config import Config
from watcherd.store import metadata as stored
from watcherd.store.schema import iso_ago

log = logs.get("watcherd.dispatch.metadata_feed")

PRUNE_EVERY_S = 60.0


@dataclass
class MetadataFeed:
    app: Celery
    conn: sqlite3.Connection
    cfg: Config
    target: int  # messages kept in the thumbnails queue at most (Outbox.backlog_target)
    sent_total: int = 0
    _pruned_at: float = float("-inf")

    def feed(self, depth: Callable[[], int | None]) -> int:
        """Send the next slice when the thumbnails queue (``depth()``) is short."""
        now = time.monotonic()
        if now - self._pruned_at >= PRUNE_EVERY_S:
            self._pruned_at = now
            stored.prune_due(self.conn)
            if stored.give_up(self.conn, self.cfg.broker.max_attempts):
                log.warning("metadata given up for photos sent too often without a result")
        if not stored.due(self.conn, 1, resend_before=iso_ago(0)):
            return 0
        queued = depth()
        if queued is None or queued >= self.target // 2:
            return 0
        # An empty queue and rows sent long ago: their messages were lost; send them again.
        resend = iso_ago(self.cfg.broker.resend_after_seconds) if queued == 0 else None
        due = stored.due(self.conn, self.target - queued, resend_before=resend)
        return self._send(due)

    def _send(self, due: list[tuple[int, str]]) -> int:
        queue = queue_names(self.cfg)["thumbnail"]
        sent: list[tuple[int, str]] = []
        try:
            with self.app.producer_or_acquire() as producer:
                for image_id, sha256 in due:
                    self.app.send_task(METADATA_TASK, args=[image_id, sha256], queue=queue,
                                       routing_key=queue, producer=producer)
                    sent.append((image_id, sha256))
        except Exception as exc:  # the outbox says the broker is down; they stay due
            log.debug("metadata tasks not sent", error=f"{type(exc).__name__}: {exc}")
        if sent:
            stored.mark_sent(self.conn, sent)
            self.sent_total += len(sent)
            log.info("tasks sent", task="metadata", count=len(sent))
        return len(sent)
