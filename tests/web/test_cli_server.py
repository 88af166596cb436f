"""`watcherd search` and `watcherd duplicates` with a real `watcherd serve` of the same config up:
they ask it (GET /api/search, /api/duplicates) and print exactly what they print in-process
(--local). The served runs happen in processes that cannot import numpy, torch or open_clip,
so an answer there can only have come from the server."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import WATCHERD
from tests.web.weblib import Lib, Serve, build, free_port, get
from watcherd.web import client

BLOCKED = ("numpy", "torch", "open_clip")


@pytest.fixture(scope="module")
def blocked(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """An environment whose Python cannot import numpy, torch or open_clip."""
    folder = tmp_path_factory.mktemp("blocked")
    for name in BLOCKED:
        (folder / name).mkdir()
        (folder / name / "__init__.py").write_text(
            f"raise ImportError('{name} is blocked: this process must ask the server')\n")
    path = os.pathsep.join([str(folder), *filter(None, [os.environ.get("PYTHONPATH")])])
    return {**os.environ, "PYTHONPATH": path}


def run(config: Path, *args: str, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*WATCHERD, "-c", str(config), *args], capture_output=True, text=True,
                          timeout=180, env=env)


def untimed(stderr: str) -> str:
    """stderr without the seconds a run took."""
    return re.sub(r"\(\d+\.\d+ s\)", "(s)", stderr)


def same_both_ways(config: Path, args: list[str], served_env: dict[str, str] | None
                   ) -> subprocess.CompletedProcess[str]:
    served = run(config, *args, env=served_env)
    local = run(config, *args, "--local")
    assert served.returncode == local.returncode, (served.stderr, local.stderr)
    assert served.stdout == local.stdout
    assert untimed(served.stderr) == untimed(local.stderr)
    return served


def photo(lib: Lib, name: str) -> str:
    return str(lib.photos / ("beach" if int(name[3:6]) % 2 else "city") / name)


SEARCHES = [
    ["a", "red", "photo", "--json"],
    ["beach", "--not", "blue sky", "-n", "50"],
    ["--image", "img007.jpg", "-n", "30", "--json"],
    ["--image", "img007.jpg", "--not-image", "img010.jpg", "--not", "night", "--json"],
    ["city", "--under", "PHOTOS/beach", "--min-score", "-0.5", "-n", "1000", "--json"],
    ["--image", "img012.jpg", "-n", "5", "--paths"],
]


@pytest.mark.parametrize("args", SEARCHES, ids=lambda a: " ".join(a)[:40])
def test_search_through_serve_equals_in_process(library: Lib, server: Serve,
                                                blocked: dict[str, str], args: list[str]
                                                ) -> None:
    args = [photo(library, a) if a.startswith("img") else
            str(library.photos) + a[6:] if a.startswith("PHOTOS") else a for a in args]
    served = same_both_ways(library.config, ["search", *args], blocked)
    assert served.returncode == 0, served.stderr
    assert served.stdout.strip() and "model " in served.stderr


def test_duplicates_through_serve_equal_in_process(library: Lib, server: Serve,
                                                   blocked: dict[str, str]) -> None:
    for args in (["--threshold", "0.97", "--json"], ["--json"], []):
        served = same_both_ways(library.config, ["duplicates", *args], blocked)
        assert served.returncode == 0, served.stderr
    report = json.loads(run(library.config, "duplicates", "--threshold", "0.97", "--json",
                            env=blocked).stdout)
    assert report["near"] and report["threshold"] == 0.97  # groups to compare: not vacuous
    answer = get(server.base + "/api/duplicates?threshold=0.97")
    assert answer.status == 200 and answer.json() == report
    assert int(answer.headers[client.COMPARED_HEADER.lower()]) > 100


@pytest.mark.parametrize(("args", "code"), [
    (["search", "x", "--model", "nonesuch"], 2),
    (["duplicates", "--model", "nonesuch"], 2),
    (["duplicates", "--pretrained", "nonesuch"], 2),
])
def test_a_server_error_exits_as_in_process(library: Lib, server: Serve,
                                            blocked: dict[str, str], args: list[str], code: int
                                            ) -> None:
    served = same_both_ways(library.config, args, blocked)
    assert served.returncode == code and "nonesuch" in served.stderr


def test_what_the_api_cannot_take_is_answered_in_process(library: Lib, server: Serve,
                                                         tmp_path: Path) -> None:
    # An indexed photo without a vector (a file that is no image): the server has no vector
    # for it, in-process tries to embed the file and says why it cannot.
    broken = same_both_ways(library.config, ["search", "--image",
                                             str(library.photos / "broken0.jpg")], None)
    assert broken.returncode == 2 and "not an image" in broken.stderr
    # An image file that is not indexed: embedded in-process (so this one needs numpy).
    outside = tmp_path / "copy.jpg"
    shutil.copy(photo(library, "img003.jpg"), outside)
    copy = same_both_ways(library.config, ["search", "--image", str(outside), "--json"], None)
    assert copy.returncode == 0 and json.loads(copy.stdout)


def test_the_server_answered(library: Lib, server: Serve, blocked: dict[str, str]) -> None:
    """Without numpy and torch only the server can answer; --local cannot; and the served
    path imports none of the heavy packages."""
    local = run(library.config, "search", "a red photo", "--local", env=blocked)
    assert local.returncode == 1 and "blocked" in local.stderr
    served = subprocess.run([*WATCHERD[:1], "-X", "importtime", *WATCHERD[1:], "-c",
                             str(library.config), "search", "a red photo", "--json"],
                            capture_output=True, text=True, timeout=60, env=blocked)
    assert served.returncode == 0, served.stderr[-2000:]
    imported = {line.split("|")[-1].strip().split(".")[0] for line in served.stderr.splitlines()
                if line.startswith("import time:")}
    assert not imported & {"numpy", "torch", "open_clip", "sqlite_utils", "structlog", "celery",
                           "starlette", "PIL"}, imported
    assert len(json.loads(served.stdout)) == 20
    no_dups = run(library.config, "duplicates", "--local", env=blocked)
    assert no_dups.returncode == 1 and "blocked" in no_dups.stderr


def _other(lib: Lib, tmp: Path, **web: str) -> Path:
    """A copy of ``lib``'s config with another [web] section."""
    text = re.sub(r"\[web\][^\[]*", "", lib.config.read_text())
    config = tmp / "other.toml"
    config.write_text(text + "\n[web]\n" + "".join(f'{k} = "{v}"\n' for k, v in web.items()))
    return config


