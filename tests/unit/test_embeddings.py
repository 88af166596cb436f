"""watcherd.media.embeddings against open_clip itself, with a tiny random-weight model on disk."""

from __future__ import annotations

import io
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

from tests.helpers import scene_image
from watcherd.media.embeddings import (
    Embedder,
    ModelLoadError,
    _hub_unreachable,
    from_blob,
    resolve_device,
    to_blob,
)
from watcherd.testing import TINY_MODEL_CFG, write_model_dir

open_clip = pytest.importorskip("open_clip")


# --------------------------------------------------------------------------- fixtures / helpers


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tiny-model")
    write_model_dir(path)
    return path


@pytest.fixture(scope="module")
def tiny_model(tiny_dir: Path) -> str:
    return f"local-dir:{tiny_dir}"


@pytest.fixture(scope="module")
def embedder(tiny_model: str) -> Embedder:
    return Embedder(tiny_model)


@pytest.fixture(scope="module")
def reference(tiny_model: str) -> tuple[Any, Any]:
    """open_clip's own model and eval transform for the same folder, built independently."""
    model, _, preprocess = open_clip.create_model_and_transforms(tiny_model)
    model.eval()
    return model, preprocess


def _reference_vector(reference: tuple[Any, Any], image: Image.Image) -> np.ndarray:
    model, preprocess = reference
    with torch.no_grad():
        feats = model.encode_image(preprocess(image).unsqueeze(0)).float()
    vec = feats[0].numpy()
    return vec / np.linalg.norm(vec)


def _photo_jpeg(width: int = 4000, height: int = 3000, seed: int = 0) -> bytes:
    """A photo-like JPEG: smooth gradients, shapes, fine texture (about 4 MB at 12 MP, q90)."""
    img = scene_image(width, height, seed).filter(ImageFilter.GaussianBlur(1.5))
    rng = np.random.default_rng(seed + 1000)
    texture = np.asarray(img, dtype=np.float32) + rng.normal(0, 10, (height, width, 1))
    img = Image.fromarray(np.clip(texture, 0, 255).astype(np.uint8), "RGB")
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _rgba(width: int, height: int, seed: int) -> Image.Image:
    img = scene_image(width, height, seed).convert("RGBA")
    alpha = np.tile(np.linspace(0, 255, width, dtype=np.float32), (height, 1))
    img.putalpha(Image.fromarray(alpha.astype(np.uint8), "L"))
    return img


def _on_white(image: Image.Image) -> Image.Image:
    background = Image.new("RGB", image.size, (255, 255, 255))
    background.paste(image.convert("RGB"), mask=image.getchannel("A"))
    return background


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


# --------------------------------------------------------------------------- loading / shape


def test_loads_tiny_local_dir(embedder: Embedder, tiny_model: str) -> None:
    assert embedder.model == tiny_model
    assert embedder.pretrained == ""
    assert embedder.device == "cpu"
    assert embedder.dim == 32
    assert embedder.input_size == 64
    x = embedder.preprocess(scene_image(120, 90, 0))
    assert x.shape == (3, 64, 64) and x.dtype == torch.float32
    out = embedder.encode([x])
    assert out.shape == (1, 32) and out.dtype == np.float32
    assert embedder.encode([]).shape == (0, 32)


def test_weights_really_come_from_the_folder(tmp_path: Path, embedder: Embedder) -> None:
    same = Embedder(write_model_dir(tmp_path / "same", seed=0))
    other = Embedder(write_model_dir(tmp_path / "other", seed=1))
    x = [embedder.preprocess(scene_image(200, 150, 3))]
    assert _cos(same.encode(x)[0], embedder.encode(x)[0]) > 0.99999
    assert _cos(other.encode(x)[0], embedder.encode(x)[0]) < 0.99


def test_builtin_name_with_checkpoint_file(tmp_path: Path, tiny_dir: Path) -> None:
    # Register the tiny architecture as a "built-in" and load it with pretrained=<file path>.
    cfg_dir = tmp_path / "configs"
    cfg_dir.mkdir()
    (cfg_dir / "watcherd-tiny-test.json").write_text(json.dumps(TINY_MODEL_CFG))
    open_clip.add_model_config(cfg_dir)
    weights = str(tiny_dir / "open_clip_model.safetensors")
    emb = Embedder("watcherd-tiny-test", pretrained=weights)
    assert (emb.model, emb.pretrained, emb.dim, emb.input_size) == (
        "watcherd-tiny-test",
        weights,
        32,
        64,
    )
    ref = Embedder(f"local-dir:{tiny_dir}")
    x = [emb.preprocess(scene_image(90, 160, 4))]
    assert _cos(emb.encode(x)[0], ref.encode(x)[0]) > 0.99999


