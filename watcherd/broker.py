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
- a consumer claims a message with one ``rename`` into ``claimed/`` on the same filesystem:
  exactly one consumer wins;
- each queue has its own folder, and a consumer lists it once and works through that listing,
  so taking a message costs O(1) amortised instead of a full listing and sort.

Delivery is at-most-once if a consumer dies between claim and ack (like kombu's filesystem
transport); watcherd's outbox re-sends rows that stay pending, so nothing is lost.
"""

from __future__ import annotations

import os
import time
import uuid
from collections import deque
from pathlib import Path
from typing import Any

from kombu.transport import TRANSPORT_ALIASES, filesystem, virtual
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads

ALIAS = "spool"
TRANSPORT_ALIASES[ALIAS] = "watcherd.broker:Transport"


def spool_options(spool_dir: Path, polling_interval: float = 0.05) -> dict[str, Any]:
    """The ``broker_transport_options`` for a spool under ``spool_dir``."""
    return {
        "spool_dir": str(spool_dir),
        "control_folder": str(spool_dir / "control"),
        "polling_interval": polling_interval,
    }


class Channel(filesystem.Channel):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._listings: dict[str, deque[str]] = {}
        root = self._root
        for sub in ("tmp", "claimed", "queues", "control"):
            (root / sub).mkdir(parents=True, exist_ok=True)

    @property
    def _root(self) -> Path:
        return Path(self.transport_options["spool_dir"])

    def _queue_dir(self, queue: str) -> Path:
        path = self._root / "queues" / queue
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:
        name = f"{time.time_ns():020d}-{uuid.uuid4().hex}.msg"
        tmp = self._root / "tmp" / name
        try:
            with open(tmp, "wb") as f:
                f.write(str_to_bytes(dumps(payload)))
            os.rename(tmp, self._queue_dir(queue) / name)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise filesystem.ChannelError(f"cannot add message to spool queue {queue!r}") from exc

    def _get(self, queue: str) -> Any:
        folder = self._queue_dir(queue)
        listing = self._listings.get(queue)
        if not listing:
            listing = self._listings[queue] = deque(sorted(os.listdir(folder)))
        claimed_dir = self._root / "claimed"
        while listing:
            name = listing.popleft()
            claimed = claimed_dir / f"{os.getpid()}-{name}"
            try:
                os.rename(folder / name, claimed)
            except FileNotFoundError:
                continue  # another consumer won it
            try:
                payload = claimed.read_bytes()
            finally:
                claimed.unlink(missing_ok=True)
            return loads(bytes_to_str(payload))
        raise filesystem.Empty()

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