def test_no_server_means_in_process(library: Lib, server: Serve, tmp_path: Path,
                                    blocked: dict[str, str]) -> None:
    config = _other(library, tmp_path, listen=f"127.0.0.1:{free_port()}")  # nobody there
    args = ["search", "--image", photo(library, "img007.jpg"), "--json"]
    alone = run(config, *args)
    assert alone.returncode == 0, alone.stderr
    assert alone.stdout == run(library.config, *args, env=blocked).stdout
    assert run(config, *args, env=blocked).returncode == 1  # it did need numpy: in-process
    dups = run(config, "duplicates", "--json")
    assert dups.returncode == 0 and json.loads(dups.stdout)["model"]


def test_a_server_of_another_library_is_not_asked(library: Lib, server: Serve,
                                                  tmp_path: Path) -> None:
    """Same port, another database: the command answers from its own (empty) database."""
    config = _other(library, tmp_path, listen=server.base.removeprefix("http://"))
    config.write_text(config.read_text().replace(str(library.db_path),
                                                 str(tmp_path / "empty.db")))
    assert run(config, "migrate").returncode == 0
    for args in (["search", "a red photo"], ["duplicates"]):
        r = run(config, *args)
        assert r.returncode == 1 and "no photo has a vector yet" in r.stderr, r.stderr


@pytest.fixture(scope="module")
def wild(tmp_path_factory: pytest.TempPathFactory, tiny_model: str) -> Iterator[Lib]:
    """A library served on the wildcard address, with a token."""
    lib = build(tmp_path_factory.mktemp("wild"), tiny_model, listen=f"0.0.0.0:{free_port()}",
                token="wild-token", photos=8)
    s = Serve(lib.config).wait_ready()
    yield lib
    s.stop()


