"""JPEG XL through pillow-jxl-plugin: files made by libjxl's own cjxl (Debian libjxl-tools),
from a JPEG tagged by exiftool: the pixels, the EXIF orientation and the metadata."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.requires import tool
from watcherd.media.images import decode
from watcherd.media.thumbnails import make_thumbnails
from watcherd.metadata.extract import extract


def split_jpeg(path: Path) -> None:
    """Left half red, right half blue, 80 x 60."""
    a = np.zeros((60, 80, 3), np.uint8)
    a[:, :40] = (255, 0, 0)
    a[:, 40:] = (0, 0, 255)
    Image.fromarray(a).save(path, quality=95)


@pytest.fixture(scope="module")
def jxl(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    tool("cjxl")  # libjxl-tools; .ci/run installs it
    tool("exiftool")
    folder = tmp_path_factory.mktemp("jxl")
    out = {}
    for name, orientation in (("plain", 1), ("turned", 6)):
        source = folder / f"{name}.jpg"
        split_jpeg(source)
        subprocess.run(["exiftool", "-q", "-overwrite_original", "-n",
                        f"-Orientation={orientation}", "-Make=Fujifilm", "-Model=X-T5",
                        "-DateTimeOriginal=2024:05:06 07:08:09", str(source)], check=True)
        target = folder / f"{name}.jxl"
        subprocess.run(["cjxl", "--quiet", str(source), str(target)], check=True,
                       capture_output=True)
        out[name] = target.read_bytes()
    # and one encoded from pixels (a real JPEG XL codestream, not a recompressed JPEG)
    png = folder / "pixels.png"
    split_jpeg(folder / "tmp.jpg")
    Image.open(folder / "tmp.jpg").save(png)
    subprocess.run(["cjxl", "--quiet", "-d", "1", str(png), str(folder / "pixels.jxl")],
                   check=True, capture_output=True)
    out["pixels"] = (folder / "pixels.jxl").read_bytes()
    return out


def test_a_jxl_decodes_with_its_orientation(jxl: dict[str, bytes]) -> None:
    plain = decode(jxl["plain"], max_pixels=10**6)
    assert (plain.format, plain.width, plain.height) == ("JXL", 80, 60)
    assert plain.image.getpixel((5, 30))[0] > 200 and plain.image.getpixel((75, 30))[2] > 200
    turned = decode(jxl["turned"], max_pixels=10**6)
    assert (turned.width, turned.height) == (60, 80)  # 90° clockwise: red comes on top
    top, bottom = turned.image.getpixel((30, 5)), turned.image.getpixel((30, 75))
    assert top[0] > 200 > top[2] and bottom[2] > 200 > bottom[0]
    pixels = decode(jxl["pixels"], max_pixels=10**6)
    assert pixels.image.getpixel((5, 30))[0] > 200


def test_a_jxl_gets_thumbnails_and_its_metadata(jxl: dict[str, bytes]) -> None:
    result = make_thumbnails(jxl["turned"], [32], max_pixels=10**6)
    assert result.format == "JXL" and (result.thumbnails[0].width, result.thumbnails[0].height) \
        == (24, 32)
    md = extract(jxl["turned"], mtime=None)
    assert (md.camera_make, md.camera_model) == ("Fujifilm", "X-T5")
    assert (md.taken_at, md.taken_source) == ("2024-05-06T07:08:09", "DateTimeOriginal")
