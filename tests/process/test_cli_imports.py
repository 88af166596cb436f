"""What the short commands import: `watcherd --help` (and the CLI module) none of the heavy
packages, and `search --image PHOTO` / `duplicates` in-process numpy but no torch, sqlite_utils,
structlog, Celery or the web stack. Counted, never timed (benchmarks/cli_start.py times them)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.helpers import write_config
from tests.searchlib import MODEL_A, library

HEAVY = {"torch", "open_clip", "torchvision", "numpy", "sqlite_utils", "structlog", "celery",
         "kombu", "starlette", "uvicorn", "PIL", "prometheus_client", "asyncio"}


def imported(*args: str) -> set[str]:
    """The top-level packages a ``python -X importtime ARGS`` run imported."""
    r = subprocess.run([sys.executable, "-X", "importtime", *args], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    return {line.split("|")[-1].strip().split(".")[0] for line in r.stderr.splitlines()
            if line.startswith("import time:")}


def test_help_imports_none_of_the_heavy_packages() -> None:
    for args in (["--help"], ["search", "--help"], ["duplicates", "--help"], ["--version"]):
        found = imported("-m", "watcherd", *args)
        assert "click" in found and not found & HEAVY, (args, found & HEAVY)


def test_the_cli_module_imports_none_of_them() -> None:
    r = subprocess.run([sys.executable, "-c", "import json, sys, watcherd.cli; "
                        "print(json.dumps(sorted(sys.modules)))"], capture_output=True,
                       text=True, timeout=60, check=True)
    found = {m.split(".")[0] for m in json.loads(r.stdout)}
    assert not found & HEAVY, found & HEAVY
    assert "watcherd.config" not in json.loads(r.stdout)  # loaded by a command that runs


def test_search_by_an_indexed_photo_and_duplicates_import_numpy_only(tmp_path: Path) -> None:
    conn, _, _ = library(tmp_path / "watcherd.db", 50, key=MODEL_A)
    conn.close()  # type: ignore[attr-defined]
    config = write_config(tmp_path, model=MODEL_A.model)
    photo = "/photos/f1/sub1/img00001.jpg"
    for args in (["search", "--image", photo, "--local", "--json"],
                 ["duplicates", "--local", "--json"]):
        found = imported("-m", "watcherd", "-c", str(config), *args)
        assert "numpy" in found and not found & HEAVY - {"numpy"}, (args, found & HEAVY)
