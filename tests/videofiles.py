"""Test videos made with Debian's ffmpeg (5.1) from lavfi sources: every container watcherd
takes, H.264 and HEVC, and the clips a poster frame can go wrong on (a black start, a fade-in,
black at 10 %, one frame, an unknown duration, a rotated phone clip), plus QuickTime tags and an
Android motion photo. Tiny: 160x120 at 15 fps, a few seconds, a few KB each.

They are made once per test session (:func:`session_clips`, a session fixture's body) in a
temporary folder: ffmpeg runs there, before any test's in-process guard (tests/unit/conftest.py)
is set up, so the unit tests themselves stay in-process. Without ffmpeg (or exiftool, for the
motion photo) the tests that need them skip with the reason, and fail under ``CI``
(:mod:`tests.requires`). Run ``python -m tests.videofiles DIR`` to make them by hand.

ffmpeg 5.1 quirks met here (each checked with ffprobe / PyAV):

- ``-metadata:s:v:0 rotate=N`` is honoured only when the stream is copied (``-c copy``); while
  encoding, the tag is dropped silently. So a rotated clip is an encoded clip remuxed, and
  ffprobe must show the display matrix in it (else making it fails, loudly).
- ``rotate=270`` writes the display matrix of an iPhone portrait clip (ffprobe: rotation -90,
  "turn 90 degrees clockwise to display"); ``rotate=90`` writes ffprobe's rotation 90, which
  ffmpeg's own autorotate undoes by turning 90 degrees counter-clockwise.
- ``.m4v`` is ffmpeg's raw MPEG-4 Part 2 muxer by extension; Apple's M4V is an MP4 (``-f mp4``).
- QuickTime ``mdta`` keys (``com.apple.quicktime.*``) are written only with
  ``-movflags use_metadata_tags``.
"""

from __future__ import annotations

import io
import shutil
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

SIZE = "160x120"
RATE = 15
_X264 = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
_X265 = ["-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error",
         "-pix_fmt", "yuv420p", "-tag:v", "hvc1"]
_QT = ["-movflags", "use_metadata_tags"]


def _src(name: str = "testsrc2", seconds: float = 2, size: str = SIZE) -> list[str]:
    """A lavfi source (``name`` may carry options: ``color=c=red``)."""
    joiner = ":" if "=" in name else "="
    return ["-f", "lavfi", "-i", f"{name}{joiner}s={size}:r={RATE}:d={seconds}"]


def _graph(graph: str) -> list[str]:
    """A lavfi filter graph as the only input (its last output is the video)."""
    return ["-f", "lavfi", "-i", graph]


_BLACK_THEN = (f"color=black:s={SIZE}:r={RATE}:d={{black}}[b];"
               f"testsrc2=s={SIZE}:r={RATE}:d={{rest}}[t];[b][t]concat=n=2:v=1:a=0")
#: left half red, right half blue: where red ends up tells the rotation
_HALVES = (f"color=red:s=80x120:r={RATE}:d=1[l];color=blue:s=80x120:r={RATE}:d=1[r];"
           "[l][r]hstack")
#: 0.5 s of picture, 1.5 s of black, 8 s of picture: black at 10 % of its 10 s
_BLACK_AT_10 = (f"testsrc2=s={SIZE}:r={RATE}:d=0.5[a];color=black:s={SIZE}:r={RATE}:d=1.5[b];"
                f"testsrc2=s={SIZE}:r={RATE}:d=8[c];[a][b][c]concat=n=3:v=1:a=0")

HD_COLOUR = "C86432"  # (200, 100, 50)
#: Paris (the Eiffel Tower), as iPhones write it (ISO 6709, altitude, trailing slash)
PARIS_ISO6709 = "+48.8584+002.2945+035.000/"
CONTENT_ID = "7A1D3B2C-4E5F-4A6B-8C7D-9E0F1A2B3C4D"
IPHONE_TAGS = [
    *_QT, "-metadata", "creation_time=2024-06-15T12:30:45Z",
    "-metadata", "com.apple.quicktime.creationdate=2024-06-15T14:30:45+0200",
    "-metadata", f"com.apple.quicktime.location.ISO6709={PARIS_ISO6709}",
    "-metadata", "com.apple.quicktime.make=Apple",
    "-metadata", "com.apple.quicktime.model=iPhone 15 Pro",
    "-metadata", f"com.apple.quicktime.content.identifier={CONTENT_ID}",
]


@dataclass(frozen=True)
class Clip:
    """How one file is made: ffmpeg's input and output arguments, and, for a rotated clip,
    the ``rotate`` tag of a second, copying pass."""

    args: list[str]
    rotate: int | None = None


