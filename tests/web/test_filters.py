"""Metadata filters over HTTP and on the command line, on the web library (every photo with a
metadata row, tests/web/weblib.meta_of): /api/search (warm index) against `watcherd search
--local` (one-shot scan in-process) on the same filters, the listing's order, 400 with a reason
and exit 2 naming the option, and the CLI's filters passed through to a running server."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.helpers import WATCHERD, cli
from tests.web.weblib import Lib, Serve, get, meta_of

FILTERED = [
    {"q": "a red photo", "taken": "2018", "place": "france"},
    {"q": "beach", "camera": "nikon", "n": 30},
    {"image": "IMG7", "keyword": "ete", "near": "48.1372,11.5756,2", "n": 50},
    {"q": "city", "taken": "2019-03..2020-12", "place": "JP", "under": "PHOTOS/beach"},
    {"taken": "2019-03..2019-08"},  # no query part: the listing
    {"place": "munchen", "camera": "canon", "n": 100},
]
FLAGS = {"n": "-n", "under": "--under", "taken": "--taken", "place": "--place",
         "near": "--near", "camera": "--camera", "keyword": "--keyword"}


def _numbers(lib: Lib) -> dict[int, int]:
    """image id -> n of weblib.meta_of"""
    out = {lib.ids[f"img{n:03d}.jpg"]: n for n in range(130)}
    out[lib.ids["scan.tif"]] = 130
    return out


def _args(lib: Lib, params: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    params = {k: (str(lib.photos) + v[6:] if isinstance(v, str) and v.startswith("PHOTOS")
                  else lib.ids["img007.jpg"] if v == "IMG7" else v) for k, v in params.items()}
    args = [*([str(params["q"])] if "q" in params else []), "--json"]
    args += [x for name, flag in FLAGS.items() if name in params
             for x in (flag, str(params[name]))]
    if "image" in params:
        args += ["--image", str(lib.photos / "beach" / "img007.jpg")]
    return params, args


@pytest.mark.parametrize("given", FILTERED, ids=lambda g: ",".join(sorted(g)))
def test_filtered_search_agrees_with_the_cli(library: Lib, server: Serve, given: dict[str, Any]
                                             ) -> None:
    params, args = _args(library, given)
    r = get(server.base + "/api/search?" + urlencode(params))
    assert r.status == 200, r.body
    got = r.json()["results"]
    run = cli(library.config, "search", *args, "--local")
    assert run.returncode == 0, run.stderr
    want = json.loads(run.stdout)
    assert [h["image_id"] for h in got] == [h["image_id"] for h in want] and got
    for g, w in zip(got, want, strict=True):
        assert g["path"] == w["path"]
        assert (g["score"] is None and w["score"] is None and g["taken_at"] == w["taken_at"]) \
            or abs(g["score"] - w["score"]) <= 1e-3
    numbers = _numbers(library)
    for h in got:  # every photo returned matches
        m = meta_of(numbers[h["image_id"]])
        if "taken" in given:
            lo, _, hi = given["taken"].partition("..")
            assert lo <= m["taken_at"][:len(lo)] and m["taken_at"][:len(hi or lo)] <= (hi or lo)
        if "camera" in given:
            assert given["camera"] in f"{m['camera_make']} {m['camera_model']}".lower()
    if "q" not in given and "image" not in given:  # the listing: newest taken first
        taken = [h["taken_at"] for h in got]
        assert taken == sorted(taken, reverse=True) and all(h["score"] is None for h in got)
        if set(given) == {"taken"}:
            lo, _, hi = given["taken"].partition("..")
            assert r.json()["considered"] == sum(
                1 for n in range(131) if lo <= meta_of(n).get("taken_at", "0")[:7] <= hi)


BAD = [
    ("taken=2019-13", "taken=2019-13: no month 13"),
    ("q=x&taken=2019-08..2019-06", "taken=2019-08..2019-06: 2019-08 is after 2019-06"),
    ("near=91,0", "near=91,0: latitude 91 is not within -90..90"),
    ("q=x&near=48.8", "near=48.8: expected LAT,LON or LAT,LON,KM"),
    ("taken=2019&taken=2020", "taken is given more than once"),
    ("taken=2019&min_score=0.2", "a minimum score needs a query"),
    ("not=x&taken=2019", "a search needs q (text) or image"),
    ("shot=1&taken=2019", "unknown parameter 'shot'"),
]


@pytest.mark.parametrize(("query", "reason"), BAD)
def test_bad_filters_get_400_with_a_reason(server: Serve, query: str, reason: str) -> None:
    r = get(server.base + "/api/search?" + query)
    assert r.status == 400 and reason in r.json()["error"], r.body
    if reason.startswith(("taken=", "near=")):  # the page reads the filters the same way
        page = get(server.base + "/?" + query)
        assert page.status == 400 and reason in page.json()["error"]


@pytest.mark.parametrize(("args", "reason"), [
    (["--taken", "2019-13"], "--taken 2019-13: no month 13"),
    (["x", "--taken", "2019/06"], "--taken 2019/06: expected YYYY, YYYY-MM or YYYY-MM-DD"),
    (["--near", "48.8,2.3,0"], "--near 48.8,2.3,0: KM must be more than 0"),
    (["x", "--near", "north"], "--near north: expected LAT,LON or LAT,LON,KM"),
    (["--taken", "2019", "--min-score", "0.3"], "a minimum score needs a query"),
])
def test_bad_filters_exit_2_naming_the_option(library: Lib, args: list[str], reason: str
                                              ) -> None:
    for local in ([], ["--local"]):
        run = cli(library.config, "search", *args, *local)
        assert run.returncode == 2 and reason in run.stderr, run.stderr
        assert "Traceback" not in run.stderr


def _blocked(tmp: Path) -> dict[str, str]:
    """An environment that cannot import numpy: only the server can have answered."""
    (tmp / "numpy").mkdir()
    (tmp / "numpy" / "__init__.py").write_text("raise ImportError('numpy is blocked')\n")
    path = os.pathsep.join([str(tmp), *filter(None, [os.environ.get("PYTHONPATH")])])
    return {**os.environ, "PYTHONPATH": path}


def test_the_cli_passes_filters_to_the_server(library: Lib, server: Serve, tmp_path: Path
                                              ) -> None:
    env = _blocked(tmp_path)
    for given in FILTERED:  # the API agrees with --local (above): compare with the API
        params, args = _args(library, given)
        served = subprocess.run([*WATCHERD, "-c", str(library.config), "search", *args],
                                capture_output=True, text=True, timeout=180, env=env)
        assert served.returncode == 0, served.stderr
        api = get(server.base + "/api/search?" + urlencode(params)).json()["results"]
        assert [h["path"] for h in json.loads(served.stdout)] == [h["path"] for h in api]
    listing = subprocess.run([*WATCHERD, "-c", str(library.config), "search", "--place",
                              "Île-de-France", "-n", "7"],
                             capture_output=True, text=True, timeout=180, env=env)
    assert listing.returncode == 0, listing.stderr
    lines = [line.split("\t") for line in listing.stdout.splitlines()]
    assert len(lines) == 7 and [t for t, _ in lines] == sorted((t for t, _ in lines),
                                                               reverse=True)
    assert "matching photos, newest taken first" in listing.stderr


def test_timeline_and_photo_metadata(library: Lib, server: Serve) -> None:
    page = get(server.base + "/timeline").body.decode()
    months: dict[str, int] = {}
    for n in range(131):
        if "taken_at" in (m := meta_of(n)):
            months[m["taken_at"][:7]] = months.get(m["taken_at"][:7], 0) + 1
    for month, count in months.items():
        assert f'href="/?taken={month}" data-month="{month}">{month}</a> ' \
               f'<span class="count">{count}</span>' in page
    assert page.index('data-month="2020-') < page.index('data-month="2017-')  # newest first
    photo = get(server.base + f"/photo/{library.ids['img004.jpg']}").body.decode()
    assert "https://www.openstreetmap.org/?mlat=48.141200&amp;mlon=11.575600#map=15/" \
           "48.141200/11.575600" in photo
    assert "München, Bayern, Germany (DE)" in photo and "NIKON CORPORATION NIKON Z 6" in photo
    assert "35.0 mm f/2.8 1/250 s ISO 200" in photo and "2017-05-05T04:04:00 (+01:00)" in photo
