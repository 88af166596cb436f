"""Fleet events: what a worker process tells the watcher through the broker.

Two kinds of plain JSON messages travel on the fleet queue (see ``watcherd.broker.channel``):

- ``heartbeat``: sent by every worker's main process every ``HEARTBEAT_INTERVAL_S``. Who it is,
  its state (``starting``, ``ready``, ``model failed``, ``stopping``, ``stopped``), the model,
  its memory, how many tasks it has done, ``held`` (every task message it holds, prefetched or
  executing, as ``[image id, sha256]``), ``pids`` (the live processes doing its work: the
  main process and its pool children) and ``stopped`` (those of them stopped by SIGSTOP).
- ``busy``: sent by the process that is about to run a step that could kill it (decoding a
  photo, encoding a batch), before the step starts: ``items`` are the photos of that step, and
  an empty list means the step is over. If the process dies, these are the photos to blame.
  ``limit``/``deadline``: the step's time limit in seconds and when it runs out (the sender's
  clock; 0: no limit). A step still standing past its deadline is hung; a process that vanished
  after its deadline timed out (``watcherd.fleet.liveness``).

``at`` is the sender's wall clock. It is only ever compared with other times from the same
host (a busy marker against its own main process's heartbeat); liveness itself is judged on
the watcher's clock, when messages arrive, so clocks of different machines never meet.

This module is plain data: no broker, no database.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

VERSION = 1
HEARTBEAT_INTERVAL_S = 2.0

Item = tuple[int, str]  # (image id, sha256)
KINDS = ("thumbnail", "embedding")  # the task kinds a worker may name (they become SQL columns)

# Worker states a heartbeat may carry.
STARTING, READY, MODEL_FAILED, STOPPING, STOPPED = (
    "starting", "ready", "model failed", "stopping", "stopped")
# An embedding worker that received work it cannot do correctly (another model, another
# protocol: the message says which) and stopped taking work; it stays up so that status says why.
REFUSING = "refusing"


def items_of(raw: Iterable[Any]) -> tuple[Item, ...]:
    """``[[id, sha256], …]`` from JSON, as a tuple of (int, str); bad entries are skipped."""
    out: list[Item] = []
    for entry in raw:
        if isinstance(entry, list | tuple) and len(entry) == 2:
            image_id, sha = entry
            if isinstance(image_id, int) and isinstance(sha, str):
                out.append((image_id, sha))
    return tuple(out)


@dataclass(frozen=True)
class Heartbeat:
    name: str  # unique per worker process: "thumbnails@host:pid"
    role: str  # "thumbnails" | "embeddings"
    kind: str  # the task kind it works on: "thumbnail" | "embedding"
    host: str
    pid: int
    state: str
    at: float
    started_at: str = ""
    message: str | None = None
    model: str | None = None
    pretrained: str | None = None
    device: str | None = None
    rss_kb: int = 0
    processed: int = 0
    held: tuple[Item, ...] = ()
    pids: tuple[int, ...] = ()
    # An embedding worker's model input (watcherd.media.clipinput.InputSpec as JSON): what the
    # photo server needs to prepare photos for it ([embeddings] remote = true).
    input: dict[str, Any] | None = None
    version: str = ""  # the worker's watcherd version
    stopped: tuple[int, ...] = ()  # those of ``pids`` stopped by a signal (SIGSTOP, state T)
    space: str = ""  # where its pids mean something (reaper.pid_space; "": not said)

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "heartbeat", "v": VERSION, "name": self.name, "role": self.role,
            "kind": self.kind, "host": self.host, "pid": self.pid, "state": self.state,
            "at": self.at, "started_at": self.started_at, "message": self.message,
            "model": self.model, "pretrained": self.pretrained, "device": self.device,
            "rss_kb": self.rss_kb, "processed": self.processed,
            "held": [list(i) for i in self.held], "pids": list(self.pids),
            "input": self.input, "version": self.version,
            "stopped": list(self.stopped), "space": self.space,
        }


@dataclass(frozen=True)
class Busy:
    worker: str  # the Heartbeat name of the worker this process belongs to
    pid: int  # the process that runs the step (a pool child, or the worker itself)
    kind: str  # "thumbnail" | "embedding"
    at: float
    items: tuple[Item, ...] = field(default=())  # empty: the step is over
    limit: float = 0.0  # the step's time limit, seconds (0: none), for the reason
    deadline: float = 0.0  # when it runs out, the sender's clock (0: never)

    def to_json(self) -> dict[str, Any]:
        return {"type": "busy", "v": VERSION, "worker": self.worker, "pid": self.pid,
                "kind": self.kind, "at": self.at, "items": [list(i) for i in self.items],
                "limit": self.limit, "deadline": self.deadline}


Event = Heartbeat | Busy


class BadEvent(ValueError):
    """A fleet message this watcherd cannot read (another version, or not ours)."""


def parse(body: Mapping[str, Any]) -> Event:
    """The event in a decoded JSON message body; ``BadEvent`` says why not."""
    if not isinstance(body, Mapping):
        raise BadEvent(f"not a JSON object: {type(body).__name__}")
    if body.get("v") != VERSION:
        raise BadEvent(f"fleet event version {body.get('v')!r}, this watcherd reads {VERSION}")
    if body.get("kind") not in KINDS:
        raise BadEvent(f"unknown task kind {body.get('kind')!r}")
    try:
        if body["type"] == "heartbeat":
            return Heartbeat(
                name=str(body["name"]), role=str(body["role"]), kind=str(body["kind"]),
                host=str(body["host"]), pid=int(body["pid"]), state=str(body["state"]),
                at=float(body["at"]), started_at=str(body.get("started_at") or ""),
                message=body.get("message"), model=body.get("model"),
                pretrained=body.get("pretrained"), device=body.get("device"),
                rss_kb=int(body.get("rss_kb") or 0), processed=int(body.get("processed") or 0),
                held=items_of(body.get("held") or ()),
                pids=tuple(int(p) for p in body.get("pids") or ()),
                input=body["input"] if isinstance(body.get("input"), dict) else None,
                version=str(body.get("version") or ""),
                stopped=tuple(int(p) for p in body.get("stopped") or ()),
                space=str(body.get("space") or ""),
            )
        if body["type"] == "busy":
            return Busy(worker=str(body["worker"]), pid=int(body["pid"]),
                        kind=str(body["kind"]), at=float(body["at"]),
                        items=items_of(body.get("items") or ()),
                        limit=float(body.get("limit") or 0.0),
                        deadline=float(body.get("deadline") or 0.0))
    except (KeyError, TypeError, ValueError) as exc:
        raise BadEvent(f"malformed {body.get('type')} event: {exc!r}") from None
    raise BadEvent(f"unknown fleet event type {body.get('type')!r}")
