"""The photo server's writer of remote embeddings: the watcher takes result messages off the
results queue (``watcherd.dispatch.remote``) and applies them to the database in batches.

Each ``apply()`` takes what is waiting (up to ``MAX_MESSAGES``), writes it in one transaction
(``store.outcomes.save_vectors``: only rows still pending with the same sha256, not deleted)
and only then acknowledges the messages: a watcher killed in between gets them again, and
applying them twice changes nothing. Vectors of another model than ``[embeddings]``'s are
dropped and logged. A locked database gives the messages back to the queue for the next call.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from kombu import Connection

from watcherd import logs
from watcherd.broker.channel import connect
from watcherd.config import Config
from watcherd.dispatch import remote
from watcherd.dispatch.current_model import CurrentModel
from watcherd.store import outcomes

log = logs.get("watcherd.dispatch.remote_results")

MAX_MESSAGES = 500  # per call (a message holds up to [embeddings] batch_size vectors)


class ResultsWriter:
    def __init__(self, cfg: Config, conn: sqlite3.Connection, model: CurrentModel) -> None:
        """``model``: the configured model's identity (its key is None while the watcher cannot
        compute it: results then wait in their queue)."""
        self.cfg = cfg
        self.conn = conn
        self.model = model
        self.totals = {"saved": 0, "failed": 0, "dropped": 0, "other_model": 0, "bad": 0}
        self._broker: Connection | None = None
        self._queue: Any = None
        self._failing = False
        self._warned: set[str] = set()

    def apply(self) -> int:
        """Apply what is waiting; returns how many result messages were taken."""
        if self.model.key is None:
            return 0
        try:
            messages = self._take()
        except Exception as exc:  # the broker's connection errors: next call
            self._drop()
            if not self._failing:
                log.warning("cannot read remote embedding results now; trying again",
                            error=str(exc) or type(exc).__name__)
            self._failing = True
            return 0
        self._failing = False
        if not messages:
            return 0
        started = time.perf_counter()
        batches: list[outcomes.Vectors] = []
        failures: list[tuple[int, str, str]] = []
        for m in messages:
            self._sort(m.payload, batches, failures)
        try:
            wanted = self.model.key
            assert wanted is not None  # apply() returns early without one
            applied = outcomes.save_vectors(self.conn, batches, configured=wanted,
                                            failures=failures)
        except sqlite3.OperationalError as exc:
            for m in messages:
                m.requeue()
            log.warning("cannot write remote embeddings now; they wait in their queue",
                        error=str(exc))
            return 0
        for m in messages:
            m.ack()
        for key in ("saved", "failed", "dropped"):
            self.totals[key] += getattr(applied, key)
        log.info("remote embeddings applied", task="embedding", messages=len(messages),
                 saved=applied.saved, failed=applied.failed, dropped=applied.dropped,
                 image_ids=[r.image_id for b in batches for r in b.rows],
                 duration_ms=round((time.perf_counter() - started) * 1000, 1))
        return len(messages)

    def _sort(self, body: Any, batches: list[outcomes.Vectors],
              failures: list[tuple[int, str, str]]) -> None:
        try:
            r = remote.parse_result(body)
        except remote.BadMessage as exc:
            self.totals["bad"] += 1
            self._warn("remote result dropped", reason=str(exc))
            return
        wanted = self.model.key
        if r.model != wanted:
            self.totals["other_model"] += 1 + len(r.done)
            self._warn("remote result of another model dropped", worker=r.worker,
                       model=list(r.model), configured=list(wanted or ()))
            return
        rows = [outcomes.EmbeddingRow(d.image_id, d.sha256, d.vector, d.width, d.height, d.format)
                for d in r.done]
        batches.append(outcomes.Vectors(r.model[0], r.model[1], r.dim, r.precision or None, rows))
        failures += [(f.image_id, f.sha256, f.reason) for f in r.failed]

    def _warn(self, event: str, **fields: Any) -> None:
        key = event + repr(sorted(fields.items()))
        if key not in self._warned:  # once per kind of problem, not per message
            self._warned.add(key)
            log.warning(event, **fields)

    def _take(self) -> list[Any]:
        if self._queue is None:
            self._broker = connect(self.cfg)
            self._broker.ensure_connection(max_retries=1)
            self._queue = remote.results_queue(self.cfg)(self._broker.channel())
            self._queue.declare()
        out: list[Any] = []
        while len(out) < MAX_MESSAGES:
            m = self._queue.get(no_ack=False, accept=["json"])
            if m is None:
                break
            out.append(m)
        return out

    def _drop(self) -> None:
        broker, self._broker, self._queue = self._broker, None, None
        if broker is not None:
            try:
                broker.release()
            except Exception:  # the connection is being dropped anyway
                log.debug("release failed")

    def close(self) -> None:
        self._drop()
