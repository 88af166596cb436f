"""The watcher's side of the fleet: hear the workers, act on their deaths, write ``workers``.

A ``Listener`` thread puts each fleet message on an in-memory queue with its time of arrival;
``tick()``, called from the watcher's loop with the outbox (the thread that owns the database
connection), feeds them to the liveness logic (``watcherd.fleet.liveness``) and writes down what
follows:

- a death: one more attempt for each photo the dead process had announced it was working on,
  ``failed`` with the reason at ``[broker] max_attempts``; on Redis, which does not give a dead
  consumer's messages back for an hour, the dead worker's unacknowledged messages are moved
  back to their queues (``giveback``); RabbitMQ and the spool redeliver them by themselves.
  Nothing is re-sent: a copy would compute the photo twice;
- photos a live worker holds are not lost: their ``*_queued_at`` moves to now, so the outbox's
  stale re-send (``resend_after_seconds``) never duplicates work that is only waiting in a
  worker's prefetch;
- a process that cannot end itself (SIGSTOPped, silent, or hung in a step past its time
  limit) is ended from outside with SIGKILL when it runs on this host (``reaper``); its
  supervisor (``watcherd run``, systemd) starts a new one and the broker gives its messages
  back. A timed-out step is charged like a death, with a "timed out after N s" reason;
- one ``workers`` row per worker process, with its state and when it was last heard.

The database writes (deaths charged, held photos, ``workers`` rows) are
:mod:`watcherd.fleet.records`'s; this module hears, judges through the liveness logic, gives
messages back and ends stuck processes.
"""

from __future__ import annotations

import queue
import sqlite3
import time
from collections.abc import Callable
from typing import Any

from watcherd import logs
from watcherd.broker import redis_unacked
from watcherd.broker.channel import Listener
from watcherd.config import Config
from watcherd.dispatch import remote
from watcherd.fleet import messages, reaper
from watcherd.fleet.liveness import ALIVE, Death, End, Fleet
from watcherd.fleet.records import FleetRecords
from watcherd.media.clipinput import InputSpec
from watcherd.store import schema

log = logs.get("watcherd.fleet.monitor")

SWEEP_EVERY_S = 60.0  # how often to look for messages of workers that died unheard (Redis)
EARLY_RESEND_S = 15.0  # after a death on Redis: send again what is in no queue (early_resends)

GiveBack = Callable[[str], int]  # worker name -> messages given back to their queues
Orphans = Callable[[], list[str]]  # names of workers that hold messages (dead or alive)


