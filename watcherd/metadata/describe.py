"""Descriptions that are not: what cameras write into ImageDescription by default."""

from __future__ import annotations

import re

#: Compared case-insensitively, with runs of blanks as one space.
PLACEHOLDERS = frozenset({
    "olympus digital camera", "sony dsc", "dcim", "default", "konica minolta digital camera",
    "minolta digital camera", "digital camera", "camera", "image", "photo", "picture",
    "untitled", "no title", "none", "n/a", "-", ".", "exif_jpeg_picture", "exif jpeg",
    "jpeg", "kodak digital still camera", "easyshare", "samsung", "lg electronics",
    "picasa", "created with gimp", "digital still camera", "default description",
})
# "<Make> DIGITAL CAMERA", "<Make> DSC", "<Make> DIGITAL STILL CAMERA", "<Make> DIGITAL IMAGE"
_CAMERA_WORDS = re.compile(r"(.+ )?(digital (still )?camera|dsc|digital image|digicam)")


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


def is_placeholder(text: str, make: str | None = None, model: str | None = None) -> bool:
    """True for a camera's default text: a listed one, ``<anything> DIGITAL CAMERA``, or the
    camera's own make or model."""
    norm = _norm(text)
    if norm in PLACEHOLDERS or _CAMERA_WORDS.fullmatch(norm):
        return True
    return any(norm == _norm(name) for name in (make, model) if name)


def first_real(candidates: list[str], make: str | None, model: str | None) -> str | None:
    """The first candidate that is not a placeholder."""
    return next((c for c in candidates if not is_placeholder(c, make, model)), None)