def _enc(src: list[str], *out: str, codec: list[str] = _X264) -> list[str]:
    return [*src, *codec, *out]


CLIPS: dict[str, Clip] = {
    # every container, H.264 unless the container says otherwise (h264.mp4: audio is stream 0)
    "h264.mp4": Clip(["-f", "lavfi", "-i", "sine=f=440:d=2", *_src(), "-map", "0:a",
                      "-map", "1:v", *_X264, "-c:a", "aac", "-shortest"]),
    "h264.mov": Clip(_enc(_src())),
    "h264.m4v": Clip(_enc(_src(), "-f", "mp4")),
    "h264.mkv": Clip(_enc(_src())),
    "vp9.webm": Clip(_enc(_src(), codec=["-c:v", "libvpx-vp9", "-deadline", "realtime",
                                         "-cpu-used", "8"])),
    "vp8.webm": Clip(_enc(_src(), codec=["-c:v", "libvpx", "-deadline", "realtime"])),
    "mpeg4.avi": Clip(_enc(_src(), codec=["-c:v", "mpeg4", "-q:v", "5"])),
    "h264.3gp": Clip(_enc(_src(), "-f", "3gp")),
    "h264.mts": Clip(_enc(_src(), "-f", "mpegts", "-mpegts_m2ts_mode", "1")),
    "h264.m2ts": Clip(_enc(_src(), "-f", "mpegts", "-mpegts_m2ts_mode", "1")),
    # MPEG-TS has no index: a seek lands between keyframes (here every 3 s)
    "gop3s.mts": Clip(_enc(_src(seconds=10), "-g", "45", "-f", "mpegts",
                           "-mpegts_m2ts_mode", "1")),
    "hevc.mp4": Clip(_enc(_src(), codec=_X265)),
    "hevc.mov": Clip(_enc(_src(), codec=_X265)),
    # posters (x264's keyframe interval, 250 frames, is longer than these clips: the
    # candidates are reached by decoding forward from the first frame)
    "black_start.mp4": Clip(_enc(_graph(_BLACK_THEN.format(black=1, rest=3)))),
    "fade_in.mp4": Clip(_enc(_src(seconds=4), "-vf", "fade=t=in:st=0:d=1.5")),
    # a keyframe every second, as phones write: the candidates are keyframes
    "black_at_10.mp4": Clip(_enc(_graph(_BLACK_AT_10), "-g", str(RATE))),
    "fade_in_gop.mp4": Clip(_enc(_src(seconds=4), "-vf", "fade=t=in:st=0:d=1.5", "-g", "8")),
    "one_frame.mp4": Clip(_enc(_src(), "-frames:v", "1")),
    "short.mov": Clip(_enc(_src(seconds=0.2))),
    # a raw H.264 stream has no duration (nor timestamps to seek by): black first second
    "unknown_duration.h264": Clip(_enc(_graph(_BLACK_THEN.format(black=1, rest=3)),
                                       "-f", "h264")),
    "audio_only.mp4": Clip(["-f", "lavfi", "-i", "sine=f=440:d=1", "-c:a", "aac"]),
    # rotation: left half red; a phone's portrait clip is turned 90 degrees clockwise
    "rotated_cw90.mp4": Clip(_enc(_graph(_HALVES)), rotate=270),
    "rotated_cw270.mov": Clip(_enc(_graph(_HALVES)), rotate=90),
    "halves.mp4": Clip(_enc(_graph(_HALVES))),
    # colour: an HD clip in BT.709 without colour tags (as cameras write), one colour
    "hd_untagged.mp4": Clip(_enc(_src(f"color=c=0x{HD_COLOUR}", 0.2, "1280x720"), "-vf",
                                 "scale=out_color_matrix=bt709:out_range=tv,format=yuv420p")),
    # metadata
    "iphone.mov": Clip(_enc(_src(), *IPHONE_TAGS)),
    "paris_utc.mp4": Clip(_enc(_src(), "-metadata", "creation_time=2024-06-15T12:30:45Z",
                               "-metadata", f"location={PARIS_ISO6709}")),
    "paris_winter.mp4": Clip(_enc(_src(), "-metadata", "creation_time=2024-01-15T12:30:45Z",
                                  "-metadata", f"location={PARIS_ISO6709}")),
    "android.mp4": Clip(_enc(_src(), *_QT, "-metadata", "creation_time=2024-06-15T12:30:45Z",
                             "-metadata", "location=+35.6762+139.6503/",
                             "-metadata", "com.android.manufacturer=Google",
                             "-metadata", "com.android.model=Pixel 8")),
}

