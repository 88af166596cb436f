"""Embedded ICC profiles → sRGB.

Phones write Display P3 (iPhone HEIC/JPEG, many Android cameras), cameras and editors Adobe RGB,
print workflows CMYK with a profile. Reading those pixel values as sRGB, as a thumbnail without
its profile or a CLIP preprocess does, gives washed-out or shifted colours. So the decoded image
is converted from its embedded profile to sRGB once, at decode time, and both the thumbnails and
the embeddings see what a colour-managed viewer shows.

An sRGB profile, a profile whose colour space does not match the pixels, and a profile that
littlecms cannot parse are ignored (the pixels are used as stored): a broken profile is never a
reason to fail a photo. Transforms are cached per profile, so a library of photos from one
camera builds one transform.
"""

from __future__ import annotations

import functools
import io

from PIL import Image, ImageCms

__all__ = ["to_srgb"]

# The ICC header's data colour space signature (bytes 16..20) each Pillow mode can be converted
# from, and the mode the sRGB result has.
_SPACES = {"RGB": (b"RGB ", "RGB"), "RGBA": (b"RGB ", "RGBA"), "CMYK": (b"CMYK", "RGB")}
_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def to_srgb(image: Image.Image, icc: bytes | None) -> Image.Image:
    """``image`` converted from the ICC profile ``icc`` to sRGB, or ``image`` itself when there
    is nothing to convert. RGB and RGBA keep their mode (alpha untouched); CMYK becomes RGB."""
    if not icc or image.mode not in _SPACES or len(icc) < 128:
        return image
    space, out_mode = _SPACES[image.mode]
    if icc[16:20] != space:
        return image
    transform = _transform(icc, image.mode, out_mode)
    if transform is None:
        return image
    try:
        out = ImageCms.applyTransform(image, transform)  # None only when in place
        return image if out is None else out
    except (ImageCms.PyCMSError, OSError, ValueError):
        return image


@functools.lru_cache(maxsize=32)
def _transform(icc: bytes, in_mode: str, out_mode: str) -> ImageCms.ImageCmsTransform | None:
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        description = (ImageCms.getProfileDescription(profile) or "").strip()
        if in_mode != "CMYK" and description.lower().startswith("srgb"):
            return None  # already sRGB (e.g. "sRGB IEC61966-2.1", "sRGB built-in")
        return ImageCms.buildTransform(profile, _SRGB, in_mode, out_mode,
                                       renderingIntent=ImageCms.Intent.PERCEPTUAL)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return None
