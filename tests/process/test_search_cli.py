"""`watcherd search` and `watcherd duplicates` as real subprocesses: output formats against the
numpy reference, no torch for an indexed photo, --under, --model, deleted rows, bad input."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.helpers import cli, jpeg, scene_image, write_config
from tests.searchlib import (
    MODEL_B,
    assert_same_ranking,
    embed_stored,
    open_clip_text,
    reference,
    store_vectors,
    unit_rows,
)
from watcherd import config
from watcherd.store import discovery, schema
from watcherd.store.vectors import ModelKey
from watcherd.worker import tasks


@pytest.fixture(scope="module")
def lib(tmp_path_factory: pytest.TempPathFactory, tiny_model: str) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("search-cli")
    cfg_path = write_config(tmp, model=tiny_model, log={"level": "info", "format": "console"})
    cfg = config.load(cfg_path)
    conn = schema.connect(cfg.database.path)
    items, ids = [], []
    for i in range(16):
        folder = tmp / "photos" / ("beach" if i % 2 else "city")
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"p{i:02d}.jpg"
        path.write_bytes(jpeg(scene_image(320, 240, 200 + i), quality=90))
        data = path.read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        rec = discovery.record_file(conn, str(path), len(data), 1.0, sha,
                             discovery.Reuse(tiny_model, "", (64,), "webp"))
        items.append((rec.id, sha))
        ids.append(rec.id)
    holder = tasks.EmbedderHolder()
    holder.load(cfg)
    assert embed_stored(cfg, holder, items) == 16
    # A second model's vectors for the same photos, side by side.
    store_vectors(conn, MODEL_B, ids, unit_rows(16, 48, seed=4))
    return {"config": cfg_path, "db": cfg.database.path, "key": ModelKey(*holder.key or ("", "")),
            "tmp": tmp, "conn": conn, "ids": ids}


def parse_json(result: subprocess.CompletedProcess[str]) -> list[tuple[int, str, float]]:
    assert result.returncode == 0, result.stderr
    return [(h["image_id"], h["path"], h["score"]) for h in json.loads(result.stdout)]


def test_text_query_in_every_output_format(lib: dict[str, Any], tiny_model: str) -> None:
    text = "a birthday cake with candles"
    want = open_clip_text(tiny_model, [text])[0]
    ref = reference(lib["db"], lib["key"], want, 12)
    got = cli(lib["config"], "search", "a", "birthday", "cake", "with", "candles", "-n", "7",
              "--json")
    assert_same_ranking(parse_json(got), ref, 7, tie=1e-5)
    assert f"model {lib['key'].describe()}: 7 of 16 photos" in got.stderr
    assert "Loading" not in got.stderr  # open_clip's INFO chatter stays out
    plain = cli(lib["config"], "search", text, "-n", "7")
    lines = [line.split("\t") for line in plain.stdout.splitlines()]
    assert [p for _, p in lines] == [p for _, p, _ in parse_json(got)]
    assert all(abs(float(s) - r[2]) < 1e-3 for (s, _), r in zip(lines, ref, strict=False))
    paths = cli(lib["config"], "search", text, "-n", "7", "--paths")
    assert paths.stdout.splitlines() == [p for _, p, _ in parse_json(got)]


def test_an_indexed_photo_needs_no_torch(lib: dict[str, Any]) -> None:
    photo = lib["tmp"] / "photos" / "city" / "p04.jpg"
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "watcherd", "-c", str(lib["config"]),
         "search", "--image", str(photo), "--not-image", str(photo.parent / "p06.jpg"),
         "-n", "5", "--json"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines()
                if line.startswith("import time:")}
    assert "watcherd.search.full_scan" in imported
    assert not {m for m in imported if m.split(".")[0] in ("torch", "open_clip", "torchvision")}
    got = [(h["image_id"], h["path"], h["score"]) for h in json.loads(result.stdout)]
    from watcherd.store.vectors import connect_readonly, live_image_at, vector_of

    ro = connect_readonly(lib["db"])
    a = vector_of(ro, lib["key"], live_image_at(ro, [str(photo)]) or 0)
    b = vector_of(ro, lib["key"], live_image_at(ro, [str(photo.parent / "p06.jpg")]) or 0)
    assert a is not None and b is not None
    q = a.astype(np.float64) - b
    assert_same_ranking(got, reference(lib["db"], lib["key"], q / np.linalg.norm(q), 5), 5)


def test_under_model_and_deleted_rows(lib: dict[str, Any]) -> None:
    photo = str(lib["tmp"] / "photos" / "city" / "p02.jpg")
    beach = lib["tmp"] / "photos" / "beach"
    from watcherd.store.vectors import connect_readonly, live_image_at, vector_of

    ro = connect_readonly(lib["db"])
    image_id = live_image_at(ro, [photo])
    assert image_id is not None
    for key, extra in ((lib["key"], []), (MODEL_B, ["--model", MODEL_B.model]),
                       (MODEL_B, ["--model", MODEL_B.model, "--pretrained", MODEL_B.pretrained])):
        q = vector_of(ro, key, image_id)
        assert q is not None
        got = parse_json(cli(lib["config"], "search", "--image", photo, "--under", str(beach),
                             "-n", "4", "--json", *extra))
        assert_same_ranking(got, reference(lib["db"], key, q, 4, under=str(beach)), 4)
        assert all(p.startswith(str(beach) + "/") for _, p, _ in got)
        every = cli(lib["config"], "search", "--image", photo, "-n", "50", "--json", *extra)
        assert len(parse_json(every)) == 16 and key.describe() in every.stderr
    # Deleted photos never come back, even when they would be the best match.
    best = parse_json(cli(lib["config"], "search", "--image", photo, "-n", "3", "--json"))
    second = best[1][1]
    discovery.mark_deleted(lib["conn"], [second])
    try:
        after = parse_json(cli(lib["config"], "search", "--image", photo, "-n", "50",
                               "--json"))
        assert second not in [p for _, p, _ in after] and len(after) == 15
    finally:
        data = Path(second).read_bytes()
        discovery.record_file(lib["conn"], second, len(data), 1.0, hashlib.sha256(data).hexdigest(),
                       discovery.Reuse(lib["key"].model, "", (64,), "webp"))


@pytest.mark.parametrize(("args", "reason"), [
    ([], "at least one positive part"),
    (["--not", "a dog"], "only say what to avoid"),
    ([""], "empty text"),
    (["--image", "/nonexistent/photo.jpg"], "cannot read image /nonexistent/photo.jpg"),
    (["--image", "{tmp}/watcherd.toml"], "not an image"),
    (["cat", "--model", "RN50"], "no vectors of model 'RN50'; vectors are stored for: "),
    (["cat", "--model", MODEL_B.model, "--pretrained", "nope"], "pretrained 'nope'"),
    (["cat", "--json", "--paths"], "exclude each other"),
    (["cat", "-n", "0"], "at least 1"),
    (["cat", "--min-score", "3"], "between -1 and 1"),
    (["cat", "--under", "/nonexistent"], "no such folder"),
])
def test_bad_input_exits_2_with_a_reason(lib: dict[str, Any], args: list[str],
                                         reason: str) -> None:
    result = cli(lib["config"], "search", *[a.format(tmp=lib["tmp"]) for a in args])
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert reason in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""


def test_unknown_model_names_the_stored_ones(lib: dict[str, Any]) -> None:
    result = cli(lib["config"], "search", "cat", "--model", "RN50")
    assert lib["key"].describe() in result.stderr and MODEL_B.describe() in result.stderr


def test_duplicates_command(lib: dict[str, Any]) -> None:
    original = lib["tmp"] / "photos" / "city" / "p00.jpg"
    copy = lib["tmp"] / "photos" / "beach" / "copy of p00.jpg"
    copy.write_bytes(original.read_bytes())
    sha = hashlib.sha256(copy.read_bytes()).hexdigest()
    discovery.record_file(lib["conn"], str(copy), 1, 1.0, sha,
                   discovery.Reuse(lib["key"].model, "", (64,), "webp"))
    try:
        result = cli(lib["config"], "duplicates", "--json", "--threshold", "0.9999")
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        assert report["threshold"] == 0.9999 and report["model"] == lib["key"].model
        [group] = report["identical"]
        assert {p["path"] for p in group["photos"]} == {str(original), str(copy)}
        for near in report["near"]:
            assert all(p["score"] >= 0.9999 for p in near["pairs"])
        text = cli(lib["config"], "duplicates", "--threshold", "0.9999")
        assert text.returncode == 0 and f"identical (2 files, sha256 {sha[:12]})" in text.stdout
        bad = cli(lib["config"], "duplicates", "--threshold", "2")
        assert bad.returncode == 2 and "between -1 and 1" in bad.stderr
    finally:
        discovery.mark_deleted(lib["conn"], [str(copy)])
