"""How a worker gets a file's pixels (:mod:`watcherd.media.sources`), as plain values: kept apart
from the decoders so that a command can build them without importing Pillow."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Options"]


@dataclass(frozen=True)
class Options:
    """``max_pixels``: the most pixels decoded (a RAW's preview or half-size demosaic, a video's
    frame; never the sensor). ``raw_min_preview``: the shortest long side of a RAW's embedded
    preview that is used (the largest thumbnail size); ``raw_prefer_preview`` false: always
    demosaic."""

    max_pixels: int
    raw_min_preview: int = 1024
    raw_prefer_preview: bool = True

    @classmethod
    def of(cls, max_pixels: int, thumbnail_sizes: tuple[int, ...],
           prefer_preview: bool) -> Options:
        """From the config's values: ``[images] max_pixels``, ``[thumbnails] sizes``, ``[raw]
        prefer_embedded_preview``."""
        return cls(max_pixels, max(thumbnail_sizes), prefer_preview)
