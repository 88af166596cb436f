"""What a worker process holds: every task message it has received and not yet acknowledged
(prefetched, buffered for a batch, or executing), as (image id, sha256). Its heartbeat carries
this list; if the process dies on a broker that does not give its messages back, the watcher
sends these photos again.

Read from another thread (the heartbeat's) than the one that changes them, so every read copies
under the structure's own lock or retries a copy that raced with a change.
"""

from __future__ import annotations

from collections.abc import Iterable
from queue import Queue
from typing import Any

from watcherd.fleet.messages import Item


def request_item(request: Any) -> Item | None:
    """(image id, sha256) from a Celery request's arguments (positional or keyword)."""
    try:
        args = list(request.args or ())
        kwargs = request.kwargs or {}
        args += [kwargs[k] for k in ("image_id", "sha256") if k in kwargs]
        return int(args[0]), str(args[1])
    except (AttributeError, IndexError, KeyError, TypeError, ValueError):
        return None


def request_model(request: Any) -> tuple[str, str] | None:
    """The model identity (model, pretrained) an embedding task expects, or None when the
    message carries none (sent before the watcher knew it, or by an older watcherd)."""
    try:
        args = list(request.args or ())
        kwargs = request.kwargs or {}
        if "model" in kwargs:
            return str(kwargs["model"]), str(kwargs.get("pretrained", ""))
        if len(args) >= 4:
            return str(args[2]), str(args[3])
    except (AttributeError, TypeError):
        pass
    return None


def by_model(requests: Iterable[Any], mine: tuple[str, str] | None
             ) -> tuple[list[Any], dict[tuple[str, str], int]]:
    """Split embedding requests into those this worker may record (the model they expect is
    ``mine``, or they name none, or this worker's identity is unknown) and, per expected
    model, how many it must refuse."""
    ours: list[Any] = []
    refused: dict[tuple[str, str], int] = {}
    for r in requests:
        expected = request_model(r)
        if mine is not None and expected is not None and expected != mine:
            refused[expected] = refused.get(expected, 0) + 1
        else:
            ours.append(r)
    return ours, refused


def items(requests: Iterable[Any]) -> list[Item]:
    return [i for r in requests if (i := request_item(r)) is not None]


def _copy(collection: Any) -> list[Any]:
    for _ in range(10):
        try:
            return list(collection)
        except RuntimeError:  # changed size during the copy: another thread added one
            continue
    return []


def prefork_held() -> list[Item]:
    """The prefork worker's main process: Celery's reserved requests (received, not yet
    finished; the executing ones included)."""
    from celery.worker import state

    return items(_copy(state.reserved_requests))


def prefork_processed() -> int:
    """Tasks the prefork worker has finished (started minus those still running)."""
    from celery.worker import state

    return max(0, state.all_total_count[0] - len(_copy(state.active_requests)))


def queued(q: Queue[Any]) -> list[Any]:
    with q.mutex:
        return list(q.queue)


def drain(q: Queue[Any]) -> list[Any]:
    """Take everything out of ``q``."""
    with q.mutex:
        items = list(q.queue)
        q.queue.clear()
    return items
