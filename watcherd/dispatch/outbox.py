"""The outbox: rows are written first, then their tasks are sent from here.

A row is due when it is ``pending`` and was never sent, or was sent longer ago than
``[broker] resend_after_seconds`` while its queue is empty (the message was lost: a broker
restarted without persistence, a worker was killed on a transport that does not redeliver).
A broker that cannot be reached leaves rows due; the next tick sends them. A queue whose depth
cannot be read is not taken for an empty one: nothing is re-sent to it until the depth is
known again (the reason is logged).

A backlog (photos a model or thumbnail settings change left uncovered: ``store/backlog.py``)
is fed separately, in slices, while the queue is short (``feed_backlog``), and so are the
photos whose metadata is due (``metadata_feed``).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from celery import Celery

from watcherd import logs
from watcherd.broker.app import PREPARE_TASK, TASKS, queue_depths, queue_names
from watcherd.config import Config
from watcherd.dispatch import remote
from watcherd.dispatch.current_model import CurrentModel
from watcherd.dispatch.metadata_feed import MetadataFeed
from watcherd.media.clipinput import InputSpec
from watcherd.store import backlog, schema, sending

log = logs.get("watcherd.dispatch.outbox")

BACKLOG_DEPTH = 256  # at least this many backlog messages kept in a queue (see backlog_target)


@dataclass
class Outbox:
    app: Celery
    conn: sqlite3.Connection
    cfg: Config
    broker_ok: bool = True
    sent_total: dict[str, int] = field(default_factory=lambda: {k: 0 for k in schema.KINDS})
    depth_error: str | None = None  # why the last queue depth could not be read
    #: The configured model's identity (model, pretrained), carried by every embedding task
    #: (a worker running another model refuses it); its key is None while it cannot be computed.
    model: CurrentModel = field(default_factory=CurrentModel)
    # [embeddings] remote: the input spec of the configured model, as its embedding workers
    # announce it (the watcher's FleetMonitor); None (a CLI command): embeddings are left to the
    # watcher, which sends them within outbox_interval_seconds.
    input_spec: Callable[[], InputSpec | None] | None = None
    waiting_for_spec: bool = False
    metadata: MetadataFeed = field(init=False)

    def __post_init__(self) -> None:
        self.metadata = MetadataFeed(self.app, self.conn, self.cfg,
                                     self.backlog_target("thumbnail"))

    def send_due(self, *, resend_stale: bool = False,
                 stale_before: dict[str, str] | None = None) -> dict[str, int]:
        """Send every due row; returns how many were sent per kind. ``stale_before`` moves the
        stale line of a kind later (a worker died at that time: see fleet/monitor.py)."""
        sent: dict[str, int] = {k: 0 for k in schema.KINDS}
        for kind in schema.KINDS:
            job = self._remote_job() if kind == "embedding" and self.cfg.embeddings.remote \
                else None
            if job == {}:
                continue  # no embedding worker has said what its model takes yet
            resend_before = None
            if resend_stale:
                resend_before = max(schema.iso_ago(self.cfg.broker.resend_after_seconds),
                                    (stale_before or {}).get(kind, ""))
                if not sending.due_for_dispatch(self.conn, kind, resend_before=resend_before,
                                                limit=1):
                    continue
                if not self._queue_empty(kind):
                    resend_before = None  # the backlog is still being worked on
            # Remote: each prepared photo waits in the broker as ~120 KB; a big import must not
            # pile them up there ([embeddings] remote_in_flight). Re-sends are already counted.
            room = self._remote_room() if job and resend_before is None else 500
            while room > 0:
                due = sending.due_for_dispatch(self.conn, kind, resend_before=resend_before,
                                               limit=min(500, room))
                if not due:
                    break
                if job and resend_before is None:
                    room -= len(due)
                n = self._send(kind, due, job)
                sent[kind] += n
                if n < len(due):
                    return sent  # broker unreachable: try again next tick
        return sent

    def _remote_job(self) -> dict[str, Any]:
        """The job for remote embedding, or {} while no worker of the model said its input."""
        spec = self.input_spec() if self.input_spec is not None else None
        key = self.model.key
        if key is None:
            return {}  # the watcher does not know the configured model's identity yet
        if spec is None:
            if self.input_spec is not None and not self.waiting_for_spec:
                log.warning("embeddings wait for an embedding worker of the configured model "
                            "to say what its model takes", model=self.cfg.embeddings.model,
                            pretrained=self.cfg.embeddings.pretrained)
            self.waiting_for_spec = self.input_spec is not None
            return {}
        if self.waiting_for_spec:
            log.info("embedding worker heard; sending embeddings", spec=spec.to_json())
            self.waiting_for_spec = False
        return remote.job(key, spec)

    def _remote_room(self) -> int:
        cap = self.cfg.embeddings.remote_in_flight
        return cap - sending.in_flight(self.conn, "embedding", cap)

    def backlog_target(self, kind: schema.Kind) -> int:
        """Messages the backlog keeps in a queue: enough that a worker never waits between two
        feeds, few enough that a new photo waits behind at most this many."""
        if kind == "embedding":
            return max(BACKLOG_DEPTH, 16 * self.cfg.embeddings.batch_size)
        return max(BACKLOG_DEPTH, 32 * self.cfg.thumbnails.concurrency)

    def feed_backlog(self) -> dict[str, int]:
        """Send the next slice of each backlog (a model or thumbnail settings change), only
        while its queue holds less than half of ``backlog_target``: new photos, sent as they
        come, never wait behind the whole backlog. The same on every broker (spool, RabbitMQ,
        Redis): it only needs the queue's depth. A depth that cannot be read sends nothing."""
        sent: dict[str, int] = {k: 0 for k in schema.KINDS}
        for kind in schema.KINDS:
            if not backlog.due_backlog(self.conn, kind, 1):
                continue
            depth = self._depth(kind)
            target = self.backlog_target(kind)
            if depth is None or depth >= target // 2:
                continue
            want = target - depth
            job = None
            if kind == "embedding" and self.cfg.embeddings.remote:
                job = self._remote_job()
                want = min(want, self._remote_room())
                if not job or want <= 0:
                    continue
            due = backlog.due_backlog(self.conn, kind, want)
            sent[kind] = self._send(kind, due, job)
        sent["metadata"] = self.metadata.feed(lambda: self._depth("thumbnail"))
        return sent

    def _depth(self, kind: schema.Kind) -> int | None:
        """The queue's depth; remote embeddings: both queues, since their prepare messages wait
        on the thumbnails queue first (ahead of new photos' thumbnails)."""
        names = queue_names(self.cfg)
        queue = names[kind]
        try:
            depths = queue_depths(self.app, self.cfg)
            if kind == "embedding" and self.cfg.embeddings.remote:
                return depths[queue] + depths[names["thumbnail"]]
            return depths[queue]
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            if error != self.depth_error:
                log.warning("queue depth unknown: the backlog waits until it can be read",
                            queue=queue, error=error)
            self.depth_error = error
            return None

    def _queue_empty(self, kind: schema.Kind) -> bool:
        """True only when the queue's depth was read and is 0 (remote embeddings: both queues,
        since their work waits on the thumbnails queue first)."""
        names = queue_names(self.cfg)
        queue = names[kind]
        try:
            depths = queue_depths(self.app, self.cfg)
            depth = depths[queue]
            if kind == "embedding" and self.cfg.embeddings.remote:
                depth += depths[names["thumbnail"]]
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            if error != self.depth_error:  # once per distinct reason, not every tick
                log.warning("queue depth unknown: rows sent earlier are not sent again until "
                            "it can be read", queue=queue, error=error)
            self.depth_error = error
            return False
        if self.depth_error is not None:
            log.info("queue depth readable again", queue=queue, depth=depth)
            self.depth_error = None
        return depth == 0

    def _send(self, kind: schema.Kind, due: list[tuple[int, str]],
              job: dict[str, Any] | None = None) -> int:
        sent: list[int] = []
        # remote embeddings: first a thumbnail worker prepares the photo (watcherd.dispatch.remote)
        queue = queue_names(self.cfg)["thumbnail" if job else kind]
        task, kwargs = (PREPARE_TASK, {"job": job}) if job else (TASKS[kind], None)
        started = time.perf_counter()
        error: Exception | None = None
        try:
            with self.app.producer_or_acquire() as producer:
                key = self.model.key
                extra = list(key) if kind == "embedding" and key \
                    and not job else []  # a remote job names the model itself
                for image_id, sha256 in due:
                    self.app.send_task(task, args=[image_id, sha256, *extra], kwargs=kwargs,
                                       queue=queue, routing_key=queue, producer=producer)
                    sent.append(image_id)
        except Exception as exc:
            error = exc
        if sent:
            sending.mark_queued(self.conn, kind, sent)
            self.sent_total[kind] += len(sent)
            log.info("tasks sent", task=kind, count=len(sent),
                     duration_ms=round((time.perf_counter() - started) * 1000, 1))
        if error is not None:
            self._broker_down(error)
        elif not self.broker_ok:
            log.info("broker reachable again", broker=self.cfg.broker.shown_url)
            self.broker_ok = True
        return len(sent)

    def _broker_down(self, exc: Exception) -> None:
        if self.broker_ok:
            log.warning("broker unreachable; rows stay pending and are sent when it is back",
                        broker=self.cfg.broker.shown_url, error=str(exc))
        self.broker_ok = False
