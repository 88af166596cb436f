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

Dead, killed and hung are one judgement. A step may carry a time limit (its marker's
``deadline``): a process that vanished after its step's deadline (Celery's hard time limit
killed a pool child) *timed out*; a step still standing ``HUNG_GRACE_S`` after its deadline while
its worker is otherwise alive is *hung* (a decode stuck on a dead mount). Either is a death with
``timed_out`` set, which the caller charges with a "timed out" reason. A process that cannot end
itself (hung, or silent: SIGSTOPped, stuck) is listed by ``to_end`` for the caller to end from
outside: hung at once, a pool child its heartbeats report stopped after
``END_STOPPED_AFTER_S``, a silent main process once silent for ``END_SILENT_AFTER_S`` (or earlier,
when the caller sees it is stopped); its messages then come back to the queue.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from watcherd.fleet.messages import (
    HEARTBEAT_INTERVAL_S,
    STOPPED,
    Busy,
    Event,
    Heartbeat,
    Item,
)

DEAD_AFTER_S = 3 * HEARTBEAT_INTERVAL_S
# A step past its deadline is hung this long after it (the worker's own enforcement, Celery's
# hard time limit, acts at the deadline; its effect reaches the watcher within a heartbeat).
HUNG_GRACE_S = 5 * HEARTBEAT_INTERVAL_S
# A silent process is ended once silent this long, whatever its state (a heavy load can delay
# heartbeats by seconds: DEAD_AFTER_S alone is no proof that the process is stuck).
END_SILENT_AFTER_S = 30.0
# A process that vanished this close to its step's deadline timed out: Celery's hard time limit
# counts from when the pool accepted the task, a moment before the task set its deadline.
DEADLINE_SLACK_S = 1.0
# A pool child its worker's heartbeats report stopped (SIGSTOP) this long is ended: a stopped
# child may sit on a task it has not started, so no time limit runs for it.
END_STOPPED_AFTER_S = 3 * HEARTBEAT_INTERVAL_S
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
    timed_out: float = 0.0  # the step's time limit, when it ran past it (0: not a timeout)


@dataclass(frozen=True)
class End:
    """A process to end from outside: ``hung`` (its step ran past its deadline) or silent for
    ``silent_for`` seconds. ``force``: end it whatever its state (hung, or silent for
    ``END_SILENT_AFTER_S``); otherwise only if the caller sees that it is stopped."""

    worker: str
    host: str
    pid: int
    why: str
    force: bool
    silent_for: float = 0.0
    space: str = ""  # the heartbeat's pid space ("": not said)


