"""watcherd.media.clipinput: the pixels prepared without torch give open_clip's own tensor, bit
for bit, after the lossless trip through a message."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from watcherd.media import clipinput
from watcherd.media.clipinput import InputSpec
from watcherd.media.embeddings import Embedder
from watcherd.media.images import decode
from watcherd.testing import write_model_dir

open_clip = pytest.importorskip("open_clip")


def _photo(width: int, height: int, mode: str = "RGB", seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([x / width * 255, y / height * 255, (x + y) % 97 * 2.6], axis=-1)
    noise = rng.normal(0, 18, (height, width, 3))
    image = Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8), "RGB")
    if mode == "RGBA":
        image.putalpha(Image.fromarray(((x // 7) % 2 * 255).astype(np.uint8), "L"))
    return image


@pytest.mark.parametrize("size,interpolation", [(224, "bicubic"), (64, "bilinear")])
@pytest.mark.parametrize("shape", [(640, 480), (333, 1001), (224, 224), (100, 50), (1, 300)])
def test_prepared_pixels_give_open_clips_tensor(size: int, interpolation: str,
                                                shape: tuple[int, int]) -> None:
    transform = open_clip.image_transform(size, is_train=False, interpolation=interpolation)
    spec = InputSpec(draft=size, resize=size, interpolation=interpolation, crop=(size, size))
    photo = _photo(*shape)
    wire = clipinput.to_wire(clipinput.prepare(photo, spec))
    received = clipinput.from_wire(wire, spec)
    assert torch.equal(transform(received), transform(photo))


def test_alpha_is_flattened_like_the_local_worker(tmp_path: Path) -> None:
    write_model_dir(tmp_path)
    embedder = Embedder(f"local-dir:{tmp_path}")
    spec = embedder.input_spec()
    assert spec == InputSpec(draft=64, resize=64, interpolation="bicubic", crop=(64, 64))
    photo = _photo(300, 200, "RGBA")
    received = clipinput.from_wire(clipinput.to_wire(clipinput.prepare(photo, spec)), spec)
    assert torch.equal(embedder.preprocess(received), embedder.preprocess(photo))


def test_a_drafted_jpeg_travels_within_200_kb_as_base64() -> None:
    """ViT-B-32's input (224 px) of a 12 MP photo, drafted like the local worker drafts it."""
    out = io.BytesIO()
    _photo(4000, 3000, seed=3).save(out, format="JPEG", quality=92)
    spec = InputSpec(draft=224, resize=224, interpolation="bicubic", crop=(224, 224))
    decoded = decode(out.getvalue(), max_pixels=100_000_000, draft_size=spec.draft)
    assert decoded.image.size == (500, 375)  # 1/8 DCT scaling: the local worker's input
    wire = clipinput.to_wire(clipinput.prepare(decoded.image, spec))
    assert len(base64.b64encode(wire)) < 200_000


def test_bad_wire_data_is_a_clear_error() -> None:
    spec = InputSpec(draft=64, resize=64, interpolation="bicubic", crop=(64, 64))
    with pytest.raises(clipinput.WireError, match="cannot be decoded"):
        clipinput.from_wire(b"not a webp", spec)
    wire = clipinput.to_wire(Image.new("RGB", (32, 32)))
    with pytest.raises(clipinput.WireError, match="32x32, the model takes 64x64"):
        clipinput.from_wire(wire, spec)


@pytest.mark.parametrize("raw,match", [
    ({"draft": 64}, "malformed"),
    ({"draft": 64, "resize": 64, "interpolation": "magic", "crop": [64, 64]}, "interpolation"),
    ({"draft": 64, "resize": 0, "interpolation": "bicubic", "crop": [64, 64]}, "out of range"),
    ("224", "expected an object"),
])
def test_bad_spec_is_a_clear_error(raw: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        InputSpec.from_json(raw)


def test_spec_round_trips_through_json() -> None:
    spec = InputSpec(draft=224, resize=224, interpolation="bicubic", crop=(224, 224))
    assert InputSpec.from_json(spec.to_json()) == spec
