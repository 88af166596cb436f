"""Real DNG files for the RAW decoder's tests and benchmark, written by real tools: tifffile
writes the TIFF structure (a 12-bit RGGB Bayer mosaic with the DNG tags LibRaw needs), Pillow
encodes the embedded preview, exiftool writes EXIF (``exif=True``, a subprocess: not in
tests/unit, which reads the copy kept in ``tests/data/raw``; remake it with

    python -m tests.rawfiles            # rewrites tests/data/raw

Every file shows the same recognisable picture (:func:`picture`): a green band across the top
quarter, red below it on the left half and blue on the right half, so a test can tell where the
top and the left ended up (:func:`layout`). The mosaic holds that picture in linear light with
``ColorMatrix1`` the XYZ -> linear sRGB matrix and a neutral ``AsShotNeutral``, so LibRaw's
development gives the same colours back (brightened by its auto-exposure).

Layout as cameras write it: IFD0 is the preview (``NewSubFileType`` 1: a JPEG, Compression 7,
YCbCr; or an uncompressed RGB bitmap) carrying the DNG tags and the Orientation, and its SubIFD
is the raw image (``NewSubFileType`` 0). Without a preview the raw image is IFD0 itself. The
sensor data is stored uncompressed (valid DNG; cameras usually use lossless JPEG).
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
from PIL import Image

CORPUS = Path(__file__).parent / "data" / "raw"
REFERENCE = "reference.json"
EXIF_DNG = "exif.dng"  # 128x96 sensor, 128x96 JPEG preview, the EXIF of EXIF_ARGS

WHITE, BLACK = 4095, 256  # 12-bit data
RED, GREEN, BLUE = (220, 30, 30), (30, 200, 30), (30, 30, 220)  # sRGB, 8-bit

# XYZ (D65) -> linear sRGB: as ColorMatrix1 it makes the camera's space linear sRGB.
XYZ_TO_SRGB = (3.2406, -1.5372, -0.4986, -0.9689, 1.8758, 0.0415, 0.0557, -0.2040, 1.0570)

EXIF_ARGS = [
    "-Make=Fujifilm", "-Model=GFX100", "-DateTimeOriginal=2024:06:15 14:30:45",
    "-SubSecTimeOriginal=123", "-OffsetTimeOriginal=+02:00",
    "-GPSLatitude=38.7223", "-GPSLatitudeRef=N", "-GPSLongitude=9.1393",
    "-GPSLongitudeRef=W", "-GPSAltitude=12.5", "-GPSAltitudeRef=0",
    "-LensModel=GF32-64mmF4 R LM WR", "-FNumber=5.6", "-ExposureTime=0.008", "-ISO=200",
]

#: The picture's regions as (name, colour, top, bottom, left, right) in fractions of the size.
REGIONS = (("green", GREEN, 0.0, 0.25, 0.0, 1.0), ("red", RED, 0.25, 1.0, 0.0, 0.5),
           ("blue", BLUE, 0.25, 1.0, 0.5, 1.0))

#: Where each colour's region lies (its centroid's side) for each EXIF orientation, once the
#: orientation is applied: 6 turns the picture 90 degrees clockwise, 8 counter-clockwise.
LAYOUTS = {
    1: {"red": "left", "green": "top", "blue": "right"},
    3: {"red": "right", "green": "bottom", "blue": "left"},
    6: {"red": "top", "green": "right", "blue": "bottom"},
    8: {"red": "bottom", "green": "left", "blue": "top"},
}


def _spans(width: int, height: int) -> list[tuple[tuple[int, int, int], slice, slice]]:
    return [(colour, slice(round(top * height), round(bottom * height)),
             slice(round(left * width), round(right * width)))
            for _name, colour, top, bottom, left, right in REGIONS]


def picture(width: int, height: int) -> Image.Image:
    """The recognisable picture, 8-bit sRGB."""
    pixels = np.zeros((height, width, 3), np.uint8)
    for colour, rows, cols in _spans(width, height):
        pixels[rows, cols] = colour
    return Image.fromarray(pixels)


def _linear_level(value: int) -> int:
    """An 8-bit sRGB value as the sensor's 12-bit linear value (black level included)."""
    v = value / 255
    linear = v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4
    return BLACK + round(linear * (WHITE - BLACK))


def mosaic(width: int, height: int) -> np.ndarray[Any, np.dtype[np.uint16]]:
    """The picture as an RGGB Bayer mosaic (uint16), region by region: no full-size float
    image, so a 102 MP sensor costs only its own 200 MB."""
    if width % 2 or height % 2:
        raise ValueError("a Bayer sensor's sides are even")
    cfa = np.empty((height, width), np.uint16)
    for colour, rows, cols in _spans(width, height):
        r, g, b = (_linear_level(c) for c in colour)
        block = cfa[rows, cols]
        for dy in (0, 1):
            for dx in (0, 1):  # block[dy, dx]'s place in the sensor's 2x2 R G / G B pattern
                phase = ((rows.start + dy) % 2, (cols.start + dx) % 2)
                block[dy::2, dx::2] = r if phase == (0, 0) else b if phase == (1, 1) else g
    return cfa


