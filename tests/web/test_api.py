"""The JSON API, thumbnails, originals and /metrics of a real ``watcherd serve`` over real HTTP,
on a real database; compared with the CLI on the same queries."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest

from tests.helpers import cli, put_vectors
from tests.web.weblib import Lib, Serve, get


def api(server: Serve, path: str, **params: object) -> tuple[int, object]:
    r = get(server.base + path + ("?" + urlencode(params, doseq=True) if params else ""))
    return r.status, r.json()


@pytest.mark.parametrize("params", [
    {"q": "a red photo"},
    {"q": "beach", "not": "blue sky", "n": 50},
    {"image": "IMG7", "n": 30},
    {"q": "city", "under": "PHOTOS/beach", "min_score": -0.5, "n": 1000},
])
def test_search_agrees_with_the_cli(library: Lib, server: Serve, params: dict[str, object]
                                    ) -> None:
    params = {k: (str(library.photos) + v[6:] if isinstance(v, str) and v.startswith("PHOTOS")
                  else library.ids["img007.jpg"] if v == "IMG7" else v)
              for k, v in params.items()}
    status, body = api(server, "/api/search", **params)
    assert status == 200, body
    args = [*([str(params["q"])] if "q" in params else []), "--json"]
    for name, flag in (("not", "--not"), ("n", "-n"), ("min_score", "--min-score"),
                       ("under", "--under")):
        if name in params:
            args += [flag, str(params[name])]
    if "image" in params:
        args += ["--image", str(library.photos / "beach" / "img007.jpg")]
    run = cli(library.config, "search", *args)
    assert run.returncode == 0, run.stderr
    want = json.loads(run.stdout)
    got = body["results"]  # type: ignore[index]
    assert [h["path"] for h in got] == [h["path"] for h in want]
    assert len(got) == min(int(params.get("n", 20)), len(got)) and got
    for g, w in zip(got, want, strict=True):
        assert g["image_id"] == w["image_id"] and abs(g["score"] - w["score"]) <= 1e-3


BAD = [
    ("/api/search?q=x&n=0", "n must be within 1..1000"),
    ("/api/search?q=x&n=1001", "n must be within 1..1000"),
    ("/api/search?q=x&n=ten", "n must be an integer"),
    ("/api/search?q=" + "a" * 1001, "longer than 1000"),
    ("/api/search?q=x&min_score=2", "within -1..1"),
    ("/api/search?q=x&min_score=nan", "within -1..1"),
    ("/api/search?image=abc", "image must be an integer"),
    ("/api/search?image=-3", "image must be within"),
    ("/api/search?image=99999", "not a live photo"),
    ("/api/search?q=x&under=photos", "absolute folder"),
    ("/api/search?q=x&model=nonesuch", "nonesuch"),
    ("/api/search?q=x&bogus=1", "unknown parameter 'bogus'"),
    ("/api/search", "needs q (text) or image"),
    ("/api/search?not=x", "needs q (text) or image"),
    ("/api/similar/1?n=5000", "n must be within"),
    ("/api/images/abc", "image id must be an integer"),
    ("/api/images/99999999999999999999999", "image id must be within"),
    ("/thumb/1/huge", "size must be an integer"),
    ("/?page=0", "page must be within"),
    ("/?q=x&page=99", "page must be within"),
    ("/?q=x&like=3", "either q (a text) or like"),
    ("/?like=abc", "like must be an integer"),
]


@pytest.mark.parametrize(("path", "reason"), BAD)
def test_bad_parameters_get_400_with_a_reason(server: Serve, path: str, reason: str) -> None:
    r = get(server.base + path)
    assert r.status == 400, (r.status, r.body[:300])
    assert reason in r.json()["error"] and b"Traceback" not in r.body


def test_missing_things_are_404(library: Lib, server: Serve) -> None:
    for path in ("/api/images/99999", "/thumb/1/100", "/thumb/99999/64", "/original/99999",
                 "/api/nothing", "/photo/99999"):
        assert get(server.base + path).status == 404, path


@pytest.mark.parametrize("path", [
    "/static/../watcherd.db", "/static/%2e%2e/%2e%2e/config.py", "/static/..%2f..%2fcli.py",
    "/thumb/..%2f..%2fetc/passwd", "/original/..%2f..%2fetc%2fpasswd", "/original/1/../../etc",
    "/static//etc/passwd",
])
def test_no_path_traversal(server: Serve, path: str) -> None:
    r = get(server.base + path)
    assert r.status in (400, 404), (path, r.status)
    assert b"root:" not in r.body and b"SQLite" not in r.body and b"import" not in r.body


def test_originals_only_inside_the_watched_folders(library: Lib, server: Serve) -> None:
    link = get(f"{server.base}/original/{library.ids['link.jpg']}")  # a link leaving the folder
    assert link.status == 403 and "not inside a watched folder" in link.json()["error"]
    jpeg = get(f"{server.base}/original/{library.ids['img003.jpg']}")
    assert jpeg.status == 200 and jpeg.headers["content-type"] == "image/jpeg"
    assert jpeg.body == (library.photos / "beach" / "img003.jpg").read_bytes()
    assert jpeg.headers["content-disposition"].startswith("inline")
    tiff = get(f"{server.base}/original/{library.ids['scan.tif']}")  # no browser shows TIFF
    assert tiff.status == 200 and tiff.headers["content-disposition"].startswith("attachment")
    assert tiff.headers["content-type"] == "application/octet-stream"


def test_thumbnails_from_sqlite_with_etag(library: Lib, server: Serve) -> None:
    image_id = library.ids["img010.jpg"]
    r = get(f"{server.base}/thumb/{image_id}/64")
    assert r.status == 200 and r.headers["content-type"] == "image/webp"
    stored = sqlite3.connect(library.db_path).execute(
        "SELECT data FROM thumbnails WHERE image_id = ? AND size = 64", (image_id,)).fetchone()
    assert r.body == stored[0]
    assert "max-age" in r.headers["cache-control"] and r.headers["etag"]
    again = get(f"{server.base}/thumb/{image_id}/64", {"If-None-Match": r.headers["etag"]})
    assert again.status == 304 and again.body == b""
    other = get(f"{server.base}/thumb/{image_id}/256", {"If-None-Match": r.headers["etag"]})
    assert other.status == 200


def test_every_answer_carries_the_security_headers(library: Lib, server: Serve) -> None:
    for path in ("/", "/api/status", "/thumb/1/64", "/api/search?n=0", "/login"):
        h = get(server.base + path).headers
        assert "default-src 'none'" in h["content-security-policy"], path
        assert "script-src 'self'" in h["content-security-policy"]
        assert h["x-content-type-options"] == "nosniff"


def test_image_row_and_similar(library: Lib, server: Serve) -> None:
    image_id = library.ids["img004.jpg"]
    status, row = api(server, f"/api/images/{image_id}")
    assert status == 200
    assert row["path"] == str(library.photos / "city" / "img004.jpg")  # type: ignore[index]
    assert row["width"] == 120 and row["format"] == "jpeg"  # type: ignore[index]
    assert [t["size"] for t in row["thumbnails"]] == [64, 256]  # type: ignore[index]
    meta = row["metadata"]  # type: ignore[index]
    assert meta["camera_model"] and isinstance(meta["keywords"], list)
    status, sim = api(server, f"/api/similar/{image_id}", n=10)
    hits = sim["results"]  # type: ignore[index]
    assert status == 200 and len(hits) == 10 and image_id not in [h["image_id"] for h in hits]
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    _, by_image = api(server, "/api/search", image=image_id, n=11)
    assert [h["image_id"] for h in by_image["results"]][1:] == [  # type: ignore[index]
        h["image_id"] for h in hits]


def test_status_api_and_cli_share_one_model(library: Lib, server: Serve) -> None:
    status, api_report = api(server, "/api/status")
    run = cli(library.config, "status", "--json")
    assert status == 200 and run.returncode == 0, run.stderr
    cli_report = json.loads(run.stdout)
    for key in ("counts", "failures", "database", "queues"):
        assert api_report[key] == cli_report[key], key  # type: ignore[index]
    assert {**api_report["models"], "server": None} == cli_report["models"]  # type: ignore[index]
    # 131 photos got thumbnails and vectors just now (the fixture): 13.1 a minute over the
    # 10-minute window; pending: the link's row (both kinds) and the 3 broken files' vectors
    assert api_report["progress"] == {  # type: ignore[index]
        "thumbnail": {"per_minute": 13.1, "window_s": 600.0, "pending": 1, "eta_s": 5},
        "embedding": {"per_minute": 13.1, "window_s": 600.0, "pending": 4, "eta_s": 18}}
    assert api_report["progress"] == cli_report["progress"]  # type: ignore[index]
    assert api_report["failures"] == [{  # type: ignore[index]
        "kind": "thumbnail", "reason": "cannot identify image file", "count": 3,
        "example_id": library.ids["broken0.jpg"],
        "example_path": str(library.photos / "broken0.jpg")}]
    assert api_report["models"]["server"] is not None  # type: ignore[index]
    assert cli_report["models"]["server"] is None
    text = cli(library.config, "status").stdout
    assert "cannot identify image file (3 photos, e.g.)" in text
    assert text.count("cannot identify image file") == 1
    assert "1 pending, 3 failed; 13.1/min over the last 10 min, ETA 5 s" in text


def test_the_server_opens_the_database_read_only(library: Lib, server: Serve) -> None:
    api(server, "/api/search", q="warm up every connection")
    api(server, "/api/status")
    fds = Path(f"/proc/{server.proc.pid}/fd")
    # the database file itself (SQLite opens the -wal and -shm files of a WAL database for
    # writing even on a read-only connection: readers share the WAL index there)
    db_fds = [fd for fd in os.listdir(fds) if os.readlink(fds / fd) == str(library.db_path)]
    assert db_fds
    for fd in db_fds:
        flags = int(Path(f"/proc/{server.proc.pid}/fdinfo/{fd}").read_text().split(
            "flags:")[1].split()[0], 8)
        assert flags & os.O_ACCMODE == os.O_RDONLY, (os.readlink(fds / fd), oct(flags))


def test_metrics_from_the_database(library: Lib, server: Serve) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    def scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        r = get(server.base + "/metrics")
        assert r.status == 200 and r.headers["content-type"].startswith("text/plain")
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for f in text_string_to_metric_families(r.body.decode()) for s in f.samples}

    before = scrape()
    assert before[("watcherd_images", (("kind", "thumbnail"), ("status", "failed")))] == 3
    assert before[("watcherd_processed", (("kind", "embedding"),))] == 131
    assert before[("watcherd_processing_seconds_count", (("kind", "thumbnail"),))] == 131
    api(server, "/api/search", q="metrics")
    after = scrape()
    key = ("watcherd_search_seconds_count", (("kind", "text"),))
    assert after[key] == before.get(key, 0) + 1


TOKEN = "s3cret-token"


def test_the_token_rule(token_library: Lib, token_server: Serve) -> None:
    base = token_server.base
    assert get(base + "/api/search?q=x").status == 401
    assert get(base + "/api/search?q=x", {"Authorization": "Bearer wrong"}).status == 401
    assert get(base + "/metrics").status == 401 and get(base + "/thumb/1/64").status == 401
    assert get(base + "/api/search?q=x", {"Authorization": f"Bearer {TOKEN}"}).status == 200
    page = get(base + "/?q=sea")
    assert page.status == 303 and page.headers["location"] == "/login?next=" + quote(
        "/?q=sea", safe="")
    assert get(base + "/static/style.css").status == 200  # the login page needs its style
    wrong = get(base + "/login", data=b"token=nope&next=/")
    assert wrong.status == 403 and "set-cookie" not in wrong.headers
    ok = get(base + "/login", data=urlencode({"token": TOKEN, "next": "//evil.example/"}).encode())
    assert ok.status == 303 and ok.headers["location"] == "/"  # no open redirect
    cookie = ok.headers["set-cookie"].split(";")[0]
    assert TOKEN not in cookie and "httponly" in ok.headers["set-cookie"].lower()
    for path in ("/?q=sea", "/thumb/1/64", "/api/status", "/status"):
        assert get(base + path, {"Cookie": cookie}).status == 200, path
    assert get(base + "/api/status", {"Cookie": cookie[:-1] + "0"}).status == 401


def test_serve_off_loopback_needs_a_token(tmp_path: Path, tiny_model: str) -> None:
    from tests.helpers import write_config

    config = write_config(tmp_path, model=tiny_model, web={"listen": "0.0.0.0:8470"})
    run = cli(config, "serve", timeout=60)
    assert run.returncode == 2 and "web.token" in run.stderr and str(config) in run.stderr


def test_a_new_photo_is_found_without_a_restart(token_library: Lib, token_server: Serve,
                                                tiny_model: str) -> None:
    """The warm index follows the database: a photo stored after the server started is
    searchable and is the newest on the page at once."""
    import hashlib

    from PIL import Image

    from watcherd.media.embeddings import Embedder, to_blob
    from watcherd.store import discovery, outcomes, schema

    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert get(token_server.base + "/api/search?q=warm", auth).status == 200  # index built
    path = token_library.photos / "late.jpg"
    img = Image.new("RGB", (50, 40), (250, 10, 200))
    img.save(path, "JPEG")
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    conn = schema.connect(token_library.db_path)
    rec = discovery.record_file(conn, str(path), path.stat().st_size, 2_000_000_000.0, sha,
                         discovery.Reuse(tiny_model, "", (64, 256), "webp"))
    emb = Embedder(tiny_model, None, "cpu")
    vec = emb.encode([emb.preprocess(img)])[0]
    put_vectors(conn, tiny_model, "", emb.dim,
                             [outcomes.EmbeddingRow(rec.id, sha, to_blob(vec))])
    conn.close()
    found = get(f"{token_server.base}/api/search?image={rec.id}&n=1", auth).json()["results"]
    assert found[0]["image_id"] == rec.id and found[0]["score"] > 0.999
    page = get(token_server.base + "/", auth).body.decode()
    assert page.index(f'data-id="{rec.id}"') < page.index('data-id="1"')


def test_a_port_in_use_is_one_line(library: Lib, tmp_path: Path) -> None:
    import socket
    import tomllib

    taken = socket.create_server(("127.0.0.1", 0))
    text = library.config.read_text()
    old = tomllib.loads(text)["web"]["listen"]
    config = tmp_path / "busy.toml"
    config.write_text(text.replace(old, f"127.0.0.1:{taken.getsockname()[1]}"))
    with taken:
        run = cli(config, "serve", timeout=60)
    assert run.returncode == 1 and "cannot listen on 127.0.0.1:" in run.stderr, run.stderr
    assert "Traceback" not in run.stderr + run.stdout
