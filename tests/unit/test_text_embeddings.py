"""Embedder.encode_text against open_clip's own text encoding, for each kind of model name that
can be loaded without network: local-dir:, a built-in name with a checkpoint file, hf-hub: from
the local cache."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from watcherd.media.embeddings import Embedder, _hub_unreachable
from watcherd.testing import TINY_MODEL_CFG, write_model_dir

open_clip = pytest.importorskip("open_clip")

TEXTS = ["a birthday cake with candles", "the red car at the beach", "", "ÉTÉ à Paris 🌞",
         "a very long query " * 20]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tiny-text-model")
    write_model_dir(path, seed=3)
    return path


def reference_text(model_name: str, texts: list[str], pretrained: str | None = None) -> Any:
    """open_clip's own: normalize(encode_text(get_tokenizer(model)(texts))), built independently."""
    model, _, _ = open_clip.create_model_and_transforms(model_name, pretrained=pretrained)
    model.eval()
    tokenizer = open_clip.get_tokenizer(model_name)
    with torch.no_grad():
        feats = model.encode_text(tokenizer(texts)).float()
    return torch.nn.functional.normalize(feats, dim=-1).numpy()


def assert_same_vectors(got: np.ndarray, ref: np.ndarray) -> None:
    assert got.shape == ref.shape and got.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    cosines = np.sum(got * ref, axis=1)
    assert cosines.min() >= 0.999, cosines


def test_local_dir_text_equals_open_clip(tiny_dir: Path) -> None:
    name = f"local-dir:{tiny_dir}"
    emb = Embedder(name)
    got = emb.encode_text(TEXTS)
    assert_same_vectors(got, reference_text(name, TEXTS))
    # Different texts give different vectors (the check above is not vacuous).
    assert float(got[0] @ got[1]) < 0.999
    # One at a time equals the batch; nothing to encode is an empty matrix.
    for i, text in enumerate(TEXTS):
        np.testing.assert_allclose(emb.encode_text([text])[0], got[i], atol=1e-5)
    assert emb.encode_text([]).shape == (0, emb.dim)


def test_text_only_embedder_frees_its_image_tower(tiny_dir: Path) -> None:
    """The web server keeps only the text tower: same text vectors, fewer parameters held."""
    emb = Embedder(f"local-dir:{tiny_dir}")
    before = emb.encode_text(TEXTS)
    held = sum(p.numel() for p in emb._net.parameters())
    emb.drop_image_tower()
    assert sum(p.numel() for p in emb._net.parameters()) < held
    np.testing.assert_allclose(emb.encode_text(TEXTS), before, atol=1e-6)


def test_builtin_name_with_checkpoint_text_equals_open_clip(tmp_path: Path,
                                                             tiny_dir: Path) -> None:
    cfg_dir = tmp_path / "configs"
    cfg_dir.mkdir()
    (cfg_dir / "watcherd-tiny-text.json").write_text(json.dumps(TINY_MODEL_CFG))
    open_clip.add_model_config(cfg_dir)
    weights = str(tiny_dir / "open_clip_model.safetensors")
    emb = Embedder("watcherd-tiny-text", pretrained=weights)
    assert_same_vectors(emb.encode_text(TEXTS),
                        reference_text("watcherd-tiny-text", TEXTS, pretrained=weights))


def test_hf_hub_text_from_cache_without_network(tmp_path: Path, tiny_dir: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    snapshot = tmp_path / "hub" / "models--acme--tiny-text" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("0" * 40)
    for name in ("open_clip_config.json", "open_clip_model.safetensors"):
        shutil.copy(tiny_dir / name, snapshot / name)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    if _hub_unreachable() is None:  # online: exercise the same fallback via HF_HUB_OFFLINE
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    emb = Embedder("hf-hub:acme/tiny-text")
    got = emb.encode_text(TEXTS)  # the tokenizer's config comes from the cache, offline
    assert_same_vectors(got, reference_text(f"local-dir:{tiny_dir}", TEXTS))
