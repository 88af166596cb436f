"""The spool's claim folders, and the leftovers of processes that died: kept apart from the
transport (:mod:`watcherd.broker.spool`) because they are about who holds a message, not about
how one is sent or taken.

- ``claimed/<owner>/`` is one consuming process's folder; the process holds an flock on
  ``<owner>/.lock`` while it lives, so a free lock means the owner is gone, in whatever
  namespace or sandbox it ran;
- :func:`give_back_dead_claims` renames a gone owner's claimed messages back into their queues
  and removes its folder (at-least-once delivery after a ``kill -9``);
- :func:`clean_tmp` removes files a writer left in ``tmp/`` when it died between write and
  rename.

Its log lines go to the ``watcherd.broker.spool`` logger, as they did while this code was part
of the transport.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path

# The transport's logger: these lines are the spool's, whichever module writes them.
log = logging.getLogger("watcherd.broker.spool")

# A file in tmp/ older than this was left by a writer that died between write and rename.
TMP_MAX_AGE = 300.0

# This process's claim folder, and the open lock file that marks it alive (per pid: a forked
# child is another consumer).
_OWNER: dict[int, tuple[str, int]] = {}


def my_owner(claimed: Path) -> str:
    """This process's claim folder under ``claimed/``, created on first use with a lock file
    that it holds (flock) until it exits. The kernel drops the lock when the process dies, in
    whatever namespace or sandbox it ran (the units' ProtectProc=invisible hides the other
    units' /proc entries, so a pid check would not do)."""
    mine = _OWNER.get(os.getpid())
    if mine is not None and (claimed / mine[0]).is_dir():
        return mine[0]
    owner = uuid.uuid4().hex
    staging = claimed / f".{owner}"  # dot names are skipped: no folder is seen unlocked
    staging.mkdir()
    fd = os.open(staging / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.rename(staging, claimed / owner)
    if mine is not None:
        os.close(mine[1])
    _OWNER[os.getpid()] = (owner, fd)
    return owner


def _remove_claim_folder(folder: Path) -> bool:
    """Remove an owner's claim folder (its queue folders and lock file) if no message is left
    in it; False, and the folder kept, if one is."""
    try:
        for queue in os.listdir(folder):
            if queue != ".lock":
                (folder / queue).rmdir()  # OSError if it still holds a message
        (folder / ".lock").unlink()
        folder.rmdir()
    except OSError:
        return False
    return True


def drop_owner_if_empty(claimed: Path, owner: str) -> None:
    """At a channel's close: remove this process's claim folder if it holds no message (a
    channel still open in this process makes a new one when it next claims)."""
    mine = _OWNER.get(os.getpid())
    if mine is None or mine[0] != owner or not _remove_claim_folder(claimed / owner):
        return
    del _OWNER[os.getpid()]
    os.close(mine[1])


def _lock_if_dead(folder: Path) -> int | None:
    """A locked fd on the owner's lock file when the owner is gone, else None."""
    try:
        fd = os.open(folder / ".lock", os.O_RDONLY)
    except OSError:
        return None  # given back and removed by another channel just now
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None  # held: the owner is alive
    return fd


def give_back_dead_claims(root: Path, queue_dir: Callable[[str], Path]) -> int:
    """Put the messages claimed by consumers that are no longer running back into their
    queues (``queue_dir`` names, and makes, a queue's folder); the number of messages."""
    claimed = root / "claimed"
    total = 0
    for owner in os.listdir(claimed):
        folder = claimed / owner
        if owner.startswith(".") or not folder.is_dir():
            continue
        fd = _lock_if_dead(folder)
        if fd is None:
            continue
        count = 0
        try:
            for queue in os.listdir(folder):
                if not (folder / queue).is_dir():  # the lock file
                    continue
                for name in os.listdir(folder / queue):
                    with contextlib.suppress(FileNotFoundError):
                        os.rename(folder / queue / name, queue_dir(queue) / name)
                        count += 1
            _remove_claim_folder(folder)
        finally:
            os.close(fd)
        if count:
            log.warning("gave back %d messages claimed by consumer %s, which is gone",
                        count, owner)
        total += count
    return total


def clean_tmp(root: Path, max_age: float = TMP_MAX_AGE) -> int:
    """Remove files a writer left in ``tmp/`` more than ``max_age`` seconds ago (it died
    between write and rename: its send failed, so the outbox sends that row again); the
    number removed."""
    tmp = root / "tmp"
    removed = 0
    for name in os.listdir(tmp):
        path = tmp / name
        try:
            age = time.time() - path.stat().st_mtime
            if age <= max_age:
                continue
            path.unlink()
        except FileNotFoundError:
            continue  # renamed into its queue, or removed by another process, just now
        removed += 1
        log.warning("removed %s, left in the spool's tmp/ %.0f s ago by a writer that "
                    "stopped before sending it", path, age,
                    extra={"path": str(path), "age_s": round(age)})
    return removed
