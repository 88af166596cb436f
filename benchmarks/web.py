"""watcherd serve benchmark: a real `watcherd serve` process over real HTTP, warm, on a real
database of synthetic 512-d vectors (ViT-B-32 with random weights: the real text tower's
compute). Prints figures and, as the baseline measured in the same run, the same searches
in-process (a warm SearchIndex and text tower, no HTTP) and as a cold `watcherd search` CLI.

    .venv/bin/python benchmarks/web.py --quick   # 100,000 photos, fewer repetitions
    .venv/bin/python benchmarks/web.py           # 100,000 photos, more repetitions

(a) /api/search?q=TEXT p50 and by image (image=ID) p50, vs in-process and cold CLI
(b) 16 concurrent clients x 10 text queries each: errors, p50, p99, throughput
(c) the server's RSS (and the part torch takes)
(d) the page: a grid of 60 results in headless chromium, navigation start to load event end
    and to the last thumbnail decoded (needs chromium, chromium-driver and selenium)
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import search as search_bench  # noqa: E402

from watcherd.store import outcomes, schema  # noqa: E402
from watcherd.store.vectors import ModelKey  # noqa: E402

WORDS = ["red", "car", "beach", "dog", "snow", "cake", "sunset", "mountain", "city", "night",
         "cat", "boat", "forest", "river", "bridge", "train", "flower", "market", "child", "bike"]


def log(msg: str) -> None:
    print(msg, flush=True)


def texts(n: int, seed: int) -> list[str]:
    out = []
    for i in range(n):
        a, b, c = (WORDS[(seed + i * k) % len(WORDS)] for k in (1, 3, 7))
        out.append(f"a photo of a {a} {b} near the {c} {i}")
    return out


def live_ids(n: int, start: int) -> list[int]:
    """Ids of live photos (the benchmark database deletes every 50th)."""
    return [x for x in range(start, 100_000, 7) if x % 50][:n]


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q / 100 * (len(s) - 1)))]


def rss(pid: int) -> tuple[float, float]:
    fields = dict(ln.split(":", 1) for ln in Path(f"/proc/{pid}/status").read_text().splitlines())
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def add_thumbnails(path: Path, ids: list[int]) -> None:
    """64 px WebP thumbnails for ``ids`` (the benchmark database has none)."""
    from PIL import Image

    conn = schema.connect(path)
    for i in ids:
        sha = conn.execute("SELECT sha256 FROM images WHERE id = ?", (i,)).fetchone()[0]
        img = Image.new("RGB", (64, 48), (i * 37 % 256, i * 91 % 256, i * 53 % 256))
        out = io.BytesIO()
        img.save(out, "WEBP", quality=80)
        outcomes.save_thumbnails(conn, i, sha, 4000, 3000, "jpeg",
                                 [outcomes.ThumbRow(64, 64, 48, "webp", out.getvalue())])
    conn.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--workdir", type=Path,
                    default=Path(tempfile.gettempdir()) / "watcherd-bench-web")
    ap.add_argument("--port", type=int, default=18470)
    args = ap.parse_args()
    runs = 15 if args.quick else 50
    work: Path = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    n = 100_000
    import torch

    from watcherd.testing import write_model_dir

    log(f"watcherd serve benchmark: {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"{n:,} photos, ViT-B-32 random weights")
    vit = write_model_dir(work / "vit-b-32", arch="ViT-B-32")
    key = ModelKey(vit, "")
    path = work / f"lib-{n}.db"
    search_bench.build(path, n, key, search_bench.DIM)
    config = work / "web.toml"
    config.write_text(
        f'[watch]\npaths = ["/srv/photos"]\n[database]\npath = "{path}"\n'
        f'[broker]\nspool_dir = "{work / "spool"}"\n[thumbnails]\nsizes = [64]\n'
        f'[embeddings]\nmodel = "{vit}"\npretrained = ""\ndevice = "cpu"\n'
        f'[web]\nlisten = "127.0.0.1:{args.port}"\n[log]\nlevel = "warning"\n')
    base = f"http://127.0.0.1:{args.port}"

    # baseline: the same searches in-process, warm (what the server wraps in HTTP)
    from watcherd.media.embeddings import Embedder
    from watcherd.search.engine import Query, Searcher
    from watcherd.search.index import SearchIndex

    index = SearchIndex(path, key)
    embedder = Embedder(vit, device="cpu", precision="auto")  # as the server loads it
    embedder.drop_image_tower()
    searcher = Searcher(index, lambda e=embedder: e)
    searcher.search(Query(texts=("warm up",)))
    t_in_text, t_in_img = [], []
    for t in texts(runs, 1):
        s = time.perf_counter()
        searcher.search(Query(texts=(t,)))
        t_in_text.append(time.perf_counter() - s)
    for i in live_ids(runs, 1001):
        s = time.perf_counter()
        searcher.search(Query(images=(i,)))
        t_in_img.append(time.perf_counter() - s)
    del index, searcher, embedder

    started = time.perf_counter()
    log_file = open(work / "serve.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "watcherd", "-c", str(config), "serve"],
                            stdout=log_file, stderr=subprocess.STDOUT)
    try:
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"serve exited: {(work / 'serve.log').read_text()[-2000:]}")
            try:
                if get(base + "/static/style.css")[0] == 200:
                    break
            except OSError:
                time.sleep(0.2)
        log(f"\nserver start to serving (index and text tower warm): "
            f"{time.perf_counter() - started:.1f} s")
        get(base + "/api/search?q=warm+up")

        # (a) sequential latency
        t_text, t_img = [], []
        for t in texts(runs, 2):
            s = time.perf_counter()
            code, _ = get(base + "/api/search?" + urllib.parse.urlencode({"q": t}))
            t_text.append(time.perf_counter() - s)
            assert code == 200
        for i in live_ids(runs, 2001):
            s = time.perf_counter()
            code, _ = get(f"{base}/api/search?image={i}")
            t_img.append(time.perf_counter() - s)
            assert code == 200
        cli_s = []
        for t in texts(2, 3):
            s = time.perf_counter()
            subprocess.run([sys.executable, "-m", "watcherd", "-c", str(config), "search", t,
                            "--json"], capture_output=True, check=True)
            cli_s.append(time.perf_counter() - s)
        log(f"\n(a) sequential, {runs} queries each (p50)")
        log(f"  text     HTTP {statistics.median(t_text) * 1000:6.1f} ms   in-process "
            f"{statistics.median(t_in_text) * 1000:6.1f} ms   HTTP overhead "
            f"{(statistics.median(t_text) - statistics.median(t_in_text)) * 1000:+.1f} ms   "
            f"cold CLI {statistics.median(cli_s):.2f} s ({statistics.median(cli_s) / statistics.median(t_text):.0f}x)")  # noqa: E501
        log(f"  by image HTTP {statistics.median(t_img) * 1000:6.1f} ms   in-process "
            f"{statistics.median(t_in_img) * 1000:6.1f} ms   HTTP overhead "
            f"{(statistics.median(t_img) - statistics.median(t_in_img)) * 1000:+.1f} ms")

        # (b) 16 concurrent clients x 10 text queries
        def client(c: int) -> list[tuple[int, float]]:
            out = []
            for t in texts(10, 100 + c * 10):
                s = time.perf_counter()
                try:
                    code, _ = get(base + "/api/search?" + urllib.parse.urlencode({"q": t}))
                except OSError:
                    code = 0
                out.append((code, time.perf_counter() - s))
            return out

        s = time.perf_counter()
        with ThreadPoolExecutor(16) as pool:
            results = [r for rs in pool.map(client, range(16)) for r in rs]
        wall = time.perf_counter() - s
        lat = [t for _, t in results]
        errors = sum(1 for code, _ in results if code != 200)
        log(f"\n(b) 16 clients x 10 text queries: {errors} errors of {len(results)}; p50 "
            f"{pct(lat, 50) * 1000:.0f} ms, p99 {pct(lat, 99) * 1000:.0f} ms; "
            f"{len(results) / wall:.1f} queries/s")

        # (c) memory
        now, peak = rss(proc.pid)
        log(f"\n(c) server RSS {now:.0f} MiB (peak {peak:.0f} MiB)")

        # (d) the page in a browser
        _, body = get(base + "/api/search?q=" + urllib.parse.quote(texts(1, 9)[0]) + "&n=60")
        add_thumbnails(path, [h["image_id"] for h in json.loads(body)["results"]])
        browser_grid(base, texts(1, 9)[0], 3 if args.quick else 10)
    finally:
        proc.terminate()
        proc.wait(30)
        log_file.close()


def browser_grid(base: str, query: str, runs: int) -> None:
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        log("\n(d) skipped: no chromium / chromedriver")
        return
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
              "--window-size=1280,3000"):  # all 60 tiles in view: none waits for a scroll
        opts.add_argument(a)
    driver = webdriver.Chrome(options=opts, service=Service(shutil.which("chromedriver")))
    driver.set_script_timeout(30)
    url = base + "/?" + urllib.parse.urlencode({"q": query})
    loads, lasts = [], []
    try:
        for r in range(runs + 1):
            driver.execute_cdp_cmd("Network.clearBrowserCache", {})
            driver.get(url)
            # lazy images do not hold the load event back: wait for every one to decode
            figures = driver.execute_async_script(
                "const done = arguments[arguments.length - 1];"
                "const imgs = [...document.querySelectorAll('.grid img')];"
                "Promise.all(imgs.map(i => i.decode().catch(() => null))).then(() => {"
                " const nav = performance.getEntriesByType('navigation')[0];"
                " done([imgs.length, imgs.filter(i => i.naturalWidth > 0).length,"
                "  nav.loadEventEnd, performance.now()]); });")
            count, ok, load_end, last = figures
            assert count == 60 and ok == 60, figures
            if r:  # the first load warms the browser process itself
                loads.append(load_end)
                lasts.append(last)
    finally:
        driver.quit()
    log(f"\n(d) grid of 60 thumbnails, cache cleared, {runs} loads: navigation start to load "
        f"event end p50 {statistics.median(loads):.0f} ms (max {max(loads):.0f}); to all 60 "
        f"thumbnails decoded p50 {statistics.median(lasts):.0f} ms (max {max(lasts):.0f})")


if __name__ == "__main__":
    main()
