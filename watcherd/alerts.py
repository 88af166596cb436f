"""Alerts: why configured work is not being done, one line each, for every surface (``watcherd
status`` and ``--json``, ``/api/status``, the status page, ``/metrics``'s ``watcherd_alert``).

Pure: the ``workers`` rows (with their liveness, :func:`watcherd.status.with_liveness`), the
pending counts, the configured model's key and the time in; a list of ``{"kind", "message"}``
out. No database, no broker, no clock of its own.

When an alert applies (the rule, and why):

- ``embeddings_wait`` / ``thumbnails_wait``: only while photos of that kind are pending, and no
  live worker can do them: for thumbnails a ``ready`` thumbnail worker; for embeddings a
  ``ready`` embedding worker whose model is the configured one (a worker of another model acks
  the tasks unsaved; a ``refusing`` one takes none), and with ``[embeddings] remote`` also a
  ``ready`` thumbnail worker, which prepares the photos. Nothing pending, no alert: the alert
  says that work *waits*, and a library with nothing to do and no workers (``serve`` alone over
  a finished library, a daemon stopped on purpose) waits for nothing; as soon as a photo is
  pending while the workers are down, it says so.
- A worker still ``starting`` (importing, loading its model: until then its row carries the
  configured *strings*, not the model's identity, so it cannot be compared) counts as able for
  ``STARTING_GRACE_S`` after its own ``started_at``; a worker starting for longer counts as
  missing, and the message says it is still starting. A worker's row appears within seconds of
  its start (its heartbeat begins before its model loads), so that is when a just-started
  daemon's grace begins. Before that first row, the database cannot tell a daemon that started
  seconds ago from one that is not running (the watcher itself leaves no trace of liveness
  there), and a stopped daemon with pending work must say so: with no row of a live worker, the
  alert stands. This costs at most those first seconds after a start.
- ``model_failed``: whenever a live embedding worker says its model could not be loaded,
  pending photos or not: the worker is running and broken, and the next photo will wait (its
  embedding ``failed`` with the reason; it is queued again once the model loads). Alongside
  ``embeddings_wait`` when that applies too: the wait is the symptom (what a dashboard alerts
  on), the failure its cause.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from watcherd import humanize
from watcherd.fleet.messages import MODEL_FAILED, READY, REFUSING, STARTING

if TYPE_CHECKING:
    from watcherd.store.vectors import ModelKey

EMBEDDINGS_WAIT = "embeddings_wait"
THUMBNAILS_WAIT = "thumbnails_wait"
MODEL_FAILED_KIND = "model_failed"
#: Every kind this module raises (``/metrics`` reports each of them, 0 when it does not apply).
KINDS = (EMBEDDINGS_WAIT, THUMBNAILS_WAIT, MODEL_FAILED_KIND)
#: A worker still starting counts as able this long after its start (loading a model).
STARTING_GRACE_S = 60.0

Row = Mapping[str, Any]


def evaluate(workers: Sequence[Row], pending: Mapping[str, int], configured: ModelKey, *,
             now: datetime, remote: bool = False) -> list[dict[str, str]]:
    """The alerts that apply: ``workers`` are the ``workers`` rows with ``alive``;
    ``pending`` the pending photos per kind (``thumbnail``, ``embedding``); ``configured``
    the configured model's key; ``now`` an aware UTC time; ``remote``: ``[embeddings]
    remote`` (thumbnail workers prepare the photos for the embedding workers)."""
    live = [w for w in workers if w.get("alive")]
    thumbs = [w for w in live if w.get("role") == "thumbnails"]
    embeds = [w for w in live if w.get("role") == "embeddings"]
    out: list[dict[str, str]] = []
    if pending.get("embedding", 0):
        why = _embeddings_missing(embeds, configured, now)
        if remote and not _any_able(thumbs, now):
            why.append("no thumbnail worker is ready to prepare the photos for the embedding "
                       "workers ([embeddings] remote)")
        if why:
            out.append(_alert(EMBEDDINGS_WAIT, "EMBEDDINGS WAIT: " + "; ".join(why)))
    if pending.get("thumbnail", 0) and not _any_able(thumbs, now):
        out.append(_alert(THUMBNAILS_WAIT, "THUMBNAILS WAIT: " + (
            "no thumbnail worker is ready" + _running(thumbs, now) if thumbs
            else "no live thumbnail worker")))
    failed = [w for w in embeds if w.get("state") == MODEL_FAILED]
    if failed:
        out.append(_alert(MODEL_FAILED_KIND, _model_failed(failed, embeds, configured)))
    return out


def _embeddings_missing(embeds: list[Row], configured: ModelKey, now: datetime) -> list[str]:
    if any(_able(w, now) and (_starting(w) or _runs(w, configured)) for w in embeds):
        return []
    if not embeds:
        return ["no live embedding worker"]
    return [f"no live embedding worker runs the configured model "
            f"{_model(configured.model, configured.pretrained)}"
            + _running(embeds, now)]


def _model_failed(failed: list[Row], embeds: list[Row], configured: ModelKey) -> str:
    others = any(w.get("state") == READY and _runs(w, configured) for w in embeds)
    head = ("AN EMBEDDING WORKER CANNOT LOAD THE MODEL (others compute the embeddings)" if others
            else "EMBEDDINGS ARE NOT BEING COMPUTED")
    reason = next((str(w["message"]).splitlines()[0][:300] for w in failed if w.get("message")),
                  "")
    return (f"{head}: the model could not be loaded by {', '.join(_name(w) for w in failed)}"
            + (f" ({reason})" if reason else "")
            + "; the worker tries again on its own (fix [embeddings] or the weights), and "
              "queues the photos that failed for it once it loads")


def _any_able(workers: list[Row], now: datetime) -> bool:
    return any(_able(w, now) for w in workers)


def _able(w: Row, now: datetime) -> bool:
    """Ready, or starting within its grace."""
    if w.get("state") == READY:
        return True
    age = _age(w, now)
    return _starting(w) and age is not None and age < STARTING_GRACE_S


def _starting(w: Row) -> bool:
    return w.get("state") == STARTING


def _runs(w: Row, configured: ModelKey) -> bool:
    return (w.get("model"), w.get("pretrained") or "") == (configured.model,
                                                           configured.pretrained)


def _running(workers: list[Row], now: datetime) -> str:
    return "; running: " + ", ".join(f"{_name(w)} ({_doing(w, now)})" for w in workers) \
        if workers else ""


def _doing(w: Row, now: datetime) -> str:
    state = w.get("state")
    if state == STARTING:
        age = _age(w, now)
        return "starting" + ("" if age is None else f" for {humanize.duration(age)}")
    if state == MODEL_FAILED:
        return "model failed to load"
    model = _model(str(w.get("model") or "?"), str(w.get("pretrained") or "")) \
        if w.get("role") == "embeddings" else ""
    if state == REFUSING:
        return "refusing work" + (f", {model}" if model else "")
    if state == READY:
        return model or "ready"
    return str(state) + (f", {model}" if model else "")


def _model(model: str, pretrained: str) -> str:
    return f"{model} {pretrained}" if pretrained else model


def _name(w: Row) -> str:
    return str(w.get("name") or w.get("role") or "?")


def _age(w: Row, now: datetime) -> float | None:
    """Seconds since the worker started (its own clock), or None when its row does not say."""
    try:
        start = datetime.strptime(str(w.get("started_at")), "%Y-%m-%dT%H:%M:%S.%fZ")
    except ValueError:
        return None
    return max(0.0, (now - start.replace(tzinfo=UTC)).total_seconds())


def _alert(kind: str, message: str) -> dict[str, str]:
    return {"kind": kind, "message": message}
