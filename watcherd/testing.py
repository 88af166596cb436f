"""Helpers for tests and benchmarks: random-weight open_clip models on disk.

:func:`write_model_dir` writes a ``local-dir:`` model folder (``open_clip_config.json`` plus
``open_clip_model.safetensors``) so that ``Embedder(f"local-dir:{path}")`` loads it through the
same open_clip code path production uses, with no network and no downloaded weights.
torch and open_clip are imported lazily so importing this module is free.
"""

from __future__ import annotations

import json
from copy import deepcopy
from pathlib import Path
from typing import Any

__all__ = ["TINY_MODEL_CFG", "write_model_dir"]

#: A tiny ViT CLIP (about 1.7 M parameters, mostly the tokenizer-compatible text embedding):
#: 64 px input, 16 px patches, 32-dim embeddings.  Loads and runs in milliseconds on a CPU.
TINY_MODEL_CFG: dict[str, Any] = {
    "embed_dim": 32,
    "vision_cfg": {
        "image_size": 64,
        "layers": 2,
        "width": 64,
        "head_width": 32,
        "patch_size": 16,
    },
    "text_cfg": {
        "context_length": 16,
        "vocab_size": 49408,  # open_clip's SimpleTokenizer vocabulary, so get_tokenizer works
        "width": 32,
        "heads": 2,
        "layers": 1,
    },
}


def _model_cfg(arch: str) -> dict[str, Any]:
    if arch == "tiny":
        return deepcopy(TINY_MODEL_CFG)
    import open_clip

    cfg = open_clip.get_model_config(arch)
    if cfg is None:
        raise ValueError(f"unknown arch {arch!r}: 'tiny' or a built-in open_clip model name")
    return dict(cfg)


def _preprocess_cfg(model_cfg: dict[str, Any]) -> dict[str, Any]:
    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

    size = model_cfg["vision_cfg"].get("image_size", 224)
    return {
        "size": list(size) if isinstance(size, tuple | list) else size,
        "mode": "RGB",
        "mean": list(OPENAI_DATASET_MEAN),
        "std": list(OPENAI_DATASET_STD),
        "interpolation": "bicubic",
        "resize_mode": "shortest",
        "fill_color": 0,
    }


def write_model_dir(path: Path, *, arch: str = "tiny", seed: int = 0) -> str:
    """Write a random-weight open_clip model into ``path``; return ``"local-dir:{path}"``.

    ``arch`` is ``"tiny"`` (see :data:`TINY_MODEL_CFG`) or a built-in open_clip architecture such
    as ``"ViT-B-32"`` (same compute as the trained model, random weights: for benchmarks).  The
    weights are deterministic for a given ``seed``.
    """
    import open_clip
    import torch
    from safetensors.torch import save_file

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model_cfg = _model_cfg(arch)
    config = {"model_cfg": model_cfg, "preprocess_cfg": _preprocess_cfg(model_cfg)}

    torch.manual_seed(seed)
    # Build exactly as open_clip's factory does for a local-dir config (custom_text models too).
    build_cfg = deepcopy(model_cfg)
    custom_text = bool(build_cfg.pop("custom_text", False)) or "hf_model_name" in build_cfg.get(
        "text_cfg", {}
    )
    model_class = open_clip.CustomTextCLIP if custom_text else open_clip.CLIP
    model = model_class(**build_cfg)
    # safetensors refuses shared or non-contiguous storage: give every tensor its own copy.
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    weights = path / "open_clip_model.safetensors"
    save_file(state, str(weights))
    weights.chmod(0o644)  # safetensors writes 0600: a service user could not read it
    (path / "open_clip_config.json").write_text(json.dumps(config, indent=2) + "\n")
    return f"local-dir:{path}"
