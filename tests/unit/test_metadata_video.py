"""A video's metadata (watcherd.metadata.video) from the tags of clips ffmpeg wrote
(tests/videofiles.py), Android motion photos (watcherd.metadata.motion, through extract()) and
Live Photo content identifiers (watcherd.metadata.live)."""

from __future__ import annotations

import struct
from datetime import UTC, timedelta, timezone

import pytest

from tests import videofiles
from tests.metadatafiles import CORPUS
from tests.videofiles import CONTENT_ID, Clips
from watcherd.media.video import probe
from watcherd.metadata import live, motion
from watcherd.metadata.extract import extract
from watcherd.metadata.fields import Metadata
from watcherd.metadata.video import extract_video, iso6709

TOKYO = timezone(timedelta(hours=9))
JUNE_15_1230_UTC = 1718454645.0  # 2024-06-15 12:30:45 UTC


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Clips:
    return videofiles.session_clips(tmp_path_factory)


def of_clip(clips: Clips, name: str, **kwargs: object) -> Metadata:
    info = probe(str(clips[name]))
    return extract_video(info.tags, codec=info.codec, fps=info.fps,
                         **{"mtime": None, **kwargs})  # type: ignore[arg-type]


def taken(md: Metadata) -> tuple[str | None, str | None, str | None]:
    return md.taken_at, md.taken_offset, md.taken_source


# -- capture time ----------------------------------------------------------------------------


def test_quicktime_creation_date_first(clips: Clips) -> None:
    """iphone.mov has both: the local CreationDate (+02:00) wins over the UTC creation_time."""
    md = of_clip(clips, "iphone.mov", local_zone=TOKYO)
    assert taken(md) == ("2024-06-15T14:30:45", "+02:00", "QuickTime:CreationDate")


@pytest.mark.parametrize(("name", "want"), [
    ("paris_utc.mp4", ("2024-06-15T14:30:45", "+02:00")),  # 12:30:45Z in Paris, summer time
    ("paris_winter.mp4", ("2024-01-15T13:30:45", "+01:00")),
])
def test_creation_time_is_an_instant_placed_in_the_gps_zone(clips: Clips, name: str,
                                                            want: tuple[str, str]) -> None:
    md = of_clip(clips, name, local_zone=TOKYO)  # the position's zone, not the local one
    assert taken(md) == (*want, "QuickTime:CreateDate")


def test_creation_time_without_position_in_the_local_zone() -> None:
    tags = {"major_brand": "isom", "creation_time": "2024-06-15T12:30:45.000000Z"}
    md = extract_video(tags, mtime=None, local_zone=TOKYO)
    assert taken(md) == ("2024-06-15T21:30:45", "+09:00", "QuickTime:CreateDate")


def test_creation_time_outside_quicktime_and_its_sub_seconds() -> None:
    """Matroska and AVI have no major_brand; a real fraction is kept (FFmpeg's .000000 is
    not one)."""
    md = extract_video({"creation_time": "2024-06-15T12:30:45.250000Z"}, mtime=None,
                       local_zone=UTC)
    assert taken(md) == ("2024-06-15T12:30:45.250", "+00:00", "CreationTime")


@pytest.mark.parametrize("zero", ["1904-01-01T00:00:00.000000Z", "1970-01-01T00:00:00Z"])
def test_zero_creation_time_falls_to_mtime(zero: str) -> None:
    md = extract_video({"creation_time": zero}, mtime=JUNE_15_1230_UTC, local_zone=TOKYO)
    assert taken(md) == ("2024-06-15T21:30:45", "+09:00", "mtime")
    assert md.error is None


def test_mtime_last(clips: Clips) -> None:
    md = of_clip(clips, "h264.mkv", mtime=JUNE_15_1230_UTC, local_zone=TOKYO)
    assert taken(md) == ("2024-06-15T21:30:45", "+09:00", "mtime")


