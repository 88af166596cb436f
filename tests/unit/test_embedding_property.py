"""Property: mutated image bytes make the embedding path (decode with draft_size → preprocess →
encode on the tiny model) and the thumbnail code raise only ImageError, never anything else.
(The thumbnail-only property lives in tests/unit/test_thumbnails.py.)"""

from __future__ import annotations

import contextlib
import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from watcherd.media.images import ImageError, decode
from watcherd.media.thumbnails import make_thumbnails

MAX_PIXELS = 4_000_000


def _seeds() -> list[bytes]:
    out = []
    base = Image.new("RGB", (48, 32), (200, 40, 40))
    base.paste((40, 40, 200), (0, 0, 24, 16))
    for fmt, params in [("JPEG", {"quality": 90}), ("PNG", {}), ("WEBP", {}), ("GIF", {}),
                        ("TIFF", {}), ("BMP", {}), ("HEIF", {"quality": 80}),
                        ("AVIF", {"quality": 80})]:
        buf = io.BytesIO()
        base.save(buf, fmt, **params)
        out.append(buf.getvalue())
    return out


SEEDS = _seeds()


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "truncate", "insert", "delete"]))
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[at] = draw(st.integers(0, 255))
        elif op == "truncate":
            del data[at:]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        else:
            del data[at:at + draw(st.integers(1, 16))]
    return bytes(data)


@pytest.fixture(scope="module")
def embedder(tiny_model: str):  # type: ignore[no-untyped-def]
    from watcherd.media.embeddings import Embedder

    return Embedder(tiny_model, None, "cpu")


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=mutated())
def test_mutated_bytes_raise_only_image_error(embedder, data: bytes) -> None:  # type: ignore[no-untyped-def]
    try:
        decoded = decode(data, max_pixels=MAX_PIXELS, draft_size=embedder.input_size)
    except ImageError:
        pass
    else:
        vectors = embedder.encode([embedder.preprocess(decoded.image)])
        assert vectors.shape == (1, embedder.dim)
    with contextlib.suppress(ImageError):
        make_thumbnails(data, [64, 256], max_pixels=MAX_PIXELS)
