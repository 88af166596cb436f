"""Videos through FFmpeg (PyAV): what a clip is (:func:`probe`) and a representative still of it
(:func:`poster`), for thumbnails and the embedding.

The file is opened by path and read as FFmpeg demuxes it: never whole into memory (a 4 GB clip
costs what its few decoded frames cost). Work is bounded: a poster decodes frames near a few
seek points only, each seek landing on a keyframe (in a container without an index, MPEG-TS,
the packets before the next keyframe are dropped undecoded), with at most a couple of seconds
(and at most :data:`MAX_FORWARD` frames) decoded forward from there; FFmpeg's decoder uses
:data:`THREADS` threads (the caller is a prefork pool child, one per core).

**The poster is a representative frame, never a black frame or a fade-in.** Candidates are taken
at 10 %, 25 %, 50 % and 75 % of the duration (each snapped to a nearby keyframe when the
container has an index, so most cost one decoded frame), each looked at on a 64-pixel-wide
greyscale copy: its mean brightness must be away from black and white and its contrast (the
standard deviation) real; a candidate in the first seconds must also keep its brightness a
quarter of a second later (else it is in a fade). The first good candidate wins, else the best
looking one. A clip whose duration is unknown (a raw stream, some MTS/AVI) is read from its
start instead, looking at 0, 1, 2, 4 and 8 s; a clip too short for its candidates to differ
gives its first frame.

**Rotation**: phones store a portrait clip as landscape frames with a display matrix; the
poster is turned upright and ``width``/``height`` are the displayed ones (after the pixel
aspect ratio too). Only the matrix's rotation is used (a mirrored matrix shows unmirrored).

**Errors**: anything wrong with the file's content (not a video, no video stream, corrupt,
truncated, too many pixels) is a :class:`VideoError` (an :class:`ImageError`, so callers that
handle images' errors handle these) whose message is a one-line reason with FFmpeg's own
message in it. Problems with the file itself (missing, not readable, a folder) stay ``OSError``
(``FileNotFoundError``...), as from ``open()``; bad arguments are ``ValueError``.

FFmpeg's log: on first use, if nobody has set PyAV's log level, it is set to ERROR, so that
FFmpeg's error messages reach PyAV (its exceptions alone say only "Invalid data found when
processing input"); while this module works they are captured (for the reason) instead of
going to Python's ``logging`` as ``libav.*``. The capture is process-wide while it lasts: fine
in a prefork child, where one thread works.

Colour: the frame's own colour tags are used to convert it to RGB; an untagged HD frame
(720 lines or more) is read as BT.709, as players do, not as swscale's BT.601 default. HDR
(PQ/HLG) frames are converted without tone mapping: a poster of an HDR clip looks flat.
Interlaced frames (1080i MTS) are not deinterlaced.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from fractions import Fraction

import av
import av.logging
import numpy as np
from av.container import InputContainer
from av.video.frame import VideoFrame
from av.video.stream import VideoStream
from PIL import Image

from watcherd.media.formats import file_type as type_of_path
from watcherd.media.images import DecodedImage, ImageError

__all__ = ["VideoError", "VideoInfo", "poster", "probe"]

#: FFmpeg decoder threads (frame and slice threading): the caller is one pool child per core.
THREADS = 2
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

_MAX_REASON = 200
#: errno values, on opening, that are about the file, not its content: they stay OSError
_FILE_ERRNOS = frozenset({errno.ENOENT, errno.EACCES, errno.EISDIR, errno.ENOTDIR, errno.ELOOP,
                          errno.ENAMETOOLONG})
_UNSPECIFIED_COLORSPACE = 2  # AVCOL_SPC_UNSPECIFIED
Logs = list[tuple[int, str, str]]  # FFmpeg's messages, as PyAV captures them: level, name, text


class VideoError(ImageError):
    """The file's content is not a usable video: ``str(exc)`` is a one-line reason, e.g.
    ``"not a video (Invalid data found when processing input: moov atom not found)"``,
    ``"no video stream (1 audio stream)"``, ``"corrupt video: no frame could be decoded
    (...)"``, ``"too many pixels: 7680x4320 = 33177600 > limit 25000000"``."""


@dataclass(frozen=True)
class VideoInfo:
    duration: float | None  # seconds; None when the container does not say
    codec: str | None  # FFmpeg's codec name: 'h264', 'hevc', 'vp9', 'av1', 'mpeg4', ...
    fps: float | None  # average frame rate (3 decimals)
    width: int  # as displayed: after the pixel aspect ratio and the rotation
    height: int
    rotation: int  # degrees clockwise to turn the stored frames to display them: 0/90/180/270
    tags: dict[str, str]  # the container's metadata tags, then the video stream's; keys lower-case


