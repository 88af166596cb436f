"""A CLIP model's input as pixels: the part of open_clip's preprocess that works on the image
(resize the shortest side, centre crop), done with Pillow alone, so that a process without torch
(the thumbnail worker on the photo server) can prepare exactly what a remote embedding worker
feeds its model.

:class:`InputSpec` says what to do (the embedding worker reads it off its model's own transform:
``Embedder.input_spec``); :func:`prepare` does it and returns an RGB image the size of the model
input; :func:`to_wire` / :func:`from_wire` move it losslessly (WebP lossless), so the tensor the
remote worker builds from it is the one a local worker builds from the photo, bit for bit.

Pillow only: no torch, no queue, no database.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass
from typing import Any

from PIL import Image

# torchvision's InterpolationMode values -> Pillow's filters (what torchvision itself maps them
# to for PIL images).
FILTERS = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR,
           "bicubic": Image.Resampling.BICUBIC, "lanczos": Image.Resampling.LANCZOS,
           "box": Image.Resampling.BOX, "hamming": Image.Resampling.HAMMING}


class WireError(ValueError):
    """Pixels from a message that cannot be read back; the message says why."""


@dataclass(frozen=True)
class InputSpec:
    """What a model's preprocess does to the image before it becomes a tensor."""

    draft: int  # JPEG draft decoding: smallest DCT scale with both sides >= this
    resize: int  # the shortest side after resizing
    interpolation: str  # a key of FILTERS
    crop: tuple[int, int]  # (height, width) of the centre crop

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "crop": list(self.crop)}

    @classmethod
    def from_json(cls, raw: Any) -> InputSpec:
        """Raises ValueError naming what is wrong."""
        if not isinstance(raw, dict):
            raise ValueError(f"input spec: expected an object, got {type(raw).__name__}")
        try:
            spec = cls(draft=int(raw["draft"]), resize=int(raw["resize"]),
                       interpolation=str(raw["interpolation"]),
                       crop=(int(raw["crop"][0]), int(raw["crop"][1])))
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise ValueError(f"input spec: malformed ({exc!r})") from None
        if spec.interpolation not in FILTERS:
            raise ValueError(f"input spec: unknown interpolation {spec.interpolation!r}")
        if not (0 < spec.resize <= 4096 and 0 < spec.crop[0] <= 4096 and 0 < spec.crop[1] <= 4096
                and 0 < spec.draft <= 4096):
            raise ValueError(f"input spec: sizes out of range: {raw!r}")
        return spec


def flatten(image: Image.Image) -> Image.Image:
    """RGB view of ``image``; transparency composited onto a white background (what a viewer
    shows), so a transparent area does not embed as whatever its hidden pixels hold."""
    if image.mode == "RGB":
        return image
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        image.mode == "P" and "transparency" in image.info
    )
    if not has_alpha:
        return image.convert("RGB")
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def prepare(image: Image.Image, spec: InputSpec) -> Image.Image:
    """torchvision's ``Resize(spec.resize)`` then ``CenterCrop(spec.crop)`` on a PIL image, with
    the same arithmetic (so the same pixels), after :func:`flatten`."""
    image = flatten(image)
    w, h = image.size
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = spec.resize, int(spec.resize * long / short)
    size = (new_short, new_long) if w <= h else (new_long, new_short)
    if size != (w, h):
        image = image.resize(size, FILTERS[spec.interpolation])
    return center_crop(image, spec.crop)


def center_crop(image: Image.Image, crop: tuple[int, int]) -> Image.Image:
    ch, cw = crop
    w, h = image.size
    if cw > w or ch > h:  # torchvision pads with black, then crops
        padded = Image.new("RGB", (max(w, cw), max(h, ch)), (0, 0, 0))
        padded.paste(image, ((cw - w) // 2 if cw > w else 0, (ch - h) // 2 if ch > h else 0))
        image = padded
        w, h = image.size
        if (w, h) == (cw, ch):
            return image
    top, left = round((h - ch) / 2.0), round((w - cw) / 2.0)  # torchvision: int(round(..))
    if (top, left, w, h) == (0, 0, cw, ch):
        return image
    return image.crop((left, top, left + cw, top + ch))


def to_wire(image: Image.Image) -> bytes:
    """Lossless WebP: the exact pixels, about a third of their raw size for a photo."""
    out = io.BytesIO()
    image.save(out, format="WEBP", lossless=True, quality=50, method=2, exact=True)
    return out.getvalue()


def from_wire(data: bytes, spec: InputSpec) -> Image.Image:
    """The RGB image :func:`to_wire` wrote; WireError when it is not one of the spec's size."""
    try:
        with Image.open(io.BytesIO(data), formats=["WEBP"]) as im:
            im.load()
            image = im.convert("RGB")
    except Exception as exc:  # Pillow raises many kinds for a damaged file
        raise WireError(f"pixels in the message cannot be decoded: {exc}") from None
    if image.size != (spec.crop[1], spec.crop[0]):
        raise WireError(f"pixels in the message are {image.size[0]}x{image.size[1]}, the model "
                        f"takes {spec.crop[1]}x{spec.crop[0]}")
    return image
