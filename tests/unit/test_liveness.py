"""The watcher's liveness logic, in-process with a made-up clock: no broker, no database."""

from __future__ import annotations

from watcherd.fleet.liveness import (
    DEAD_AFTER_S,
    END_SILENT_AFTER_S,
    END_STOPPED_AFTER_S,
    HUNG_GRACE_S,
    Death,
    End,
    Fleet,
    row_liveness,
)
from watcherd.fleet.messages import READY, STOPPED, STOPPING, Busy, Heartbeat, parse

X, Y, Z, W = (1, "x" * 64), (2, "y" * 64), (3, "z" * 64), (4, "w" * 64)
SPACE = "boot/4026531836"  # the workers' pid space: every process to end carries it (reaper)


def hb(name: str = "thumbnails@h:100", *, pid: int = 100, pids: tuple[int, ...] = (100,),
       held: tuple[tuple[int, str], ...] = (), state: str = READY, at: float = 0.0,
       kind: str = "thumbnail") -> Heartbeat:
    role = "thumbnails" if kind == "thumbnail" else "embeddings"
    return Heartbeat(name=name, role=role, kind=kind, host="h", pid=pid, state=state, at=at,
                     held=held, pids=pids, space=SPACE)


def busy(pid: int, *items: tuple[int, str], worker: str = "thumbnails@h:100", at: float = 0.0,
         kind: str = "thumbnail") -> Busy:
    return Busy(worker=worker, pid=pid, kind=kind, at=at, items=tuple(items))


def listening_fleet() -> Fleet:
    fleet = Fleet()
    fleet.listening(0.0)
    return fleet


def test_a_worker_whose_heartbeats_stop_is_dead_after_three_intervals() -> None:
    fleet = listening_fleet()
    fleet.observe(hb(held=(X, Y)), at=10.0)
    fleet.observe(busy(100, X), at=10.5)
    assert fleet.check(10.0 + DEAD_AFTER_S) == []  # not yet: exactly at the deadline
    deaths = fleet.check(10.0 + DEAD_AFTER_S + 0.1)
    assert deaths == [Death("thumbnails@h:100", 100, "no heartbeat for 6 s", "thumbnail",
                            busy=(X,), orphaned=(X, Y), worker_gone=True)]
    assert fleet.workers["thumbnails@h:100"].liveness == "dead"
    assert fleet.check(100.0) == []  # found once


def test_regular_heartbeats_keep_a_worker_alive() -> None:
    fleet = listening_fleet()
    for t in range(0, 60, 2):
        fleet.observe(hb(at=t), at=float(t))
        assert fleet.check(t + 1.9) == []
    assert fleet.workers["thumbnails@h:100"].liveness == "alive"


def test_a_pool_child_that_vanishes_from_pids_is_dead_and_only_its_photo_is_blamed() -> None:
    fleet = listening_fleet()
    fleet.observe(hb(pids=(100, 101, 102), held=(X, Y, Z), at=1.0), at=1.0)
    fleet.observe(busy(101, X, at=1.1), at=1.1)
    fleet.observe(busy(102, Y, at=1.2), at=1.2)
    fleet.observe(busy(102, at=1.3), at=1.3)  # 102 finished Y
    # The main process's next heartbeat: 101 is gone (a new child 103 replaced it), so is 102.
    fleet.observe(hb(pids=(100, 103), held=(Z,), at=3.0), at=3.0)
    deaths = fleet.check(3.1)
    assert deaths == [Death("thumbnails@h:100", 101, "its process is gone", "thumbnail", (X,))]
    assert fleet.workers["thumbnails@h:100"].liveness == "alive"  # the worker itself lives


def test_a_child_newer_than_the_heartbeat_snapshot_is_not_taken_for_dead() -> None:
    """The heartbeat listed the pool before the child was forked, and arrived after the child's
    first busy marker: the marker is newer than the snapshot, so the child is not judged."""
    fleet = listening_fleet()
    fleet.observe(busy(104, X, at=5.2), at=5.3)
    fleet.observe(hb(pids=(100, 101), at=5.1), at=5.4)
    assert fleet.check(5.5) == []
    fleet.observe(hb(pids=(100, 101, 104), at=7.1), at=7.2)
    assert fleet.check(7.3) == []


