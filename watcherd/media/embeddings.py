"""CLIP embeddings of images and of text queries through open_clip.

Plain values in, plain values out: this module knows nothing of the queue, the configuration
or the database.  An :class:`Embedder` loads one open_clip model once (through open_clip's normal
``create_model_from_pretrained`` path) and turns preprocessed images into L2-normalised float32
vectors, and text into vectors of the same space (:meth:`Embedder.encode_text`, open_clip's own
tokenizer for the model, loaded on first use); :func:`to_blob` / :func:`from_blob` give the storage
format (little-endian float32).

Model sources accepted (exactly what open_clip accepts):

* a built-in architecture plus a pretrained tag: ``Embedder("ViT-B-32", "laion2b_s34b_b79k")``
  (downloaded through the Hugging Face hub and cached there);
* a built-in architecture plus a checkpoint file: ``Embedder("ViT-B-32", "/models/b32.pt")``;
* ``"hf-hub:ORG/REPO"`` (config and weights from the hub);
* ``"local-dir:/path"`` (``open_clip_config.json`` and a weights file in that folder).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from watcherd.media import precision as precisions
from watcherd.media.clipinput import InputSpec
from watcherd.media.clipinput import flatten as _flatten

__all__ = [
    "Embedder",
    "ModelLoadError",
    "from_blob",
    "resolve_device",
    "to_blob",
]

_HF_HUB_PREFIX = "hf-hub:"
_LOCAL_DIR_PREFIX = "local-dir:"
_WEIGHT_GLOBS = ("*.safetensors", "*.bin", "*.pth")
_DEVICE_RE = re.compile(r"cuda(:\d+)?")
# How long the reachability probe of the Hugging Face hub may take before we call it unreachable.
_HUB_PROBE_TIMEOUT_S = 5.0
_BLOB_DTYPE = np.dtype("<f4")

# Serialises the (process-wide) switch of huggingface_hub into offline mode during a load.
_HUB_LOCK = threading.Lock()


class ModelLoadError(Exception):
    """The model or its weights could not be loaded; str(exc) is a one-line reason for users."""


def resolve_device(device: str) -> str:
    """``"auto"`` -> ``"cuda"`` when CUDA is usable, else ``"cpu"``; ``cpu``/``cuda``/``cuda:N``
    pass through unchanged; anything else raises ValueError."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu" or _DEVICE_RE.fullmatch(device):
        return device
    raise ValueError(f"unknown device {device!r} (expected 'auto', 'cpu', 'cuda' or 'cuda:N')")


def to_blob(vector: np.ndarray) -> bytes:
    """One embedding as ``dim`` little-endian float32 values."""
    return np.asarray(vector).astype(_BLOB_DTYPE).tobytes()


def from_blob(blob: bytes) -> np.ndarray:
    """Inverse of :func:`to_blob`: a 1-D little-endian float32 array (a copy, writable)."""
    if len(blob) % _BLOB_DTYPE.itemsize:
        raise ValueError(f"embedding blob of {len(blob)} bytes is not a whole number of float32")
    return np.frombuffer(blob, dtype=_BLOB_DTYPE).copy()


def _one_line(text: str, limit: int = 400) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _describe(model: str, pretrained: str) -> str:
    return f"model {model!r}" + (f" pretrained {pretrained!r}" if pretrained else "")


def _hub_unreachable() -> str | None:
    """None when the Hugging Face hub answers (any HTTP status), else why it does not.

    Uses huggingface_hub's own HTTP session, so HF_ENDPOINT, proxies and certificates are the
    ones a download would use.  Without this probe an offline machine spends ~45 s in
    huggingface_hub's retry/backoff loop (5 retries, two file names) before failing.
    """
    try:
        from huggingface_hub import constants, get_session
    except ImportError:  # open_clip then fails on its own, quickly
        return None
    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set"
    try:
        get_session().head(constants.ENDPOINT, timeout=_HUB_PROBE_TIMEOUT_S)
    except Exception as exc:  # httpx connect/timeout/proxy errors: the hub cannot be reached
        return f"{constants.ENDPOINT} unreachable: {_one_line(str(exc), 120)}"
    return None


