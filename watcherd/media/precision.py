"""Which number format the embedding model computes in: ``[embeddings] precision``.

- ``fp32``: plain float32 everywhere (the reference).
- ``bf16`` / ``fp16``: open_clip's own ``precision``: the weights of the matrix products in that
  format, LayerNorm kept in float32; the stored vector is float32. (``torch.autocast`` on a
  CPU re-casts every weight on every forward pass: 2.4x slower than fp32 for ViT-B-32 here.)
- ``auto``: ``fp16`` on CUDA (10 mantissa bits, closer to float32 than bf16's 7); on a CPU,
  ``bf16`` where the CPU computes bf16 natively (x86 ``avx512_bf16`` or ``amx_bf16``, Arm
  ``bf16``), else ``fp32``: emulated bf16 is slower than float32.

CPU features are read at run time (``/proc/cpuinfo``), never assumed: machines differ.
"""

from __future__ import annotations

from collections.abc import Iterable

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})


def cpu_flags(cpuinfo: str | None = None) -> frozenset[str]:
    """The CPU's feature flags (x86 ``flags``, Arm ``Features``) from /proc/cpuinfo."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo") as f:
                cpuinfo = f.read()
        except OSError:
            return frozenset()
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())
    return frozenset(flags)


def native_cpu_bf16(flags: Iterable[str]) -> bool:
    return bool(NATIVE_BF16_FLAGS & set(flags))


def resolve(precision: str, device: str, flags: Iterable[str] | None = None) -> str:
    """The precision to compute in on ``device`` ("cpu", "cuda", "cuda:N")."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    if precision != "auto":
        return precision
    if device.startswith("cuda"):
        return "fp16"
    return "bf16" if native_cpu_bf16(cpu_flags() if flags is None else flags) else "fp32"