def test_wildcard_listen_and_token(wild: Lib, blocked: dict[str, str]) -> None:
    served = same_both_ways(wild.config, ["search", "red", "--json"], blocked)
    assert served.returncode == 0 and len(json.loads(served.stdout)) == 9
    # a wrong token: 401, and the command answers in-process (which it cannot here)
    bad_token = wild.config.parent / "bad-token.toml"
    bad_token.write_text(wild.config.read_text().replace("wild-token", "not-it"))
    assert run(bad_token, "search", "red", env=blocked).returncode == 1
    assert run(bad_token, "search", "red", "--json").stdout == served.stdout


@pytest.fixture(scope="module")
def reembedding(tmp_path_factory: pytest.TempPathFactory, tiny_model: str) -> Iterator[Lib]:
    """A library in the middle of a model change: another model's vectors cover more photos
    than the configured one's, so search and duplicates say which model answers (a note)."""
    from tests.searchlib import MODEL_B, store_vectors, unit_rows
    from watcherd.store import schema

    lib = build(tmp_path_factory.mktemp("reembed"), tiny_model, photos=6)
    conn = schema.connect(lib.db_path)
    ids = sorted(lib.ids.values())
    store_vectors(conn, MODEL_B, ids, unit_rows(len(ids), 48, seed=3))
    conn.close()
    s = Serve(lib.config).wait_ready()
    yield lib
    s.stop()


def test_the_note_is_the_same(reembedding: Lib, blocked: dict[str, str]) -> None:
    for args in (["search", "--image", photo(reembedding, "img003.jpg"), "--json"],
                 ["duplicates", "--threshold", "0.5"]):
        served = same_both_ways(reembedding.config, args, blocked)
        assert served.returncode == 0 and "note: the configured model" in served.stderr


def test_where_to_connect() -> None:
    assert client.address("0.0.0.0:8470") == ("127.0.0.1", 8470)
    assert client.address("[::]:8470") == ("::1", 8470)
    assert client.address("localhost:1") == ("localhost", 1)
    assert client.address("192.0.2.7:80") == ("192.0.2.7", 80)
    assert client.address("[::1]:80") == ("::1", 80)


@pytest.mark.parametrize(("query", "reason"), [
    ("threshold=2", "within -1..1"),
    ("threshold=x", "must be a number"),
    ("model=nonesuch", "nonesuch"),
    ("bogus=1", "unknown parameter 'bogus'"),
])
def test_duplicates_route_bad_parameters(server: Serve, query: str, reason: str) -> None:
    r = get(f"{server.base}/api/duplicates?{query}")
    assert r.status == 400 and reason in r.json()["error"], r.body[:300]


def test_which_queries_the_api_takes(library: Lib) -> None:
    db = library.db_path
    base: dict[str, Any] = {"text": "red", "images": (), "not_texts": (), "not_images": (),
                            "n": 20, "min_score": None, "under": None, "model": None,
                            "pretrained": None}
    assert client.search_params(db, **base) == [("q", "red"), ("n", "20")]
    img = photo(library, "img007.jpg")
    with_photo = client.search_params(db, **{**base, "text": None, "images": (img,),
                                             "min_score": 0.25})
    assert with_photo == [("image", str(library.ids["img007.jpg"])), ("n", "20"),
                          ("min_score", "0.25")]
    for change in ({"pretrained": "x"}, {"text": " "}, {"not_texts": ("",)}, {"n": 0},
                   {"n": 1001}, {"min_score": 2.0}, {"min_score": float("nan")},
                   {"images": (str(library.config),)}, {"not_texts": ("x",) * 16},
                   {"text": None}, {"model": ""}):
        assert client.search_params(db, **{**base, **change}) is None, change
    assert client.duplicates_params(0.9, None, None) == [("threshold", "0.9")]
    assert client.duplicates_params(1.5, None, None) is None
