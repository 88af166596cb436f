"""The status model: one dict that ``watcherd status``, ``status --json``, ``/api/status`` and
the web page all show. Counts per status, backlog per queue, the rate over the last minutes and
an ETA, failures grouped by reason, scans, workers (the table's rows as they are, plus liveness)
and the models in use. Reads only; never prints."""

from __future__ import annotations

import os
import socket
from typing import Any

from watcherd.config import Config
from watcherd.store import db, stats

#: The window the rate and the ETA are computed over.
RATE_WINDOW_S = 600.0


def liveness(w: dict[str, Any]) -> dict[str, Any]:
    """A worker recorded on this host whose process is gone is shown as not running. Reads the
    row generically: ``host`` or ``hostname``, any other columns passed through."""
    host = w.get("host", w.get("hostname"))
    state = str(w.get("state") or "")
    if host == socket.gethostname() and state not in ("stopped",) and w.get("pid"):
        try:
            os.kill(int(w["pid"]), 0)
        except ProcessLookupError:
            return {**w, "state": f"not running (last: {state})", "alive": False}
        except (PermissionError, TypeError, ValueError):
            pass
    return {**w, "alive": state not in ("stopped",) and not state.startswith("not running")}


def queues(cfg: Config) -> tuple[dict[str, int] | None, str | None]:
    """Messages waiting per queue, or (None, why) when the broker cannot tell."""
    from watcherd.queue.app import make_app, queue_depths

    try:
        return queue_depths(make_app(cfg), cfg), None
    except Exception as exc:
        return None, str(exc)


def collect(cfg: Config, conn: Any, *, server_model: str | None = None,
            with_queues: bool = True) -> dict[str, Any]:
    counts = db.status_counts(conn)
    done = stats.done_since(conn, RATE_WINDOW_S)
    progress: dict[str, Any] = {}
    for kind in db.KINDS:
        per_min = done[kind] / (RATE_WINDOW_S / 60.0)
        pending = counts[kind]["pending"]
        eta = round(pending / (per_min / 60.0)) if per_min > 0 and pending else (
            0 if not pending else None)
        progress[kind] = {"per_minute": round(per_min, 2), "window_s": RATE_WINDOW_S,
                          "pending": pending, "eta_s": eta}
    workers = [liveness(w) for w in stats.workers(conn)]
    # the embedding worker's model, once its row says (the per-process workers table has a
    # model column; a row without one leaves it unknown)
    worker_model = next((w["model"] for w in sorted(workers, key=lambda w: w.get("role") !=
                                                       "embeddings") if w.get("model")), None)
    report: dict[str, Any] = {
        "database": str(cfg.database.path),
        "counts": counts,
        "progress": progress,
        "failures": stats.failure_groups(conn),
        "workers": workers,
        "scans": _scans(conn),
        "broker": cfg.broker.url.split("@")[-1] if cfg.broker.url
        else f"embedded ({cfg.spool_dir})",
        "models": {"configured": _describe(cfg), "embedding_worker": worker_model,
                   "server": server_model},
    }
    if with_queues:
        report["queues"], error = queues(cfg)
        if error is not None:
            report["broker_error"] = error
    return report


def _scans(conn: Any) -> list[dict[str, Any]]:
    cur = conn.execute("SELECT * FROM scans ORDER BY root")
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def _describe(cfg: Config) -> str:
    e = cfg.embeddings
    return f"{e.model} ({e.pretrained})" if e.pretrained else e.model


def eta_text(seconds: int | None) -> str:
    if seconds is None:
        return "unknown (nothing done lately)"
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"
