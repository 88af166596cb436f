"""How an original is served: inline with its content type when a browser shows it (photos
Pillow names, videos in a container and codec browsers play), else as a download. No
transcoding, ever: a video a browser cannot play (HEVC in some browsers, MKV, AVI, MTS) is
offered as a file."""

from __future__ import annotations

import mimetypes

from watcherd.formats import extension

INLINE_IMAGES = frozenset({"jpeg", "jpg", "png", "gif", "webp", "avif", "bmp"})
# MOV and MP4 are both ISO base media files: browsers play an H.264 MOV served as video/mp4.
VIDEO_TYPES = {"mp4": "video/mp4", "m4v": "video/mp4", "mov": "video/mp4", "webm": "video/webm"}
PLAYED_CODECS = frozenset({"h264", "vp8", "vp9", "av1", None})


def original_type(path: str, fmt: str | None, codec: str | None) -> tuple[str, bool]:
    """(content type, inline) of the original at ``path`` (``fmt``: ``images.format``;
    ``codec``: ``metadata.video_codec`` of a video)."""
    ext = extension(path)
    if ext in VIDEO_TYPES:
        return (VIDEO_TYPES[ext], True) if codec in PLAYED_CODECS else (VIDEO_TYPES[ext], False)
    media = mimetypes.guess_type(path)[0] or "application/octet-stream"
    kind = str(fmt or ext).lower()
    return media, kind in INLINE_IMAGES and media.startswith("image/")


def playable(path: str, fmt: str | None, codec: str | None) -> bool:
    """Whether the page shows the original itself (an image, or a video player)."""
    return original_type(path, fmt, codec)[1]
