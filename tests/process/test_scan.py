"""The scan as another user (a real process that cannot read a folder)."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.libraries import deleted_names as _deleted
from tests.libraries import make_tree as _tree
from tests.libraries import record_all as _record_all
from watcherd.store import schema


def _nobody() -> str | None:
    try:
        pwd.getpwnam("nobody")
    except KeyError:
        return None
    return shutil.which("setpriv")


@pytest.mark.skipif(os.geteuid() == 0 and _nobody() is None,
                    reason="as root, needs setpriv and a 'nobody' user to meet a permission")
def test_unreadable_subfolder_keeps_its_rows(tmp_path: Path) -> None:
    """Root reads every folder, so as root the scan runs as nobody (setpriv)."""
    base = Path(tempfile.mkdtemp(prefix="watcherd-scan-"))
    try:
        base.chmod(0o777)
        root = base / "photos"
        _tree(root)
        (root / "sub" / "d.jpg").write_bytes(b"z" * 3)
        conn = schema.connect(base / "w.db")
        _record_all(conn, root)
        conn.close()
        for p in [base, *base.rglob("*")]:
            p.chmod(0o777 if p.is_dir() else 0o666)
        (root / "sub").chmod(0)
        code = (
            "import json, sys; from pathlib import Path; from watcherd.store import schema; "
            "from watcherd.watch import scan; EXTS = ('jpg', 'png'); "
            "from watcherd.watch.rules import Rules; root = Path(sys.argv[2]); "
            "r = scan.reconcile(schema.connect(Path(sys.argv[1])), root, Rules.of([root], EXTS));"
            "print(json.dumps({'deleted': r.deleted, 'unreadable': r.unreadable}))"
        )
        cmd = [sys.executable, "-c", code, str(base / "w.db"), str(root)]
        if os.geteuid() == 0:
            cmd = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *cmd]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True,
                             env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
                             cwd=base)
        result = json.loads(out.stdout)
        assert result == {"deleted": 0,
                          "unreadable": [[str(root / "sub"), "Permission denied"]]}, out
        (root / "sub").chmod(0o777)
        assert _deleted(schema.connect(base / "w.db")) == set()
    finally:
        (base / "photos" / "sub").chmod(0o777)
        shutil.rmtree(base, ignore_errors=True)