MOTION_PHOTO = "motion_photo.jpg"  # a JPEG, the Google XMP, and hevc.mp4 appended
MOTION_PHOTO_FALLBACK = "motion_photo_no_xmp.jpg"  # the same without any XMP


def ffmpeg(*args: str) -> None:
    done = subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-y", *args],
                          capture_output=True, text=True, timeout=120)
    if done.returncode:
        raise RuntimeError(f"ffmpeg {' '.join(args)} failed: {done.stderr.strip()}")


def make_clip(folder: Path, name: str) -> Path:
    clip, out = CLIPS[name], folder / name
    if clip.rotate is None:
        ffmpeg(*clip.args, str(out))
        return out
    plain = folder / f"unrotated-{name}"
    ffmpeg(*clip.args, str(plain))
    ffmpeg("-i", str(plain), "-c", "copy", "-metadata:s:v:0", f"rotate={clip.rotate}",
           str(out))
    # ffprobe's rotation (the matrix's angle counter-clockwise) is the rotate tag, mod 360
    if display_rotation(out) is None:
        # ffmpeg 6 and later ignore the rotate tag; their input option takes that angle
        # (not run here: Debian 12 has ffmpeg 5.1)
        ffmpeg("-display_rotation:v:0", str(clip.rotate), "-i", str(plain), "-c", "copy",
               str(out))
    got = display_rotation(out)
    if got is None or round(got) % 360 != clip.rotate % 360:
        raise RuntimeError(f"ffmpeg wrote no display matrix of {clip.rotate} degrees into "
                           f"{out} (ffprobe: {got})")
    plain.unlink()
    return out


def display_rotation(path: Path) -> float | None:
    """The rotation ffprobe reports in the video stream's display matrix side data."""
    shown = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0",
                            "-show_entries", "stream_side_data=rotation", "-of", "csv=p=0",
                            str(path)], check=True, capture_output=True, text=True,
                           timeout=60).stdout.split()
    return float(shown[0].strip(",")) if shown else None


def jpeg(width: int = 64, height: int = 48) -> bytes:
    """A small real JPEG (Pillow)."""
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 120, 40)).save(out, "JPEG", quality=90)
    return out.getvalue()


def make_motion_photo(folder: Path, video: Path) -> tuple[Path, Path]:
    """A Google motion photo (a JPEG with ``video`` appended; the XMP, written by exiftool,
    says both ``GCamera:MicroVideoOffset`` and the ``Container:Directory`` item's length) and
    the same bytes without any XMP. exiftool 12.57 reads these tags but cannot write
    ``GCamera:MotionPhoto`` nor the ``Container`` ones ("Tag ... is not defined"), so the packet
    is written whole (``-XMP<=``): exiftool puts it in the JPEG as its XMP APP1 segment."""
    clip = video.read_bytes()
    bare = folder / MOTION_PHOTO_FALLBACK
    bare.write_bytes(jpeg() + clip)
    packet = folder / "motion.xmp"
    packet.write_text(f"""<?xpacket begin='' id='W5M0MpCehiHzreSzNTczkc9d'?>
<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:GCamera="http://ns.google.com/photos/1.0/camera/"
    xmlns:Container="http://ns.google.com/photos/1.0/container/"
    xmlns:Item="http://ns.google.com/photos/1.0/container/item/"
    GCamera:MotionPhoto="1" GCamera:MotionPhotoVersion="1"
    GCamera:MotionPhotoPresentationTimestampUs="0"
    GCamera:MicroVideo="1" GCamera:MicroVideoVersion="1"
    GCamera:MicroVideoOffset="{len(clip)}">
   <Container:Directory>
    <rdf:Seq>
     <rdf:li rdf:parseType="Resource">
      <Container:Item Item:Mime="image/jpeg" Item:Semantic="Primary" Item:Length="0"
        Item:Padding="0"/>
     </rdf:li>
     <rdf:li rdf:parseType="Resource">
      <Container:Item Item:Mime="video/mp4" Item:Semantic="MotionPhoto"
        Item:Length="{len(clip)}"/>
     </rdf:li>
    </rdf:Seq>
   </Container:Directory>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end='w'?>""")
    still = folder / "motion-still.jpg"
    still.write_bytes(jpeg())
    subprocess.run(["exiftool", "-q", "-overwrite_original", f"-XMP<={packet}", str(still)],
                   check=True, capture_output=True, timeout=60)
    photo = folder / MOTION_PHOTO
    photo.write_bytes(still.read_bytes() + clip)
    return photo, bare


