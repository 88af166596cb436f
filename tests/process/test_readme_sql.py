"""The README's plain-SQL ranking recipes, run as written (only the database and extension
paths replaced) against a real watcherd database, compared with the numpy reference."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import readme_block
from tests.searchlib import add_photos, reference, store_vectors, unit_rows
from watcherd.store import discovery, schema
from watcherd.store.vectors import ModelKey

KEY = ModelKey("ViT-B-32", "laion2b_s34b_b79k")
BEACH = "/srv/photos/2024/beach.jpg"
DEBIAN_PYTHON = "/usr/bin/python3"


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[tuple[str, float]]]:
    path = tmp_path_factory.mktemp("readme") / "watcherd.db"
    conn = schema.connect(path)
    paths = [BEACH] + [f"/srv/photos/2024/img{i:03d}.jpg" for i in range(60)]
    ids = add_photos(conn, paths)
    matrix = unit_rows(len(ids), 64, seed=1)
    matrix[8] = matrix[0] + 0.1 * matrix[8]  # img007, deleted below: it would rank second
    matrix[8] /= np.linalg.norm(matrix[8])
    store_vectors(conn, KEY, ids, matrix)
    # Another model's vectors and a deleted photo: the recipes must leave both out.
    store_vectors(conn, ModelKey("RN50", "openai"), ids, unit_rows(len(ids), 64, seed=2))
    discovery.mark_deleted(conn, ["/srv/photos/2024/img007.jpg"])
    conn.close()
    query = matrix[0]
    want = [(p, s) for _, p, s in reference(path, KEY, query, 20)]
    return path, want


def parse(output: str, sep: str) -> list[tuple[str, float]]:
    rows = []
    for line in output.strip().splitlines():
        first, second = line.split(sep, 1) if sep == "|" else line.split("  ", 1)
        rows.append((first, float(second)) if sep == "|" else (second, float(first)))
    return rows


def same(got: list[tuple[str, float]], want: list[tuple[str, float]]) -> None:
    assert [p for p, _ in got] == [p for p, _ in want]
    assert all(abs(a - b) < 1e-4 for (_, a), (_, b) in zip(got, want, strict=True))


def vec0() -> str:
    sqlite_vec = pytest.importorskip("sqlite_vec", reason="pip install sqlite-vec (test extra)")
    return str(sqlite_vec.loadable_path())


def test_python_function_recipe(library: tuple[Path, list[tuple[str, float]]]) -> None:
    path, want = library
    code = readme_block("python-function").replace("/var/lib/watcherd/watcherd.db", str(path))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    same(parse(result.stdout, "  "), want)


def test_sqlite3_shell_recipe(library: tuple[Path, list[tuple[str, float]]]) -> None:
    path, want = library
    shell = shutil.which("sqlite3")
    if shell is None:
        pytest.skip("no sqlite3 shell (apt-get install sqlite3)")
    sql = readme_block("sqlite3-shell").replace(".load /path/to/vec0", f".load {vec0()}")
    result = subprocess.run([shell, "-readonly", str(path)], input=sql, capture_output=True,
                            text=True, check=True)
    same(parse(result.stdout, "|"), want)


def test_python_sqlite_vec_recipe(library: tuple[Path, list[tuple[str, float]]]) -> None:
    path, want = library
    code = (readme_block("python-sqlite-vec").replace("/var/lib/watcherd/watcherd.db", str(path))
            .replace("/path/to/vec0", vec0()))
    # This project's Python cannot load extensions (the README says so): check that claim, and
    # run the recipe with Debian's Python, which can.
    ours = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if ours.returncode != 0:
        assert "enable_load_extension" in ours.stderr
    if not (os.path.exists(DEBIAN_PYTHON) and subprocess.run(
            [DEBIAN_PYTHON, "-c", "import sqlite3; sqlite3.connect(':memory:')"
             ".enable_load_extension(True)"], capture_output=True).returncode == 0):
        pytest.skip(f"no {DEBIAN_PYTHON} with extension loading")
    result = subprocess.run([DEBIAN_PYTHON, "-c", code], capture_output=True, text=True,
                            check=True, env={"PATH": "/usr/bin:/bin"})
    same(parse(result.stdout, "  "), want)
    assert np.isfinite([s for _, s in want]).all()
