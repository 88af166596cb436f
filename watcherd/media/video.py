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
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction

import av
import av.logging
from av.container import InputContainer
from av.video.frame import VideoFrame
from av.video.stream import VideoStream
from PIL import Image

from watcherd.formats import file_type as type_of_path
from watcherd.media.images import DecodedImage, ImageError
from watcherd.media.poster import Logs, Reader, by_seeking, from_start, one_line

__all__ = ["VideoError", "VideoInfo", "poster", "probe"]

#: FFmpeg decoder threads (frame and slice threading): the caller is one pool child per core.
THREADS = 2

#: errno values, on opening, that are about the file, not its content: they stay OSError
_FILE_ERRNOS = frozenset({errno.ENOENT, errno.EACCES, errno.EISDIR, errno.ENOTDIR, errno.ELOOP,
                          errno.ENAMETOOLONG})
_UNSPECIFIED_COLORSPACE = 2  # AVCOL_SPC_UNSPECIFIED


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
        reader = Reader(container, stream, logs)
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
    extension in upper case, as :func:`watcherd.formats.file_type`)."""
    if max_pixels < 1:
        raise ValueError(f"max_pixels must be >= 1, got {max_pixels}")
    if draft_size is not None and draft_size < 1:
        raise ValueError(f"draft_size must be >= 1, got {draft_size}")
    with _session(path) as (container, stream, logs):
        ctx = stream.codec_context
        _check_pixels(ctx.width, ctx.height, max_pixels)
        reader = Reader(container, stream, logs)
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
    return one_line(text)


def _last_error(logs: Logs) -> str | None:
    errors = [message for level, _name, message in logs if level <= av.logging.ERROR]
    return " ".join(errors[-1].split()) if errors else None


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


def _no_frame(reader: Reader) -> str:
    said = [text for text in (reader.error, _last_error(reader.logs)) if text]
    return one_line("corrupt video: no frame could be decoded"
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


def _pick(reader: Reader, duration: float | None) -> VideoFrame:
    """The poster frame (see the module's doc)."""
    frame = from_start(reader) if duration is None else by_seeking(reader, duration)
    if frame is None:
        raise VideoError(_no_frame(reader))
    return frame


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
