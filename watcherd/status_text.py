"""The status model (:func:`watcherd.status.collect`) as the text ``watcherd status`` prints:
one function a section, each line as an operator reads it. Pure: a report in, lines out."""

from __future__ import annotations

from typing import Any

from watcherd import humanize
from watcherd.status import eta_text
from watcherd.store.schema import KINDS

Report = dict[str, Any]
INDENT = " " * 12


def lines(report: Report) -> list[str]:
    return [*_counts(report), *(a["message"] for a in report["alerts"]), *_models(report),
            *_backfill(report), *_metadata(report), *_scans(report), _broker(report),
            *_workers(report), *_failures(report)]


def _counts(report: Report) -> list[str]:
    c = report["counts"]
    out = [f"database    {report['database']}",
           f"images      {c['images']['total']} ({c['images']['deleted']} deleted)"]
    for kind in KINDS:
        k, p = c[kind], report["progress"][kind]
        line = f"{kind + 's':<12}{k['done']} done, {k['pending']} pending, {k['failed']} failed"
        if p["pending"]:
            line += (f"; {p['per_minute']:g}/min over the last {p['window_s'] / 60:g} min, "
                     f"ETA {eta_text(p['eta_s'])}")
        out.append(line)
    return out


def _models(report: Report) -> list[str]:
    out = []
    for m in report["models"]["stored"]:
        share = "" if m["coverage"] is None else f" ({100 * m['coverage']:.1f}%)"
        where = f", from {m['source']}" if m["source"] else ""
        line = (f"model       {m['model']}" + (f" {m['pretrained']}" if m["pretrained"] else "")
                + f": {m['photos']} photos{share}{where}")
        out.append(line + (" [configured]" if m["configured"] else ""))
    return out


def _backfill(report: Report) -> list[str]:
    out = []
    for kind, b in report["backfill"].items():
        if b["remaining"]:
            took = "time unknown" if b["seconds"] is None else eta_text(round(b["seconds"]))
            out.append(f"backfill    {kind}s: {b['remaining']} of {b['photos']} photos left "
                       f"({b['reason']}; estimated at the start: {humanize.size(b['bytes'])}, "
                       f"{took})")
    return out


def _metadata(report: Report) -> list[str]:
    m = report.get("metadata") or {}
    if not m.get("processed"):
        return []
    share = 100 * m["with_metadata"] / m["processed"]
    line = (f"metadata    {m['with_metadata']} of {m['processed']} photos ({share:.1f}%): "
            f"{m['taken']} with a capture time ({m['taken_from_mtime']} from the file's mtime), "
            f"{m['located']} with a position, {m['placed']} placed, {m['camera']} with a "
            f"camera, {m['errors']} with errors")
    return [line + (f"; {m['due']} to read again" if m["due"] else "")]


def _scans(report: Report) -> list[str]:
    out = []
    for sc in report["scans"]:
        line = (f"scan        {sc['root']}: {sc['state']}, {sc['folders']} folders, "
                f"{sc['files']} files seen, {sc['to_take']} new or changed, {sc['taken']} "
                f"recorded, {sc['gone']} gone")
        line += f" (since {sc['started_at']})" if sc["state"] == "scanning" else (
            f" (finished {sc['finished_at']})")
        if sc["message"]:
            line += f"\n{INDENT}not scanned: {sc['message']}"
        out.append(line)
    return out


def _broker(report: Report) -> str:
    if report["queues"] is None:
        return (f"broker      {report['broker']}: queue depths unknown "
                f"({report['broker_error']})")
    return (f"broker      {report['broker']}: "
            + ", ".join(f"{n} waiting in {name}" for name, n in report["queues"].items()))


def _workers(report: Report) -> list[str]:
    out = []
    for w in report["workers"]:
        out.append(worker_line(w))
        if w["role"] == "embeddings" and w["liveness"] == "alive" and w["state"] == "refusing":
            out.append(f"{INDENT}this worker takes no work until it is reconfigured and "
                       "restarted (the reason above)")
    return out


def worker_line(w: dict[str, Any]) -> str:
    ago = w["last_seen_s"]
    seen = "never seen" if ago is None else f"last seen {humanize.duration(ago)} ago"
    line = f"worker      {w['name']}: {w['liveness']}"
    line += " (remote)" if w.get("remote") else ""
    if w["liveness"] == "alive" and w["state"] not in ("ready", None):
        line += f", {w['state']}"
    line += f" ({seen}"
    if w["liveness"] == "alive":
        line += f", RSS {round((w['rss_kb'] or 0) / 1024)} MB, {w['processed'] or 0} tasks done"
        line += f", {w['per_minute']:g}/min" if w.get("per_minute") is not None else ""
    if w["model"]:
        line += f", model {w['model']}" + (f" {w['pretrained']}" if w["pretrained"] else "")
        line += f" on {w['device']}" if w["device"] else ""
    line += ")"
    if w["message"]:
        line += f"\n{INDENT}{w['message']}"
    return line


def _failures(report: Report) -> list[str]:
    if not report["failures"]:
        return []
    out = ["failures:"]
    for f in report["failures"]:
        many = f" ({f['count']} photos, e.g.)" if f["count"] > 1 else ""
        out.append(f"  {f['kind']:<9} {f['reason']}{many} #{f['example_id']} "
                   f"{f['example_path']}")
    return out
