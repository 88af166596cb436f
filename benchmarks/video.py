"""What a video's poster frame costs (``watcherd.media.video.poster``), and ``probe`` alone, on
1-minute H.264 clips; and what taking N frames instead of one (for an embedding) would cost.

    .venv/bin/python benchmarks/video.py [-n 5] [--cache DIR] [--no-4k]

The clips are made once by Debian's ffmpeg (lavfi testsrc2, libx264 ``-preset ultrafast``, 30
fps, 60 s) and kept in ``--cache`` (default: ``$TMPDIR/watcherd-bench-video``; 1080p is ~120
MB, 4K ~450 MB):

- ``1080p``: x264's default keyframe interval, 250 frames (8.3 s): every candidate lands near a
  keyframe the MP4 index names, one decoded frame each;
- ``1080p g30``: a keyframe every second, as phones write;
- ``1080p mts`` and ``4K mts``: the same streams remuxed into MPEG-TS (``-c copy``), which has no
  index: each seek lands on the keyframe before the candidate and decodes forward (at most 60
  frames), the worst case;
- ``4K``: 3840x2160, default keyframe interval.

Times are the median of ``-n`` runs in this process after a warm-up (the file in the page
cache); peak RSS is ``ru_maxrss`` of a fresh process that imports PyAV and watcherd.media.video,
then makes one poster (the import alone is the baseline). The goal: 0.5 s for a 1080p poster.

"N frames": frames at N evenly spaced points (each the keyframe nearest, as the poster's
candidates), each reduced to a 224-pixel short side, what an embedding of N frames would
decode; ratios against N = 1.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from watcherd.media import poster as frames_mod
from watcherd.media import video

SECONDS, RATE = 60, 30
CLIPS = {  # label -> (file, size, extra x264 arguments, remuxed from)
    "1080p": ("h264-1080p-60s.mp4", "1920x1080", [], None),
    "1080p g30": ("h264-1080p-g30-60s.mp4", "1920x1080", ["-g", "30"], None),
    "1080p mts": ("h264-1080p-60s.mts", "", [], "1080p"),
    "4K": ("h264-2160p-60s.mp4", "3840x2160", [], None),
    "4K mts": ("h264-2160p-60s.mts", "", [], "4K"),
}


@dataclass
class Row:
    clip: str
    mb: float
    probe_s: float
    poster_s: float
    poster_draft512_s: float
    frames_decoded: int
    rss_over_import_mb: float
    one_frame_s: float
    four_frames_s: float


def make(cache: Path, label: str) -> Path:
    name, size, extra, source = CLIPS[label]
    out = cache / name
    if out.exists():
        return out
    part = out.with_name("part-" + out.name)
    if source is not None:
        args = ["-i", str(make(cache, source)), "-c", "copy", "-f", "mpegts"]
    else:
        args = ["-f", "lavfi", "-i", f"testsrc2=s={size}:r={RATE}:d={SECONDS}", "-c:v",
                "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", *extra, "-f", "mp4"]
    print(f"making {label} ({out})...", file=sys.stderr, flush=True)
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args, str(part)], check=True)
    part.rename(out)
    return out


def median_s(fn: Callable[[], object], n: int) -> float:
    fn()  # warm-up: the page cache, FFmpeg's first-use set-up
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


class Counted(video.Reader):
    """The poster's reader, counting the frames it decodes."""

    last: Counted | None = None

    def __init__(self, *args: object) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        Counted.last = self


def decoded_by_poster(path: Path) -> int:
    with mock.patch.object(video, "Reader", Counted):
        video.poster(str(path), max_pixels=10**9)
    return Counted.last.decoded if Counted.last else -1


