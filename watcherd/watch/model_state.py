"""What the statuses describe, kept in line by the watcher: the configured model's identity
(learnt once its weights can be read; from then on tasks carry it and identical content reuses
vectors under it) and the thumbnail settings. A change queues the photos it leaves uncovered as
a backlog, fed behind new photos, with an estimate of what it will cost."""

from __future__ import annotations

import sqlite3

from watcherd import logs, models
from watcherd.config import Config
from watcherd.dispatch.current_model import CurrentModel
from watcherd.store import backlog, schema, settings

log = logs.get("watcherd.watch.model_state")


class ModelState:
    """Owns ``current``, the model identity the outbox, the ingest and the writer of remote
    results are built with: it fills it in once the identity is learnt, they read it."""

    def __init__(self, cfg: Config, conn: sqlite3.Connection) -> None:
        self.cfg, self.conn = cfg, conn
        self.model: models.ModelIdentity | None = None
        self.current = CurrentModel()
        self._error: str | None = None

    @property
    def key(self) -> tuple[str, str] | None:
        return self.current.key

    def identify(self) -> bool:
        """Learn the configured model's identity; the outbox, ingest and results writer read it
        from ``current`` from then on. True once known."""
        if self.model is not None:
            return True
        try:
            self.model = models.adopt(self.conn, self.cfg)
        except OSError as exc:
            if str(exc) != self._error:  # once per reason, not every tick
                e = self.cfg.embeddings
                log.warning("cannot identify the configured model yet (its weights cannot be "
                            "read); tasks go out without a model key until they can",
                            model=e.model, pretrained=e.pretrained, reason=str(exc))
            self._error = str(exc)
            return False
        key = (self.model.model, self.model.pretrained)
        self.current.learnt(key)
        log.info("model identity", model=key[0], pretrained=key[1], source=self.model.source)
        added = backlog.sync_embeddings(self.conn, *key)
        if added:
            self._backfill("embedding", added, f"model is now {self.model.describe()}")
        return True

    def sync_thumbnails(self) -> None:
        """Thumbnails follow ``[thumbnails] sizes, format, quality``: what a change leaves
        uncovered joins the backlog."""
        t = self.cfg.thumbnails
        wanted = backlog.ThumbSettings(tuple(sorted(set(t.sizes))), t.format, t.quality)
        before = backlog.ThumbSettings.from_json(settings.setting(self.conn, backlog.THUMBNAILS))
        changed = backlog.sync_thumbnails(self.conn, wanted)
        if changed:
            same_encoding = before is not None and (before.format, before.quality) == (
                t.format, t.quality)
            new_sizes = tuple(s for s in wanted.sizes
                              if not same_encoding or before is None or s not in before.sizes)
            self._backfill("thumbnail", changed[0], changed[1], new_sizes=new_sizes)

    def _backfill(self, kind: schema.Kind, photos: int, reason: str, *,
                  new_sizes: tuple[int, ...] = ()) -> None:
        e = backlog.estimate(self.conn, kind, photos, reason, new_sizes=new_sizes)
        backlog.save_estimate(self.conn, e)
        log.info("backfill queued: new photos go first, the backlog is fed behind them",
                 task=kind, reason=reason, photos=photos,
                 estimated_mb=None if e.bytes is None else round(e.bytes / 1e6, 1),
                 estimated_s=e.seconds)
