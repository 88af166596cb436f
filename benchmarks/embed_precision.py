"""The embedding model's throughput at each `[embeddings] precision`, on this machine's CPU or a
GPU: ViT-B-32 with random weights (the trained model's compute), through watcherd's Embedder.

    .venv/bin/python benchmarks/embed_precision.py                      # CPU, batch 32
    python3 benchmarks/embed_precision.py --device cuda --batch 32 64   # a GPU

Prints images/s (model only: preprocessed tensors in, normalised vectors out, host to device
copy included) per precision and batch size, the ratio to fp32 in the same run, and the
cosine of each precision's vectors to open_clip's own float32 encode_image on the same inputs.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from watcherd.media import precision as precisions
from watcherd.media.embeddings import Embedder
from watcherd.testing import write_model_dir


def images(n: int, size: int, seed: int = 0) -> list[torch.Tensor]:
    """Preprocessed-looking inputs: smooth random fields normalised like CLIP's transform."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, 8, 8, generator=g)
    x = torch.nn.functional.interpolate(low, size=(size, size), mode="bicubic")
    x = (x - 0.45) / 0.27
    return list(x)


def throughput(emb: Embedder, batch: list[torch.Tensor], seconds: float) -> float:
    for _ in range(3):
        emb.encode(batch)
    if emb.device.startswith("cuda"):
        torch.cuda.synchronize()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        emb.encode(batch)  # returns numpy: the device work is finished
        n += len(batch)
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, nargs="+", default=[32])
    ap.add_argument("--precisions", nargs="+", default=["fp32", "bf16", "fp16"])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--arch", default="ViT-B-32")
    args = ap.parse_args()

    model = write_model_dir(Path(tempfile.mkdtemp()) / "model", arch=args.arch)
    flags = precisions.cpu_flags()
    print(f"device {args.device}; torch {torch.__version__}, threads {torch.get_num_threads()}; "
          f"cpu native bf16: {precisions.native_cpu_bf16(flags)}; "
          f"'auto' resolves to {precisions.resolve('auto', args.device, flags)}")
    if args.device.startswith("cuda"):
        print(f"gpu: {torch.cuda.get_device_name(0)}")
    ref = Embedder(model, None, args.device, precision="fp32")
    check = images(16, ref.input_size, seed=1)
    with torch.inference_mode():
        exact = torch.nn.functional.normalize(
            ref._net.float().encode_image(torch.stack(check).to(ref.device)).float(), dim=-1
        ).cpu().numpy()
    rows: dict[tuple[str, int], float] = {}
    for p in args.precisions:
        emb = Embedder(model, None, args.device, precision=p)
        vecs = emb.encode(check)
        cos = float(np.min(np.sum(vecs * exact, axis=1)))
        for b in args.batch:
            rows[(p, b)] = throughput(emb, images(b, emb.input_size), args.seconds)
            base = rows.get(("fp32", b))
            ratio = f"{rows[(p, b)] / base:5.2f}x fp32" if base else ""
            print(f"  {p:5} batch {b:4}: {rows[(p, b)]:9.1f} img/s  {ratio}   "
                  f"min cosine to open_clip fp32 {cos:.6f}", flush=True)
        del emb
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "embed_precision.txt").write_text(repr(rows))


if __name__ == "__main__":
    main()
