"""Celery task events for the embedding task, one set per request of a batch.

celery-batches runs a batch as one call and sends no events of its own: Flower and
celery-exporter would never see an embedding. This module sends, for every request (one photo's
message), what Celery's own request would send: ``task-received`` when the message arrives,
``task-started`` when its batch starts, then ``task-succeeded`` or ``task-failed`` when the
batch returns. A request given back to its queue (a locked database) gets Celery's own
``task-rejected`` instead, from ``Request.reject``; one refused because it expects another
model is acknowledged (the watcher sends it again later) and gets ``task-rejected`` too.

``runtime`` of each request is its share of the batch: the batch's wall time divided by the
number of requests in it (the model encodes them together; no per-photo time exists).

The worker's own bookkeeping follows the same requests (``celery.worker.state``), so
``celery inspect stats`` counts embeddings in ``total`` and ``inspect active`` lists a batch's
requests while it runs (the solo worker answers between batches).

Sending an event is a no-op when events are off (``Request.send_event`` checks). An event
that cannot be sent is logged with its traceback and never stops the batch: the photos matter
more than their events.
"""

from __future__ import annotations

import os
import time
from collections.abc import Collection, Sequence
from typing import Any

from celery.worker import state

from watcherd import logs

log = logs.get("watcherd.worker.batchevents")


def _send(request: Any, event: str, **fields: Any) -> None:
    try:
        request.send_event(event, **fields)
    except Exception:
        log.error("could not send a task event", event=event, task_id=request.id,
                  exc_info=True)


def received(request: Any) -> None:
    """``task-received``, with the fields Celery's default strategy sends."""
    _send(
        request, "task-received", name=request.name, args=request.argsrepr,
        kwargs=request.kwargsrepr, root_id=request.root_id, parent_id=request.parent_id,
        retries=request.request_dict.get("retries", 0),
        eta=request.eta and request.eta.isoformat(),
        expires=request.expires and request.expires.isoformat())


def started(requests: Sequence[Any]) -> float:
    """``task-started`` for each request of a batch about to run; the batch's start time."""
    pid, now = os.getpid(), time.time()
    for r in requests:
        r.worker_pid, r.time_start = pid, now
        state.task_accepted(r)
        _send(r, "task-started")  # the dispatcher adds pid and hostname
    return time.monotonic()


def finished(requests: Sequence[Any], began: float, *, ok: bool,
             given_back: set[str], refused: Collection[str] = ()) -> None:
    """``task-succeeded`` (or ``task-failed`` when the batch raised) for each request that is
    not ``given_back``, with its share of the batch's runtime; ``task-rejected`` for those
    ``refused`` (acknowledged without being done: they expect another model)."""
    runtime = (time.monotonic() - began) / max(len(requests), 1)
    for r in requests:
        state.task_ready(r, successful=ok)
        if r.id in given_back:
            continue
        if r.id in refused:
            _send(r, "task-rejected", requeue=False)
            continue
        if ok:
            _send(r, "task-succeeded", result=repr(None), runtime=runtime)
        else:
            _send(r, "task-failed", exception="the embedding batch failed: see the "
                         "embedding worker's log", traceback="")