def test_a_garbage_date_is_noted_and_the_next_one_used() -> None:
    tags = {"com.apple.quicktime.creationdate": "yesterday",
            "creation_time": "2024-06-15T12:30:45Z", "major_brand": "qt  "}
    md = extract_video(tags, mtime=None, local_zone=UTC)
    assert taken(md) == ("2024-06-15T12:30:45", "+00:00", "QuickTime:CreateDate")
    assert md.error == "QuickTime:CreationDate: 'yesterday' is not a date"


# -- position, camera, the rest --------------------------------------------------------------


def test_location_and_place(clips: Clips) -> None:
    md = of_clip(clips, "iphone.mov")
    assert (md.latitude, md.longitude, md.altitude) == (48.8584, 2.2945, 35.0)
    assert (md.country, md.country_code, md.place) == ("France", "FR", "Paris")
    assert (md.camera_make, md.camera_model) == ("Apple", "iPhone 15 Pro")
    assert (md.video_codec, md.fps) == ("h264", 15.0)
    assert md.error is None


def test_android(clips: Clips) -> None:
    md = of_clip(clips, "android.mp4")
    assert (md.camera_make, md.camera_model) == ("Google", "Pixel 8")
    assert (md.latitude, md.longitude, md.altitude) == (35.6762, 139.6503, None)
    assert md.country_code == "JP"
    assert taken(md) == ("2024-06-15T21:30:45", "+09:00", "QuickTime:CreateDate")


@pytest.mark.parametrize(("raw", "want"), [
    ("+48.8584+002.2945+035.000/", (48.8584, 2.2945, 35.0)),
    ("+35.6762+139.6503/", (35.6762, 139.6503, None)),
    ("-33.8688+151.2093-012.5/", (-33.8688, 151.2093, -12.5)),
    ("+40.7128-074.0060CRSWGS_84/", (40.7128, -74.006, None)),
    ("+4851.504+00217.670/", (48 + 51.504 / 60, 2 + 17.670 / 60, None)),  # DDMM.M
    ("+485130+0021740/", (48 + 51 / 60 + 30 / 3600, 2 + 17 / 60 + 40 / 3600, None)),
    ("+48.8584+002.2945", (48.8584, 2.2945, None)),
])
def test_iso6709(raw: str, want: tuple[float, float, float | None]) -> None:
    lat, lon, alt = iso6709(raw)
    assert (lat, lon) == pytest.approx(want[:2])
    assert alt == want[2]


@pytest.mark.parametrize("raw", ["", "48.8584,2.2945", "+48.8584", "+4899.0+00200.0/",
                                 "+123456789+0/"])
def test_iso6709_garbage(raw: str) -> None:
    with pytest.raises(ValueError):
        iso6709(raw)


def test_bad_location_noted_not_raised() -> None:
    md = extract_video({"location": "somewhere nice"}, mtime=None)
    assert md.latitude is None
    assert md.error == "location: 'somewhere nice' is not an ISO 6709 position"
    out_of_range = extract_video({"location": "+95.0+010.0/"}, mtime=None)
    assert out_of_range.latitude is None and "out of range" in (out_of_range.error or "")


def test_title_and_description() -> None:
    md = extract_video({"title": "Tram 28", "description": "Up the hill",
                        "com.apple.quicktime.make": "Apple"}, mtime=None)
    assert (md.title, md.description) == ("Tram 28", "Up the hill")
    placeholder = extract_video({"description": "DIGITAL CAMERA"}, mtime=None)
    assert placeholder.description is None


def test_never_raises_on_odd_values() -> None:
    md = extract_video({"creation_time": 12, "location": None, "Make": b"\xff"},  # type: ignore[dict-item]
                       codec="", fps=float("nan"), mtime=None)
    assert md.video_codec is None and md.fps is None


