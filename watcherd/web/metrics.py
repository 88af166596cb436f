"""/metrics: Prometheus text format from what the server can see (the database and the broker):
images per status, queue backlog, processed totals, processing durations derived from the rows'
timestamps, workers alive, the alerts (``watcherd_alert{kind}``: 1 while it applies, 0 for the
others), and the server's own search latency. Per-task runtimes measured in
the workers come from celery-exporter reading Celery's task events, not from here."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from watcherd.alerts import KINDS as ALERT_KINDS
from watcherd.store import browse, schema
from watcherd.store import metadata as stored_metadata

DURATION_BUCKETS = (1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600)


class LibraryCollector(Collector):
    """Reads the database (and the broker's queue depths) at each scrape."""

    def __init__(self, conn: Callable[[], Any], queues: Callable[[], dict[str, int] | None],
                 workers: Callable[[], list[dict[str, Any]]],
                 alerts: Callable[[], list[dict[str, str]]]) -> None:
        self._conn, self._queues, self._workers, self._alerts = conn, queues, workers, alerts

    def collect(self) -> Iterator[Metric]:
        conn = self._conn()
        counts = browse.status_counts(conn)
        images = GaugeMetricFamily("watcherd_images", "Live photos per kind of work and status",
                                   labels=["kind", "status"])
        for kind in schema.KINDS:
            for status, n in counts[kind].items():
                images.add_metric([kind, status], n)
        yield images
        yield GaugeMetricFamily("watcherd_images_deleted", "Rows of deleted files kept",
                                value=counts["images"]["deleted"])
        processed = GaugeMetricFamily(
            "watcherd_processed", "Live photos done per kind of work (falls when rows are "
            "deleted or re-queued, so a gauge)", labels=["kind"])
        for kind in schema.KINDS:
            processed.add_metric([kind], counts[kind]["done"])
        yield processed
        hist = HistogramMetricFamily(
            "watcherd_processing_seconds", "Discovery to stored result for the last 1000 "
            "photos of each kind (from the rows' timestamps; includes the queue wait)",
            labels=["kind"])
        for kind in schema.KINDS:
            values = browse.processing_seconds(conn, kind)
            buckets = [(str(b), sum(1 for v in values if v <= b)) for b in DURATION_BUCKETS]
            buckets.append(("+Inf", len(values)))
            hist.add_metric([kind], buckets, sum(values))
        yield hist
        yield self._metadata_family(conn)
        depths = self._queues()
        backlog = GaugeMetricFamily("watcherd_queue_backlog", "Messages waiting in a queue",
                                    labels=["queue"])
        for queue, n in (depths or {}).items():
            backlog.add_metric([queue], n)
        yield backlog
        yield GaugeMetricFamily("watcherd_broker_up", "1 if the queue depths could be read",
                                value=0 if depths is None else 1)
        alive = GaugeMetricFamily("watcherd_workers_alive", "Worker rows whose process is "
                                  "alive, per role", labels=["role"])
        per_role: dict[str, int] = {}
        for w in self._workers():
            role = str(w.get("role") or w.get("name") or "?")
            per_role[role] = per_role.get(role, 0) + (1 if w.get("alive") else 0)
        for role, n in sorted(per_role.items()):
            alive.add_metric([role], n)
        yield alive
        rss = GaugeMetricFamily("watcherd_worker_rss_bytes", "Memory (RSS) of each live worker, "
                                "its pool children included, from its last heartbeat",
                                labels=["worker", "role"])
        for w in self._workers():
            if w.get("alive"):
                rss.add_metric([str(w.get("name")), str(w.get("role"))],
                               int(w.get("rss_kb") or 0) * 1024)
        yield rss
        yield self._alert_family()

    @staticmethod
    def _metadata_family(conn: Any) -> Metric:
        family = GaugeMetricFamily(
            "watcherd_metadata_photos", "Processed live photos by what their metadata holds "
            "(with_metadata: a row; taken: a capture time; taken_from_mtime: only the file's "
            "mtime; located: GPS; placed: a country; camera; errors: something unreadable; "
            "due: to be read again)", labels=["field"])
        cover = stored_metadata.coverage(conn)
        for name in ("processed", "with_metadata", "taken", "taken_from_mtime", "located",
                     "placed", "camera", "errors", "due"):
            family.add_metric([name], cover.get(name, 0))
        return family

    def _alert_family(self) -> Metric:
        """Every known kind (0 or 1, so an absent series never hides one), and any other kind
        the rule raises."""
        raised = {a["kind"] for a in self._alerts()}
        family = GaugeMetricFamily("watcherd_alert", "1 while an alert of this kind applies "
                                   "(the message: watcherd status, /api/status)",
                                   labels=["kind"])
        for kind in sorted(set(ALERT_KINDS) | raised):
            family.add_metric([kind], 1 if kind in raised else 0)
        return family


class Metrics:
    """One server's registry: the library collector and the search latency histogram."""

    def __init__(self, collector: LibraryCollector) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(collector)
        self.search_seconds = Histogram(
            "watcherd_search_seconds", "Time to answer one search in the server",
            ["kind"], registry=self.registry,
            buckets=(0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12))

    def render(self) -> bytes:
        return generate_latest(self.registry)
