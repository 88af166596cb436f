"""Embedding by workers that have only the broker (``[embeddings] remote = true``): the shapes
of what travels, and the results queue.

The round trip, for one photo:

1. the watcher's outbox sends ``watcherd.prepare(image_id, sha256, job=…)`` on the thumbnails
   queue; ``job`` names the model the photo server expects and its input spec (heard from the
   embedding workers' heartbeats: ``watcherd.media.clipinput.InputSpec``);
2. a thumbnail worker (it has the photos and already decodes them) drafts, resizes and crops the
   photo to the model's input and sends ``watcherd.embed(image_id, sha256, remote=…)`` on the
   embeddings queue: the job plus the pixels (lossless WebP, base64);
3. any embedding worker, on this machine or another, checks the job against its own model and
   protocol (refusing, and saying why, what it cannot do correctly), encodes, and publishes a
   result message on ``{queue_prefix}watcherd.results`` (durable, persistent);
4. the watcher applies results in batches, in one transaction per batch, keyed by (image id,
   sha256) and the model: a photo that changed, was deleted or is already done, or a vector of
   another model, is dropped.

Plain data and the queue's declaration; no torch, no database.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kombu import Exchange, Queue

from watcherd.config import Config
from watcherd.media.clipinput import InputSpec

PROTOCOL = 1  # bump when a message shape changes: workers of another protocol refuse
RESULTS_QUEUE = "watcherd.results"
Identity = tuple[str, str]


def model_identity(model: str | None, pretrained: str | None) -> Identity:
    """A model identity (``watcherd.media.identity``: the name, and for weights given as
    files a fingerprint of them) as it travels: what must be equal for a vector to belong to
    the model the photo server expects."""
    return (model or "", pretrained or "")


def results_queue(cfg: Config) -> Queue:
    name = cfg.broker.queue_prefix + RESULTS_QUEUE
    return Queue(name, Exchange(name, "direct", durable=True), routing_key=name, durable=True)


class BadMessage(ValueError):
    """A message this watcherd cannot use; the text says why."""


# ------------------------------------------------------------------------------------ the job


def job(identity: Identity, spec: InputSpec) -> dict[str, Any]:
    """What the watcher asks for: this protocol, the configured model's identity, its input."""
    return {"v": PROTOCOL, "model": list(identity), "spec": spec.to_json()}


@dataclass(frozen=True)
class Job:
    model: Identity
    spec: InputSpec
    pixels: bytes = b""
    width: int = 0
    height: int = 0
    format: str = ""


def with_pixels(raw_job: dict[str, Any], pixels: bytes, width: int, height: int,
                fmt: str) -> dict[str, Any]:
    return {**raw_job, "pixels": base64.b64encode(pixels).decode("ascii"), "width": width,
            "height": height, "format": fmt}


def parse_job(raw: Any, *, need_pixels: bool) -> Job:
    """The job in a task's keyword argument; BadMessage says what this worker cannot use."""
    if not isinstance(raw, dict):
        raise BadMessage(f"job is not an object: {type(raw).__name__}")
    if raw.get("v") != PROTOCOL:
        raise BadMessage(f"the photo server speaks remote protocol {raw.get('v')!r}, this "
                         f"worker speaks {PROTOCOL}: run the same watcherd version on both")
    try:
        model = raw["model"]
        identity = model_identity(str(model[0]), str(model[1]))
        spec = InputSpec.from_json(raw["spec"])
        if not need_pixels:
            return Job(identity, spec)
        return Job(identity, spec, base64.b64decode(raw["pixels"], validate=True),
                   int(raw["width"]), int(raw["height"]), str(raw["format"]))
    except (KeyError, IndexError, TypeError, ValueError, binascii.Error) as exc:
        raise BadMessage(f"malformed job: {exc}") from None


# -------------------------------------------------------------------------------- the results


@dataclass(frozen=True)
class Done:
    image_id: int
    sha256: str
    vector: bytes  # dim little-endian float32
    width: int
    height: int
    format: str


@dataclass(frozen=True)
class Failed:
    image_id: int
    sha256: str
    reason: str


@dataclass(frozen=True)
class Result:
    worker: str
    model: Identity
    dim: int
    precision: str
    done: tuple[Done, ...] = ()
    failed: tuple[Failed, ...] = ()


def result_json(r: Result) -> dict[str, Any]:
    return {
        "type": "embeddings", "v": PROTOCOL, "worker": r.worker, "model": list(r.model),
        "dim": r.dim, "precision": r.precision,
        "done": [[d.image_id, d.sha256, base64.b64encode(d.vector).decode("ascii"), d.width,
                  d.height, d.format] for d in r.done],
        "failed": [[f.image_id, f.sha256, f.reason] for f in r.failed],
    }


def parse_result(body: Any) -> Result:
    if not isinstance(body, dict) or body.get("type") != "embeddings":
        raise BadMessage("not an embeddings result")
    if body.get("v") != PROTOCOL:
        raise BadMessage(f"result of remote protocol {body.get('v')!r}, this watcherd reads "
                         f"{PROTOCOL}")
    try:
        dim = int(body["dim"])
        done = tuple(_done(e, dim) for e in body.get("done") or ())
        failed = tuple(Failed(int(e[0]), str(e[1]), str(e[2])[:500])
                       for e in body.get("failed") or ())
        return Result(str(body["worker"]), model_identity(*_pair(body["model"])), dim,
                      str(body.get("precision") or ""), done, failed)
    except (KeyError, IndexError, TypeError, ValueError, binascii.Error) as exc:
        raise BadMessage(f"malformed result: {exc}") from None


def _pair(raw: Sequence[Any]) -> tuple[str, str]:
    return str(raw[0]), str(raw[1])


def _done(e: Sequence[Any], dim: int) -> Done:
    vector = base64.b64decode(e[2], validate=True)
    if len(vector) != 4 * dim:
        raise ValueError(f"a vector of {len(vector)} bytes, {dim} float32 announced")
    return Done(int(e[0]), str(e[1]), vector, int(e[3]), int(e[4]), str(e[5]))