def probe(path: str) -> VideoInfo:
    """What the video at ``path`` is. Decodes its first frame (the rotation is known only
    from a decoded frame's side data in PyAV), nothing more."""
    with _session(path) as (container, stream, logs):
        reader = _Reader(container, stream, logs)
        with contextlib.closing(reader.frames()) as frames:
            first = next(frames, None)
        if first is None:
            raise VideoError(_no_frame(reader))
        return _info(container, stream, first[1])


def poster(path: str, *, max_pixels: int, draft_size: int | None = None,
           file_type: str = "") -> tuple[DecodedImage, VideoInfo]:
    """A representative frame of the video at ``path`` (see the module's doc), upright, as an
    RGB image, with what :func:`probe` says.

    ``max_pixels`` is checked against the stored frame size before any frame is decoded. With
    ``draft_size``, the frame is shrunk by FFmpeg (swscale, area averaging) to the smallest
    size whose both sides are still >= ``draft_size``, as :func:`watcherd.media.images.decode`
    does for a JPEG; ``width``/``height`` are always the full displayed size. The
    :class:`DecodedImage` has ``decode="poster"`` and ``format=file_type`` (default: the
    extension in upper case, as :func:`watcherd.media.formats.file_type`)."""
    if max_pixels < 1:
        raise ValueError(f"max_pixels must be >= 1, got {max_pixels}")
    if draft_size is not None and draft_size < 1:
        raise ValueError(f"draft_size must be >= 1, got {draft_size}")
    with _session(path) as (container, stream, logs):
        ctx = stream.codec_context
        _check_pixels(ctx.width, ctx.height, max_pixels)
        reader = _Reader(container, stream, logs)
        frame = _pick(reader, _duration(container, stream))
        _check_pixels(frame.width, frame.height, max_pixels)  # a header that said 0x0, or lied
        info = _info(container, stream, frame)
        image = _to_image(frame, info, stream.sample_aspect_ratio, draft_size)
    decoded = DecodedImage(image=image, width=info.width, height=info.height,
                           format=file_type or type_of_path(path), decode="poster")
    return decoded, info


# -- opening, and errors ---------------------------------------------------------------------


@contextlib.contextmanager
def _session(path: str) -> Iterator[tuple[InputContainer, VideoStream, Logs]]:
    """The opened file, its video stream and FFmpeg's messages meanwhile. FFmpeg's errors
    become :class:`VideoError` (with FFmpeg's message); the file's own problems stay OSError."""
    if os.stat(path).st_size == 0:
        raise VideoError("empty file")
    _log_errors()
    with av.logging.Capture(local=False) as logs:
        try:
            container = av.open(path, "r", metadata_errors="replace")
        except av.FFmpegError as exc:
            if isinstance(exc, OSError) and exc.errno in _FILE_ERRNOS:
                raise
            raise VideoError(_reason("not a video", exc, logs)) from exc
        try:
            with container:
                yield container, _video_stream(container), logs
        except av.FFmpegError as exc:
            prefix = "truncated video" if isinstance(exc, EOFError) else "corrupt video"
            raise VideoError(_reason(prefix, exc, logs)) from exc
        except MemoryError as exc:
            raise VideoError("out of memory while decoding video (MemoryError)") from exc


_logging_set = False


def _log_errors() -> None:
    """Let FFmpeg's error messages reach PyAV (its default drops them all), once."""
    global _logging_set
    if not _logging_set:
        _logging_set = True
        if av.logging.get_level() is None:
            av.logging.set_level(av.logging.ERROR)
            # PyAV passes on a message identical to the one before only once: the second
            # corrupt file's reason would lose its FFmpeg message.
            av.logging.set_skip_repeated(False)


def _reason(prefix: str, exc: BaseException, logs: Logs) -> str:
    """``prefix (FFmpeg's error: its last logged error message)``."""
    said = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    if said.startswith("[Errno"):
        said = said.split("] ", 1)[-1]
    detail = _last_error(logs)
    text = f"{prefix} ({said}: {detail})" if detail and detail not in said else f"{prefix} ({said})"
    return _one_line(text)


def _last_error(logs: Logs) -> str | None:
    errors = [message for level, _name, message in logs if level <= av.logging.ERROR]
    return " ".join(errors[-1].split()) if errors else None


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 3] + "..."


def _video_stream(container: InputContainer) -> VideoStream:
    """The first video stream that is not an attached picture (cover art), set up to decode."""
    for stream in container.streams.video:
        if stream.disposition & av.stream.Disposition.attached_pic:
            continue
        if stream.codec_context is None:
            raise VideoError("no decoder for its video stream")
        stream.codec_context.thread_type = "AUTO"
        stream.codec_context.thread_count = THREADS
        return stream
    kinds = [s.type for s in container.streams if s.type != "video"]
    counts = ", ".join(f"{kinds.count(k)} {k} stream{'s' if kinds.count(k) > 1 else ''}"
                       for k in dict.fromkeys(kinds))
    raise VideoError(f"no video stream ({counts or 'no streams'})")


