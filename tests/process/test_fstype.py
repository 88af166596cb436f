"""A spool on a network filesystem is refused and one on tmpfs accepted, by a real `watcherd` in
a mount namespace of its own (the mount lookups are tested in-process in
tests/unit/test_fstype.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests import requires
from tests.helpers import WATCHERD, write_config

ROOT = Path(__file__).parents[2]



# Runs inside the namespace: each watcherd command, and a kombu connection to the spool.
PROBE = r"""
import json, subprocess, sys
from pathlib import Path
config, spool, out = sys.argv[1:4]
commands = json.loads(sys.argv[4])
result = {}
for name, argv in commands.items():
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    result[name] = [r.returncode, r.stdout, r.stderr]
from kombu import Connection
from watcherd.broker.fstype import filesystem_of
from watcherd.broker.spool import spool_options
result["fstype"] = filesystem_of(Path(spool)).fstype
try:
    with Connection("spool://", transport_options=spool_options(Path(spool))) as conn:
        conn.connect()
    result["connect"] = "ok"
except Exception as exc:
    result["connect"] = f"{type(exc).__name__}: {exc}"
Path(out).write_text(json.dumps(result))
"""



def _in_namespace(mount: list[str], config: Path, spool: Path,
                  commands: dict[str, list[str]]) -> dict[str, object]:
    out = config.parent / "probe.json"
    probe = [sys.executable, "-c", PROBE, str(config), str(spool), str(out),
             json.dumps(commands)]
    r = subprocess.run(["unshare", "-m", *mount, *probe], capture_output=True, text=True,
                       timeout=300, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if r.returncode == 99:
        requires.cannot(f"cannot mount here: {r.stderr.strip()}")
    assert r.returncode == 0, r.stderr
    result: dict[str, object] = json.loads(out.read_text())
    return result



def test_watcherd_refuses_a_spool_on_sshfs(tmp_path: Path) -> None:
    """A real FUSE mount of type fuse.sshfs (tests/fakefuse.py): every process that would use
    the spool exits 2 naming the folder and the type; status still reports; the transport
    itself refuses to connect."""
    requires.private_mount_namespace()
    if not os.path.exists("/dev/fuse"):
        requires.cannot("no /dev/fuse")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    spool = mnt / "watcherd.spool"
    config = write_config(tmp_path, broker={"spool_dir": str(spool)})
    beside_db = tmp_path / "beside-db"
    beside_db.mkdir()
    db_on_mount = write_config(beside_db, database={"path": str(mnt / "watcherd.db")})
    c = ["-c", str(config)]
    result = _in_namespace(
        [sys.executable, "-m", "tests.fakefuse", str(mnt), "fuse.sshfs", "--"], config, spool,
        {"watch": [*WATCHERD, *c, "watch"],
         "worker": [*WATCHERD, "worker", "thumbnails", *c],
         "run": [*WATCHERD, "run", *c],
         "scan": [*WATCHERD, "scan", *c],
         "retry": [*WATCHERD, "retry", *c],
         "beside db": [*WATCHERD, "watch", "-c", str(db_on_mount)],
         "status": [*WATCHERD, "status", *c]})
    assert result["fstype"] == "fuse.sshfs"
    for name in ("watch", "worker", "run", "scan", "retry"):
        code, _out, err = result[name]  # type: ignore[misc]
        assert code == 2, (name, err)
        assert err.startswith(f"watcherd: {config}: broker.spool_dir: "), (name, err)
        assert f"{spool} is on a network filesystem (fuse.sshfs" in err, (name, err)
    code, _out, err = result["beside db"]  # type: ignore[misc]
    assert code == 2 and "beside [database] path" in err, err
    assert f"{mnt / 'watcherd.db.spool'} is on a network filesystem (fuse.sshfs" in err, err
    code, out, _err = result["status"]  # type: ignore[misc]
    assert code == 0 and "fuse.sshfs" in out, out
    assert str(result["connect"]).startswith("NetworkFilesystemError: "), result["connect"]



def test_a_spool_on_tmpfs_is_accepted(tmp_path: Path) -> None:
    requires.private_mount_namespace()
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    spool = mnt / "watcherd.spool"
    config = write_config(tmp_path, broker={"spool_dir": str(spool)})
    mount = ["sh", "-c", f"mount -t tmpfs watcherd-test {mnt} || exit 99; exec \"$@\"", "sh"]
    result = _in_namespace(mount, config, spool,
                           {"scan": [*WATCHERD, "scan", "-c", str(config)]})
    assert result["fstype"] == "tmpfs"
    code, out, err = result["scan"]  # type: ignore[misc]
    assert code == 0 and "scanned" in out, err
    assert result["connect"] == "ok"
