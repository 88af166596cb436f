"""The watcher's fleet monitor on a real SQLite file, fed events in-process with a made-up clock
(the broker side is tested in tests/integration/test_fleet.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from tests.helpers import put_vectors
from watcherd import config
from watcherd.fleet.liveness import DEAD_AFTER_S
from watcherd.fleet.messages import READY, STOPPED, Busy, Heartbeat
from watcherd.fleet.monitor import FleetMonitor
from watcherd.store import discovery, outcomes, schema, sending, workers

REUSE = discovery.Reuse("m", "p", (64,), "webp")
REDIS = "redis://127.0.0.1:6379/0"
AMQP = "amqp://guest:guest@127.0.0.1:5672//"


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def setup(tmp_path: Path, url: str = "", max_attempts: int = 3,
          photos: int = 4) -> tuple[FleetMonitor, Clock, list[tuple[int, str]]]:
    cfg = config.from_dict({"watch": {"paths": [str(tmp_path)]},
                            "database": {"path": str(tmp_path / "w.db")},
                            "broker": {"url": url, "max_attempts": max_attempts}},
                           check_paths=False)
    conn = schema.connect(cfg.database.path)
    items = []
    for i in range(photos):
        sha = f"{i:064x}"
        rec = discovery.record_file(conn, f"/p/{i}.jpg", 10, 1.0, sha, REUSE)
        items.append((rec.id, sha))
    for kind in schema.KINDS:
        sending.mark_queued(conn, kind, [i for i, _ in items])
    clock = Clock()
    monitor = FleetMonitor(cfg, conn, clock=clock, wall=lambda: 1_800_000_000.0 + clock.t)
    monitor.fleet.listening(0.0)
    return monitor, clock, items


def heartbeat(pid: int, *, kind: str = "embedding", held: list[tuple[int, str]] | None = None,
              pids: tuple[int, ...] = (), state: str = READY, at: float = 0.0) -> dict:
    role = kind + "s"
    return Heartbeat(name=f"{role}@h:{pid}", role=role, kind=kind, host="h", pid=pid,
                     state=state, at=at, started_at="2026-01-01T00:00:00.000Z", rss_kb=1024,
                     processed=7, held=tuple(held or ()), pids=pids or (pid,)).to_json()


def marker(pid: int, items: list[tuple[int, str]], *, worker_pid: int | None = None,
           kind: str = "embedding", at: float = 0.0) -> dict:
    return Busy(f"{kind}s@h:{worker_pid or pid}", pid, kind, at, tuple(items)).to_json()


def row(monitor: FleetMonitor, image_id: int) -> dict:
    return dict(monitor.conn.execute("SELECT * FROM images WHERE id = ?", (image_id,)).fetchone())


def die(monitor: FleetMonitor, clock: Clock) -> None:
    clock.t += DEAD_AFTER_S + 1
    monitor.tick()


def test_a_death_costs_only_the_culprit_an_attempt_and_fails_it_at_max_attempts(
        tmp_path: Path) -> None:
    monitor, clock, items = setup(tmp_path, max_attempts=3)
    culprit, innocents = items[1], [items[0], *items[2:]]
    for life, pid in enumerate((200, 201, 202), start=1):
        monitor.received(heartbeat(pid, held=items), clock.t)
        monitor.received(marker(pid, [items[0]]), clock.t)  # decoded fine
        monitor.received(marker(pid, [culprit]), clock.t)  # dies decoding this one
        monitor.tick()
        die(monitor, clock)
        r = row(monitor, culprit[0])
        assert r["embedding_attempts"] == life
        assert r["embedding_status"] == ("failed" if life == 3 else "pending")
    assert r["embedding_error"] == ("the worker died 3 times while processing this photo (a "
                                    "decoder crash or the out-of-memory killer?)")
    for image_id, _ in innocents:
        assert (row(monitor, image_id)["embedding_attempts"],
                row(monitor, image_id)["embedding_status"]) == (0, "pending")
    assert row(monitor, culprit[0])["thumbnail_attempts"] == 0  # the other kind is untouched


def test_a_pool_child_death_is_charged_from_the_main_process_heartbeat(tmp_path: Path) -> None:
    monitor, clock, items = setup(tmp_path, max_attempts=1)
    monitor.received(heartbeat(100, kind="thumbnail", pids=(100, 101, 102)), clock.t)
    monitor.received(marker(101, [items[2]], worker_pid=100, kind="thumbnail"), clock.t)
    monitor.received(marker(102, [items[3]], worker_pid=100, kind="thumbnail"), clock.t)
    monitor.tick()
    clock.t += 2
    monitor.received(heartbeat(100, kind="thumbnail", pids=(100, 102, 103), at=2.0), clock.t)
    monitor.tick()
    assert row(monitor, items[2][0])["thumbnail_status"] == "failed"
    assert "died once" in row(monitor, items[2][0])["thumbnail_error"]
    assert row(monitor, items[3][0])["thumbnail_status"] == "pending"


def test_a_photo_done_or_changed_before_the_death_is_not_charged(tmp_path: Path) -> None:
    monitor, clock, items = setup(tmp_path)
    monitor.received(heartbeat(200, held=items), clock.t)
    monitor.received(marker(200, items[:2]), clock.t)
    monitor.tick()
    put_vectors(monitor.conn, "m", "p", 1,
                             [outcomes.EmbeddingRow(items[0][0], items[0][1], b"\0" * 4)])
    discovery.record_file(monitor.conn, "/p/1.jpg", 11, 2.0, "f" * 64, REUSE)  # new content
    die(monitor, clock)
    assert row(monitor, items[0][0])["embedding_attempts"] == 0
    assert row(monitor, items[1][0])["embedding_attempts"] == 0


class GiveBacks:
    """Stands in for Redis in these in-process tests: records which dead workers' messages
    the monitor gives back (the real give-back runs on Redis in tests/integration)."""

    def __init__(self, fail_first: int = 0, holding: list[str] | None = None) -> None:
        self.calls: list[str] = []
        self.fail_first = fail_first
        self.holding = holding or []

    def __call__(self, name: str) -> int:
        if self.fail_first:
            self.fail_first -= 1
            raise ConnectionError("redis is down")
        self.calls.append(name)
        return 3

    def orphans(self) -> list[str]:
        return list(self.holding)


def redis_monitor(tmp_path: Path, backs: GiveBacks) -> tuple[FleetMonitor, Clock, list]:
    monitor, clock, items = setup(tmp_path, url=REDIS)
    monitor.give_back, monitor.orphans = backs, backs.orphans
    return monitor, clock, items


def test_on_redis_a_dead_workers_messages_are_given_back_once(tmp_path: Path) -> None:
    backs = GiveBacks()
    monitor, clock, items = redis_monitor(tmp_path, backs)
    monitor.received(heartbeat(200, held=items[:2]), clock.t)
    monitor.received(heartbeat(100, kind="thumbnail", pids=(100, 101)), clock.t)
    monitor.received(marker(101, items[:1], worker_pid=100, kind="thumbnail"), clock.t)
    monitor.tick()
    clock.t += 2
    monitor.received(heartbeat(100, kind="thumbnail", pids=(100,), at=2), clock.t)
    monitor.tick()  # a pool child died: its worker (the consumer) lives, nothing to give back
    assert backs.calls == []
    die(monitor, clock)
    assert backs.calls == ["embeddings@h:200", "thumbnails@h:100"]
    die(monitor, clock)
    assert len(backs.calls) == 2
    assert due(monitor) == []  # given back, not re-sent: no second copy to compute twice


def test_a_give_back_that_fails_is_tried_again_at_the_next_tick(tmp_path: Path) -> None:
    backs = GiveBacks(fail_first=1)
    monitor, clock, items = redis_monitor(tmp_path, backs)
    monitor.received(heartbeat(200, held=items), clock.t)
    monitor.received(marker(200, items[:1]), clock.t)
    monitor.tick()
    die(monitor, clock)
    assert backs.calls == []
    assert row(monitor, items[0][0])["embedding_attempts"] == 1  # charged all the same
    clock.t += 1
    monitor.tick()
    assert backs.calls == ["embeddings@h:200"]


def test_workers_that_died_unheard_get_their_messages_back(tmp_path: Path) -> None:
    """Died while no watcher ran: its keys are there, its heartbeats are not. Only judged once
    the watcher has listened long enough to have heard every live worker."""
    backs = GiveBacks(holding=["embeddings@h:200", "embeddings@h:999"])
    monitor, clock, items = redis_monitor(tmp_path, backs)
    monitor.fleet.listening(clock.t)
    monitor.received(heartbeat(200, held=items), clock.t)
    monitor.tick()
    assert backs.calls == []  # too early to tell
    clock.t += DEAD_AFTER_S / 2
    monitor.received(heartbeat(200, held=items), clock.t)
    clock.t += DEAD_AFTER_S / 2 + 0.5
    monitor.received(heartbeat(200, held=items), clock.t)
    monitor.tick()
    assert backs.calls == ["embeddings@h:999"]


def test_brokers_that_redeliver_give_nothing_back_and_resend_nothing(tmp_path: Path) -> None:
    for url in ("", AMQP):
        monitor, clock, items = setup(tmp_path / (url[:4] or "spool"), url=url)
        assert monitor.give_back is None and monitor.orphans is None
        monitor.received(heartbeat(200, held=items), clock.t)
        monitor.tick()
        die(monitor, clock)
        assert due(monitor) == []


def due(monitor: FleetMonitor) -> list[int]:
    return [i for i, _ in sending.due_for_dispatch(monitor.conn, "embedding", resend_before=None)]


def test_what_a_live_worker_holds_is_never_resent_as_stale(tmp_path: Path) -> None:
    monitor, clock, items = setup(tmp_path)
    monitor.conn.execute("UPDATE images SET embedding_queued_at = ?", (schema.iso_ago(3600),))
    resend_before = schema.iso_ago(120)
    due = sending.due_for_dispatch(monitor.conn, "embedding", resend_before=resend_before)
    assert len(due) == 4
    monitor.received(heartbeat(200, held=items[:3]), clock.t)
    monitor.tick()
    # Sent an hour ago but still in a live worker's prefetch: not lost, not due again.
    assert [i for i, _ in sending.due_for_dispatch(monitor.conn, "embedding",
                                                   resend_before=resend_before)] == [items[3][0]]


def test_one_workers_row_per_process_with_its_state(tmp_path: Path) -> None:
    monitor, clock, items = setup(tmp_path)
    monitor.received(heartbeat(200, held=items), clock.t)
    monitor.received(heartbeat(100, kind="thumbnail", pids=(100, 101, 102)), clock.t)
    monitor.received(heartbeat(150, kind="thumbnail", state=STOPPED), clock.t)
    monitor.tick()
    rows = {r["name"]: r for r in workers.worker_states(monitor.conn)}
    assert set(rows) == {"embeddings@h:200", "thumbnails@h:100", "thumbnails@h:150"}
    assert rows["embeddings@h:200"]["state"] == "ready"
    assert rows["embeddings@h:200"]["rss_kb"] == 1024
    assert rows["embeddings@h:200"]["processed"] == 7
    assert rows["thumbnails@h:150"]["state"] == "stopped"
    assert rows["embeddings@h:200"]["last_seen"] == schema.now_iso(
        datetime.fromtimestamp(1_800_000_000.0 + clock.t, UTC))
    clock.t += 2
    monitor.received(heartbeat(100, kind="thumbnail", pids=(100, 101, 102), at=2), clock.t)
    die(monitor, clock)
    rows = {r["name"]: r for r in workers.worker_states(monitor.conn)}
    assert rows["embeddings@h:200"]["state"] == "dead"
    assert rows["thumbnails@h:100"]["state"] == "dead"


def test_bad_messages_are_ignored(tmp_path: Path) -> None:
    monitor, clock, items = setup(tmp_path)
    monitor.received({"type": "heartbeat", "v": 99}, clock.t)
    monitor.received("not json object", clock.t)
    monitor.received({**marker(200, items[:1]), "kind": "images; DROP TABLE images"}, clock.t)
    monitor.tick()
    assert workers.worker_states(monitor.conn) == []
    die(monitor, clock)
    assert row(monitor, items[0][0])["embedding_attempts"] == 0


def test_of_the_messages_from_before_the_watcher_only_a_clean_stop_is_kept(
        tmp_path: Path) -> None:
    monitor, clock, items = setup(tmp_path)
    wall = 1_800_000_000.0 + clock.t
    monitor.stale(heartbeat(200, held=items, at=wall - 100))
    monitor.stale(marker(200, items[:1], at=wall - 99))
    monitor.stale(heartbeat(100, kind="thumbnail", state=STOPPED, at=wall - 30))
    monitor.tick()
    rows = {r["name"]: r for r in workers.worker_states(monitor.conn)}
    assert list(rows) == ["thumbnails@h:100"]
    assert rows["thumbnails@h:100"]["state"] == "stopped"
    assert rows["thumbnails@h:100"]["last_seen"] == schema.now_iso(
        datetime.fromtimestamp(wall - 30, UTC))
    die(monitor, clock)
    assert row(monitor, items[0][0])["embedding_attempts"] == 0


def test_on_redis_a_death_asks_for_an_early_resend_of_what_is_in_no_queue(
        tmp_path: Path) -> None:
    """A message the worker popped but had not yet recorded as its own when it was killed is
    in no queue and no key: 15 s after the death the outbox may send again what was queued
    before it (not 120 s later)."""
    from watcherd.fleet.monitor import EARLY_RESEND_S

    backs = GiveBacks()
    monitor, clock, items = redis_monitor(tmp_path, backs)
    monitor.received(heartbeat(200, held=items[:2]), clock.t)
    monitor.tick()
    assert monitor.early_resends() == {}
    die(monitor, clock)
    assert monitor.early_resends() == {}  # not yet: the restarted worker takes what is back
    clock.t += EARLY_RESEND_S
    when = monitor.early_resends()
    assert list(when) == ["embedding"] and when["embedding"] <= schema.now_iso()
    assert monitor.early_resends() == {}  # once


def test_a_hung_step_is_charged_as_timed_out_and_its_process_ended(tmp_path: Path) -> None:
    """One mechanism: the hung step is a death with a 'timed out' reason, through the same
    attempts counter, and the process is handed to the reaper."""
    monitor, clock, items = setup(tmp_path, max_attempts=2)
    ended: list[tuple[int, bool]] = []
    monitor.end = lambda e: (ended.append((e.pid, e.force)), "killed")[1]
    for life, pid in enumerate((300, 301), start=1):
        monitor.received(heartbeat(pid), clock.t)
        monitor.received(Busy(f"embeddings@h:{pid}", pid, "embedding", 0.0, (items[1],),
                              limit=20.0, deadline=20.0).to_json(), clock.t)
        monitor.tick()
        for t in range(2, 36, 2):  # it beats on; the step never ends
            clock.t += 2
            monitor.received(heartbeat(pid, at=float(t)), clock.t)
            monitor.tick()
        assert ended[-1] == (pid, True)
        assert row(monitor, items[1][0])["embedding_attempts"] == life
        die(monitor, clock)  # ended: silent from now on, and nothing more is charged
        assert row(monitor, items[1][0])["embedding_attempts"] == life
    r = row(monitor, items[1][0])
    assert r["embedding_status"] == "failed"
    assert r["embedding_error"] == ("timed out after 20 s (2 attempts): a pathological file, "
                                    "or a read stuck on its disk?")
    assert [row(monitor, i)["embedding_attempts"] for i, _ in items] == [0, 2, 0, 0]