def test_sidecar_wins_field_by_field(clips: Clips) -> None:
    """The sidecar's date, title and position win; the camera, absent there, is the clip's."""
    sidecar = (CORPUS / "IMG_0001.xmp").read_bytes()
    md = of_clip(clips, "iphone.mov", sidecar=sidecar)
    assert taken(md) == ("2023-12-24T18:00:00", "+01:00", "XMP:DateTimeOriginal")
    assert md.title == "Sidecar title"
    assert md.country_code == "PT"  # the sidecar's position: Lisbon
    assert (md.camera_make, md.camera_model) == ("Apple", "iPhone 15 Pro")
    assert (md.video_codec, md.fps) == ("h264", 15.0)


# -- Android motion photos -------------------------------------------------------------------


def test_motion_photo(clips: Clips) -> None:
    photo, _ = videofiles.motion_photos(clips)
    md = extract(photo.read_bytes(), mtime=None)
    assert (md.video_codec, md.fps) == ("hevc", 15.0)
    assert md.error is None


def test_motion_photo_offsets(clips: Clips) -> None:
    """The XMP's offsets (MicroVideoOffset, the directory item's length) are the clip's."""
    photo, _ = videofiles.motion_photos(clips)
    data = photo.read_bytes()
    clip = clips["hevc.mp4"].read_bytes()
    found = motion.find(data, motion.containers.jpeg(data).xmp or b"")
    assert found == motion.Clip(len(data) - len(clip), len(clip))
    assert motion.jpeg_end(data) == found.offset


def stale(data: bytes, length: int, other: int) -> bytes:
    """The same file with the XMP's offsets changed to ``other`` (same number of digits)."""
    old, new = str(length).encode(), str(other).encode()
    assert len(old) == len(new)
    out = data.replace(b'MicroVideoOffset="' + old, b'MicroVideoOffset="' + new)
    return out.replace(b'Item:Length="' + old, b'Item:Length="' + new)


def test_stale_offsets_fall_back_to_the_ftyp_after_the_jpeg(clips: Clips) -> None:
    photo, _ = videofiles.motion_photos(clips)
    data = photo.read_bytes()
    length = len(clips["hevc.mp4"].read_bytes())
    other = 10 ** (len(str(length)) - 1)  # the offset then points into the clip's mdat
    moved = stale(data, length, other)
    assert moved != data and not motion.is_ftyp(moved, len(moved) - other)
    md = extract(moved, mtime=None)
    assert (md.video_codec, md.fps) == ("hevc", 15.0)


def test_microvideo_offset_alone() -> None:
    xmp = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/'
           b'22-rdf-syntax-ns#"><rdf:Description xmlns:GCamera="http://ns.google.com/photos/1.0/'
           b'camera/" GCamera:MicroVideo="1" GCamera:MicroVideoOffset="1234"/></rdf:RDF>'
           b'</x:xmpmeta>')
    assert motion.announced_length(xmp) == 1234
    assert motion.announced_length(xmp.replace(b'MicroVideo="1"', b'MicroVideo="0"')) is None


def test_a_jpeg_with_data_appended_but_no_motion_xmp_is_a_photo(clips: Clips) -> None:
    _, bare = videofiles.motion_photos(clips)
    md = extract(bare.read_bytes(), mtime=None)
    assert (md.video_codec, md.fps, md.error) == (None, None, None)


def test_motion_xmp_without_its_clip(clips: Clips) -> None:
    photo, _ = videofiles.motion_photos(clips)
    data = photo.read_bytes()
    clip_len = len(clips["hevc.mp4"].read_bytes())
    md = extract(data[:-clip_len], mtime=None)
    assert (md.video_codec, md.error) == (None, "motion photo: its video was not found")


def test_motion_clip_unreadable(clips: Clips) -> None:
    photo, _ = videofiles.motion_photos(clips)
    data = photo.read_bytes()
    clip_len = len(clips["hevc.mp4"].read_bytes())
    broken = data[:-clip_len + 40] + b"\x00" * (clip_len - 40)  # ftyp kept, the rest zeros
    md = extract(broken, mtime=None)
    assert md.video_codec is None
    assert (md.error or "").startswith("motion photo: its video is unreadable (")


