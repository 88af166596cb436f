"""One photo's metadata: the columns of the ``metadata`` table (DESIGN.md), all optional."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields, replace
from typing import Any

#: The ``metadata`` table's columns, in order, after ``image_id`` (``updated_at`` is the store's).
COLUMNS: tuple[str, ...] = (
    "taken_at", "taken_offset", "taken_source",
    "latitude", "longitude", "altitude",
    "country", "country_code", "region", "place",
    "camera_make", "camera_model", "lens",
    "focal_length", "f_number", "exposure_time", "iso",
    "rating", "title", "description", "keywords",
    "video_codec", "fps",
    "error",
)


@dataclass(frozen=True)
class Metadata:
    """Everything is None when absent. ``taken_at`` is the local wall-clock time as recorded
    (``YYYY-MM-DDTHH:MM:SS[.fff]``); ``taken_offset`` ``'+02:00'`` when known; ``keywords`` a
    tuple (stored as a JSON array); ``error`` says what could not be read, and why."""

    taken_at: str | None = None
    taken_offset: str | None = None
    taken_source: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    altitude: float | None = None
    country: str | None = None
    country_code: str | None = None
    region: str | None = None
    place: str | None = None
    camera_make: str | None = None
    camera_model: str | None = None
    lens: str | None = None
    focal_length: float | None = None
    f_number: float | None = None
    exposure_time: float | None = None
    iso: int | None = None
    rating: int | None = None
    title: str | None = None
    description: str | None = None
    keywords: tuple[str, ...] = field(default=())
    video_codec: str | None = None
    fps: float | None = None
    error: str | None = None

    def row(self) -> tuple[Any, ...]:
        """The values in :data:`COLUMNS` order, as stored (keywords as JSON, or NULL)."""
        return tuple(
            (json.dumps(list(self.keywords), ensure_ascii=False) if self.keywords else None)
            if name == "keywords" else getattr(self, name) for name in COLUMNS)

    def with_(self, **changes: Any) -> Metadata:
        return replace(self, **changes)

    def is_empty(self) -> bool:
        return all(getattr(self, f.name) in (None, ()) for f in fields(self))
