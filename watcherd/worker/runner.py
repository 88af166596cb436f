"""One worker process, start to stop: `watcherd worker thumbnails|embeddings`.

1. The heartbeat starts (``starting``), so the watcher sees the worker while its model loads.
2. The embedding worker loads its model (``ready`` or ``model failed`` with the reason; a
   model that fails is tried again in the background with backoff, and once it loads the
   photos that failed for that reason are queued again).
3. The Celery worker consumes until SIGTERM/SIGINT (``stopping`` during its warm shutdown).
4. A last heartbeat says ``stopped``.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
from typing import Any

from celery import signals

from watcherd import logs
from watcherd.broker.app import EMBED_TASK, events_enabled, make_app, queue_names
from watcherd.broker.redis_unacked import worker_transport_options
from watcherd.config import Config
from watcherd.fleet.busy import Markers
from watcherd.fleet.celery_heart import ThreadHeart
from watcherd.fleet.heartbeat import Beacon
from watcherd.fleet.messages import MODEL_FAILED, READY, REFUSING, STOPPING
from watcherd.worker import metadata as worker_metadata
from watcherd.worker import tasks, unacked
from watcherd.worker.database import database

log = logs.get("watcherd.worker.runner")
ROLES = {"thumbnails": "thumbnail", "embeddings": "embedding"}  # role -> task kind


def run_worker(cfg: Config, role: str) -> int:
    """Run one worker process until it is told to stop; its exit code."""
    return WorkerProcess(cfg, role).run()


class WorkerProcess:
    """One worker process: its heartbeat (``beacon``), its busy markers, the model (embedding
    worker), the Celery app with watcherd's tasks, and the Celery worker that consumes."""

    def __init__(self, cfg: Config, role: str) -> None:
        self.cfg, self.role, self.kind = cfg, role, ROLES[role]
        self.beacon = Beacon(cfg, role, self.kind)
        self.holder = tasks.EmbedderHolder()
        self.heart: ThreadHeart | None = None
        self.app: Any = None
        self.worker: Any = None  # Celery's WorkController, once it exists
        self.retry_stop = threading.Event()  # ends the background model loading

    def run(self) -> int:
        if self.role == "embeddings":
            e = self.cfg.embeddings
            self.beacon.model = (e.model, e.pretrained, e.device)
        self.beacon.start()
        markers = Markers(self.cfg, self.beacon.name)
        try:
            if self.role == "thumbnails":
                # One pool child per core already: LibRaw's OpenMP demosaic on one thread each
                # (no slower here, and no OpenMP runtime shared across fork).
                os.environ.setdefault("OMP_NUM_THREADS", "1")
                worker_metadata.warm()  # before the pool forks: its children share it
            if self.role == "embeddings":
                self.holder.load(self.cfg, self._database())
                self._announce_model()
                self.holder.notify = lambda message: self.beacon.set_state(self.beacon.state,
                                                                            message)
            self.app = self._celery_app()
            tasks.register(self.app, self.cfg, self.holder, markers, refuse=self.refuse)
            self._count_from_the_tasks()
            self.beacon.set_state(MODEL_FAILED if self.holder.error else READY,
                                  self.holder.error)
            self.beacon.beat()
            if self.role == "embeddings" and self.holder.embedder is None:
                self.holder.keep_loading(self.cfg, self._database, self._loaded,
                                         self.retry_stop)
            signals.worker_shutting_down.connect(self._shutting_down, weak=False)
            self.worker = self._celery_worker()
            self.worker.start()
            return int(self.worker.exitcode or 0)
        finally:
            if self.heart is not None:
                self.heart.stop()
            self.beacon.stop()
            markers.close()

    def refuse(self, reason: str) -> None:
        """Work this worker cannot do correctly: say why (log, heartbeat, so status) and stop
        taking work; the messages go back to the queue for a worker that fits."""
        if self.beacon.state == REFUSING:
            return
        log.error("refusing work; this worker stops taking tasks until it is reconfigured and "
                  "restarted (or, for a model that did not load, until it loads)",
                  reason=reason)
        self.beacon.set_state(REFUSING, reason)
        self.beacon.beat()
        if self.worker is not None and self.worker.consumer is not None:
            self.worker.consumer.cancel_task_queue(queue_names(self.cfg)[self.kind])

    def _database(self) -> sqlite3.Connection | None:
        d = self.cfg.database if self.cfg.local else None
        return None if d is None else database(str(d.path), d.busy_timeout_seconds)

    def _announce_model(self) -> None:
        """The loaded model's identity and input in the heartbeat."""
        embedder, key = self.holder.embedder, self.holder.key
        if embedder is not None and key is not None:
            self.beacon.model = (*key, embedder.device)
            spec = embedder.input_spec()
            self.beacon.input = spec.to_json() if spec is not None else None

    def _loaded(self) -> None:
        """The model loaded in the background after failing at the start."""
        self._announce_model()
        if self.beacon.state == REFUSING and self.worker is not None:
            # refused while the model was missing: through the broker, since the consumer
            # belongs to the worker's own thread
            try:
                self.app.control.add_consumer(queue_names(self.cfg)[self.kind],
                                              destination=[self.worker.hostname])
                log.info("model loaded: taking work again")
            except Exception as exc:  # the broker's errors: a restart resumes it
                log.warning("model loaded, but cannot take work again until the worker is "
                            "restarted", error=str(exc))
        self.beacon.set_state(READY, None)

    def _celery_app(self) -> Any:
        cfg = self.cfg
        # the embedding worker's prefetch: a batch must be able to fill
        prefetch = 2 * cfg.embeddings.batch_size if self.role == "embeddings" else 4
        app = make_app(cfg, prefetch_multiplier=prefetch)
        # Redis: this worker's unacknowledged messages under keys of its own, so that the
        # watcher can give them back to their queues if it dies (broker/redis_unacked.py).
        app.conf.broker_transport_options = {**app.conf.broker_transport_options,
                                             **worker_transport_options(cfg, self.beacon.name)}
        if self.role == "thumbnails" and cfg.thumbnails.max_memory_per_child_mb:
            # A pool child above this RSS after a task is replaced by a fresh one (Celery).
            app.conf.worker_max_memory_per_child = cfg.thumbnails.max_memory_per_child_mb * 1024
        return app

    def _count_from_the_tasks(self) -> None:
        """What the heartbeat reports as held and processed."""
        if self.role == "embeddings":
            batches: tasks.EmbedBatches = self.app.tasks[EMBED_TASK]
            self.beacon.held, self.beacon.processed = batches.held, lambda: batches.done
        else:
            self.beacon.held = unacked.prefork_held
            self.beacon.processed = unacked.prefork_processed

    def _shutting_down(self, **_: Any) -> None:
        self.retry_stop.set()
        self.beacon.set_state(STOPPING, self.beacon.message)

    def _celery_worker(self) -> Any:
        cfg = self.cfg
        hostname = f"{self.role}@{socket.gethostname()}"
        solo = self.role == "embeddings"
        # The solo pool blocks Celery's heart during a batch: a thread sends its events.
        if solo and events_enabled(cfg):
            heart = self.heart = ThreadHeart(self.app, hostname)
            signals.worker_ready.connect(lambda **_: heart.start(), weak=False)
        return self.app.Worker(
            queues=[queue_names(cfg)[self.kind]], pool="solo" if solo else "prefork",
            concurrency=1 if solo else cfg.thumbnails.concurrency,
            hostname=hostname, loglevel=cfg.log.level.upper(),
            # Heartbeats for Flower and celery-exporter; no gossip (each worker would consume
            # every other worker's events, for elections watcherd never holds) and no mingle
            # (a second's wait at every start, to sync revokes watcherd never issues).
            without_gossip=True, without_mingle=True,
            without_heartbeat=not events_enabled(cfg) or self.heart is not None,
            optimization="fair", quiet=True,
        )
