"""watcherd.media.video on clips Debian's ffmpeg made (tests/videofiles.py): every container,
the poster frame (never black, never a fade-in), rotation, sizes, and the errors."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests import videofiles
from tests.videofiles import Clips
from watcherd.media import poster as frames_mod
from watcherd.media import video
from watcherd.media.images import ImageError
from watcherd.media.video import VideoError, poster, probe

BIG = 10**8
#: testsrc2's mean brightness is ~111; a fade's frames and black ones are below 100
LIT = 100


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Clips:
    return videofiles.session_clips(tmp_path_factory)


def brightness(image: Image.Image) -> float:
    return float(np.asarray(image.convert("L"), dtype=np.float32).mean())


CONTAINERS = {  # file -> codec
    "h264.mp4": "h264", "h264.mov": "h264", "h264.m4v": "h264", "h264.mkv": "h264",
    "vp9.webm": "vp9", "vp8.webm": "vp8", "mpeg4.avi": "mpeg4", "h264.3gp": "h264",
    "h264.mts": "h264", "h264.m2ts": "h264", "hevc.mp4": "hevc", "hevc.mov": "hevc",
}


@pytest.mark.parametrize("name", CONTAINERS)
def test_every_container_decodes(clips: Clips, name: str) -> None:
    decoded, info = poster(str(clips[name]), max_pixels=BIG)
    assert decoded.image.mode == "RGB"
    assert decoded.image.size == (160, 120) == (decoded.width, decoded.height)
    assert decoded.decode == "poster"
    assert decoded.format == name.rsplit(".", 1)[1].upper()  # formats.file_type's
    assert brightness(decoded.image) >= LIT
    assert info.codec == CONTAINERS[name]
    assert info.fps == 15.0
    assert info.duration == pytest.approx(2.0, abs=0.1)
    assert (info.width, info.height, info.rotation) == (160, 120, 0)
    assert probe(str(clips[name])) == info


def test_format_is_the_callers_file_type(clips: Clips) -> None:
    decoded, _ = poster(str(clips["h264.mp4"]), max_pixels=BIG, file_type="QUICKTIME")
    assert decoded.format == "QUICKTIME"


def test_the_audio_track_beside_the_video_is_ignored(clips: Clips) -> None:
    """h264.mp4's first stream is its audio."""
    import av

    with av.open(str(clips["h264.mp4"])) as container:
        assert container.streams[0].type == "audio"
    assert probe(str(clips["h264.mp4"])).codec == "h264"


@pytest.mark.parametrize("name", ["black_start.mp4", "fade_in.mp4", "fade_in_gop.mp4",
                                  "black_at_10.mp4", "unknown_duration.h264"])
def test_poster_is_never_black_nor_in_a_fade(clips: Clips, name: str) -> None:
    decoded, _ = poster(str(clips[name]), max_pixels=BIG)
    assert brightness(decoded.image) >= LIT


def test_black_start_first_frame_is_black(clips: Clips) -> None:
    """The clips are what the tests above think they are: their first frame is black, and the
    fade-in's frame at 1 s (a candidate that looks fine on its own) is not yet at full light."""
    import av

    for name in ("black_start.mp4", "fade_in.mp4", "unknown_duration.h264"):
        with av.open(str(clips[name])) as container:
            first = next(container.decode(video=0))
            assert brightness(first.to_image()) < 5, name
    with av.open(str(clips["fade_in.mp4"])) as container:
        at_1s = next(f for f in container.decode(video=0) if f.time >= 1.0)
        look = frames_mod._look(at_1s)
        assert look.good and look.mean < LIT


