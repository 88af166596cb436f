"""A model's identity: what it computes, not where its files lie. No torch, no open_clip.

``[embeddings] model``/``pretrained`` name a *source*; :func:`identify` turns it into the
:class:`ModelIdentity` that ``embeddings.model``/``embeddings.pretrained`` record:

============================================  ==================  ============================
source                                        model               pretrained
============================================  ==================  ============================
built-in name + tag (``ViT-B-32``,             ``ViT-B-32``        ``laion2b_s34b_b79k``
``laion2b_s34b_b79k``)
built-in name + checkpoint file                ``ViT-B-32``        ``sha256:<16 hex>`` of the file
``hf-hub:ORG/REPO``                            ``hf-hub:ORG/REPO`` ``""``
``local-dir:/path``                            ``local-dir``       ``sha256:<16 hex>`` of the
                                                                   config and weights files
============================================  ==================  ============================

so moving or renaming a weights folder or checkpoint keeps the identity (no re-embed), and
changing the bytes of the weights gives a new one. ``source`` (where it was loaded from) is
kept apart (the ``models`` table). A tag or a hub repository is identified by its name: their
content is fixed by whoever publishes them.

Hashing reads every byte of the weights (about 1 s per 600 MB); a :class:`FingerprintCache`
keyed by (path, size, mtime_ns) makes every later start free.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

__all__ = ["FINGERPRINT_PREFIX", "LOCAL_DIR", "FingerprintCache", "ModelIdentity",
           "fingerprint_files", "identify", "legacy_key", "normalise_model"]

LOCAL_DIR = "local-dir"
FINGERPRINT_PREFIX = "sha256:"
_LOCAL_DIR_PREFIX = "local-dir:"
_HF_HUB_PREFIX = "hf-hub:"
_WEIGHT_GLOBS = ("*.safetensors", "*.bin", "*.pth")  # what media.embeddings accepts
_CONFIG_NAME = "open_clip_config.json"
_HEX_CHARS = 16  # 64 bits: no two weight files of one library collide
_READ_BYTES = 1 << 22


class FingerprintCache(Protocol):
    """Remembers a file's sha256 by (path, size, mtime_ns); ``put`` may do nothing (read-only)."""

    def get(self, path: str, size: int, mtime_ns: int) -> str | None: ...

    def put(self, path: str, size: int, mtime_ns: int, sha256: str) -> None: ...


@dataclass(frozen=True)
class ModelIdentity:
    """``model``/``pretrained``: what ``embeddings`` records; ``source``: where the weights were
    found (a path, ``hf-hub:...``, or ``""`` for a built-in tag)."""

    model: str
    pretrained: str
    source: str = ""

    def describe(self) -> str:
        return repr(self.model) + (f" pretrained {self.pretrained!r}" if self.pretrained else "")


def legacy_key(model: str, pretrained: str) -> tuple[str, str]:
    """How watcherd before schema 6 recorded this source: the configured strings as they were
    (absolute ``local-dir:`` and checkpoint paths)."""
    return model, pretrained or ""


def normalise_model(model: str) -> str:
    """A model named on the command line: ``local-dir:`` paths are stored absolute; accept them
    relative to the current folder."""
    if model.startswith(_LOCAL_DIR_PREFIX):
        folder = model[len(_LOCAL_DIR_PREFIX):]
        return _LOCAL_DIR_PREFIX + os.path.abspath(os.path.expanduser(folder))
    return model


def _sha256(path: Path, cache: FingerprintCache | None) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if cache is not None and (known := cache.get(*key)) is not None:
        return known
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_READ_BYTES):
            digest.update(block)
    value = digest.hexdigest()
    if cache is not None:
        cache.put(*key, value)
    return value


def fingerprint_files(files: list[Path], names: list[str],
                      cache: FingerprintCache | None = None) -> str:
    """``sha256:`` plus 16 hex digits over each file's name (as given in ``names``, not its
    folder) and content hash. Raises OSError when a file cannot be read."""
    if len(files) == 1 and names == [""]:
        return FINGERPRINT_PREFIX + _sha256(files[0], cache)[:_HEX_CHARS]
    outer = hashlib.sha256()
    for name, file in sorted(zip(names, files, strict=True)):
        outer.update(f"{name}\0{_sha256(file, cache)}\n".encode())
    return FINGERPRINT_PREFIX + outer.hexdigest()[:_HEX_CHARS]


def identify(model: str, pretrained: str | None,
             cache: FingerprintCache | None = None) -> ModelIdentity:
    """The identity of a configured source. Raises OSError when a ``local-dir:`` folder or a
    checkpoint cannot be read (the caller says so; the model cannot load either)."""
    pretrained = pretrained or ""
    if model.startswith(_LOCAL_DIR_PREFIX):
        folder = Path(model[len(_LOCAL_DIR_PREFIX):]).expanduser()
        weights = sorted({w for pattern in _WEIGHT_GLOBS for w in folder.glob(pattern)})
        files = [folder / _CONFIG_NAME, *weights]
        if not files[0].is_file() or len(files) < 2:
            raise FileNotFoundError(f"no {_CONFIG_NAME} and weights file in {folder}")
        return ModelIdentity(LOCAL_DIR, fingerprint_files(files, [f.name for f in files], cache),
                             str(folder.resolve()))
    if model.startswith(_HF_HUB_PREFIX):
        return ModelIdentity(model, pretrained, model)
    if pretrained and _is_file_path(pretrained):
        file = Path(pretrained).expanduser()
        return ModelIdentity(model, fingerprint_files([file], [""], cache), str(file.resolve()))
    return ModelIdentity(model, pretrained, "")


def _is_file_path(pretrained: str) -> bool:
    """A checkpoint path rather than a tag (tags never hold a '/' nor a weights suffix)."""
    return ("/" in pretrained or pretrained.endswith((".pt", ".pth", ".bin", ".safetensors"))
            or os.path.isfile(os.path.expanduser(pretrained)))
