"""Which kind of file a path is, from its extension: an ordinary photo (Pillow and its plugins
decode it), a camera RAW (LibRaw, :mod:`watcherd.media.raw`) or a video (FFmpeg through PyAV,
:mod:`watcherd.media.video`). The kind decides how the file's pixels are obtained and whether the
whole file may be read into memory (never a video's)."""

from __future__ import annotations

import os
from typing import Literal

__all__ = ["PHOTO_EXTENSIONS", "RAW_EXTENSIONS", "VIDEO_EXTENSIONS", "Kind", "file_type",
           "kind_of"]

Kind = Literal["photo", "raw", "video"]

PHOTO_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "gif", "tif", "tiff", "bmp", "heic", "heif",
                    "avif", "jxl")
RAW_EXTENSIONS = ("dng", "cr2", "cr3", "nef", "nrw", "arw", "srf", "sr2", "orf", "rw2", "raf",
                  "pef", "srw", "3fr", "iiq", "erf", "kdc", "mrw")
VIDEO_EXTENSIONS = ("mp4", "mov", "m4v", "mkv", "webm", "avi", "3gp", "mts", "m2ts")

_RAW = frozenset(RAW_EXTENSIONS)
_VIDEO = frozenset(VIDEO_EXTENSIONS)


def extension(path: str) -> str:
    """The extension, lower case, without the dot ('' when none)."""
    return os.path.splitext(path)[1].lower().lstrip(".")


def kind_of(path: str) -> Kind:
    """"raw" or "video" by the extension (any case); anything else is a "photo"."""
    ext = extension(path)
    if ext in _RAW:
        return "raw"
    if ext in _VIDEO:
        return "video"
    return "photo"


def file_type(path: str) -> str:
    """``images.format`` for a RAW or a video: its extension in upper case (``DNG``, ``CR2``,
    ``MP4``, ``MTS``)."""
    return extension(path).upper()