class FleetMonitor:
    """The watcher's ear on the fleet: hears its messages, has :class:`Fleet` judge them, and
    acts on what follows (writes through :class:`FleetRecords`, gives back, ends)."""

    def __init__(self, cfg: Config, conn: sqlite3.Connection, *,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time,
                 give_back: GiveBack | None = None, orphans: Orphans | None = None) -> None:
        """``give_back``/``orphans`` default to the broker's (Redis: ``giveback``; the other
        brokers give a dead consumer's messages back by themselves: None)."""
        self.cfg = cfg
        self.conn = conn
        self.clock = clock
        self.wall = wall
        self.fleet = Fleet()
        self.records = FleetRecords(conn, cfg.broker.max_attempts, wall)
        redis = redis_unacked.is_redis(cfg)
        self.give_back = give_back or (
            (lambda name: redis_unacked.give_back(cfg, name)) if redis else None)
        self.orphans = orphans or ((lambda: redis_unacked.orphans(cfg)) if redis else None)
        self.listener: Listener | None = None
        self._inbox: queue.SimpleQueue[tuple[Any, float]] = queue.SimpleQueue()
        self._todo: list[Death] = []  # deaths not yet written (the database was locked)
        self._give_back_todo: list[str] = []  # dead workers whose messages are not back yet
        self._early: list[tuple[str, str, float]] = []  # (kind, death time, when to resend)
        self._bad: set[str] = set()
        self.end: Callable[[End], str] = lambda e: reaper.end(e.host, e.pid, force=e.force,
                                                                  space=e.space)
        self._next_sweep = 0.0

    def start(self) -> None:
        self.listener = Listener(self.cfg, self.received, on_stale=self.stale, clock=self.clock)
        self.listener.start()

    def close(self) -> None:
        if self.listener is not None:
            self.listener.stop()
            self.listener.join(timeout=5)

    def received(self, body: Any, at: float) -> None:
        """One fleet message and the time it arrived (any thread)."""
        self._inbox.put((body, at))

    def stale(self, body: Any) -> None:
        """A message from before the watcher listened (any thread): only a clean stop is kept,
        so the row of a worker that stopped while no watcher ran reads stopped, not dead."""
        try:
            event = messages.parse(body)
        except messages.BadEvent:
            return
        if isinstance(event, messages.Heartbeat) and event.state == messages.STOPPED:
            ago = max(0.0, self.wall() - event.at)  # the sender's clock: a rough "when"
            self._inbox.put((body, self.clock() - ago))

    def tick(self) -> None:
        now = self.clock()
        self._drain()
        if self.listener is not None:
            self.fleet.listening(self.listener.connected_since)
        found = self.fleet.check(now)
        self._todo.extend(found)
        if self.give_back is not None:
            self._give_back_todo.extend(d.worker for d in found if d.worker_gone)
        for name in self.fleet.resurrected:
            log.warning("a worker taken for dead is alive (its heartbeats were late)",
                        worker=name)
        self.fleet.resurrected.clear()
        try:
            while self._todo:
                self._died(self._todo[0])
                self._todo.pop(0)
            self.records.keep_held(self.fleet)
            self.records.save_rows(self.fleet, now)
            self.records.forget_old_rows(now)
        except sqlite3.OperationalError as exc:  # locked past the busy timeout: next tick
            log.warning("cannot write worker liveness now; trying again at the next tick",
                        error=str(exc))
        # After the attempts are written: a photo failed now is skipped when its message is back.
        self._give_backs(now)
        self._end_stuck(now)

    def _end_stuck(self, now: float) -> None:
        """End the processes that cannot end themselves (hung, or dead by silence but there)."""
        for e in self.fleet.to_end(now):
            try:
                outcome = self.end(e)
            except Exception as exc:  # a bug here must not stop the watcher's loop
                log.warning("cannot end a stuck worker process", worker=e.worker,
                            worker_pid=e.pid, error=str(exc))
                outcome = reaper.DENIED
            if outcome == reaper.RUNNING:
                continue  # silent but running: ended once silent for END_SILENT_AFTER_S
            if outcome == reaper.KILLED:
                log.warning("ended a stuck worker process", worker=e.worker, worker_pid=e.pid,
                            why=e.why)
            elif outcome in (reaper.REMOTE, reaper.DENIED):
                log.warning("a stuck worker process cannot be ended from here; end it on its "
                            "host (its messages stay with it until then)", worker=e.worker,
                            worker_pid=e.pid, host=e.host, why=e.why, outcome=outcome)
            self.fleet.ended(e.worker)

    def _drain(self) -> None:
        while True:
            try:
                body, at = self._inbox.get_nowait()
            except queue.Empty:
                return
            try:
                event = messages.parse(body)
            except messages.BadEvent as exc:
                if str(exc) not in self._bad:  # once per kind of problem, not per message
                    self._bad.add(str(exc))
                    log.warning("fleet message ignored", reason=str(exc))
                continue
            self.fleet.observe(event, at)

    def _give_backs(self, now: float) -> None:
        """Redis: move dead workers' messages back to their queues; now and then, look for
        workers that died while no watcher listened (their messages still wait in their keys)."""
        if self.give_back is None:
            return
        since = self.fleet.listening_since
        if (self.orphans is not None and since is not None and now >= self._next_sweep
                and now - since > self.fleet.dead_after):
            self._next_sweep = now + SWEEP_EVERY_S
            try:
                for name in self.orphans():
                    w = self.fleet.workers.get(name)
                    if (w is None or w.liveness != ALIVE) and name not in self._give_back_todo:
                        self._give_back_todo.append(name)
            except Exception as exc:  # the broker's connection errors: next sweep
                log.warning("cannot look for messages of dead workers now", error=str(exc))
        while self._give_back_todo:
            name = self._give_back_todo[0]
            try:
                n = self.give_back(name)
            except Exception as exc:  # the broker's connection errors: next tick
                log.warning("cannot give a dead worker's messages back now; trying again",
                            worker=name, error=str(exc))
                return
            self._give_back_todo.pop(0)
            if n:
                log.warning("gave a dead worker's messages back to their queues", worker=name,
                            messages=n)

    def input_spec(self, wanted: remote.Identity | None) -> InputSpec | None:
        """The input of model ``wanted`` (an identity), as a live embedding worker of that
        model announces it (``[embeddings] remote``: what the thumbnail workers prepare); None
        until one does."""
        if wanted is None:
            return None
        for w in self.fleet.workers.values():
            hb = w.heartbeat
            if (hb is None or w.liveness != ALIVE or hb.kind != "embedding" or not hb.input
                    or remote.model_identity(hb.model, hb.pretrained) != wanted):
                continue
            try:
                return InputSpec.from_json(hb.input)
            except ValueError:
                continue
        return None

    def early_resends(self) -> dict[str, str]:
        """Redis: for each kind whose worker died at least ``EARLY_RESEND_S`` ago, the time of
        the death. A message the worker had popped but not yet recorded as its own when it was
        killed is in no queue and no key: the outbox sends again the rows queued before the
        death that are still pending, once their queue is empty (rows a live worker holds have
        their queued_at refreshed every tick, so they are never among them)."""
        now = self.clock()
        due = [e for e in self._early if e[2] <= now]
        self._early = [e for e in self._early if e[2] > now]
        out: dict[str, str] = {}
        for kind, at, _ in due:
            out[kind] = max(out.get(kind, ""), at)
        return out

    def _died(self, death: Death) -> None:
        kind: schema.Kind = "thumbnail" if death.kind == "thumbnail" else "embedding"
        if self.give_back is not None:
            self._early.append((kind, schema.now_iso(), self.clock() + EARLY_RESEND_S))
        self.records.charge_death(death, kind)