def n_frames(path: Path, n: int, short_side: int = 224) -> int:
    """N frames at evenly spaced points, the keyframe nearest each, reduced for an embedding;
    returns the frames decoded."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_type = "AUTO"
        stream.codec_context.thread_count = video.THREADS
        reader = video.Reader(container, stream, [])
        duration = video._duration(container, stream) or 0.0
        for i in range(n):
            target = (i + 0.5) / n * duration
            near = reader.keyframe_near(target, max(1.0, 0.5 / n * duration))
            if near is not None:
                target = near[0]
            reader.seek(target, near[1] if near else None)
            frames = reader.frames()
            got = frames_mod._reach(frames, target, frames_mod.MAX_FORWARD)
            frames.close()
            if got is None:
                continue
            frame = got[1]
            scale = short_side / min(frame.width, frame.height)
            frame.to_image(width=round(frame.width * scale), height=round(frame.height * scale),
                           interpolation="AREA")
        return reader.decoded


def peak_rss_mb(path: Path | None) -> float:
    """ru_maxrss (MB) of a fresh process that imports the module and makes one poster of
    ``path`` (None: imports only)."""
    code = ("import resource, sys\n"
            "sys.path.insert(0, sys.argv[1])\n"
            "from watcherd.media import video\n"
            "if len(sys.argv) > 2:\n"
            "    video.poster(sys.argv[2], max_pixels=10**9)\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n")
    argv = [sys.executable, "-c", code, str(Path(__file__).resolve().parents[1])]
    done = subprocess.run(argv + ([str(path)] if path else []), check=True,
                          capture_output=True, text=True)
    return int(done.stdout.strip()) / 1024


def cpu() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text()
                  .splitlines() if line.startswith("model name")), "unknown")
    flags = Path("/proc/cpuinfo").read_text()
    return (f"{model}, {os.cpu_count()} CPUs, avx512_bf16: "
            f"{'yes' if ' avx512_bf16' in flags else 'no'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=5, help="timed runs per figure (median)")
    parser.add_argument("--cache", type=Path,
                        default=Path(tempfile.gettempdir()) / "watcherd-bench-video")
    parser.add_argument("--no-4k", action="store_true", help="skip the 4K clips")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    labels = [label for label in CLIPS if not (args.no_4k and label.startswith("4K"))]
    paths = {label: make(args.cache, label) for label in labels}

    import av

    print(f"CPU: {cpu()}; PyAV {av.__version__} (FFmpeg libavcodec "
          f"{'.'.join(map(str, av.library_versions['libavcodec']))}); "
          f"decoder threads {video.THREADS}")
    base = peak_rss_mb(None)
    print(f"peak RSS of the import alone: {base:.0f} MB\n")
    header = (f"{'clip':<11} {'MB':>5} {'probe':>8} {'poster':>8} {'draft512':>8} "
              f"{'frames':>6} {'RSS+MB':>7} {'1 frame':>8} {'4 frames':>8} {'4/1':>5}")
    print(header)
    print("-" * len(header))
    rows: list[Row] = []
    for label, path in paths.items():
        p = str(path)
        row = Row(
            clip=label, mb=path.stat().st_size / 1e6,
            probe_s=median_s(partial(video.probe, p), args.n),
            poster_s=median_s(partial(video.poster, p, max_pixels=10**9), args.n),
            poster_draft512_s=median_s(partial(video.poster, p, max_pixels=10**9,
                                               draft_size=512), args.n),
            frames_decoded=decoded_by_poster(path),
            rss_over_import_mb=peak_rss_mb(path) - base,
            one_frame_s=median_s(partial(n_frames, path, 1), args.n),
            four_frames_s=median_s(partial(n_frames, path, 4), args.n))
        rows.append(row)
        print(f"{label:<11} {row.mb:>5.0f} {row.probe_s * 1000:>6.1f}ms "
              f"{row.poster_s * 1000:>6.1f}ms {row.poster_draft512_s * 1000:>6.1f}ms "
              f"{row.frames_decoded:>6} {row.rss_over_import_mb:>7.0f} "
              f"{row.one_frame_s * 1000:>6.1f}ms {row.four_frames_s * 1000:>6.1f}ms "
              f"{row.four_frames_s / row.one_frame_s:>5.1f}")
    print()
    by_clip = {row.clip: row for row in rows}
    if "1080p" in by_clip:
        hd = by_clip["1080p"]
        verdict = "met" if hd.poster_s <= 0.5 else "MISSED"
        print(f"goal: 1080p poster <= 0.5 s: {hd.poster_s:.3f} s ({verdict}); "
              f"poster / probe = {hd.poster_s / hd.probe_s:.1f}x")
        if "4K" in by_clip:
            print(f"4K / 1080p poster: {by_clip['4K'].poster_s / hd.poster_s:.1f}x "
                  "(4x the pixels)")
    if args.json:
        print(json.dumps([asdict(row) for row in rows], indent=1))


if __name__ == "__main__":
    main()
