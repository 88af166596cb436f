"""watcherd search filters benchmark: prints figures and ratios on a synthetic library of
100,000 photos (images, 512-d unit vectors and metadata rows with random dates, places,
cameras and keywords) in a real watcherd database.

    .venv/bin/python benchmarks/filters.py             # 100,000 photos
    .venv/bin/python benchmarks/filters.py --n 20000   # smaller, quicker

(a) warm (a SearchIndex, as `watcherd serve` holds it): a query vector's top 20 unfiltered, and
    with each filter; the difference (target: at most +10 ms). The text tower's time is the same
    with and without a filter, so the figures are those of the search after it.
(b) warm, no query part: the matching photos newest taken first (target: --taken and --place
    within 50 ms)
(c) the one-shot scan (`watcherd search --local`): unfiltered and filtered, for comparison
Each filtered answer is checked against numpy brute force over the matching photos only.

The database is cached in --workdir.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from search import log, timed, unit  # noqa: E402  (benchmarks/search.py)

from watcherd.search import filters as f  # noqa: E402
from watcherd.store import schema  # noqa: E402
from watcherd.store.vectors import ModelKey  # noqa: E402

DIM = 512
KEY = ModelKey("local-dir:/bench/model", "")
COUNTRIES = [("France", "FR"), ("Germany", "DE"), ("Japan", "JP"), ("United States", "US"),
             ("Italy", "IT"), ("Spain", "ES"), ("Côte d'Ivoire", "CI"), ("Brazil", "BR"),
             ("Norway", "NO"), ("Australia", "AU"), ("Mexico", "MX"), ("Canada", "CA")]
CAMERAS = [("Canon", f"Canon EOS {m}") for m in ("R5", "R6", "5D Mark IV", "90D")] + [
    ("NIKON CORPORATION", f"NIKON {m}") for m in ("Z 6", "Z 7", "D850")] + [
    ("Apple", f"iPhone {m}") for m in ("12", "13 Pro", "14", "15 Pro")] + [
    ("SONY", "ILCE-7M3"), ("FUJIFILM", "X-T4"), ("samsung", "SM-G991B")]
WORDS = [f"word{i}" for i in range(190)] + ["beach", "été", "dog", "family", "café", "snow",
                                           "birthday", "mountain", "city", "night"]
FILTERS = {"taken 2019": {"taken": "2019"}, "taken 2019-06": {"taken": "2019-06"},
           "taken 2019-06..2019-08": {"taken": "2019-06..2019-08"},
           "place France": {"place": "France"}, "place fr": {"place": "fr"},
           "place city": {"place": "city 3 of FR"},
           "near 48.85,2.35,25": {"near": "48.85,2.35,25"},
           "camera nikon": {"camera": "nikon"}, "keyword beach": {"keyword": "beach"},
           "taken 2019 + place Japan": {"taken": "2019", "place": "Japan"}}


def _metadata(rng: np.random.Generator, i: int) -> tuple[object, ...]:
    taken = None
    if rng.random() > 0.05:
        at = dt.datetime(2000, 1, 1) + dt.timedelta(seconds=int(rng.integers(0, 25 * 365 * 86400)))
        taken = at.isoformat()
    place: tuple[object, ...] = (None,) * 6
    if rng.random() > 0.1:
        c = int(rng.integers(len(COUNTRIES)))
        country, code = COUNTRIES[c]
        r, p = int(rng.integers(8)), int(rng.integers(20))
        lat, lon = -40 + c * 8 + r * 0.5 + p * 0.02, -120 + c * 20 + p * 0.03
        if code == "FR" and p == 0:
            lat, lon = 48.85 + rng.normal(0, 0.05), 2.35 + rng.normal(0, 0.05)
        place = (country, code, f"region {r} of {code}", f"city {p} of {code}", lat, lon)
    make, model = CAMERAS[int(rng.integers(len(CAMERAS)))]
    words = [WORDS[int(k)] for k in rng.choice(len(WORDS), int(rng.integers(0, 5)), False)]
    return (i, taken, "+01:00" if taken else None, "DateTimeOriginal" if taken else None,
            place[4], place[5], place[0], place[1], place[2], place[3], make, model,
            json.dumps(words, ensure_ascii=False) if words else None)


def build(path: Path, n: int) -> None:
    """n photos (every 50th deleted), each with a vector and a metadata row; in bulk."""
    if path.exists():
        return
    log(f"  writing {n:,} photos to {path} ...")
    started = time.perf_counter()
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    conn = schema.connect(tmp)
    now = schema.now_iso()
    rng = np.random.default_rng(7)
    conn.execute("BEGIN")
    for s in range(0, n, 20_000):
        m = unit(min(20_000, n - s), DIM, seed=s)
        images, vecs, meta = [], [], []
        for j in range(len(m)):
            i = s + j + 1
            images.append((i, f"/srv/photos/{2000 + i % 25}/{i % 97:02d}/IMG_{i:07d}.jpg",
                           hashlib.sha256(str(i).encode()).hexdigest(), 3_000_000, 1.7e9, 4000,
                           3000, "JPEG", now, "done", "done", None if i % 50 else now, now))
            vecs.append((i, KEY.model, KEY.pretrained, DIM, m[j].astype("<f4").tobytes(), now))
            meta.append(_metadata(rng, i))
        conn.executemany("INSERT INTO images (id, path, sha256, size, mtime, width, height, "
                         "format, discovered_at, thumbnail_status, embedding_status, deleted_at, "
                         "updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", images)
        conn.executemany("INSERT INTO embeddings (image_id, model, pretrained, dim, vector, "
                         "created_at) VALUES (?,?,?,?,?,?)", vecs)
        conn.executemany("INSERT INTO metadata (image_id, taken_at, taken_offset, taken_source, "
                         "latitude, longitude, country, country_code, region, place, "
                         "camera_make, camera_model, keywords) VALUES "
                         "(?,?,?,?,?,?,?,?,?,?,?,?,?)", meta)
    # what store.metadata.write keeps for each row, in bulk
    conn.execute("INSERT OR IGNORE INTO metadata_keywords (keyword, image_id) SELECT j.value, "
                 "m.image_id FROM metadata m, json_each(m.keywords) j "
                 "WHERE m.keywords IS NOT NULL")
    conn.execute("DELETE FROM metadata_due")
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.close()
    tmp.rename(path)
    log(f"  written in {time.perf_counter() - started:.0f} s")


def check(path: Path, index: object, q: np.ndarray, spec: f.Filters) -> None:
    """The filtered top 20 is numpy brute force over the matching live photos only."""
    from watcherd.store import filters as filter_sql
    from watcherd.store.vectors import connect_readonly

    conn = connect_readonly(path)
    allowed = set(filter_sql.matching_ids(conn, spec).tolist())
    rows = conn.execute("SELECT e.image_id, e.vector FROM embeddings e JOIN images i ON i.id = "
                        "e.image_id WHERE i.deleted_at IS NULL").fetchall()
    conn.close()
    ids = np.array([r[0] for r in rows if r[0] in allowed], np.int64)
    m = np.stack([np.frombuffer(r[1], "<f4") for r in rows if r[0] in allowed])
    s = m.astype(np.float64) @ q.astype(np.float64)
    want = [int(ids[i]) for i in np.lexsort((ids, -s))[:20]]
    got = [r.image_id for r in index.top(q, 20, filters=spec)[0]]  # type: ignore[attr-defined]
    assert got == want, (spec, got[:5], want[:5])


def warm(path: Path, runs: int) -> None:
    from watcherd.search import service
    from watcherd.search.engine import Query
    from watcherd.search.index import SearchIndex
    from watcherd.store.filters import Vocabulary
    from watcherd.store.vectors import connect_readonly

    index = SearchIndex(path, KEY)
    st = index.stats
    log(f"\n(a) warm index: {st.vectors:,} x {st.dim}, kernel {st.kernel}, load {st.load_s:.1f} s")
    q = unit(1, DIM, seed=424242)[0]
    base = timed(lambda: index.top(q, 20), runs)
    log(f"  unfiltered top 20                  {base * 1000:7.1f} ms")
    worst = 0.0
    for name, given in FILTERS.items():
        spec = f.parse(**given)
        t = timed(lambda spec=spec: index.top(q, 20, filters=spec), runs)
        matching = index.top(q, 1, filters=spec)[2]
        check(path, index, q, spec)
        worst = max(worst, t - base)
        log(f"  {name:<34} {t * 1000:7.1f} ms  (+{(t - base) * 1000:5.1f} ms, "
            f"x{t / base:.2f}; {matching:,} photos match)")
    log(f"  worst difference +{worst * 1000:.1f} ms (target: at most +10 ms); every answer "
        "checked against brute force over the matching photos")
    log("\n(b) warm, no query part: the matching photos newest taken first (n = 20)")
    conn = connect_readonly(path)
    vocabulary = Vocabulary()  # as the server keeps one per connection
    for name, given in FILTERS.items():
        query = Query(filters=f.parse(**given))
        t = timed(lambda query=query: service.search(
            conn, query, configured=KEY, source=None, encoder=None,  # type: ignore[arg-type]
            max_pixels=1, vocabulary=vocabulary), runs)
        target = "  (target 50 ms)" if name in ("taken 2019", "place France") else ""
        log(f"  {name:<34} {t * 1000:7.1f} ms{target}")
    index.close()


def cold(path: Path, runs: int) -> None:
    from watcherd.search.full_scan import ScanSource
    from watcherd.store.vectors import connect_readonly

    log("\n(c) one-shot scan (watcherd search --local's search, database in the page cache)")
    source = ScanSource(connect_readonly(path, mmap=True), KEY)
    q = unit(1, DIM, seed=424242)[0]
    base = timed(lambda: source.top(q, 20), max(2, runs // 2))
    log(f"  unfiltered                         {base * 1000:7.0f} ms")
    for name in ("taken 2019", "place France", "camera nikon"):
        spec = f.parse(**FILTERS[name])
        t = timed(lambda spec=spec: source.top(q, 20, filters=spec), max(2, runs // 2))
        log(f"  {name:<34} {t * 1000:7.0f} ms  (x{t / base:.2f})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--workdir", type=Path,
                    default=Path(tempfile.gettempdir()) / "watcherd-bench-filters")
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    work: Path = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    log(f"watcherd filters benchmark: {args.n:,} photos, {os.cpu_count()} CPUs, "
        f"numpy {np.__version__}, SQLite {sqlite3.sqlite_version}")
    path = work / f"filters-v2-{args.n}.db"  # v2: with metadata_keywords
    build(path, args.n)
    warm(path, args.runs)
    cold(path, args.runs)


if __name__ == "__main__":
    main()
