"""The embedding worker's side of a remote embedding: a batch of jobs that carry their pixels
(``watcherd.dispatch.remote``) in, result messages out. No database, no photo files: this is all a
worker on another machine does, and what a local worker does too when the photo server sends
pixels (``[embeddings] remote = true``).

A job this worker cannot do correctly (another protocol, another model, another input spec, no
model loaded) is refused: ``Refused`` carries the reason, and the caller gives the messages back
and stops taking work, so that a worker that fits takes them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from watcherd import logs
from watcherd.dispatch import remote
from watcherd.fleet.busy import Markers
from watcherd.fleet.messages import Item
from watcherd.media import clipinput
from watcherd.worker.intake import internal_reason

if TYPE_CHECKING:
    from watcherd.media.embeddings import Embedder

log = logs.get("watcherd.worker.remote_embed")

Publish = Callable[[dict[str, Any]], bool]


class Refused(Exception):
    """This worker cannot do these jobs correctly; str() says why (for the log and status)."""


def check(embedder: Embedder | None, identity: remote.Identity | None, load_error: str | None,
          job: remote.Job) -> None:
    if embedder is None or identity is None:
        raise Refused(f"embedding model could not be loaded: {load_error}")
    mine = identity
    if job.model != mine:
        raise Refused(f"the photo server wants model {_show(job.model)}, this worker has "
                      f"{_show(mine)}: set the same [embeddings] model and pretrained on both")
    spec = embedder.input_spec()
    if spec != job.spec:
        raise Refused(f"the photo server prepares input {job.spec.to_json()}, this worker's "
                      f"model takes {spec.to_json() if spec else 'an input it cannot split'}: "
                      "run the same watcherd and open_clip versions on both")


def embed_jobs(embedder: Embedder | None, identity: remote.Identity | None,
               load_error: str | None, markers: Markers,
               publish: Publish, worker: str, batch_size: int,
               jobs: Sequence[tuple[Item, Mapping[str, Any]]]) -> int:
    """Encode the jobs and publish their results; returns how many vectors were computed.
    Raises Refused before anything is computed when one job is not this worker's to do."""
    parsed: list[tuple[Item, remote.Job]] = []
    for item, raw in jobs:
        try:
            parsed.append((item, remote.parse_job(raw, need_pixels=True)))
        except remote.BadMessage as exc:
            raise Refused(str(exc)) from None
    for _, job in parsed:
        check(embedder, identity, load_error, job)
    assert embedder is not None and identity is not None
    started = time.perf_counter()
    failed: list[remote.Failed] = []
    ready: list[tuple[Item, remote.Job, Any]] = []
    for item, job in dict(parsed).items():  # a redelivery beside a re-send: computed once
        try:
            ready.append((item, job, embedder.preprocess(clipinput.from_wire(job.pixels,
                                                                             job.spec))))
        except clipinput.WireError as exc:
            failed.append(remote.Failed(item[0], item[1], str(exc)))
    computed = 0
    for start in range(0, max(len(ready), 1), batch_size):
        chunk = ready[start:start + batch_size]
        done: list[remote.Done] = []
        if chunk:
            try:
                with markers.step("embedding", [i for i, _, _ in chunk]):
                    from watcherd.worker.embedding import encode

                    vectors = encode(embedder, [t for _, _, t in chunk])
            except Exception as exc:  # a bug or a resource problem: say so on the rows
                reason = internal_reason(exc)
                log.error("embedding failed", task="embedding", reason=reason, exc_info=True,
                          image_ids=[i[0] for i, _, _ in chunk])
                failed += [remote.Failed(i[0], i[1], reason) for i, _, _ in chunk]
            else:
                from watcherd.media.embeddings import to_blob

                done = [remote.Done(i[0], i[1], to_blob(v), j.width, j.height, j.format)
                        for (i, j, _), v in zip(chunk, vectors, strict=True)]
                computed += len(done)
        if not done and not failed:
            continue
        result = remote.Result(worker, identity, embedder.dim, embedder.precision, tuple(done),
                               tuple(failed))
        if not publish(remote.result_json(result)):
            # not acknowledged: the messages go back to the queue with the connection
            raise ConnectionError("cannot publish results to the broker")
        failed = []
    log.info("embeddings sent", task="embedding", batch=len(jobs), computed=computed,
             image_ids=[i[0] for i, _, _ in ready],
             duration_ms=round((time.perf_counter() - started) * 1000, 1))
    return computed


def _show(identity: remote.Identity) -> str:
    model, pretrained = identity
    return f"{model!r}" + (f" ({pretrained!r})" if pretrained else "")