def _check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise VideoError(
            f"too many pixels: {width}x{height} = {width * height} > limit {max_pixels}")


def _no_frame(reader: _Reader) -> str:
    said = [text for text in (reader.error, _last_error(reader.logs)) if text]
    return _one_line("corrupt video: no frame could be decoded"
                     + (f" ({': '.join(said)})" if said else ""))


# -- what the video is -----------------------------------------------------------------------


def _duration(container: InputContainer, stream: VideoStream) -> float | None:
    """The video stream's duration, else the container's (seconds); None when unknown."""
    if stream.duration is not None and stream.time_base is not None and stream.duration > 0:
        seconds = float(stream.duration * stream.time_base)
    elif container.duration is not None and container.duration > 0:
        seconds = container.duration / av.time_base
    else:
        return None
    return seconds if math.isfinite(seconds) and seconds > 0 else None


def _fps(stream: VideoStream, known_duration: bool) -> float | None:
    """The average frame rate when the container knows the duration (it is measured from the
    timestamps), else FFmpeg's guess (a raw stream's 'average' is a default 25)."""
    rates = (stream.average_rate, stream.guessed_rate) if known_duration else (
        stream.guessed_rate, stream.average_rate)
    for rate in rates:
        if rate and 0 < rate <= 1000:
            return round(float(rate), 3)
    return None


def _rotation(frame: VideoFrame) -> int:
    """Degrees clockwise to display: PyAV's ``rotation`` is the display matrix's angle
    counter-clockwise (-90 for an iPhone's portrait clip), rounded to a quarter turn."""
    try:
        ccw = float(frame.rotation)
    except Exception:  # a matrix FFmpeg cannot read: as stored
        return 0
    if not math.isfinite(ccw):
        return 0
    return round(-ccw / 90) % 4 * 90


def _displayed(width: int, height: int, sar: Fraction | None) -> tuple[int, int]:
    """The frame size after its pixel aspect ratio (before rotation)."""
    if sar and sar > 0 and sar != 1:
        return max(1, round(width * sar)), height
    return width, height


def _info(container: InputContainer, stream: VideoStream, frame: VideoFrame) -> VideoInfo:
    duration = _duration(container, stream)
    rotation = _rotation(frame)
    width, height = _displayed(frame.width, frame.height, stream.sample_aspect_ratio)
    if rotation in (90, 270):
        width, height = height, width
    tags: dict[str, str] = {}
    for source in (container.metadata, stream.metadata):
        for key, value in source.items():
            tags.setdefault(str(key).lower(), str(value))
    codec = stream.codec_context.codec
    name = getattr(codec, "canonical_name", None) or codec.name
    return VideoInfo(duration=round(duration, 3) if duration is not None else None,
                     codec=name or None, fps=_fps(stream, duration is not None),
                     width=width, height=height, rotation=rotation, tags=tags)


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


class _Reader:
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
                self.error = _one_line(getattr(exc, "strerror", None) or str(exc))
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


def _pick(reader: _Reader, duration: float | None) -> VideoFrame:
    """The poster frame (see the module's doc)."""
    frame = _from_start(reader) if duration is None else _by_seeking(reader, duration)
    if frame is None:
        raise VideoError(_no_frame(reader))
    return frame


def _by_seeking(reader: _Reader, duration: float) -> VideoFrame | None:
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
            return _from_start(reader) if not seen else (best[1] if best else None)
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
        return _from_start(reader)
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


def _from_start(reader: _Reader) -> VideoFrame | None:
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


def _to_image(frame: VideoFrame, info: VideoInfo, sar: Fraction | None,
              draft_size: int | None) -> Image.Image:
    """The frame as an upright RGB image: at its displayed size, or shrunk to ``draft_size``."""
    width, height = _displayed(frame.width, frame.height, sar)
    if draft_size is not None and min(width, height) > draft_size:
        scale = draft_size / min(width, height)
        width, height = max(1, round(width * scale)), max(1, round(height * scale))
    colorspace = None
    if frame.colorspace == _UNSPECIFIED_COLORSPACE and frame.height >= 720:
        colorspace = "ITU709"
    shrink = width * height < frame.width * frame.height
    image = frame.to_image(width=width, height=height, src_colorspace=colorspace,
                           interpolation="AREA" if shrink else "BICUBIC")
    if info.rotation:
        image = image.transpose({90: Image.Transpose.ROTATE_270, 180: Image.Transpose.ROTATE_180,
                                 270: Image.Transpose.ROTATE_90}[info.rotation])
    return image if image.mode == "RGB" else image.convert("RGB")