def test_ordinary_photos_are_not_probed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(motion, "probe", lambda clip: pytest.fail("probed"))
    md = extract((CORPUS / "full.jpg").read_bytes(), mtime=None)
    assert md.video_codec is None


def test_jpeg_end() -> None:
    """jpeg_end on what is not a JPEG, and one cut short."""
    assert motion.jpeg_end(b"not a jpeg") is None
    assert motion.jpeg_end(videofiles.jpeg()[:200]) is None
    whole = videofiles.jpeg()
    assert motion.jpeg_end(whole + b"trailer") == len(whole)


# -- Live Photo content identifiers ----------------------------------------------------------


def test_video_identifier(clips: Clips) -> None:
    assert live.video_identifier(probe(str(clips["iphone.mov"])).tags) == CONTENT_ID
    assert live.video_identifier(probe(str(clips["h264.mov"])).tags) is None
    assert live.video_identifier({"com.apple.quicktime.content.identifier": " "}) is None


@pytest.mark.parametrize("fmt", ["JPEG", "HEIF"])
def test_still_identifier(fmt: str) -> None:
    """Pillow writes the Apple maker note the test builds (exiftool cannot create one)."""
    assert live.still_identifier(videofiles.live_still(fmt=fmt)) == CONTENT_ID


def test_the_test_maker_note_is_what_exiftool_reads_as_apples(clips: Clips) -> None:
    read = videofiles.read_by_exiftool(clips)
    for name in videofiles.LIVE_STILLS:
        assert read[name]["Apple:MediaGroupUUID"] == CONTENT_ID
        assert live.still_identifier(clips[name].read_bytes()) == CONTENT_ID


def note(identifier: bytes = CONTENT_ID.encode() + b"\0", *, count: int | None = None,
         offset: int | None = None, kind: int = 2, header: bytes = b"Apple iOS\0\0\x01MM") -> bytes:
    """A one-entry maker note (0x0011 only) with its parts overridable."""
    at = 14 + 2 + 12 + 4
    entry = struct.pack(">HHII", 0x0011, kind, len(identifier), at if offset is None else offset)
    table = struct.pack(">H", 1 if count is None else count) + entry + b"\0" * 4
    return header + table + identifier


def test_maker_note_parts() -> None:
    assert live.maker_note_identifier(note()) == CONTENT_ID
    inline = struct.pack(">HHI", 0x0011, 2, 4) + b"abc\0"
    assert live.maker_note_identifier(b"Apple iOS\0\0\x01MM\0\x01" + inline + b"\0" * 4) == "abc"


@pytest.mark.parametrize("bad", [
    note(header=b"Apple iOS\0\0\x01II"),  # not big-endian: not an Apple note we know
    note(header=b"Nikon\0\0\0\0\0\0\x01MM"),
    note(count=60000),  # more entries than bytes
    note(count=5),  # the entries' table beyond the end
    note(offset=10**6),  # the value beyond the end
    note(kind=4),  # a LONG, not text
    note(identifier=b"has blanks in it\0"),
    note(identifier=b"\0"),
    note()[:20],
    b"",
])
def test_maker_note_malformed_is_none(bad: bytes) -> None:
    assert live.maker_note_identifier(bad) is None
    assert live.still_identifier(videofiles.live_still(note=bad)) is None


@pytest.mark.parametrize("data", [b"", b"not an image", (CORPUS / "full.jpg").read_bytes(),
                                  (CORPUS / "full.heic").read_bytes()])
def test_still_identifier_absent(data: bytes) -> None:
    assert live.still_identifier(data) is None


def test_still_identifier_of_a_damaged_exif() -> None:
    data = bytearray(videofiles.live_still())
    at = bytes(data).index(b"Apple iOS")
    data[at - 40:at] = b"\xff" * 40  # the Exif IFD's entries around the maker note
    assert live.still_identifier(bytes(data)) in (None, CONTENT_ID)
