"""XMP sidecars: ``IMG_0001.xmp`` or ``IMG_0001.CR2.xmp`` beside ``IMG_0001.CR2`` (Lightroom,
darktable, digiKam), any case of ``.xmp``. Their fields win over the file's own."""

from __future__ import annotations

import os

#: Sidecars larger than this are not read (hostile or broken: real ones are a few KB).
MAX_SIDECAR_BYTES = 1 << 20


def candidates(path: str) -> list[str]:
    """The sidecar paths that may belong to the photo at ``path``, most specific first."""
    stem, ext = os.path.splitext(path)
    out = [path + ".xmp", path + ".XMP"]
    if ext:
        out += [stem + ".xmp", stem + ".XMP"]
    return out


def photo_stems(sidecar_path: str) -> tuple[str, bool] | None:
    """For a sidecar path, what it describes: (``folder/IMG_0001.CR2``, True) for a sidecar
    named after the whole file name, (``folder/IMG_0001``, False) for one named after the stem
    (it describes every ``IMG_0001.*`` photo in that folder); None when not a sidecar."""
    base, ext = os.path.splitext(sidecar_path)
    if ext.lower() != ".xmp" or not os.path.basename(base):
        return None
    return base, bool(os.path.splitext(base)[1])


def read(path: str) -> tuple[str, bytes] | None:
    """The first sidecar of the photo at ``path`` that exists (its path and at most
    :data:`MAX_SIDECAR_BYTES` of it), else None. A sidecar that cannot be read is skipped."""
    for candidate in candidates(path):
        try:
            with open(candidate, "rb") as f:
                data = f.read(MAX_SIDECAR_BYTES + 1)
        except OSError:
            continue
        return candidate, data
    return None
