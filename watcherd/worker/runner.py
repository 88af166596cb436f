"""One worker process, start to stop: `watcherd worker thumbnails|embeddings`.

1. The heartbeat starts (``starting``), so the watcher sees the worker while its model loads.
2. The embedding worker loads its model (``ready`` or ``model failed`` with the reason; a
   model that fails is tried again in the background with backoff, and once it loads the
   photos that failed for that reason are queued again).
3. The Celery worker consumes until SIGTERM/SIGINT (``stopping`` during its warm shutdown).
4. A last heartbeat says ``stopped``.
"""

from __future__ import annotations

import socket
import threading
from typing import Any

from celery import signals

from watcherd import logs
from watcherd.config import Config
from watcherd.queue.app import EMBED_TASK, events_enabled, make_app, queue_names
from watcherd.queue.events import MODEL_FAILED, READY, REFUSING, STOPPING
from watcherd.queue.giveback import worker_transport_options
from watcherd.worker import held, tasks
from watcherd.worker.beacon import Beacon
from watcherd.worker.celeryheart import ThreadHeart
from watcherd.worker.dbconn import database
from watcherd.worker.markers import Markers

log = logs.get("watcherd.worker.runner")
ROLES = {"thumbnails": "thumbnail", "embeddings": "embedding"}  # role -> task kind


def run_worker(cfg: Config, role: str) -> int:
    kind = ROLES[role]
    beacon = Beacon(cfg, role, kind)
    holder = tasks.EmbedderHolder()
    if role == "embeddings":
        e = cfg.embeddings
        beacon.model = (e.model, e.pretrained, e.device)
    beacon.start()
    markers = Markers(cfg, beacon.name)
    heart: ThreadHeart | None = None
    try:
        if role == "embeddings":
            holder.load(cfg, database(str(cfg.database.path),
                                      cfg.database.busy_timeout_seconds) if cfg.local else None)
            if holder.embedder is not None and holder.key is not None:
                beacon.model = (*holder.key, holder.embedder.device)
                spec = holder.embedder.input_spec()
                beacon.input = spec.to_json() if spec is not None else None
            holder.notify = lambda message: beacon.set_state(beacon.state, message)
            prefetch = 2 * cfg.embeddings.batch_size  # a batch must be able to fill
            pool, concurrency = "solo", 1
        else:
            prefetch, pool, concurrency = 4, "prefork", cfg.thumbnails.concurrency
        app = make_app(cfg, prefetch_multiplier=prefetch)
        # Redis: this worker's unacknowledged messages under keys of its own, so that the
        # watcher can give them back to their queues if it dies (queue/giveback.py).
        app.conf.broker_transport_options = {**app.conf.broker_transport_options,
                                             **worker_transport_options(cfg, beacon.name)}
        app.conf.worker_consumer = "watcherd.worker.consumer:Consumer"
        worker: list[Any] = []  # the WorkController, once it exists

        def refuse(reason: str) -> None:
            """Work this worker cannot do correctly: say why (log, heartbeat, so status) and
            stop taking work; the messages go back to the queue for a worker that fits."""
            if beacon.state != REFUSING:
                log.error("refusing work; this worker stops taking tasks until it is "
                          "reconfigured and restarted (or, for a model that did not load, "
                          "until it loads)", reason=reason)
                beacon.set_state(REFUSING, reason)
                beacon.beat()
                if worker and worker[0].consumer is not None:
                    worker[0].consumer.cancel_task_queue(queue_names(cfg)[kind])

        if role == "thumbnails" and cfg.thumbnails.max_memory_per_child_mb:
            # A pool child above this RSS after a task is replaced by a fresh one (Celery).
            app.conf.worker_max_memory_per_child = cfg.thumbnails.max_memory_per_child_mb * 1024
        tasks.register(app, cfg, holder, markers, refuse=refuse)
        if role == "embeddings":
            batches: tasks.EmbedBatches = app.tasks[EMBED_TASK]
            beacon.held, beacon.processed = batches.held, lambda: batches.done
        else:
            beacon.held, beacon.processed = held.prefork_held, held.prefork_processed
        beacon.set_state(MODEL_FAILED if holder.error else READY, holder.error)
        beacon.beat()
        retry_stop = threading.Event()
        if role == "embeddings" and holder.embedder is None:

            def loaded() -> None:
                assert holder.embedder is not None and holder.key is not None
                beacon.model = (*holder.key, holder.embedder.device)
                spec = holder.embedder.input_spec()
                beacon.input = spec.to_json() if spec is not None else None
                if beacon.state == REFUSING and worker:  # refused while the model was missing
                    # through the broker: the consumer belongs to the worker's own thread
                    try:
                        app.control.add_consumer(queue_names(cfg)[kind],
                                                 destination=[worker[0].hostname])
                        log.info("model loaded: taking work again")
                    except Exception as exc:  # the broker's errors: a restart resumes it
                        log.warning("model loaded, but cannot take work again until the "
                                    "worker is restarted", error=str(exc))
                beacon.set_state(READY, None)

            holder.keep_loading(cfg, lambda: database(
                str(cfg.database.path), cfg.database.busy_timeout_seconds) if cfg.local else None,
                loaded, retry_stop)

        def shutting_down(**_: Any) -> None:
            retry_stop.set()
            beacon.set_state(STOPPING, beacon.message)

        signals.worker_shutting_down.connect(shutting_down, weak=False)
        hostname = f"{role}@{socket.gethostname()}"
        # The solo pool blocks Celery's heart during a batch: a thread sends its events.
        if pool == "solo" and events_enabled(cfg):
            heart = ThreadHeart(app, hostname)
            signals.worker_ready.connect(lambda **_: heart.start(), weak=False)
        w = app.Worker(
            queues=[queue_names(cfg)[kind]], pool=pool, concurrency=concurrency,
            hostname=hostname, loglevel=cfg.log.level.upper(),
            # Heartbeats for Flower and celery-exporter; no gossip (each worker would consume
            # every other worker's events, for elections watcherd never holds) and no mingle
            # (a second's wait at every start, to sync revokes watcherd never issues).
            without_gossip=True, without_mingle=True,
            without_heartbeat=not events_enabled(cfg) or heart is not None,
            optimization="fair", quiet=True,
        )
        worker.append(w)
        w.start()
        return int(w.exitcode or 0)
    finally:
        if heart is not None:
            heart.stop()
        beacon.stop()
        markers.close()
