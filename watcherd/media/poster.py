"""How a video's poster frame is chosen (:mod:`watcherd.media.video` has the whole story):
candidates at fractions of the duration, each snapped to a nearby keyframe and judged on a
small greyscale copy (not black, not white, real contrast, not in a fade), read by a
:class:`Reader` whose work after each seek is bounded."""

from __future__ import annotations

import contextlib
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np
from av.container import InputContainer
from av.video.frame import VideoFrame
from av.video.stream import VideoStream

Logs = list[tuple[int, str, str]]  # FFmpeg's messages, as PyAV captures them: level, name, text
MAX_REASON = 200  # characters of a one-line reason


def one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 3] + "..."

#: Where the poster's candidates are, as fractions of the duration, in the order tried.
FRACTIONS = (0.10, 0.25, 0.50, 0.75)
#: Without a duration: the times (seconds from the start) looked at, reading from the start...
UNKNOWN_MARKS = (0.0, 1.0, 2.0, 4.0, 8.0)
#: ...and the frames decoded at most doing so.
MAX_SEQUENTIAL = 300
#: Frames decoded at most after a seek, to reach the candidate's time (the keyframe before it
#: may be far: x264's default is a keyframe every 250 frames).
MAX_FORWARD = 60
#: Packets read at most without a frame coming out: a broken stream is not read to its end,
#: yet a seek that lands between keyframes reaches the next one (50 s at 30 fps).
MAX_SILENT_PACKETS = 1500
#: A keyframe this near a candidate's time (seconds, or this fraction of the duration if more)
#: stands for it: one decoded frame instead of decoding forward from the keyframe before.
NEAR_SECONDS, NEAR_FRACTION = 1.0, 0.10
#: Candidates earlier than this (seconds) must not be in a fade: one frame FADE_GAP later
#: (at most FADE_FRAMES frames on) must be about as bright (within FADE_CHANGE, relative).
FADE_UNTIL, FADE_GAP, FADE_FRAMES, FADE_CHANGE = 3.0, 0.25, 8, 0.10
#: A good frame: mean brightness (0..255) within [DARK, BRIGHT], standard deviation >= CONTRAST.
DARK, BRIGHT, CONTRAST = 40.0, 215.0, 12.0
GREY_WIDTH = 64  # the greyscale copy a candidate is judged on


# -- the poster ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Look:
    """How a frame looks on its small greyscale copy."""

    mean: float
    contrast: float

    @property
    def good(self) -> bool:
        return DARK <= self.mean <= BRIGHT and self.contrast >= CONTRAST

    @property
    def score(self) -> float:
        """For choosing among frames none of which is good: contrast, less for a frame near
        black or white."""
        light = min(1.0, self.mean / DARK, (255 - self.mean) / (255 - BRIGHT))
        return self.contrast * max(light, 0.0)

    def same_light(self, later: _Look) -> bool:
        """Not fading: ``later`` about as bright."""
        return abs(later.mean - self.mean) <= max(3.0, FADE_CHANGE * self.mean)


def _look(frame: VideoFrame) -> _Look:
    height = max(1, round(GREY_WIDTH * frame.height / max(1, frame.width)))
    grey = frame.reformat(width=GREY_WIDTH, height=height, format="gray",
                          interpolation="AREA").to_ndarray().astype(np.float32)
    return _Look(float(grey.mean()), float(grey.std()))


Frames = Generator[tuple[float, VideoFrame], None, None]


class Reader:
    """Frames from a point of the video stream, with their times (seconds from its start)."""

    def __init__(self, container: InputContainer, stream: VideoStream, logs: Logs) -> None:
        self.container, self.stream, self.logs = container, stream, logs
        self.time_base = stream.time_base or Fraction(1, av.time_base)
        self.start = stream.start_time or 0
        rate = stream.guessed_rate or stream.average_rate
        self.frame_seconds = 1 / float(rate) if rate and rate > 0 else 1 / 25
        self.decoded = 0  # frames decoded in all
        self.skipped = 0  # packets not decoded, before a keyframe after a seek
        self.moved = False  # demuxed or sought: no longer at the start
        self.sought = False  # sought, and nothing read since
        self.error: str | None = None  # the last decoding error, kept for the reason
        self.index = stream.index_entries if _has_index(stream) else None

    def seek(self, at: float, timestamp: int | None = None) -> None:
        """To the keyframe at or before ``at`` seconds, or at the stream's ``timestamp``
        (an index entry's, exact); FFmpegError when the file cannot."""
        self.moved = self.sought = True
        where = self.start + self.ticks(at) if timestamp is None else timestamp
        self.container.seek(where, stream=self.stream, backward=True)

    def frames(self) -> Frames:
        """The frames from where the file is. Just after a seek, packets before the first
        keyframe are not decoded: a container without an index (MPEG-TS) lands anywhere, and
        FFmpeg's H.264 decoder decodes every frame up to the next keyframe only to drop them
        (at 4K, half a second for a 250-frame GOP)."""
        count = silent = 0
        self.moved, skipping, self.sought = True, self.sought, False
        for packet in self.container.demux(self.stream):
            silent += 1
            if silent > MAX_SILENT_PACKETS:
                self.error = f"no frame in {MAX_SILENT_PACKETS} packets"
                return
            if skipping and packet.size and not packet.is_keyframe:
                self.skipped += 1
                continue
            skipping = False
            try:
                frames = packet.decode()
            except av.FFmpegError as exc:  # a broken packet: go on, as players do
                self.error = one_line(getattr(exc, "strerror", None) or str(exc))
                continue
            for frame in frames:
                if not isinstance(frame, VideoFrame):
                    continue
                self.decoded += 1
                count += 1
                silent = 0
                yield self.seconds(frame, count), frame

    def ticks(self, seconds: float) -> int:
        return int(Fraction(seconds).limit_denominator(1_000_000) / self.time_base)

    def seconds(self, frame: VideoFrame, count: int) -> float:
        pts = frame.pts if frame.pts is not None else frame.dts
        if pts is None:  # a raw stream without timestamps: count frames
            return (count - 1) * self.frame_seconds
        return float((pts - self.start) * self.time_base)

    def keyframe_near(self, seconds: float, tolerance: float) -> tuple[float, int] | None:
        """The indexed keyframe nearest ``seconds``, if within ``tolerance``: its time and
        its timestamp (to seek to exactly: seconds back to ticks could round below it)."""
        if self.index is None:
            return None
        target = self.start + self.ticks(seconds)
        best: tuple[float, int] | None = None
        for backward in (True, False):
            try:
                i = self.index.search_timestamp(target, backward=backward)
            except Exception:
                continue
            if not 0 <= i < len(self.index):
                continue
            entry = self.index[i]
            if not entry.is_keyframe:
                continue
            at = float((entry.timestamp - self.start) * self.time_base)
            if abs(at - seconds) <= tolerance and (best is None
                                                   or abs(at - seconds) < abs(best[0] - seconds)):
                best = (at, entry.timestamp)
        return best


