"""The status model: one dict that ``watcherd status``, ``status --json``, ``/api/status`` and
the web page all show. Counts per status, backlog per queue, the rate over the last minutes and
an ETA, failures grouped by reason, scans, workers (the table's rows as they are, plus liveness),
the models in use and each stored model's coverage, the estimate of a backfill (a model or
thumbnail settings change) with what is left of it, and the alerts (:mod:`watcherd.alerts`: why
configured work is not being done). Reads only; never prints."""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from watcherd import alerts as alert_rules
from watcherd import humanize
from watcherd.config import Config
from watcherd.store import backlog, browse, schema, settings
from watcherd.store import metadata as stored_metadata

if TYPE_CHECKING:
    from watcherd.store.vectors import ModelKey

#: The window the rate and the ETA are computed over.
RATE_WINDOW_S = 600.0


def with_liveness(cfg: Config, rows: list[dict[str, Any]], *,
                  now: datetime | None = None) -> list[dict[str, Any]]:
    """The ``workers`` rows (one per worker process, written by the watcher from the workers'
    heartbeats), each with ``liveness`` (alive / dead / stopped), ``alive``, ``last_seen_s``,
    ``remote`` (it runs on another host than this command) and ``per_minute`` (tasks done per
    minute since it started).
    A row the watcher has not refreshed for a heartbeat deadline plus a tick is dead: nobody has
    heard the worker (or the watcher that writes the rows is not running)."""
    from watcherd.fleet.liveness import ALIVE, DEAD_AFTER_S, row_liveness

    stale_after = DEAD_AFTER_S + cfg.broker.outbox_interval_seconds + 2
    now = now or datetime.now(UTC)
    out = []
    for w in rows:
        try:
            seen = datetime.strptime(str(w.get("last_seen")), "%Y-%m-%dT%H:%M:%S.%fZ")
            ago = max(0.0, (now - seen.replace(tzinfo=UTC)).total_seconds())
        except ValueError:
            ago = float("inf")
        live = row_liveness(w.get("state"), ago, stale_after)
        out.append({**w, "liveness": live, "alive": live == ALIVE,
                    "last_seen_s": None if ago == float("inf") else round(ago, 1),
                    "remote": bool(w.get("host")) and w.get("host") != socket.gethostname(),
                    "per_minute": _rate(w)})
    return out


def _rate(w: dict[str, Any]) -> float | None:
    try:
        start, seen = (datetime.strptime(str(w.get(k)), "%Y-%m-%dT%H:%M:%S.%fZ")
                       for k in ("started_at", "last_seen"))
    except ValueError:
        return None
    minutes = (seen - start).total_seconds() / 60
    return round((w.get("processed") or 0) / minutes, 1) if minutes > 0 else None


def queues(cfg: Config) -> tuple[dict[str, int] | None, str | None]:
    """Messages waiting per queue, or (None, why) when the broker cannot tell."""
    from watcherd.broker.app import make_app, queue_depths

    try:
        return queue_depths(make_app(cfg), cfg), None
    except Exception as exc:
        return None, str(exc)


def alerts(cfg: Config, conn: Any, *, counts: dict[str, dict[str, int]] | None = None,
           workers: list[dict[str, Any]] | None = None, configured: ModelKey | None = None,
           now: datetime | None = None) -> list[dict[str, str]]:
    """The alerts that apply now (:func:`watcherd.alerts.evaluate` over this database); what
    the caller has already read is passed in, the rest is read here. ``configured``: the key a
    worker of the configured model reports (default: :func:`watcherd.models.worker_key`)."""
    from watcherd import models

    now = now or datetime.now(UTC)
    counts = counts if counts is not None else browse.status_counts(conn)
    workers = workers if workers is not None else with_liveness(cfg, browse.workers(conn),
                                                                now=now)
    configured = configured or models.worker_key(cfg, conn)
    return alert_rules.evaluate(workers, {k: counts[k]["pending"] for k in schema.KINDS},
                                configured, now=now, remote=cfg.embeddings.remote)


def collect(cfg: Config, conn: Any, *, server_model: str | None = None,
            with_queues: bool = True) -> dict[str, Any]:
    from watcherd import models

    now = datetime.now(UTC)
    counts = browse.status_counts(conn)
    configured = models.configured_key(cfg, conn)
    done = browse.done_since(conn, RATE_WINDOW_S)
    progress: dict[str, Any] = {}
    for kind in schema.KINDS:
        per_min = done[kind] / (RATE_WINDOW_S / 60.0)
        pending = counts[kind]["pending"]
        eta = round(pending / (per_min / 60.0)) if per_min > 0 and pending else (
            0 if not pending else None)
        progress[kind] = {"per_minute": round(per_min, 2), "window_s": RATE_WINDOW_S,
                          "pending": pending, "eta_s": eta}
    workers = with_liveness(cfg, browse.workers(conn), now=now)
    # the embedding worker's model, once its row says (the per-process workers table has a
    # model column; a row without one leaves it unknown)
    worker_model = next((w["model"] for w in sorted(workers, key=lambda w: w.get("role") !=
                                                       "embeddings") if w.get("model")), None)
    report: dict[str, Any] = {
        "database": str(cfg.database.path),
        "counts": counts,
        "progress": progress,
        "failures": browse.failure_groups(conn),
        "workers": workers,
        "scans": browse.scans(conn),
        "broker": cfg.broker.shown_url if cfg.broker.url else f"embedded ({cfg.spool_dir})",
        "models": {"configured": _describe(cfg), "embedding_worker": worker_model,
                   "server": server_model,
                   "stored": stored_models(conn, counts, configured)},
        "backfill": backlog.estimates(conn),
        "metadata": stored_metadata.coverage(conn),
        "alerts": alerts(cfg, conn, counts=counts, workers=workers, now=now),
    }
    if with_queues:
        report["queues"], error = queues(cfg)
        if error is not None:
            report["broker_error"] = error
    return report


def stored_models(conn: Any, counts: dict[str, dict[str, int]],
                  configured: ModelKey) -> list[dict[str, Any]]:
    """Each model with vectors of live photos: its identity, where it was loaded from, how
    many live photos it covers (and what share), and whether it is the configured one."""
    from watcherd.store import vectors

    sources = settings.model_sources(conn)
    live = counts["images"]["total"]
    out = [{"model": m.key.model, "pretrained": m.key.pretrained,
            "source": sources.get((m.key.model, m.key.pretrained)), "photos": m.photos,
            "coverage": round(m.photos / live, 4) if live else None,
            "configured": m.key == configured} for m in vectors.stored_models(conn)]
    if not any(m["configured"] for m in out):
        out.insert(0, {"model": configured.model, "pretrained": configured.pretrained,
                       "source": sources.get((configured.model, configured.pretrained)),
                       "photos": 0, "coverage": 0.0 if live else None, "configured": True})
    return out


def _describe(cfg: Config) -> str:
    e = cfg.embeddings
    return f"{e.model} ({e.pretrained})" if e.pretrained else e.model


def eta_text(seconds: float | None) -> str:
    return "unknown (nothing done lately)" if seconds is None else humanize.duration(seconds)