def test_only_the_photo_being_decoded_is_blamed_not_the_rest_of_its_batch() -> None:
    name = "embeddings@h:200"
    fleet = listening_fleet()
    fleet.observe(hb(name, pid=200, pids=(200,), held=(X, Y, Z, W), kind="embedding"), at=0.0)
    fleet.observe(busy(200, X, worker=name, kind="embedding"), at=0.1)
    fleet.observe(busy(200, Y, worker=name, kind="embedding"), at=0.2)  # X decoded; now Y
    [death] = fleet.check(DEAD_AFTER_S + 1)
    assert death.busy == (Y,)
    assert death.orphaned == (X, Y, Z, W)


def test_a_death_while_encoding_blames_the_batch_being_encoded() -> None:
    name = "embeddings@h:200"
    fleet = listening_fleet()
    fleet.observe(hb(name, pid=200, pids=(200,), held=(X, Y, Z), kind="embedding"), at=0.0)
    fleet.observe(busy(200, X, Y, worker=name, kind="embedding"), at=0.1)
    [death] = fleet.check(DEAD_AFTER_S + 1)
    assert death.busy == (X, Y)


def test_a_finished_step_blames_nobody() -> None:
    fleet = listening_fleet()
    fleet.observe(hb(held=(X,)), at=0.0)
    fleet.observe(busy(100, X), at=0.1)
    fleet.observe(busy(100), at=0.2)
    [death] = fleet.check(DEAD_AFTER_S + 1)
    assert death.busy == () and death.orphaned == (X,)


def test_when_the_main_process_dies_its_childrens_steps_are_blamed_too() -> None:
    fleet = listening_fleet()
    fleet.observe(hb(pids=(100, 101, 102), held=(X, Y, Z)), at=0.0)
    fleet.observe(busy(101, X), at=0.1)
    fleet.observe(busy(102, Y), at=0.2)
    deaths = fleet.check(DEAD_AFTER_S + 1)
    assert [(d.pid, d.busy, d.worker_gone) for d in deaths] == [
        (100, (), True), (101, (X,), False), (102, (Y,), False)]
    assert deaths[0].orphaned == (X, Y, Z)
    fleet.observe(busy(101, at=9.0), at=DEAD_AFTER_S + 2)  # a straggler: changes nothing
    assert fleet.check(DEAD_AFTER_S + 3) == []


def test_orphans_leave_out_what_a_live_worker_of_the_same_kind_holds() -> None:
    fleet = listening_fleet()
    fleet.observe(hb("thumbnails@h:100", held=(X, Y)), at=0.0)
    fleet.observe(hb("thumbnails@h:300", pid=300, pids=(300,), held=(Y,)), at=0.0)
    fleet.observe(hb("embeddings@h:200", pid=200, pids=(200,), held=(X,), kind="embedding"),
                  at=0.0)
    for t in (2.0, 4.0, 6.0):  # the others keep beating
        fleet.observe(hb("thumbnails@h:300", pid=300, pids=(300,), held=(Y,)), at=t)
        fleet.observe(hb("embeddings@h:200", pid=200, pids=(200,), held=(X,),
                         kind="embedding"), at=t)
    [death] = fleet.check(DEAD_AFTER_S + 1)
    assert death.worker == "thumbnails@h:100"
    assert death.orphaned == (X,)  # Y is held by thumbnails@h:300; X's embedding is another kind


def test_a_clean_stop_is_not_a_death() -> None:
    fleet = listening_fleet()
    fleet.observe(hb(held=(X,)), at=0.0)
    fleet.observe(hb(state=STOPPING, held=(X,)), at=1.0)
    fleet.observe(hb(state=STOPPED), at=2.0)
    assert fleet.check(100.0) == []
    assert fleet.workers["thumbnails@h:100"].liveness == "stopped"


def test_silence_after_stopping_is_a_death() -> None:
    """Killed during its warm shutdown (e.g. by the supervisor's stop timeout)."""
    fleet = listening_fleet()
    fleet.observe(hb(state=STOPPING, held=(X,)), at=0.0)
    fleet.observe(busy(100, X), at=0.1)
    [death] = fleet.check(DEAD_AFTER_S + 1)
    assert death.busy == (X,)


def test_no_death_while_the_watcher_cannot_hear_the_workers() -> None:
    """A broker outage silences every worker: that is not their death."""
    fleet = listening_fleet()
    fleet.observe(hb(held=(X,)), at=0.0)
    fleet.listening(None)  # the listener lost its connection at ~1 s
    assert fleet.check(30.0) == []
    fleet.listening(31.0)  # back: the workers get DEAD_AFTER_S from now to be heard
    assert fleet.check(31.0 + DEAD_AFTER_S) == []
    fleet.observe(hb(held=(X,), at=33.0), at=33.0)
    assert fleet.check(33.0 + DEAD_AFTER_S) == []
    assert len(fleet.check(33.0 + DEAD_AFTER_S + 0.1)) == 1