def linear_rgb(width: int, height: int) -> np.ndarray[Any, np.dtype[np.uint16]]:
    """The picture as linear RGB sensor values (a LinearRaw DNG: demosaiced already)."""
    rgb = np.empty((height, width, 3), np.uint16)
    for colour, rows, cols in _spans(width, height):
        rgb[rows, cols] = [_linear_level(c) for c in colour]
    return rgb


def linear_grey(width: int, height: int) -> np.ndarray[Any, np.dtype[np.uint16]]:
    """The picture's luma as linear grey sensor values (a monochrome sensor)."""
    grey = np.empty((height, width), np.uint16)
    for colour, rows, cols in _spans(width, height):
        r, g, b = colour
        grey[rows, cols] = _linear_level(round(0.299 * r + 0.587 * g + 0.114 * b))
    return grey


def jpeg(image: Image.Image, *, exif_orientation: int | None = None,
         icc_profile: bytes | None = None, quality: int = 90) -> bytes:
    """``image`` as a JPEG by Pillow, optionally with an EXIF orientation and an ICC profile
    of its own."""
    out = io.BytesIO()
    options: dict[str, Any] = {"quality": quality}
    if exif_orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        options["exif"] = exif.tobytes()
    if icc_profile is not None:
        options["icc_profile"] = icc_profile
    image.save(out, "JPEG", **options)
    return out.getvalue()


def _srational(values: tuple[float, ...]) -> list[int]:
    return [int(n) for v in values for n in (round(v * 10000), 10000)]


Tag = tuple[int, str, int, Any, bool]  # tifffile's extratags: code, type, count, value, once


def _dng_tags(orientation: int) -> list[Tag]:
    return [
        (271, "s", 0, "watcherd", True),  # Make (exiftool's EXIF_ARGS replace both)
        (272, "s", 0, "test DNG", True),  # Model
        (50706, "B", 4, (1, 4, 0, 0), True),  # DNGVersion
        (50707, "B", 4, (1, 1, 0, 0), True),  # DNGBackwardVersion
        (50708, "s", 0, "watcherd test sensor", True),  # UniqueCameraModel
        (50721, "2i", 9, _srational(XYZ_TO_SRGB), True),  # ColorMatrix1
        (50778, "H", 1, 21, True),  # CalibrationIlluminant1: D65
        (50728, "2I", 3, (1, 1, 1, 1, 1, 1), True),  # AsShotNeutral
        (274, "H", 1, orientation, True),  # Orientation
    ]


_LEVEL_TAGS: list[Tag] = [
    (50714, "H", 1, BLACK, True),  # BlackLevel
    (50717, "H", 1, WHITE, True),  # WhiteLevel
]
_CFA_TAGS: list[Tag] = [
    (33421, "H", 2, (2, 2), True),  # CFARepeatPatternDim
    (33422, "B", 4, (0, 1, 1, 2), True),  # CFAPattern: R G / G B
    *_LEVEL_TAGS,
]


