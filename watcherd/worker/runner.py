"""One worker process, start to stop: `watcherd worker thumbnails|embeddings`.

1. The heartbeat starts (``starting``), so the watcher sees the worker while its model loads.
2. The embedding worker loads its model (``ready`` or ``model failed`` with the reason).
3. The Celery worker consumes until SIGTERM/SIGINT (``stopping`` during its warm shutdown).
4. A last heartbeat says ``stopped``.
"""

from __future__ import annotations

import socket
from typing import Any

from celery import signals

from watcherd.config import Config
from watcherd.queue.app import EMBED_TASK, make_app, queue_names
from watcherd.queue.events import MODEL_FAILED, READY, STOPPING
from watcherd.queue.giveback import worker_transport_options
from watcherd.worker import held, tasks
from watcherd.worker.beacon import Beacon
from watcherd.worker.markers import Markers

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
    try:
        if role == "embeddings":
            holder.load(cfg)
            if holder.embedder is not None:
                beacon.model = (holder.embedder.model, holder.embedder.pretrained,
                                holder.embedder.device)
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
        if role == "thumbnails" and cfg.thumbnails.max_memory_per_child_mb:
            # A pool child above this RSS after a task is replaced by a fresh one (Celery).
            app.conf.worker_max_memory_per_child = cfg.thumbnails.max_memory_per_child_mb * 1024
        tasks.register(app, cfg, holder, markers)
        if role == "embeddings":
            batches: tasks.EmbedBatches = app.tasks[EMBED_TASK]
            beacon.held, beacon.processed = batches.held, lambda: batches.done
        else:
            beacon.held, beacon.processed = held.prefork_held, held.prefork_processed
        beacon.set_state(MODEL_FAILED if holder.error else READY, holder.error)
        beacon.beat()

        def shutting_down(**_: Any) -> None:
            beacon.set_state(STOPPING, beacon.message)

        signals.worker_shutting_down.connect(shutting_down, weak=False)
        w = app.Worker(
            queues=[queue_names(cfg)[kind]], pool=pool, concurrency=concurrency,
            hostname=f"{role}@{socket.gethostname()}", loglevel=cfg.log.level.upper(),
            without_gossip=True, without_mingle=True, without_heartbeat=True,
            optimization="fair", quiet=True,
        )
        w.start()
        return int(w.exitcode or 0)
    finally:
        beacon.stop()
        markers.close()