def test_a_worker_taken_for_dead_that_beats_again_is_alive() -> None:
    fleet = listening_fleet()
    fleet.observe(hb(), at=0.0)
    assert len(fleet.check(DEAD_AFTER_S + 1)) == 1
    fleet.observe(hb(at=20.0), at=20.0)
    assert fleet.resurrected == ["thumbnails@h:100"]
    assert fleet.workers["thumbnails@h:100"].liveness == "alive"
    assert fleet.check(21.0) == []


def test_a_busy_marker_before_any_heartbeat_is_tracked() -> None:
    """The watcher just started (and emptied the queue): a marker may come first."""
    fleet = listening_fleet()
    fleet.observe(busy(100, X), at=0.0)
    [death] = fleet.check(DEAD_AFTER_S + 1)
    assert death.busy == (X,)


def test_gone_workers_are_forgotten() -> None:
    fleet = Fleet(forget_after=60)
    fleet.listening(0.0)
    fleet.observe(hb(), at=0.0)
    fleet.check(DEAD_AFTER_S + 1)
    assert "thumbnails@h:100" in fleet.workers
    fleet.check(DEAD_AFTER_S + 62)
    assert fleet.workers == {}


def test_changed_reports_each_update_once() -> None:
    fleet = listening_fleet()
    fleet.observe(hb(), at=0.0)
    assert [w.name for w in fleet.changed()] == ["thumbnails@h:100"]
    assert fleet.changed() == []
    fleet.observe(hb(at=2.0), at=2.0)
    assert len(fleet.changed()) == 1


def test_events_round_trip_through_json_and_bad_ones_are_refused() -> None:
    import pytest

    from watcherd.fleet.messages import BadEvent

    h = hb(pids=(100, 101), held=(X, Y))
    assert parse(h.to_json()) == h
    b = busy(101, X, at=1.5)
    assert parse(b.to_json()) == b
    for bad in ({"type": "heartbeat"}, {**b.to_json(), "v": 99}, [1, 2],
                {**b.to_json(), "kind": "thumbnail_status = 'done' --"},
                {**b.to_json(), "type": "gossip"}):
        with pytest.raises(BadEvent):
            parse(bad)  # type: ignore[arg-type]


def test_row_liveness() -> None:
    assert row_liveness("ready", 1.0, 10.0) == "alive"
    assert row_liveness("model failed", 1.0, 10.0) == "alive"
    assert row_liveness("ready", 11.0, 10.0) == "dead"
    assert row_liveness("dead", 1.0, 10.0) == "dead"
    assert row_liveness("stopped", 1000.0, 10.0) == "stopped"


# ------------------------------------------------------------ time limits: timed out, hung


def timed(pid: int, *items: tuple[int, str], at: float, limit: float,
          worker: str = "thumbnails@h:100", kind: str = "thumbnail") -> Busy:
    return Busy(worker=worker, pid=pid, kind=kind, at=at, items=tuple(items), limit=limit,
                deadline=at + limit)


def test_a_child_that_vanishes_after_its_steps_deadline_timed_out() -> None:
    """Celery's hard time limit killed the pool child: the same death, charged as timed out."""
    fleet = listening_fleet()
    fleet.observe(hb(pids=(100, 101, 102), at=0.0), at=0.0)
    fleet.observe(timed(101, X, at=1.0, limit=10.0), at=1.0)
    fleet.observe(timed(102, Y, at=1.0, limit=10.0), at=1.0)
    fleet.observe(hb(pids=(100, 102, 103), at=11.0), at=11.0)  # 101 gone at its deadline
    fleet.observe(hb(pids=(100, 103), at=5.0 + 8.0), at=13.0)  # 102 gone too, 1 s later
    assert fleet.check(13.1) == [
        Death("thumbnails@h:100", 101, "timed out after 10 s (its process was ended)",
              "thumbnail", (X,), timed_out=10.0),
        Death("thumbnails@h:100", 102, "timed out after 10 s (its process was ended)",
              "thumbnail", (Y,), timed_out=10.0)]


def test_a_child_that_vanishes_before_its_deadline_died_it_did_not_time_out() -> None:
    fleet = listening_fleet()
    fleet.observe(hb(pids=(100, 101), at=0.0), at=0.0)
    fleet.observe(timed(101, X, at=1.0, limit=10.0), at=1.0)
    fleet.observe(hb(pids=(100,), at=9.9), at=9.9)
    assert fleet.check(11.0) == [Death("thumbnails@h:100", 101, "its process is gone",
                                       "thumbnail", (X,))]


