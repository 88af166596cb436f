"""Pixels from any file watcherd takes: an ordinary photo through Pillow
(:mod:`watcherd.media.images`), a camera RAW through LibRaw (:mod:`watcherd.media.raw`: its
embedded preview, else a demosaic at half size), a video through FFmpeg
(:mod:`watcherd.media.video`: a representative poster frame). The thumbnail step and the
embedding's input both come through here, so both see the same pixels.

A video is never read into memory: it is opened by its path and only the frames near the
chosen seek points are decoded; photos and RAWs arrive as the bytes the task already read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from watcherd.formats import file_type, kind_of
from watcherd.media.images import DecodedImage, ImageError, decode
from watcherd.media.options import Options

if TYPE_CHECKING:
    from watcherd.media.video import VideoInfo

__all__ = ["Options", "Pixels", "pixels"]


@dataclass(frozen=True)
class Pixels:
    decoded: DecodedImage
    video: VideoInfo | None = None  # a video's duration, codec, rate and tags

    @property
    def duration(self) -> float | None:
        return self.video.duration if self.video is not None else None


def pixels(path: str, data: bytes, options: Options, *, draft_size: int | None = None,
           to_srgb_now: bool = True) -> Pixels:
    """The file's pixels; ``data`` is its bytes (ignored for a video, which is read from
    ``path``). Raises :class:`~watcherd.media.images.ImageError` (RawError, VideoError) for a
    file that cannot give any (a video that cannot be opened: "unreadable: …"), and
    ``FileNotFoundError`` for a video gone since its task began."""
    kind = kind_of(path)
    if kind == "video":
        from watcherd.media.video import poster

        try:
            decoded, info = poster(path, max_pixels=options.max_pixels, draft_size=draft_size,
                                   file_type=file_type(path))
        except FileNotFoundError:
            raise  # gone since the task began: the watcher records it
        except OSError as exc:  # opened only now (a video is never read beforehand)
            raise ImageError(f"unreadable: {exc.strerror or exc}") from exc
        return Pixels(decoded, info)
    if kind == "raw":
        from watcherd.media.raw import decode_raw

        return Pixels(decode_raw(data, file_type=file_type(path), max_pixels=options.max_pixels,
                                 min_preview_side=options.raw_min_preview,
                                 prefer_preview=options.raw_prefer_preview,
                                 draft_size=draft_size, to_srgb_now=to_srgb_now))
    return Pixels(decode(data, max_pixels=options.max_pixels, draft_size=draft_size,
                         to_srgb_now=to_srgb_now))
