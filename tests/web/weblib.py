"""A real photo library for the web tests: image files on disk, rows written through watcherd's
own store writers, real thumbnails (Pillow) and real vectors (the tiny random-weight open_clip
model), and a real ``watcherd serve`` process over HTTP."""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from tests.helpers import (
    WATCHERD,
    free_port,
    kill_group,
    put_metadata,
    put_vectors,
    wait_for,
    write_config,
)
from watcherd.store import discovery, outcomes, schema

SIZES = (64, 256)
PHOTOS = 130  # more than two pages of 60


@dataclass
class Lib:
    config: Path
    db_path: Path
    photos: Path
    ids: dict[str, int] = field(default_factory=dict)  # file name -> image id


PLACES = [("France", "FR", "Île-de-France", "Paris", 48.8566, 2.3522),
          ("Germany", "DE", "Bayern", "München", 48.1372, 11.5756),
          ("Japan", "JP", "Tokyo", "Tokyo", 35.6895, 139.6917)]


def meta_of(n: int) -> dict[str, Any]:
    """The metadata row of the n-th file written (every tenth has no date and no place)."""
    camera = {"camera_make": "Canon", "camera_model": "Canon EOS R5"} if n % 2 else {
        "camera_make": "NIKON CORPORATION", "camera_model": "NIKON Z 6"}
    if n % 10 == 9:
        return camera
    country, code, region, place, lat, lon = PLACES[n % 3]
    return {**camera, "taken_at": f"{2017 + n % 4}-{n % 12 + 1:02d}-{n % 28 + 1:02d}T"
                                  f"{n % 24:02d}:{n % 60:02d}:00",
            "taken_offset": "+01:00", "taken_source": "DateTimeOriginal", "country": country,
            "country_code": code, "region": region, "place": place,
            "latitude": lat + (n % 5) * 0.001, "longitude": lon, "altitude": 35.0,
            "lens": "RF 35mm F1.8", "focal_length": 35.0, "f_number": 2.8,
            "exposure_time": 1 / 250, "iso": 200, "title": f"Photo {n}",
            "description": "A test photo", "keywords": ["beach" if n % 2 else "city", "Été"]}


def _thumb(img: Image.Image, size: int) -> outcomes.ThumbRow:
    t = img.copy()
    t.thumbnail((size, size))
    out = io.BytesIO()
    t.save(out, "WEBP", quality=80)
    return outcomes.ThumbRow(size, t.width, t.height, "webp", out.getvalue())


def build(tmp: Path, model: str, *, listen: str | None = None, token: str = "",
          photos: int = PHOTOS) -> Lib:
    """``photos`` JPEG files in two folders plus a TIFF, all with thumbnails and vectors; three
    rows failed for the same reason; a row whose path leaves the watched folder by a link."""
    from watcherd.media.embeddings import Embedder, to_blob

    web: dict[str, Any] = {"listen": listen or f"127.0.0.1:{free_port()}"}
    if token:
        web["token"] = token
    config = write_config(tmp, model=model, web=web)
    lib = Lib(config, tmp / "watcherd.db", tmp / "photos")
    conn = schema.connect(lib.db_path)
    reuse = discovery.Reuse(model, "", SIZES, "webp")
    embedder = Embedder(model, None, "cpu")
    files: list[tuple[Path, Image.Image, str]] = []
    for i in range(photos):
        folder = lib.photos / ("beach" if i % 2 else "city")
        folder.mkdir(parents=True, exist_ok=True)
        img = Image.new("RGB", (120, 90), ((i * 37) % 256, (i * 91) % 256, (i * 53) % 256))
        for x in range(0, 120, 7):  # some structure, so vectors differ more than by colour
            img.paste(((i * 13 + x) % 256, x * 2 % 256, 255 - i % 256), (x, 0, x + 3, 90 - i % 60))
        path = folder / f"img{i:03d}.jpg"
        img.save(path, "JPEG", quality=85)
        files.append((path, img, "JPEG"))
    tiff = lib.photos / "scan.tif"
    Image.new("RGB", (100, 80), (10, 200, 30)).save(tiff, "TIFF")
    files.append((tiff, Image.open(tiff).convert("RGB"), "TIFF"))
    rows = []
    for n, (path, img, fmt) in enumerate(files):
        data = path.read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        mtime = 1_700_000_000 + n * 3600  # newest: the last written
        os.utime(path, (mtime, mtime))
        rec = discovery.record_file(conn, str(path), len(data), mtime, sha, reuse)
        lib.ids[path.name] = rec.id
        outcomes.save_thumbnails(conn, rec.id, sha, img.width, img.height, fmt.lower(),
                                 [_thumb(img, s) for s in SIZES])
        put_metadata(conn, rec.id, **meta_of(n))
        vec = embedder.encode([embedder.preprocess(img)])[0]
        rows.append(outcomes.EmbeddingRow(rec.id, sha, to_blob(vec)))
    put_vectors(conn, model, "", embedder.dim, rows)
    for k in range(3):
        p = lib.photos / f"broken{k}.jpg"
        p.write_bytes(b"not a jpeg")
        rec = discovery.record_file(conn, str(p), 10, 1.0, f"{k:064d}", reuse)
        outcomes.fail(conn, "thumbnail", rec.id, f"{k:064d}", "cannot identify image file")
        lib.ids[p.name] = rec.id
    # a link inside the folder to a file outside it: its row must never be served
    outside = tmp / "secret.jpg"
    Image.new("RGB", (8, 8)).save(outside, "JPEG")
    link = lib.photos / "link.jpg"
    link.symlink_to(outside)
    rec = discovery.record_file(conn, str(link), 10, 1.0, "f" * 64, reuse)
    lib.ids["link.jpg"] = rec.id
    conn.close()
    return lib


class Serve:
    """A real ``watcherd serve`` process."""

    def __init__(self, config: Path, env: dict[str, str] | None = None) -> None:
        import tomllib

        listen = tomllib.loads(config.read_text())["web"]["listen"]
        self.base = f"http://{listen}"
        self.log_path = config.parent / f"serve-{os.getpid()}-{time.monotonic_ns()}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([*WATCHERD, "-c", str(config), "serve"], stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True,
                                     env={**os.environ, **(env or {})})

    def wait_ready(self, timeout: float = 120) -> Serve:
        def up() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited {self.proc.returncode}: {self.log()}")
            try:
                get(self.base + "/static/style.css", timeout=2)
                return True
            except OSError:
                return False

        wait_for(up, timeout, "watcherd serve to answer")
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=20)
        finally:
            kill_group(self.proc.pid)
            self._log.close()


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def get(url: str, headers: dict[str, str] | None = None, *, data: bytes | None = None,
        timeout: float = 60) -> Reply:
    """One real HTTP request; any status comes back as a Reply (redirects are not followed)."""
    req = urllib.request.Request(url, headers=headers or {}, data=data)
    try:
        with _OPENER.open(req, timeout=timeout) as r:
            return Reply(r.status, {k.lower(): v for k, v in r.headers.items()}, r.read())
    except urllib.error.HTTPError as exc:
        return Reply(exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read())