def test_a_candidate_in_a_fade_is_passed_over(clips: Clips,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the fade check, the fade-in's poster is a frame still fading in."""
    monkeypatch.setattr(frames_mod, "FADE_UNTIL", 0.0)
    decoded, _ = poster(str(clips["fade_in_gop.mp4"]), max_pixels=BIG)
    assert brightness(decoded.image) < LIT


def test_black_at_ten_percent_moves_on(clips: Clips) -> None:
    """black_at_10.mp4 (keyframe every second) is black from 0.5 to 2 s: its 10 % candidate is
    the keyframe at 1 s; the poster is a later one, not the first frame either."""
    picked: list[float] = []
    look = frames_mod._look

    def spy(frame: object) -> frames_mod._Look:
        picked.append(getattr(frame, "time", None) or 0.0)
        return look(frame)  # type: ignore[arg-type]

    mp = pytest.MonkeyPatch()
    mp.setattr(frames_mod, "_look", spy)
    try:
        decoded, info = poster(str(clips["black_at_10.mp4"]), max_pixels=BIG)
    finally:
        mp.undo()
    assert info.duration == pytest.approx(10.0, abs=0.1)
    assert picked[0] == pytest.approx(1.0)  # the black keyframe, looked at and refused
    assert picked[1] >= 2.0
    assert brightness(decoded.image) >= LIT


def test_after_a_seek_packets_before_a_keyframe_are_not_decoded(
        clips: Clips, monkeypatch: pytest.MonkeyPatch) -> None:
    """gop3s.mts: the seek to 1 s (10 %) lands mid-GOP, as MPEG-TS has no index; the
    packets up to the keyframe at 3 s are dropped, not decoded (FFmpeg would decode them
    only to throw them away), and the keyframe is the poster."""
    readers: list[video.Reader] = []

    class Spy(video.Reader):
        def __init__(self, *args: object) -> None:
            super().__init__(*args)  # type: ignore[arg-type]
            readers.append(self)

    monkeypatch.setattr(video, "Reader", Spy)
    decoded, info = poster(str(clips["gop3s.mts"]), max_pixels=BIG)
    assert info.duration == pytest.approx(10.0, abs=0.1)
    assert readers[0].decoded == 1
    assert readers[0].skipped >= 10
    assert brightness(decoded.image) >= LIT


@pytest.mark.parametrize("name", ["one_frame.mp4", "short.mov"])
def test_very_short_clips(clips: Clips, name: str) -> None:
    decoded, info = poster(str(clips[name]), max_pixels=BIG)
    assert brightness(decoded.image) >= LIT
    assert info.duration is not None and info.duration < 0.3


def test_unknown_duration(clips: Clips) -> None:
    decoded, info = poster(str(clips["unknown_duration.h264"]), max_pixels=BIG)
    assert info.duration is None
    assert info.fps == 15.0  # FFmpeg's guess from the stream, not the raw demuxer's default 25
    assert decoded.image.size == (160, 120)


def red_where(image: Image.Image) -> str:
    """Which side of the image is red: 'left', 'right', 'top' or 'bottom'."""
    rgb = np.asarray(image, dtype=np.int32)
    red = (rgb[..., 0] > 150) & (rgb[..., 2] < 100)
    h, w = red.shape
    sides = {"left": red[:, : w // 2].mean(), "right": red[:, w // 2:].mean(),
             "top": red[: h // 2].mean(), "bottom": red[h // 2:].mean()}
    side = max(sides, key=lambda k: sides[k])
    assert sides[side] > 0.9, sides
    return side


@pytest.mark.parametrize(("name", "rotation", "red"), [
    ("halves.mp4", 0, "left"),
    ("rotated_cw90.mp4", 90, "top"),  # an iPhone's portrait clip: turned clockwise
    ("rotated_cw270.mov", 270, "bottom"),
])
def test_rotation(clips: Clips, name: str, rotation: int, red: str) -> None:
    decoded, info = poster(str(clips[name]), max_pixels=BIG)
    assert info.rotation == rotation
    size = (160, 120) if rotation == 0 else (120, 160)
    assert (info.width, info.height) == size == decoded.image.size
    assert (decoded.width, decoded.height) == size
    assert red_where(decoded.image) == red
    assert probe(str(clips[name])).rotation == rotation


def test_max_pixels_is_checked_before_decoding(clips: Clips,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    path = str(clips["h264.mp4"])
    monkeypatch.setattr(video, "_pick", lambda *a: pytest.fail("decoded"))
    with pytest.raises(VideoError, match=r"too many pixels: 160x120 = 19200 > limit 19199"):
        poster(path, max_pixels=160 * 120 - 1)
    monkeypatch.undo()
    assert poster(path, max_pixels=160 * 120)[0].image.size == (160, 120)


def test_draft_size_shrinks_the_frame_not_the_reported_size(clips: Clips) -> None:
    decoded, _ = poster(str(clips["h264.mov"]), max_pixels=BIG, draft_size=60)
    assert decoded.image.size == (80, 60)  # both sides still >= 60, as images.decode's draft
    assert (decoded.width, decoded.height) == (160, 120)
    rotated, _ = poster(str(clips["rotated_cw90.mp4"]), max_pixels=BIG, draft_size=60)
    assert rotated.image.size == (60, 80)
    assert (rotated.width, rotated.height) == (120, 160)
    assert red_where(rotated.image) == "top"
    full, _ = poster(str(clips["h264.mov"]), max_pixels=BIG, draft_size=500)
    assert full.image.size == (160, 120)  # never enlarged


def test_untagged_hd_is_read_as_bt709(clips: Clips) -> None:
    """An HD frame without colour tags is BT.709 (what cameras write and players assume), not
    swscale's default BT.601, which would turn (200, 100, 50) into about (187, 91, 49)."""
    decoded, _ = poster(str(clips["hd_untagged.mp4"]), max_pixels=BIG)
    got = decoded.image.getpixel((640, 360))
    want = bytes.fromhex(videofiles.HD_COLOUR)
    assert all(abs(g - w) <= 6 for g, w in zip(got, want, strict=True)), got  # type: ignore[arg-type]


def test_tags(clips: Clips) -> None:
    info = probe(str(clips["iphone.mov"]))
    assert info.tags["com.apple.quicktime.location.iso6709"] == videofiles.PARIS_ISO6709
    assert info.tags["com.apple.quicktime.creationdate"] == "2024-06-15T14:30:45+0200"
    assert info.tags["creation_time"].startswith("2024-06-15T12:30:45")
    assert info.tags["handler_name"] == "VideoHandler"  # the stream's, after the container's
    assert all(key == key.lower() for key in info.tags)


# -- errors ----------------------------------------------------------------------------------


def test_video_error_is_an_image_error() -> None:
    assert issubclass(VideoError, ImageError)


def test_truncated_file(clips: Clips, tmp_path: Path) -> None:
    path = tmp_path / "cut.mp4"
    path.write_bytes(clips["h264.mov"].read_bytes()[:20_000])  # the moov atom is at the end
    with pytest.raises(VideoError, match=r"^not a video \(Invalid data found when processing "
                                         r"input: moov atom not found\)$"):
        poster(str(path), max_pixels=BIG)
    # the same message twice in a row is not swallowed (PyAV skips repeated log lines)
    with pytest.raises(VideoError, match="moov atom not found"):
        probe(str(path))


def test_garbage_frames(clips: Clips, tmp_path: Path) -> None:
    data = bytearray(clips["h264.mov"].read_bytes())
    start, moov = data.index(b"mdat") + 4, data.index(b"moov") - 4
    assert start < moov
    data[start:moov] = random.Random(1).randbytes(moov - start)
    path = tmp_path / "garbage.mov"
    path.write_bytes(bytes(data))
    with pytest.raises(VideoError, match=r"^corrupt video: no frame could be decoded \(.+\)$"):
        poster(str(path), max_pixels=BIG)


def test_a_broken_stream_is_not_read_to_its_end(clips: Clips, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Packets that give no frame are read up to a limit, not to the end of a 4 GB file."""
    data = bytearray(clips["h264.mov"].read_bytes())
    start, moov = data.index(b"mdat") + 4, data.index(b"moov") - 4
    data[start:moov] = random.Random(1).randbytes(moov - start)
    path = tmp_path / "garbage.mov"
    path.write_bytes(bytes(data))
    read: list[int] = []
    demux = video.InputContainer.demux

    def counting(self: video.InputContainer, *args: object) -> object:
        for packet in demux(self, *args):
            read.append(1)
            yield packet

    monkeypatch.setattr(frames_mod, "MAX_SILENT_PACKETS", 5)
    monkeypatch.setattr(video.InputContainer, "demux", counting)
    with pytest.raises(VideoError, match=r"no frame could be decoded \(no frame in 5 packets"):
        probe(str(path))
    assert len(read) == 6  # of 30


@pytest.mark.parametrize(("content", "reason"), [
    (b"", "empty file"),
    (b"hello, this is text\n" * 10, r"not a video \(Invalid data found"),
])
def test_not_a_video(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "clip.mp4"
    path.write_bytes(content)
    with pytest.raises(VideoError, match=f"^{reason}"):
        probe(str(path))


def test_no_video_stream(clips: Clips) -> None:
    with pytest.raises(VideoError, match=r"^no video stream \(1 audio stream\)$"):
        poster(str(clips["audio_only.mp4"]), max_pixels=BIG)


def test_missing_file_is_an_os_error(tmp_path: Path) -> None:
    """The file's own problems are OSError, as open() raises them (the caller's 'gone')."""
    with pytest.raises(FileNotFoundError) as caught:
        probe(str(tmp_path / "nope.mp4"))
    assert not isinstance(caught.value, ImageError)
    with pytest.raises(IsADirectoryError):
        poster(str(tmp_path), max_pixels=BIG)


def test_bad_arguments(clips: Clips) -> None:
    with pytest.raises(ValueError, match="max_pixels"):
        poster(str(clips["h264.mp4"]), max_pixels=0)
    with pytest.raises(ValueError, match="draft_size"):
        poster(str(clips["h264.mp4"]), max_pixels=BIG, draft_size=0)
