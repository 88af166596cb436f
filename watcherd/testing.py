"""Helpers for tests and benchmarks: random-weight open_clip models on disk.

:func:`write_model_dir` writes a ``local-dir:`` model folder (``open_clip_config.json`` plus
``open_clip_model.safetensors``) so that ``Embedder(f"local-dir:{path}")`` loads it through the
same open_clip code path production uses, with no network and no downloaded weights.
torch and open_clip are imported lazily so importing this module is free.
"""

from __future__ import annotations

import json
import struct
from copy import deepcopy
from pathlib import Path
from typing import Any

__all__ = ["DISPLAY_P3_PRIMARIES", "SRGB_PRIMARIES", "TINY_MODEL_CFG", "rgb_icc_profile",
           "write_model_dir"]

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


#: D50-adapted colorant XYZ of common RGB spaces (as in their ICC profiles' rXYZ/gXYZ/bXYZ).
SRGB_PRIMARIES = ((0.4361, 0.2225, 0.0139), (0.3851, 0.7169, 0.0971), (0.1431, 0.0606, 0.7141))
DISPLAY_P3_PRIMARIES = ((0.5151, 0.2412, -0.0011), (0.2920, 0.6922, 0.0419),
                        (0.1571, 0.0666, 0.7841))


def rgb_icc_profile(primaries: tuple[tuple[float, float, float], ...], gamma: float = 2.2,
                    description: str = "watcherd test RGB") -> bytes:
    """A minimal ICC v2 display profile (matrix + gamma curves), as cameras and phones embed:
    e.g. ``rgb_icc_profile(DISPLAY_P3_PRIMARIES, description="Display P3")``. No profile files
    ship with this machine, and Pillow can only create sRGB/LAB/XYZ ones."""
    def s15f16(v: float) -> bytes:
        return struct.pack(">i", round(v * 65536))

    def xyz(v: tuple[float, float, float]) -> bytes:
        return b"XYZ \0\0\0\0" + b"".join(s15f16(c) for c in v)

    text = description.encode("ascii") + b"\0"
    desc = (b"desc\0\0\0\0" + struct.pack(">I", len(text)) + text
            + struct.pack(">II", 0, 0) + struct.pack(">HB", 0, 0) + b"\0" * 67)
    curve = b"curv\0\0\0\0" + struct.pack(">IH", 1, round(gamma * 256)) + b"\0\0"
    d50 = (0.9642, 1.0, 0.8249)
    tags = [(b"desc", desc), (b"wtpt", xyz(d50)), (b"rXYZ", xyz(primaries[0])),
            (b"gXYZ", xyz(primaries[1])), (b"bXYZ", xyz(primaries[2])),
            (b"rTRC", curve), (b"gTRC", curve), (b"bTRC", curve)]
    offset = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for sig, data in tags:
        data += b"\0" * (-len(data) % 4)
        table += sig + struct.pack(">II", offset + len(body), len(data))
        body += data
    size = offset + len(body)
    header = (struct.pack(">I", size) + b"lcms" + bytes([2, 0x10, 0, 0]) + b"mntrRGB XYZ "
              + struct.pack(">6H", 2026, 1, 1, 0, 0, 0) + b"acsp" + b"\0" * 24
              + struct.pack(">I", 0) + xyz(d50)[8:] + b"\0" * 48)
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + body