@contextmanager
def _hub_offline(enabled: bool) -> Iterator[None]:
    """Put huggingface_hub in offline mode for the duration of the block.

    Offline mode makes hub look-ups fail at once and fall back to the local cache, so weights
    already cached still load without network and missing ones fail immediately.  The switch
    (huggingface_hub.constants.HF_HUB_OFFLINE) is process-wide but only for the block: the previous
    value is restored, concurrent loads are serialised by a lock, and the HF_HUB_OFFLINE
    environment variable is never touched.
    """
    if not enabled:
        yield
        return
    from huggingface_hub import constants

    with _HUB_LOCK:
        previous = constants.HF_HUB_OFFLINE
        constants.HF_HUB_OFFLINE = True
        try:
            yield
        finally:
            constants.HF_HUB_OFFLINE = previous


def _check_source(model: str, pretrained: str) -> bool:
    """Validate what can be validated without loading; return whether the hub is needed.

    Raises ModelLoadError with a user-facing message for the obvious mistakes, most importantly a
    ``local-dir:`` without weights (open_clip would only warn and use random weights).
    """
    import open_clip

    desc = _describe(model, pretrained)
    if model.startswith(_LOCAL_DIR_PREFIX):
        if pretrained:
            raise ModelLoadError(f"{desc}: pretrained must be empty for local-dir: models")
        folder = Path(model[len(_LOCAL_DIR_PREFIX) :]).expanduser()
        if not folder.is_dir():
            raise ModelLoadError(f"{desc}: directory {folder} does not exist")
        if not (folder / "open_clip_config.json").is_file():
            raise ModelLoadError(f"{desc}: no open_clip_config.json in {folder}")
        weights = [w for pattern in _WEIGHT_GLOBS for w in folder.glob(pattern)]
        if not weights:
            raise ModelLoadError(f"{desc}: no weights file (*.safetensors/*.bin/*.pth) in {folder}")
        _check_readable(desc, [folder / "open_clip_config.json", *weights])
        return False
    if model.startswith(_HF_HUB_PREFIX):
        if pretrained:
            raise ModelLoadError(f"{desc}: pretrained must be empty for hf-hub: models")
        if not model[len(_HF_HUB_PREFIX) :].strip("/"):
            raise ModelLoadError(f"{desc}: empty repository after 'hf-hub:'")
        return True
    arch = model.replace("/", "-")  # what open_clip looks up
    if arch not in open_clip.list_models():
        raise ModelLoadError(
            f"unknown model {model!r}: not a built-in open_clip architecture "
            "(use a name from open_clip.list_models(), hf-hub:ORG/REPO or local-dir:PATH)"
        )
    tags = open_clip.list_pretrained_tags_by_model(arch)
    if not pretrained:
        raise ModelLoadError(
            f"{desc}: pretrained is required (a tag such as {', '.join(tags[:4]) or 'none known'}"
            " or a checkpoint file path)"
        )
    if open_clip.get_pretrained_cfg(arch, pretrained):
        return True
    if Path(pretrained).expanduser().is_file():
        _check_readable(desc, [Path(pretrained).expanduser()])
        return False
    shown = ", ".join(tags[:8]) + (", ..." if len(tags) > 8 else "")
    raise ModelLoadError(
        f"{desc}: {pretrained!r} is neither a known tag for {arch} (known: {shown or 'none'})"
        " nor an existing checkpoint file"
    )


def _check_readable(desc: str, files: Sequence[Path]) -> None:
    """safetensors reports an unreadable file as "No such file or directory": say it plainly."""
    import os

    for f in files:
        if not os.access(f, os.R_OK):
            raise ModelLoadError(f"{desc}: permission denied reading {f} (as uid {os.getuid()})")