def _has_index(stream: VideoStream) -> bool:
    try:
        return len(stream.index_entries) > 0
    except Exception:
        return False


def by_seeking(reader: Reader, duration: float) -> VideoFrame | None:
    tolerance = max(NEAR_SECONDS, NEAR_FRACTION * duration)
    forward = min(MAX_FORWARD, max(FADE_FRAMES, round(2 / reader.frame_seconds)))
    best: tuple[float, VideoFrame] | None = None
    seen: set[float] = set()
    for fraction in FRACTIONS:
        target, timestamp = fraction * duration, None
        keyframe = reader.keyframe_near(target, tolerance)
        if keyframe is not None and round(keyframe[0], 3) not in seen:
            target, timestamp = keyframe
        try:
            reader.seek(target, timestamp)
        except av.FFmpegError:  # cannot seek (no index, a broken one): read from the start
            return from_start(reader) if not seen else (best[1] if best else None)
        frames = reader.frames()
        with contextlib.closing(frames):
            found = _reach(frames, target, forward)
            if found is None:
                continue
            time, frame = found
            if round(time, 3) in seen:
                continue
            seen.add(round(time, 3))
            look = _look(frame)
            if look.good and (time >= FADE_UNTIL or _steady(frames, time, look)):
                return frame
        if best is None or look.score > best[0]:
            best = (look.score, frame)
    if best is None:  # every seek came back empty (a duration far longer than the frames)
        return from_start(reader)
    return best[1]


def _reach(frames: Iterator[tuple[float, VideoFrame]], target: float,
           limit: int) -> tuple[float, VideoFrame] | None:
    """The first frame at or after ``target`` (within a millisecond), or the last one decoded
    when ``limit`` frames or the end came first."""
    last = None
    for count, (time, frame) in enumerate(frames, 1):
        last = (time, frame)
        if time >= target - 0.001 or count >= limit:
            break
    return last


def _steady(frames: Iterator[tuple[float, VideoFrame]], time: float, look: _Look) -> bool:
    """No fade: the frame FADE_GAP later (or FADE_FRAMES on, or the last) is as bright."""
    later = _reach(frames, time + FADE_GAP, FADE_FRAMES)
    return later is None or look.same_light(_look(later[1]))


def from_start(reader: Reader) -> VideoFrame | None:
    """Without a duration (or a seek): read from the start, looking at each of UNKNOWN_MARKS.
    (A raw stream cannot seek at all: FFmpeg says EPERM, and a failed seek before anything was
    read leaves its demuxer unable to read.)"""
    if reader.moved:
        with contextlib.suppress(av.FFmpegError):
            reader.seek(0.0)
    marks = list(UNKNOWN_MARKS)
    best: tuple[float, VideoFrame] | None = None
    pending: tuple[float, VideoFrame, _Look] | None = None  # good, waiting for its fade check
    frames = reader.frames()
    with contextlib.closing(frames):
        for count, (time, frame) in enumerate(frames, 1):
            if pending is not None and (time >= pending[0] + FADE_GAP or count >= MAX_SEQUENTIAL):
                if pending[2].same_light(_look(frame)):
                    return pending[1]
                pending = None
            if marks and time >= marks[0] - 0.001:
                while marks and time >= marks[0] - 0.001:
                    marks.pop(0)
                look = _look(frame)
                if best is None or look.score > best[0]:
                    best = (look.score, frame)
                if look.good:
                    if time >= FADE_UNTIL:
                        return frame
                    pending = (time, frame, look)
            if count >= MAX_SEQUENTIAL or (not marks and pending is None):
                break
    if pending is not None:  # the clip ended before its fade check: as good as it gets
        return pending[1]
    return best[1] if best else None


