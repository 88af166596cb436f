"""Which worker processes are alive, and what a death means: pure logic, no broker, no database.

Fed the fleet events in the order they arrived, each with the watcher's (monotonic) time of
arrival; asked ``check(now)`` for the deaths since the last call. Every time comes from the
caller, so tests drive it with a made-up clock.

A worker's main process is dead when its heartbeat is overdue (``dead_after`` seconds of
silence while the watcher could hear it). A pool child is dead when it vanishes from its main
process's ``pids`` in a heartbeat taken after its last busy marker (both on the same host's
clock), or with its main process.

A death blames only the photos of the step the process had announced (its last non-empty busy
marker): decoding one photo blames that photo, never the rest of its batch. What the dead main
process held (prefetched or executing) and no live worker holds is ``orphaned``: on a broker
that does not give a dead consumer's messages back by itself, those are to be given back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from watcherd.queue.events import (
    HEARTBEAT_INTERVAL_S,
    STOPPED,
    Busy,
    Event,
    Heartbeat,
    Item,
)

DEAD_AFTER_S = 3 * HEARTBEAT_INTERVAL_S
FORGET_AFTER_S = 3600.0  # a dead or stopped worker is dropped from memory after this long

ALIVE, DEAD = "alive", "dead"


@dataclass(frozen=True)
class Death:
    """One process found dead. ``busy``: the photos of the step it died in (to blame).
    ``worker_gone``: it was the worker's main process (the broker consumer): the messages it
    held are with nobody now. ``orphaned``: those of them its last heartbeat listed that no live
    worker holds (what the watcher last knew; messages received since are not in it)."""

    worker: str
    pid: int
    cause: str
    kind: str
    busy: tuple[Item, ...] = ()
    orphaned: tuple[Item, ...] = ()
    worker_gone: bool = False


@dataclass
class _Step:
    kind: str
    items: tuple[Item, ...]
    at: float  # the sender's clock


@dataclass
class WorkerView:
    """What the watcher knows of one worker process (its main process and its pool)."""

    name: str
    last_seen: float  # watcher's monotonic clock
    heartbeat: Heartbeat | None = None
    liveness: str = ALIVE  # alive | dead | stopped
    left_at: float | None = None  # when it was found dead or stopped
    steps: dict[int, _Step] = field(default_factory=dict)  # pid -> its last busy marker
    changed: bool = True  # since the last snapshot written to the database

    @property
    def kind(self) -> str:
        return self.heartbeat.kind if self.heartbeat else ""

    @property
    def held(self) -> frozenset[Item]:
        return frozenset(self.heartbeat.held) if self.heartbeat else frozenset()


class Fleet:
    def __init__(self, *, dead_after: float = DEAD_AFTER_S,
                 forget_after: float = FORGET_AFTER_S) -> None:
        self.dead_after = dead_after
        self.forget_after = forget_after
        self.workers: dict[str, WorkerView] = {}
        self.listening_since: float | None = None
        self._found: list[Death] = []
        self.resurrected: list[str] = []  # taken for dead, then heard again (late heartbeats)

    # ------------------------------------------------------------------------- input

    def listening(self, since: float | None) -> None:
        """The watcher hears the fleet queue since ``since`` (None: it cannot now). Silence is
        only counted while it can."""
        self.listening_since = since

    def observe(self, event: Event, at: float) -> None:
        if isinstance(event, Heartbeat):
            self._heartbeat(event, at)
        else:
            self._busy(event, at)

    def _heartbeat(self, hb: Heartbeat, at: float) -> None:
        w = self.workers.get(hb.name)
        if w is None:
            w = self.workers[hb.name] = WorkerView(hb.name, at)
        elif w.liveness == DEAD:
            self.resurrected.append(hb.name)
        w.heartbeat, w.last_seen, w.changed = hb, at, True
        if hb.state == STOPPED:  # a clean stop: its pool is gone, its messages given back
            w.liveness, w.left_at = STOPPED, at
            w.steps.clear()
            return
        w.liveness, w.left_at = ALIVE, None
        live = set(hb.pids) | {hb.pid}
        for pid, step in list(w.steps.items()):
            if pid not in live and step.at <= hb.at:
                del w.steps[pid]
                if step.items:
                    self._found.append(Death(w.name, pid, "its process is gone", step.kind,
                                             step.items))

    def _busy(self, b: Busy, at: float) -> None:
        w = self.workers.get(b.worker)
        if w is None:  # before its first heartbeat (the watcher just started): track it anyway
            w = self.workers[b.worker] = WorkerView(b.worker, at)
        if w.liveness != ALIVE:
            return  # a straggler from a worker already found dead or stopped
        w.steps[b.pid] = _Step(b.kind, b.items, b.at)

    # ------------------------------------------------------------------------- judgement

    def check(self, now: float) -> list[Death]:
        """Deaths found since the last call: children seen vanishing, and workers whose
        heartbeat is overdue now. Forgets workers gone for ``forget_after``."""
        if self.listening_since is not None:
            for w in self.workers.values():
                if w.liveness == ALIVE and now - max(w.last_seen, self.listening_since) \
                        > self.dead_after:
                    self._worker_died(w, now)
        for name in [n for n, w in self.workers.items()
                     if w.left_at is not None and now - w.left_at > self.forget_after]:
            del self.workers[name]
        found, self._found = self._found, []
        return found

    def _worker_died(self, w: WorkerView, now: float) -> None:
        w.liveness, w.left_at, w.changed = DEAD, now, True
        main_pid = w.heartbeat.pid if w.heartbeat else 0
        live_held = self.held_by_live(w.kind)
        orphaned = tuple(sorted(w.held - live_held))
        main_step = w.steps.pop(main_pid, None)
        if w.heartbeat is not None or main_step is not None:
            cause = f"no heartbeat for {now - w.last_seen:.0f} s"
            self._found.append(Death(w.name, main_pid, cause,
                                     main_step.kind if main_step else w.kind,
                                     main_step.items if main_step else (), orphaned,
                                     worker_gone=True))
        for pid, step in sorted(w.steps.items()):
            if step.items:
                self._found.append(Death(w.name, pid, "its worker died", step.kind, step.items))
        w.steps.clear()

    def held_by_live(self, kind: str) -> frozenset[Item]:
        """Everything the live workers of ``kind`` hold (their messages are not lost)."""
        out: set[Item] = set()
        for w in self.workers.values():
            if w.liveness == ALIVE and w.kind == kind:
                out |= w.held
        return frozenset(out)

    def changed(self) -> list[WorkerView]:
        """Workers whose state changed since the last call (to be written down)."""
        out = [w for w in self.workers.values() if w.changed and w.heartbeat is not None]
        for w in out:
            w.changed = False
        return out


def row_liveness(state: str | None, seconds_since_seen: float, stale_after: float) -> str:
    """alive / dead / stopped for a ``workers`` row: what the watcher wrote (``dead``,
    ``stopped``), or ``dead`` when it has not written the row for ``stale_after`` seconds (the
    worker is gone, or the watcher that writes the rows is not running)."""
    if state == STOPPED:
        return STOPPED
    if state == DEAD or seconds_since_seen > stale_after:
        return DEAD
    return ALIVE