def test_a_step_standing_past_its_deadline_is_hung_and_its_process_is_to_be_ended() -> None:
    """The worker beats on (its heartbeat thread lives) while one step never returns."""
    fleet = listening_fleet()
    emb = "embeddings@h:200"
    fleet.observe(hb(emb, pid=200, pids=(200,), kind="embedding", at=0.0), at=0.0)
    # The sender's clock runs 1000 s ahead of the watcher's: only differences count.
    fleet.observe(timed(200, X, at=1001.0, limit=20.0, worker=emb, kind="embedding"), at=1.0)
    deaths, ends = [], []
    for t in range(2, 40, 2):
        fleet.observe(hb(emb, pid=200, pids=(200,), kind="embedding", at=1000.0 + t), at=t)
        deaths += fleet.check(t + 0.5)
        ends += fleet.to_end(t + 0.5)
        if t <= 21 + HUNG_GRACE_S:
            assert deaths == [] and ends == [], t
    why = "hung: its step ran 20 s, past its time limit"
    assert deaths == [Death(emb, 200, why, "embedding", (X,), timed_out=20.0)]  # once
    assert ends == [End(emb, "h", 200, why, force=True, space=SPACE)]  # once
    assert fleet.workers[emb].liveness == "alive"
    # The process is ended; its silence is then a death that blames nothing more.
    later = fleet.check(38.0 + DEAD_AFTER_S + 1)
    assert [(d.worker_gone, d.busy) for d in later] == [(True, ())]


def test_a_finished_step_is_never_hung() -> None:
    fleet = listening_fleet()
    fleet.observe(hb(pids=(100, 101), at=0.0), at=0.0)
    fleet.observe(timed(101, X, at=1.0, limit=1.0), at=1.0)
    fleet.observe(busy(101, at=1.5), at=1.5)  # done in time; the marker says so
    for t in range(2, 30, 2):
        fleet.observe(hb(pids=(100, 101), at=t), at=t)
    assert fleet.check(30.0) == [] and fleet.to_end(30.0) == []


def test_a_silent_worker_is_to_be_ended_if_stopped_and_in_any_case_after_a_while() -> None:
    fleet = listening_fleet()
    fleet.observe(hb(at=0.0), at=0.0)
    assert fleet.to_end(5.0) == []
    fleet.check(DEAD_AFTER_S + 1)
    first = fleet.to_end(DEAD_AFTER_S + 1)
    assert [(e.pid, e.host, e.force, e.space) for e in first] == [(100, "h", False, SPACE)]
    assert fleet.to_end(END_SILENT_AFTER_S - 0.1)[0].force is False  # asked again each tick
    assert fleet.to_end(END_SILENT_AFTER_S)[0].force is True
    fleet.ended("thumbnails@h:100")
    assert fleet.to_end(END_SILENT_AFTER_S + 1) == []


def test_a_worker_taken_for_dead_that_beats_again_is_not_to_be_ended() -> None:
    fleet = listening_fleet()
    fleet.observe(hb(at=0.0), at=0.0)
    fleet.check(DEAD_AFTER_S + 1)
    fleet.observe(hb(at=8.0), at=8.0)  # a late heartbeat: alive after all
    assert fleet.to_end(END_SILENT_AFTER_S + 1) == []


def test_a_pool_child_reported_stopped_is_to_be_ended_once() -> None:
    """A stopped child may hold a task it never started: no time limit runs for it."""
    fleet = listening_fleet()
    fleet.observe(hb(pids=(100, 101, 102), at=0.0), at=0.0)
    stopped = Heartbeat(name="thumbnails@h:100", role="thumbnails", kind="thumbnail", host="h",
                        pid=100, state=READY, at=2.0, pids=(100, 101, 102), stopped=(101,),
                        space=SPACE)
    fleet.observe(stopped, at=2.0)
    assert fleet.to_end(2.0 + END_STOPPED_AFTER_S - 0.1) == []
    fleet.observe(stopped, at=4.0)  # still stopped: counted from the first report
    assert fleet.to_end(2.0 + END_STOPPED_AFTER_S) == [
        End("thumbnails@h:100", "h", 101, "stopped (SIGSTOP) for 6 s", force=True,
            space=SPACE)]
    assert fleet.to_end(20.0) == []
    fleet.observe(hb(pids=(100, 101, 102), at=6.0), at=6.0)  # SIGCONT: no longer reported
    fleet.observe(stopped, at=30.0)
    assert fleet.to_end(30.0 + END_STOPPED_AFTER_S - 0.1) == []
