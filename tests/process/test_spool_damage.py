"""The spool's write path watched by strace in a real publishing process: a durable message is
on disk before its name, a transient one is not synced (the rest of the damage cases run
in-process in tests/unit/test_spool_damage.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests import requires
from tests.helpers import spool_connection


def _open_and_close(root: Path) -> None:
    with spool_connection(root) as conn:
        conn.connect()



def _traced_publish(root: Path, delivery_mode: int) -> list[str]:
    """The syscalls of a real publish of two messages into a new queue folder."""
    requires.tool("strace")
    _open_and_close(root)  # the spool's folders exist; the queue's folder does not yet
    script = (
        "import sys; from pathlib import Path; from tests.helpers import spool_publish; "
        "spool_publish(Path(sys.argv[1]), range(2), int(sys.argv[2]))"
    )
    trace = root / "trace"
    repo = Path(__file__).parents[2]
    subprocess.run(
        ["strace", "-f", "-qq", "-e", "trace=openat,mkdir,mkdirat,fdatasync,fsync,rename,"
         "renameat,renameat2", "-o", str(trace), sys.executable, "-c", script, str(root),
         str(delivery_mode)],
        check=True, timeout=60, cwd=repo, env={**os.environ, "PYTHONPATH": str(repo)})
    return trace.read_text().splitlines()



def _fd_of(line: str) -> str:
    return line.rsplit("= ", 1)[1].strip()



def _synced(lines: list[str], fd: str, start: int, end: int) -> bool:
    return any(f"fdatasync({fd})" in lines[j] or f"fsync({fd})" in lines[j]
               for j in range(start, end))



def _synced_before_rename(lines: list[str]) -> list[bool]:
    """For each message renamed into the queue: was its file synced between open and rename?"""
    renames = [i for i, line in enumerate(lines)
               if "rename" in line and "/tmp/" in line and "/queues/q/" in line]
    assert len(renames) == 2, lines
    out = []
    for i in renames:
        name = lines[i].split("/tmp/")[1].split('"')[0]
        opened = next(j for j in range(i, -1, -1) if "openat(" in lines[j] and name in lines[j])
        out.append(_synced(lines, _fd_of(lines[opened]), opened, i))
    return out



def test_a_message_is_on_disk_before_its_name(tmp_path: Path) -> None:
    """The syscalls of a real publish, in order: each persistent message file's data is synced
    before its rename into the queue (a power cut cannot leave an empty message there), and a
    new queue folder is synced into ``queues/`` when it is created."""
    lines = _traced_publish(tmp_path, delivery_mode=2)
    made = next(i for i, line in enumerate(lines) if "mkdir" in line and "queues/q" in line)
    opened = next(i for i in range(made, len(lines))
                  if "O_DIRECTORY" in lines[i] and lines[i].split('"')[1].endswith("/queues"))
    assert _synced(lines, _fd_of(lines[opened]), opened, opened + 3), lines[made:opened + 3]
    assert _synced_before_rename(lines) == [True, True]



def test_a_transient_message_is_not_synced(tmp_path: Path) -> None:
    """Heartbeats and busy markers are transient (delivery mode 1): they need to outlive a
    process, not a power cut, so their files are renamed into the queue without a sync (a sync
    per marker cost ~0.3 ms on an idle disk, more behind a busy one)."""
    assert _synced_before_rename(_traced_publish(tmp_path, delivery_mode=1)) == [False, False]