def make_dng(path: Path, *, width: int, height: int,
             preview_size: tuple[int, int] | None = None, preview: str = "jpeg",
             orientation: int = 1, preview_exif_orientation: int | None = None,
             preview_image: Image.Image | None = None, icc_profile: bytes | None = None,
             sensor: str = "bayer", default_scale: tuple[int, int] | None = None,
             big_endian: bool = False, exif: bool = False) -> Path:
    """A DNG of a ``width`` x ``height`` sensor showing :func:`picture`.

    ``preview_size`` (w, h) embeds a preview of the picture (or of ``preview_image``): a JPEG
    (``preview="jpeg"``, with its own ``preview_exif_orientation`` and ``icc_profile`` if
    given) or an uncompressed RGB bitmap (``preview="bitmap"``). ``orientation`` is the RAW's
    own Orientation tag; Make and Model say "watcherd", "test DNG". ``sensor`` is "bayer" (a
    CFA mosaic), "linear" (linear RGB, PhotometricInterpretation LinearRaw, as converters and
    some phones write) or "monochrome" (one linear sample per pixel, LinearRaw, as Leica's
    Monochrom writes; its grey levels are the picture's luma). ``default_scale`` (h, v) makes
    the pixels non-square (DefaultScale; LibRaw stretches the developed image to match).
    ``big_endian`` writes
    Motorola byte order ("MM"). ``exif=True`` has exiftool write :data:`EXIF_ARGS` (a
    subprocess)."""
    if preview not in ("jpeg", "bitmap"):
        raise ValueError(preview)
    # tifffile refuses LinearRaw with one sample: it writes MinIsBlack, set right afterwards
    sensor_data, photometric, sensor_tags = {
        "bayer": (mosaic, 32803, _CFA_TAGS),
        "linear": (linear_rgb, 34892, _LEVEL_TAGS),
        "monochrome": (linear_grey, 1, _LEVEL_TAGS),
    }[sensor]
    pixels = sensor_data(width, height)
    tags = _dng_tags(orientation)
    if default_scale is not None:
        sensor_tags = [*sensor_tags, (50718, "2I", 2, (default_scale[0], 1, default_scale[1], 1),
                                      True)]
    with tifffile.TiffWriter(path, byteorder=">" if big_endian else "<") as tif:
        if preview_size is None:
            tif.write(pixels, photometric=photometric, subfiletype=0,
                      extratags=tags + sensor_tags, metadata=None)
        else:
            pw, ph = preview_size
            shown = preview_image if preview_image is not None else picture(pw, ph)
            if shown.size != (pw, ph):
                shown = shown.resize((pw, ph))
            if preview == "jpeg":
                encoded = jpeg(shown, exif_orientation=preview_exif_orientation,
                               icc_profile=icc_profile)
                # tifffile encodes JPEG only through imagecodecs; it stores already encoded
                # strips as they are when told of some compression it has (zlib here), and
                # Compression and PhotometricInterpretation are set right just after.
                tif.write(iter([encoded]), shape=(ph, pw, 3), dtype=np.uint8,
                          photometric="rgb", compression="zlib", rowsperstrip=ph,
                          subfiletype=1, subifds=1, extratags=tags, metadata=None)
            else:
                tif.write(np.asarray(shown.convert("RGB")), photometric="rgb", subfiletype=1,
                          subifds=1, extratags=tags, metadata=None)
            tif.write(pixels, photometric=photometric, subfiletype=0, extratags=sensor_tags,
                      metadata=None)
    with tifffile.TiffFile(path, mode="r+") as tif:
        if preview_size is not None and preview == "jpeg":
            tif.pages.first.tags["Compression"].overwrite(7)  # JPEG
            tif.pages.first.tags["PhotometricInterpretation"].overwrite(6)  # YCbCr
        if sensor == "monochrome":
            raw_ifd = tif.pages.first
            if preview_size is not None:  # the raw image is IFD0's SubIFD
                assert raw_ifd.pages is not None
                raw_ifd = raw_ifd.pages.first
            raw_ifd.tags["PhotometricInterpretation"].overwrite(34892)  # LinearRaw
    if exif:
        write_exif(path)
    return path


def write_exif(path: Path, args: list[str] = EXIF_ARGS) -> None:
    """exiftool writes ``args`` into ``path`` in place (never ``-o``: see tests/metadatafiles)."""
    if not shutil.which("exiftool"):
        raise RuntimeError("exiftool is not installed")
    subprocess.run(["exiftool", "-q", "-q", "-overwrite_original", "-n", *args, str(path)],
                   check=True)


def layout(image: Image.Image) -> dict[str, str]:
    """Which side of ``image`` each of the picture's colours lies on: the side its centroid is
    nearest to, from the pixels where that colour's channel clearly dominates."""
    pixels = np.asarray(image.convert("RGB")).astype(np.int16)
    height, width = pixels.shape[:2]
    rows, cols = np.mgrid[0:height, 0:width]
    found = {}
    for name, channel in (("red", 0), ("green", 1), ("blue", 2)):
        others = np.delete(pixels, channel, axis=2).max(axis=2)
        mask = pixels[:, :, channel] > others + 60
        if not mask.any():
            found[name] = "absent"
            continue
        dy = rows[mask].mean() / height - 0.5
        dx = cols[mask].mean() / width - 0.5
        if abs(dx) > abs(dy):
            found[name] = "left" if dx < 0 else "right"
        else:
            found[name] = "top" if dy < 0 else "bottom"
    return found


def build(folder: Path = CORPUS) -> None:
    """The exiftool-tagged DNG and ``exiftool -j -n``'s view of it, in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = make_dng(folder / EXIF_DNG, width=128, height=96, preview_size=(128, 96),
                    exif=True)
    out = subprocess.run(["exiftool", "-j", "-n", str(path)], check=True, capture_output=True,
                         text=True).stdout
    entry = json.loads(out)[0]
    for volatile in ("SourceFile", "Directory", "FileModifyDate", "FileAccessDate",
                     "FileInodeChangeDate", "FilePermissions", "ExifToolVersion"):
        entry.pop(volatile, None)
    (folder / REFERENCE).write_text(json.dumps({EXIF_DNG: entry}, indent=1, sort_keys=True)
                                    + "\n")


def reference(folder: Path = CORPUS) -> dict[str, Any]:
    """``exiftool -j -n`` of the kept DNG."""
    entry: dict[str, Any] = json.loads((folder / REFERENCE).read_text())[EXIF_DNG]
    return entry


def read(name: str = EXIF_DNG, folder: Path = CORPUS) -> bytes:
    return (folder / name).read_bytes()


if __name__ == "__main__":
    build(Path(sys.argv[1]) if len(sys.argv) > 1 else CORPUS)
    print(f"wrote {EXIF_DNG} and {REFERENCE}")