class Embedder:
    """One open_clip model loaded once, used to embed images (and text queries).

    ``precision`` is what the model computes in (``fp32``, ``bf16``, ``fp16``; see
    :mod:`watcherd.media.precision`; the vectors are float32 whatever it is).
    ``model``/``pretrained`` are kept as given (``pretrained`` is ``""`` when None) so callers can
    record which model produced a vector; ``device`` is the resolved device; ``dim`` the
    embedding size; ``input_size`` the square side the preprocess produces (for JPEG draft
    decoding).
    """

    model: str
    pretrained: str
    device: str
    dim: int
    input_size: int

    def __init__(self, model: str, pretrained: str | None = None, device: str = "auto",
                 precision: str = "fp32") -> None:
        self.model = model
        self.pretrained = pretrained or ""
        self.device = resolve_device(device)
        self.precision = precisions.resolve(precision, self.device)
        desc = _describe(self.model, self.pretrained)
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise ModelLoadError(
                f"{desc}: device {self.device!r} requested but CUDA is unavailable"
            )

        try:
            import open_clip
        except ImportError as exc:  # pragma: no cover - a broken install
            raise ModelLoadError(f"{desc}: open_clip is not importable ({exc})") from exc

        needs_hub = _check_source(self.model, self.pretrained)
        offline_reason = _hub_unreachable() if needs_hub else None
        self._hub_unreachable = offline_reason is not None
        self._tokenizer: Callable[[Sequence[str]], torch.Tensor] | None = None
        try:
            with _hub_offline(offline_reason is not None):
                net, transform = open_clip.create_model_from_pretrained(
                    self.model,
                    pretrained=self.pretrained or None,
                    device=self.device,
                    precision=self.precision,
                    return_transform=True,
                )
        except Exception as exc:
            raise ModelLoadError(self._load_failure(desc, exc, offline_reason)) from exc

        net.eval()
        self._net: Any = net
        self._transform: Callable[[Image.Image], torch.Tensor] = transform
        self.dim = int(self._infer_dim(net))
        size = net.visual.preprocess_cfg.get("size", getattr(net.visual, "image_size", 224))
        self.input_size = int(max(size) if isinstance(size, tuple | list) else size)
        self._device = torch.device(self.device)
        # open_clip's own precision: bf16/fp16 weights for the matrix products, LayerNorm kept
        # in fp32. (torch.autocast on the CPU re-casts every weight on every forward pass:
        # measured 2.4x slower than fp32 for ViT-B-32 here, where these weights are 2x faster.)
        self._input_dtype = open_clip.get_input_dtype(self.precision) or torch.float32

    def _load_failure(self, desc: str, exc: BaseException, offline_reason: str | None) -> str:
        cause = _one_line(str(exc)) or type(exc).__name__
        if offline_reason is not None and _is_cache_miss(exc):
            what = (
                f"cannot download weights for tag {self.pretrained!r}"
                if self.pretrained
                else "cannot download config/weights from the Hugging Face hub"
            )
            return f"{desc}: {what} and they are not cached (no network? {offline_reason})"
        if offline_reason is not None:
            cause = f"{cause} (hub unreachable: {offline_reason})"
        if isinstance(exc, OSError):
            return f"{desc}: {cause}"
        return f"{desc}: {type(exc).__name__}: {cause}"

    @staticmethod
    def _infer_dim(net: Any) -> int:
        dim = getattr(net.visual, "output_dim", None)
        if isinstance(dim, int):
            return dim
        proj = getattr(net.visual, "proj", None)
        if isinstance(proj, torch.Tensor):
            return int(proj.shape[-1])
        size = net.visual.preprocess_cfg.get("size", 224)
        height, width = (size, size) if isinstance(size, int) else size
        with torch.inference_mode():
            probe = torch.zeros(1, 3, height, width, device=next(net.parameters()).device)
            return int(net.encode_image(probe).shape[-1])

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """open_clip's own eval transform, as a (3, S, S) float32 CPU tensor.

        Images with transparency are flattened onto white first (what a viewer shows), so a
        transparent area does not embed as whatever colour its hidden pixels happen to hold.
        """
        return self._transform(_flatten(image))

    def input_spec(self) -> InputSpec | None:
        """The image part of this model's preprocess as plain values (what a photo server needs
        to prepare this model's input without torch: ``watcherd.media.clipinput``), or None
        when it is not the usual Resize(shortest side) + CenterCrop (then the photo cannot be
        prepared elsewhere for this model)."""
        from torchvision import transforms as tv

        steps = list(getattr(self._transform, "transforms", []))
        kinds = [type(t).__name__ for t in steps]
        if kinds[:2] != ["Resize", "CenterCrop"] or len(steps) < 3:
            return None
        resize, crop = steps[0], steps[1]
        if not isinstance(resize, tv.Resize) or not isinstance(crop, tv.CenterCrop):
            return None
        size = resize.size[0] if isinstance(resize.size, list | tuple) and len(
            resize.size) == 1 else resize.size
        if not isinstance(size, int) or resize.max_size is not None:
            return None
        interpolation = str(getattr(resize.interpolation, "value", resize.interpolation))
        return InputSpec(draft=self.input_size, resize=size, interpolation=interpolation,
                         crop=(int(crop.size[0]), int(crop.size[1])))

    def encode(self, batch: Sequence[torch.Tensor]) -> np.ndarray:
        """Embed preprocessed images in one forward pass: (n, dim) float32, rows L2-normalised."""
        if len(batch) == 0:
            return np.empty((0, self.dim), dtype=np.float32)
        pixels = torch.stack(list(batch))
        with torch.inference_mode():
            pixels = pixels.to(self._device, dtype=self._input_dtype,
                               non_blocking=self._device.type == "cuda")
            features = self._net.encode_image(pixels)
            features = torch.nn.functional.normalize(features.float(), dim=-1)
        return features.cpu().numpy().astype(np.float32, copy=False)

    def encode_text(self, texts: Sequence[str]) -> np.ndarray:
        """Embed text queries: (n, dim) float32, rows L2-normalised, i.e. open_clip's own
        ``normalize(encode_text(get_tokenizer(model)(texts)))``.

        The tokenizer is open_clip's for this model name, created on first use (the embedding
        worker never needs it); like the model, it is looked up offline when the hub was
        unreachable at load time.
        """
        if len(texts) == 0:
            return np.empty((0, self.dim), dtype=np.float32)
        tokens = self._tokenize()(list(texts)).to(self._device)
        with torch.inference_mode():
            features = self._net.encode_text(tokens)
            features = torch.nn.functional.normalize(features.float(), dim=-1)
        return features.cpu().numpy().astype(np.float32, copy=False)

    def drop_image_tower(self) -> None:
        """Free the image tower, for a process that only embeds text (the web server answers
        image queries from stored vectors): ViT-B-32's is ~88 M of its ~150 M parameters.
        :meth:`encode` raises afterwards."""
        self._net.visual = None
        import contextlib
        import ctypes
        import gc

        gc.collect()
        # glibc keeps freed memory in its heap (its mmap threshold rises to the size of the
        # blocks freed while loading): give it back, or dropping the tower shows in no RSS.
        with contextlib.suppress(OSError, AttributeError):  # not glibc
            ctypes.CDLL("libc.so.6").malloc_trim(0)

    def _tokenize(self) -> Callable[[Sequence[str]], torch.Tensor]:
        if self._tokenizer is None:
            import open_clip

            desc = _describe(self.model, self.pretrained)
            try:
                with _hub_offline(self._hub_unreachable):
                    self._tokenizer = open_clip.get_tokenizer(self.model)
            except Exception as exc:
                raise ModelLoadError(f"{desc}: cannot load its tokenizer: "
                                     f"{type(exc).__name__}: {_one_line(str(exc))}") from exc
        return self._tokenizer


def _is_cache_miss(exc: BaseException) -> bool:
    """Whether a load failed because a hub file was neither reachable nor in the local cache."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if type(current).__name__ in ("LocalEntryNotFoundError", "OfflineModeIsEnabled"):
            return True
        text = str(current).lower()
        if "local cache" in text or "offline mode" in text:
            return True
        current = current.__cause__ or current.__context__
    return False