@dataclass
class _Step:
    kind: str
    items: tuple[Item, ...]
    at: float  # the sender's clock
    limit: float = 0.0
    deadline: float = 0.0  # the sender's clock; 0: none
    seen: float = 0.0  # the watcher's clock, when the marker arrived

    def overdue(self, sender_now: float) -> bool:
        """Past its deadline at ``sender_now`` (the sender's clock)."""
        return bool(self.deadline) and sender_now >= self.deadline - DEADLINE_SLACK_S

    def hung(self, now: float) -> bool:
        """Past its deadline plus ``HUNG_GRACE_S`` at ``now`` (the watcher's clock)."""
        return bool(self.deadline) and now > self.seen + (self.deadline - self.at) + HUNG_GRACE_S


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
    ended: bool = False  # a dead worker's process was ended (or needs no ending)
    stopped_since: dict[int, float] = field(default_factory=dict)  # pool pid -> first seen

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
        self._hung: list[End] = []
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
        w.liveness, w.left_at, w.ended = ALIVE, None, False
        w.stopped_since = {p: w.stopped_since.get(p, at) for p in hb.stopped if p != hb.pid}
        live = set(hb.pids) | {hb.pid}
        for pid, step in list(w.steps.items()):
            if pid not in live and step.at <= hb.at:
                del w.steps[pid]
                if step.items:
                    timed_out = step.limit if step.overdue(hb.at) else 0.0
                    cause = (f"timed out after {step.limit:g} s (its process was ended)"
                             if timed_out else "its process is gone")
                    self._found.append(Death(w.name, pid, cause, step.kind, step.items,
                                             timed_out=timed_out))

    def _busy(self, b: Busy, at: float) -> None:
        w = self.workers.get(b.worker)
        if w is None:  # before its first heartbeat (the watcher just started): track it anyway
            w = self.workers[b.worker] = WorkerView(b.worker, at)
        if w.liveness != ALIVE:
            return  # a straggler from a worker already found dead or stopped
        w.steps[b.pid] = _Step(b.kind, b.items, b.at, b.limit, b.deadline, at)

    # ------------------------------------------------------------------------- judgement

    def check(self, now: float) -> list[Death]:
        """Deaths found since the last call: children seen vanishing, and workers whose
        heartbeat is overdue now. Forgets workers gone for ``forget_after``."""
        if self.listening_since is not None:
            for w in self.workers.values():
                if w.liveness == ALIVE and now - max(w.last_seen, self.listening_since) \
                        > self.dead_after:
                    self._worker_died(w, now)
                elif w.liveness == ALIVE:
                    self._find_hung(w, now)
        for name in [n for n, w in self.workers.items()
                     if w.left_at is not None and now - w.left_at > self.forget_after]:
            del self.workers[name]
        found, self._found = self._found, []
        return found

    def _find_hung(self, w: WorkerView, now: float) -> None:
        """Steps of a live worker past their deadline: each a death (timed out) and a process
        to end. The step is dropped, so the process's end is not counted again."""
        host = w.heartbeat.host if w.heartbeat else ""
        space = w.heartbeat.space if w.heartbeat else ""
        for pid, step in sorted(w.steps.items()):
            if step.items and step.hung(now):
                del w.steps[pid]
                why = f"hung: its step ran {step.limit:g} s, past its time limit"
                self._found.append(Death(w.name, pid, why, step.kind, step.items,
                                         timed_out=step.limit))
                self._hung.append(End(w.name, host, pid, why, force=True, space=space))

    def _worker_died(self, w: WorkerView, now: float) -> None:
        w.liveness, w.left_at, w.changed = DEAD, now, True
        main_pid = w.heartbeat.pid if w.heartbeat else 0
        live_held = self.held_by_live(w.kind)
        orphaned = tuple(sorted(w.held - live_held))
        main_step = w.steps.pop(main_pid, None)
        if w.heartbeat is not None or main_step is not None:
            cause = f"no heartbeat for {now - w.last_seen:.0f} s"
            timed_out = main_step.limit if main_step and main_step.hung(now) else 0.0
            self._found.append(Death(w.name, main_pid, cause,
                                     main_step.kind if main_step else w.kind,
                                     main_step.items if main_step else (), orphaned,
                                     worker_gone=True, timed_out=timed_out))
        for pid, step in sorted(w.steps.items()):
            if step.items:
                self._found.append(Death(w.name, pid, "its worker died", step.kind, step.items,
                                         timed_out=step.limit if step.hung(now) else 0.0))
        w.steps.clear()

    def to_end(self, now: float) -> list[End]:
        """Processes to end from outside: hung ones (once each), and the main process of each
        worker found dead by silence, until ``ended`` is called for it (or it speaks again)."""
        out, self._hung = self._hung, []
        for w in self.workers.values():
            if w.liveness == ALIVE and w.heartbeat is not None:
                for pid, since in sorted(w.stopped_since.items()):
                    if now - since >= END_STOPPED_AFTER_S:
                        del w.stopped_since[pid]
                        out.append(End(w.name, w.heartbeat.host, pid,
                                       f"stopped (SIGSTOP) for {now - since:.0f} s", True,
                                       space=w.heartbeat.space))
            if w.liveness == DEAD and not w.ended and w.heartbeat is not None:
                silent = now - w.last_seen
                out.append(End(w.name, w.heartbeat.host, w.heartbeat.pid,
                               f"no heartbeat for {silent:.0f} s", silent >= END_SILENT_AFTER_S,
                               silent, w.heartbeat.space))
        return out

    def ended(self, worker: str) -> None:
        """The dead worker's process was ended, or is gone, or cannot be ended from here."""
        if (w := self.workers.get(worker)) is not None and w.liveness == DEAD:
            w.ended = True

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
