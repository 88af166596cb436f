"""The embedded broker: a spool-folder kombu transport that needs no server.

Why not kombu's own server-less transports (measured for this project, see README):
- ``filesystem://`` writes each message straight to its final name, so a consumer can read a
  half-written file and die on ``JSONDecodeError``; it moves claimed files to ``/tmp``, which is a
  copy (not an atomic rename) when /tmp is another filesystem (systemd ``PrivateTmp``), so two
  consumers can both get the message; and every ``get`` lists and sorts the whole folder.
- ``sqla+sqlite://`` is correct but never deletes consumed rows, and needs SQLAlchemy.

This transport keeps kombu's filesystem exchange tables and fixes the message path:
- a message is written to ``tmp/`` and renamed into ``queues/<queue>/``: a reader never sees a
  partial file;
- a consumer claims a message with one ``rename`` into its own ``claimed/<owner>/<queue>/``
  folder on the same filesystem: exactly one consumer wins;
- each queue has its own folder, and a consumer lists it once and works through that listing,
  so taking a message costs O(1) amortised instead of a full listing and sort;
- the claimed file stays until the message is acknowledged (then deleted) or rejected with
  requeue / given back at a clean shutdown (then renamed back into its queue). ``<owner>`` is one
  consuming process, which holds an flock on ``<owner>/.lock`` while it lives; a consuming
  channel, at its first poll and every ``GIVE_BACK_INTERVAL`` while idle, gives back the claims
  of owners whose lock is free (the process is gone). So a
  consumer killed with ``kill -9`` loses nothing: its prefetched and in-progress messages are
  delivered again as soon as a consumer connects (at-least-once, like RabbitMQ; watcherd's
  tasks are idempotent). kombu's filesystem transport loses them; watcherd's outbox would
  re-send them only after ``resend_after_seconds``.

Durability and damage:
- the message file is flushed to disk (``fdatasync``) before its rename into the queue, so a
  power cut never leaves an empty or truncated message there (ext4 and XFS may otherwise commit
  the rename before the data). The queue folder is synced when it is created, not after every
  rename: that would double the syncs per message (benchmarks/spool_fsync.py), and a rename
  lost to a power cut is a lost message, which the outbox sends again anyway;
- a message file that cannot be decoded anyway (damaged, truncated, not ours) is moved to
  ``bad/<queue>/`` and logged with the reason: never delivered, never dropped silently. The row
  it was for stays ``pending`` and the outbox sends it again after ``resend_after_seconds``;
- files left in ``tmp/`` by a writer that died between write and rename (its send failed, so the
  outbox sends that row again) are removed once older than ``TMP_MAX_AGE``, when a channel opens
  and with the consumers' periodic give-back;
- the spool folder must be on a local filesystem (:mod:`watcherd.broker.fstype`): a channel
  refuses to open on NFS, SMB, SSHFS and the like.

The claim folders, their owner locks, the give-back and the tmp/ clean-up live in
:mod:`watcherd.broker.spool_claims`; this module is the transport that uses them.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections import deque
from pathlib import Path
from typing import Any

from kombu.transport import TRANSPORT_ALIASES, filesystem, virtual
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads

from watcherd.broker import spool_claims
from watcherd.broker.fstype import check_local
from watcherd.broker.spool_claims import TMP_MAX_AGE

log = logging.getLogger("watcherd.broker.spool")

# How often an idle consumer looks for claims of consumers that have died since it connected.
GIVE_BACK_INTERVAL = 5.0

ALIAS = "spool"
TRANSPORT_ALIASES[ALIAS] = "watcherd.broker.spool:Transport"


def spool_options(spool_dir: Path, polling_interval: float = 0.05) -> dict[str, Any]:
    """The ``broker_transport_options`` for a spool under ``spool_dir``."""
    return {
        "spool_dir": str(spool_dir),
        "control_folder": str(spool_dir / "control"),
        "polling_interval": polling_interval,
    }


def _persistent(payload: Any) -> bool:
    """Whether a message must survive a power cut (AMQP's delivery mode 2, kombu's and Celery's
    default). Transient ones (the fleet's heartbeats and busy markers, several per photo) are
    not synced: they only need to outlive a process, and the page cache does that; a sync each
    cost ~0.3 ms on an idle disk and much more behind a busy one (benchmarks/spool_fsync.py)."""
    properties = payload.get("properties") if isinstance(payload, dict) else None
    mode = properties.get("delivery_mode", 2) if isinstance(properties, dict) else 2
    return mode != 1


class QoS(virtual.QoS):
    """kombu's QoS, telling the channel when a claimed file can go."""

    channel: Channel

    def ack(self, delivery_tag: str) -> None:
        super().ack(delivery_tag)
        self.channel._release(delivery_tag)

    def reject(self, delivery_tag: str, requeue: bool = False) -> None:
        super().reject(delivery_tag, requeue=requeue)  # requeue: _restore renamed it back
        self.channel._release(delivery_tag)


class Channel(filesystem.Channel):
    """One connection's channel to the spool: puts (tmp, fsync, rename), claims, delivers,
    releases and requeues message files; the claim folders and the leftovers of dead processes
    are :mod:`watcherd.broker.spool_claims`'s."""

    QoS = QoS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._listings: dict[str, deque[str]] = {}
        self._claims: dict[str, tuple[Path, str]] = {}  # delivery tag -> (claimed file, queue)
        self._owner: str | None = None
        self._no_ack: set[str] = set()  # queues consumed without acknowledgements
        self._given_back_at = float("-inf")  # at the first poll of a consumer
        root = self._root
        check_local(root)  # NetworkFilesystemError: kombu does not retry it
        for sub in ("tmp", "claimed", "queues", "control"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        self.clean_tmp()

    def clean_tmp(self, max_age: float = TMP_MAX_AGE) -> int:
        """Remove what dead writers left in ``tmp/`` (:func:`spool_claims.clean_tmp`)."""
        return spool_claims.clean_tmp(self._root, max_age)

    def give_back_dead_claims(self) -> int:
        """Put the messages claimed by consumers that are no longer running back into their
        queues (:mod:`~watcherd.broker.spool_claims`); the number of messages."""
        total = spool_claims.give_back_dead_claims(self._root, self._queue_dir)
        if total:
            self._listings.clear()
        return total

    def _claim_dir(self, queue: str) -> Path:
        self._owner = spool_claims.my_owner(self._root / "claimed")
        path = self._root / "claimed" / self._owner / queue
        path.mkdir(exist_ok=True)
        return path

    @property
    def _root(self) -> Path:
        return Path(self.transport_options["spool_dir"])

    def _queue_dir(self, queue: str) -> Path:
        path = self._root / "queues" / queue
        try:
            path.mkdir(parents=True)
        except FileExistsError:
            return path
        self._sync_dir(path.parent)  # a new queue folder survives a power cut
        return path

    # kombu's filesystem Channel takes **kwargs here, its abstract base does not: ours matches
    # the class it extends.
    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        name = f"{time.time_ns():020d}-{uuid.uuid4().hex}.msg"
        tmp = self._root / "tmp" / name
        try:
            folder = self._queue_dir(queue)
            with open(tmp, "wb") as f:
                f.write(str_to_bytes(dumps(payload)))
                f.flush()
                if _persistent(payload):
                    self._sync_file(f.fileno())  # the data is on disk before the name is
            os.rename(tmp, folder / name)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise filesystem.ChannelError(f"cannot add message to spool queue {queue!r}") from exc

    @staticmethod
    def _sync_file(fd: int) -> None:
        # fdatasync: the data and the size, without the mtime (measured: benchmarks/spool_fsync.py)
        os.fdatasync(fd)

    @staticmethod
    def _sync_dir(folder: Path) -> None:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _get(self, queue: str, timeout: float | None = None) -> Any:
        folder = self._queue_dir(queue)
        listing = self._listings.get(queue)
        if not listing:
            now = time.monotonic()
            if now - self._given_back_at >= GIVE_BACK_INTERVAL:
                # At a consumer's first poll (a restarted worker takes its predecessor's
                # messages back) and again while idle: a consumer may die long after this one
                # connected, and a killed worker's prefork children hold its lock until they exit.
                self._given_back_at = now
                self.give_back_dead_claims()
                self.clean_tmp()
            listing = self._listings[queue] = deque(sorted(os.listdir(folder)))
            if not listing:
                raise filesystem.Empty()
        claim_dir = self._claim_dir(queue)  # only with messages to claim: not on idle polls
        while listing:
            name = listing.popleft()
            claimed = claim_dir / name
            try:
                os.rename(folder / name, claimed)
            except FileNotFoundError:
                continue  # another consumer won it
            try:
                payload = loads(bytes_to_str(claimed.read_bytes()))
                tag = payload["properties"]["delivery_tag"]
            except (OSError, ValueError, KeyError, TypeError) as exc:
                self._set_aside(claimed, queue, exc)  # never delivered, never looped over
                continue
            if queue in self._no_ack:
                claimed.unlink(missing_ok=True)  # nobody will acknowledge it
            else:
                self._claims[tag] = (claimed, queue)
            return payload
        raise filesystem.Empty()

    def _set_aside(self, claimed: Path, queue: str, exc: Exception) -> None:
        """A claimed file that is no message we can deliver (damaged by a power cut before
        fsync was added, truncated, written by something else): move it to ``bad/<queue>/``
        and say so; it is kept for inspection, and its row is sent again by the outbox."""
        try:
            size = claimed.stat().st_size
        except OSError:
            size = -1
        if size == 0:
            reason = "empty file"
        elif isinstance(exc, KeyError | TypeError):
            reason = f"not a kombu message (no properties.delivery_tag: {exc!r})"
        else:
            reason = f"{type(exc).__name__}: {exc}"
        bad = self._root / "bad" / queue
        try:
            bad.mkdir(parents=True, exist_ok=True)
            os.rename(claimed, bad / claimed.name)
        except OSError as move_exc:
            # Left where it is: given back to the queue when this consumer is gone.
            log.error("cannot read spool message %s (%s), nor move it to %s: %s", claimed,
                      reason, bad, move_exc, extra={"path": str(claimed), "queue": queue,
                                                    "reason": reason, "size": size})
            return
        log.error("spool message %s cannot be delivered (%s): moved to %s", claimed.name,
                  reason, bad, extra={"path": str(bad / claimed.name), "queue": queue,
                                      "reason": reason, "size": size})

    def basic_consume(self, queue: str, no_ack: bool, *args: Any, **kwargs: Any) -> Any:
        if no_ack:
            self._no_ack.add(queue)
        return super().basic_consume(queue, no_ack, *args, **kwargs)

    def basic_get(self, queue: str, no_ack: bool = False, **kwargs: Any) -> Any:
        message = super().basic_get(queue, no_ack=no_ack, **kwargs)
        if message is not None and no_ack:
            self._release(message.delivery_tag)
        return message

    def close(self) -> None:
        try:
            root: Path | None = self._root  # the connection is gone after close
        except AttributeError:  # closed already
            root = None
        super().close()  # gives unacknowledged messages back (_restore)
        if root is not None and self._owner is not None:
            spool_claims.drop_owner_if_empty(root / "claimed", self._owner)

    def _release(self, delivery_tag: str) -> None:
        """Acknowledged or rejected: the claimed file goes."""
        claim = self._claims.pop(delivery_tag, None)
        if claim is not None:
            claim[0].unlink(missing_ok=True)

    def _restore(self, message: Any) -> None:
        """Requeue (a reject with requeue, or the unacknowledged messages at a clean shutdown):
        the claimed file goes back into its queue under its own name, so it keeps its place."""
        claim = self._claims.pop(message.delivery_tag, None)
        if claim is None:
            super()._restore(message)
            return
        path, queue = claim
        try:
            os.rename(path, self._queue_dir(queue) / path.name)
        except FileNotFoundError:
            super()._restore(message)
        self._listings.pop(queue, None)

    def _size(self, queue: str) -> int:
        return sum(1 for n in os.listdir(self._queue_dir(queue)) if n.endswith(".msg"))

    def _purge(self, queue: str) -> int:
        count = 0
        folder = self._queue_dir(queue)
        for name in os.listdir(folder):
            try:
                (folder / name).unlink()
                count += 1
            except FileNotFoundError:
                pass
        self._listings.pop(queue, None)
        return count


class Transport(filesystem.Transport):
    Channel = Channel
    driver_type = ALIAS
    driver_name = ALIAS

    def __init__(self, client: Any, **kwargs: Any) -> None:
        super().__init__(client, **kwargs)
        # kombu's filesystem transport shares one declaration cache per process; a second spool
        # folder in the same process would then skip writing its exchange table and drop
        # messages. The tables live on disk, so each connection keeps its own cache.
        self.state = virtual.BrokerState()