def apple_maker_note(identifier: str) -> bytes:
    """An Apple maker note as iPhones write it: ``Apple iOS\\0``, version 1, ``MM``, a big-endian
    IFD at byte 14 whose offsets count from the note's start: MakerNoteVersion (0x0001, an
    SLONG in the entry), AccelerationVector (0x0008, three SRATIONALs elsewhere) and the
    content identifier (0x0011, ASCII elsewhere). exiftool 12.57 cannot create a maker note
    (it only edits one it copies), so the tests build it; exiftool reads it back as
    ``Apple:MediaGroupUUID`` (its name for 0x0011 since 12.19, ContentIdentifier before)."""
    text = identifier.encode("ascii") + b"\x00"
    vector = struct.pack(">6i", -1, 2, 3, 4, 5, 6)
    entries = [(0x0001, 9, 1, struct.pack(">i", 14)), (0x0008, 10, 3, vector),
               (0x0011, 2, len(text), text)]
    data_at = 14 + 2 + 12 * len(entries) + 4
    ifd, data = b"", b""
    for tag, kind, count, value in entries:
        if len(value) <= 4:
            ifd += struct.pack(">HHI", tag, kind, count) + value.ljust(4, b"\x00")
        else:
            ifd += struct.pack(">HHII", tag, kind, count, data_at + len(data))
            data += value
    return b"Apple iOS\x00\x00\x01MM" + struct.pack(">H", len(entries)) + ifd + b"\0" * 4 + data


def live_still(identifier: str = CONTENT_ID, fmt: str = "JPEG",
               note: bytes | None = None) -> bytes:
    """A Live Photo's still (JPEG or HEIF), made by Pillow, with an Apple maker note."""
    from PIL import Image

    import watcherd.media.images  # noqa: F401 - registers the HEIF plugin

    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "Apple", "iPhone 15 Pro"
    exif.get_ifd(0x8769)[0x927C] = apple_maker_note(identifier) if note is None else note
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 200, 30)).save(out, fmt, exif=exif.tobytes())
    return out.getvalue()


LIVE_STILLS = {"live.jpg": "JPEG", "live.heic": "HEIF"}
LIVE_READ_BY_EXIFTOOL = "live.exiftool.json"  # what exiftool reads in LIVE_STILLS


def make_live_stills(folder: Path) -> None:
    import json

    for name, fmt in LIVE_STILLS.items():
        (folder / name).write_bytes(live_still(fmt=fmt))
    read = subprocess.run(["exiftool", "-j", "-G1", "-Apple:MediaGroupUUID", "-Make",
                           *(str(folder / name) for name in LIVE_STILLS)],
                          check=True, capture_output=True, timeout=60).stdout
    (folder / LIVE_READ_BY_EXIFTOOL).write_text(json.dumps({
        Path(entry["SourceFile"]).name: entry for entry in json.loads(read)}))


@dataclass(frozen=True)
class Clips:
    folder: Path

    def __getitem__(self, name: str) -> Path:
        return self.folder / name


def make_all(folder: Path) -> Clips:
    folder.mkdir(parents=True, exist_ok=True)
    for name in CLIPS:
        if not (folder / name).exists():
            make_clip(folder, name)
    if shutil.which("exiftool") and not (folder / MOTION_PHOTO).exists():
        make_motion_photo(folder, folder / "hevc.mp4")
    if shutil.which("exiftool") and not (folder / LIVE_READ_BY_EXIFTOOL).exists():
        make_live_stills(folder)
    return Clips(folder)


_made: dict[Path, Clips] = {}


def session_clips(tmp_path_factory: pytest.TempPathFactory) -> Clips:
    """Every clip, made once per session (shared by the test modules that ask)."""
    from tests import requires

    requires.tool("ffmpeg")
    requires.tool("ffprobe")
    base = tmp_path_factory.getbasetemp()
    if base not in _made:
        _made[base] = make_all(base / "videos")
    return _made[base]


def read_by_exiftool(clips: Clips) -> dict[str, dict[str, str]]:
    """What exiftool read in the Live stills; skips (fails under CI) without exiftool."""
    import json

    from tests import requires

    requires.tool("exiftool")
    return dict(json.loads(clips[LIVE_READ_BY_EXIFTOOL].read_text()))


def motion_photos(clips: Clips) -> tuple[Path, Path]:
    """The motion photo and its XMP-less twin; skips (fails under CI) without exiftool."""
    from tests import requires

    requires.tool("exiftool")
    return clips[MOTION_PHOTO], clips[MOTION_PHOTO_FALLBACK]


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("videos")
    made = make_all(target)
    for path in sorted(made.folder.iterdir()):
        print(f"{path.stat().st_size:>9}  {path}")