def test_hf_hub_model_from_cache_without_network(
    tmp_path: Path, tiny_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import constants

    snapshot = tmp_path / "hub" / "models--acme--tiny-clip" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("0" * 40)
    for name in ("open_clip_config.json", "open_clip_model.safetensors"):
        shutil.copy(tiny_dir / name, snapshot / name)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    if _hub_unreachable() is None:  # online: exercise the same fallback via HF_HUB_OFFLINE
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    before = constants.HF_HUB_OFFLINE
    start = time.monotonic()
    emb = Embedder("hf-hub:acme/tiny-clip")
    assert time.monotonic() - start < 10  # no retry/backoff loop
    assert emb.dim == 32
    assert constants.HF_HUB_OFFLINE is before  # the offline switch is scoped to the load


# --------------------------------------------------------------------------- fidelity


def _test_images() -> list[Image.Image]:
    return [
        scene_image(640, 480, 1),  # landscape
        scene_image(300, 500, 2),  # portrait
        scene_image(1200, 300, 3),  # panorama
        scene_image(40, 30, 4),  # smaller than the model input: upscaled
        scene_image(256, 256, 5).convert("L"),  # greyscale
    ]


def test_matches_open_clip_reference(embedder: Embedder, reference: tuple[Any, Any]) -> None:
    images = _test_images()
    vectors = embedder.encode([embedder.preprocess(im) for im in images])
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    for image, vec in zip(images, vectors, strict=True):
        assert _cos(vec, _reference_vector(reference, image)) >= 0.999
    # The images are told apart (the check above is not trivially satisfied).
    assert max(_cos(vectors[0], v) for v in vectors[1:]) < 0.999


def test_rgba_is_flattened_onto_white(embedder: Embedder, reference: tuple[Any, Any]) -> None:
    image = _rgba(320, 240, 6)
    vec = embedder.encode([embedder.preprocess(image)])[0]
    assert abs(float(np.linalg.norm(vec)) - 1.0) < 1e-5
    assert _cos(vec, _reference_vector(reference, _on_white(image))) >= 0.999
    # An opaque RGBA image embeds exactly like its RGB version.
    rgb = scene_image(320, 240, 7)
    a, b = embedder.encode([embedder.preprocess(rgb), embedder.preprocess(rgb.convert("RGBA"))])
    assert _cos(a, b) > 0.99999


def test_batch_equals_one_at_a_time(embedder: Embedder) -> None:
    tensors = [embedder.preprocess(scene_image(200 + 40 * i, 180, 10 + i)) for i in range(5)]
    batched = embedder.encode(tensors)
    assert batched.shape == (5, 32)
    for tensor, row in zip(tensors, batched, strict=True):
        assert _cos(embedder.encode([tensor])[0], row) >= 0.9999


def test_jpeg_draft_preshrink_keeps_the_embedding(embedder: Embedder) -> None:
    data = _photo_jpeg(4000, 3000)
    side = embedder.input_size

    def embed(draft: int | None, nearest_div: int | None = None) -> tuple[np.ndarray, Image.Image]:
        with Image.open(io.BytesIO(data)) as im:
            if draft is not None:
                im.draft("RGB", (draft, draft))
            rgb = im.convert("RGB")
        if nearest_div is not None:
            rgb = rgb.resize((rgb.width // nearest_div, rgb.height // nearest_div), Image.NEAREST)
        return embedder.encode([embedder.preprocess(rgb)])[0], rgb

    full, full_img = embed(None)
    drafted, draft_img = embed(2 * side)
    assert full_img.size == (4000, 3000)
    assert draft_img.size == (500, 375)  # libjpeg's 1/8 scale: still >= 2 * input_size
    assert _cos(full, drafted) >= 0.9999
    # A crude nearest-neighbour 1/8 shrink moves the vector several times more than the draft
    # decode does: the tolerance above is not vacuous for this model.
    crude, _ = embed(None, nearest_div=8)
    assert 1 - _cos(full, drafted) < (1 - _cos(full, crude)) / 2


# --------------------------------------------------------------------------- blobs / devices


def test_blob_round_trip() -> None:
    vec = np.random.default_rng(0).standard_normal(32).astype(np.float64)
    blob = to_blob(vec)
    assert isinstance(blob, bytes) and len(blob) == 32 * 4
    assert blob == vec.astype("<f4").tobytes()
    back = from_blob(blob)
    assert back.dtype == np.dtype("<f4") and back.shape == (32,)
    np.testing.assert_array_equal(back, vec.astype(np.float32))
    back[0] = 1.0  # writable copy
    with pytest.raises(ValueError):
        from_blob(b"\x00" * 7)


def test_blob_of_encoded_row(embedder: Embedder) -> None:
    row = embedder.encode([embedder.preprocess(scene_image(64, 64, 9))])[0]
    assert len(to_blob(row)) == embedder.dim * 4
    np.testing.assert_array_equal(from_blob(to_blob(row)), row)


def test_resolve_device() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto") == expected
    for device in ("cpu", "cuda", "cuda:1"):
        assert resolve_device(device) == device
    for bad in ("gpu", "CUDA", "cuda:", "cuda:x", "mps", ""):
        with pytest.raises(ValueError):
            resolve_device(bad)
    with pytest.raises(ValueError):
        Embedder("local-dir:/nowhere", device="tpu")


# --------------------------------------------------------------------------- load errors


def _load_error(*args: Any, **kwargs: Any) -> str:
    with pytest.raises(ModelLoadError) as info:
        Embedder(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message and message
    return message


def test_error_local_dir_missing(tmp_path: Path) -> None:
    message = _load_error(f"local-dir:{tmp_path / 'absent'}")
    assert "does not exist" in message and str(tmp_path / "absent") in message


def test_error_local_dir_without_weights(tmp_path: Path, tiny_dir: Path) -> None:
    shutil.copy(tiny_dir / "open_clip_config.json", tmp_path / "open_clip_config.json")
    message = _load_error(f"local-dir:{tmp_path}")
    assert "no weights file (*.safetensors/*.bin/*.pth)" in message and str(tmp_path) in message


def test_error_local_dir_without_config(tmp_path: Path) -> None:
    assert "open_clip_config.json" in _load_error(f"local-dir:{tmp_path}")


def test_error_checkpoint_path_missing() -> None:
    message = _load_error("ViT-B-32", pretrained="/nonexistent/file.pt")
    assert "/nonexistent/file.pt" in message and "ViT-B-32" in message
    assert "laion2b_s34b_b79k" in message  # lists known tags


def test_error_unknown_tag() -> None:
    message = _load_error("ViT-B-32", pretrained="no_such_tag_v9")
    assert "no_such_tag_v9" in message and "known" in message


def test_error_unknown_architecture_and_missing_pretrained() -> None:
    assert "unknown model 'ViT-Nope-99'" in _load_error("ViT-Nope-99", pretrained="x")
    assert "pretrained is required" in _load_error("ViT-B-32")


def test_error_broken_checkpoint(tmp_path: Path, tiny_dir: Path) -> None:
    shutil.copy(tiny_dir / "open_clip_config.json", tmp_path / "open_clip_config.json")
    (tmp_path / "open_clip_model.safetensors").write_bytes(b"not a safetensors file")
    message = _load_error(f"local-dir:{tmp_path}")
    assert f"local-dir:{tmp_path}" in message


def test_error_cuda_unavailable(tiny_model: str) -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    assert "CUDA" in _load_error(tiny_model, device="cuda")


@pytest.fixture
def offline() -> Iterator[None]:
    if _hub_unreachable() is None:
        pytest.skip("the Hugging Face hub is reachable: this test is about the offline case")
    yield


@pytest.mark.usefixtures("offline")
def test_error_named_tag_without_network_fails_fast() -> None:
    start = time.monotonic()
    message = _load_error("ViT-B-32", pretrained="laion2b_s34b_b79k")
    elapsed = time.monotonic() - start
    assert "cannot download weights for tag 'laion2b_s34b_b79k'" in message
    assert "no network?" in message
    assert elapsed < 5, f"took {elapsed:.1f}s"


@pytest.mark.usefixtures("offline")
def test_error_hf_hub_without_network_fails_fast() -> None:
    start = time.monotonic()
    message = _load_error("hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K")
    assert "no network?" in message and time.monotonic() - start < 5


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_every_precision_matches_the_fp32_reference(tiny_model: str, precision: str,
                                                     reference: tuple[Any, Any]) -> None:
    """A precision change is not a model change: the vectors stay within cosine 0.999 of
    open_clip's own float32 encode_image."""
    emb = Embedder(tiny_model, None, "cpu", precision=precision)
    assert emb.precision == precision
    images = _test_images()
    vectors = emb.encode([emb.preprocess(im) for im in images])
    assert vectors.dtype == np.float32
    for image, vec in zip(images, vectors, strict=True):
        assert _cos(vec, _reference_vector(reference, image)) >= 0.999, precision
    if precision != "fp32":  # and it really computed in that format
        fp32 = Embedder(tiny_model, None, "cpu", precision="fp32")
        exact = fp32.encode([fp32.preprocess(im) for im in images])
        assert np.abs(vectors - exact).max() > 1e-4, precision


def test_auto_precision_follows_the_cpu() -> None:
    from watcherd.media import precision as p

    x86 = "processor : 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16\n"
    old = "processor : 0\nflags\t\t: fpu sse2 avx2 avx512f avx512bw\n"
    arm = "processor : 0\nFeatures\t: fp asimd sve bf16\n"
    assert p.resolve("auto", "cpu", p.cpu_flags(x86)) == "bf16"
    assert p.resolve("auto", "cpu", p.cpu_flags(old)) == "fp32"
    assert p.resolve("auto", "cpu", p.cpu_flags(arm)) == "bf16"
    assert p.resolve("auto", "cuda:0", frozenset()) == "fp16"
    assert p.resolve("fp32", "cuda", frozenset()) == "fp32"
    with pytest.raises(ValueError, match="precision must be one of"):
        p.resolve("int8", "cpu", frozenset())
