"""The capture time: the order of trust, offsets as written / inferred from GPS / unknown,
sub-seconds, instants placed in a zone, absent dates falling through."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from tests import metadatafiles as mf
from watcherd.metadata import dates
from watcherd.metadata.extract import extract

REF = mf.reference()
TOKYO = timezone(timedelta(hours=9))
JUNE_15_1230_UTC = 1718454645.25  # 2024-06-15 12:30:45.25 UTC


def taken(name: str, **kwargs: object) -> tuple[str | None, str | None, str | None]:
    md = extract(mf.read(name), **{"mtime": None, **kwargs})  # type: ignore[arg-type]
    return md.taken_at, md.taken_offset, md.taken_source


def test_offset_and_subseconds_as_written() -> None:
    assert taken("full.jpg") == ("2024-06-15T14:30:45.123", "+02:00", "DateTimeOriginal")
    assert REF["full.jpg"]["SubSecDateTimeOriginal"] == "2024:06:15 14:30:45.123+02:00"


def test_offset_inferred_from_gps_and_date() -> None:
    """Lisbon, no OffsetTimeOriginal: summer time in June, UTC in January; never shifted."""
    assert taken("lisbon_june.jpg") == ("2024-06-15T14:30:45", "+01:00", "DateTimeOriginal")
    assert taken("lisbon_january.jpg") == ("2024-01-15T14:30:45", "+00:00", "DateTimeOriginal")
    assert "OffsetTimeOriginal" not in REF["lisbon_june.jpg"]


def test_no_zone_no_offset_and_no_shift() -> None:
    assert taken("no_zone.jpg", local_zone=TOKYO) == (
        "2024-06-15T14:30:45", None, "DateTimeOriginal")


def test_create_date_with_its_own_subseconds_and_offset() -> None:
    """No DateTimeOriginal: CreateDate (DateTimeDigitized) with SubSecTimeDigitized '5'
    (= .5 s) and OffsetTimeDigitized."""
    assert taken("create_date.jpg") == ("2024-06-15T10:00:01.500", "-05:00", "CreateDate")


def test_xmp_dates_in_their_order() -> None:
    assert taken("xmp_original.jpg") == ("2024-06-15T14:30:45.250", "-03:00",
                                         "XMP:DateTimeOriginal")
    # photoshop:DateCreated '2024-06' (year-month) beats xmp:CreateDate
    assert taken("xmp_created.jpg") == ("2024-06-01T00:00:00", None, "XMP:DateCreated")


def test_xmp_date_in_utc_is_an_instant_placed_at_the_gps_position() -> None:
    assert REF["xmp_create.jpg"]["CreateDate"] == "2024:06:15 12:00:00Z"
    assert taken("xmp_create.jpg") == ("2024-06-15T13:00:00", "+01:00", "XMP:CreateDate")


def test_gps_time_in_the_zone_of_the_position() -> None:
    assert REF["gps_time.jpg"]["GPSDateTime"] == "2024:06:15 12:30:45.5Z"
    assert taken("gps_time.jpg") == ("2024-06-15T13:30:45.500", "+01:00", "GPSDateTime")


def _blank_first(data: bytes, value: bytes) -> bytes:
    at = data.index(value)
    return data[:at] + b" " * len(value) + data[at + len(value):]


def test_each_source_in_the_order_of_trust() -> None:
    """full.jpg has every date: blank them one by one, most trusted first, and the next one is
    used each time (EXIF DateTimeOriginal, CreateDate, XMP exif:DateTimeOriginal,
    photoshop:DateCreated, xmp:CreateDate, GPS, then mtime)."""
    data = mf.read("full.jpg")
    steps = [
        # no OffsetTimeDigitized: inferred from the position, the open sea (Etc/GMT+1)
        (b"2024:06:15 14:30:45", ("2024-06-15T14:30:45", "-01:00", "CreateDate")),
        (b"2024:06:15 14:30:45", ("2024-06-15T14:30:45.123", "+02:00",
                                  "XMP:DateTimeOriginal")),
        (b"2024-06-15T14:30:45.123+02:00", ("2024-06-15T14:30:45", "+02:00",
                                            "XMP:DateCreated")),
        (b"2024-06-15T14:30:45+02:00", ("2024-06-15T14:30:45", "+02:00", "XMP:CreateDate")),
        # 12:30:45 UTC at 38.72 S, 9.14 W
        (b"2024-06-15T14:30:45+02:00", ("2024-06-15T11:30:45", "-01:00", "GPSDateTime")),
        (b"2024:06:15\x00", ("2024-06-15T11:30:45.250", "-01:00", "mtime")),
    ]
    assert taken("full.jpg")[2] == "DateTimeOriginal"
    for value, want in steps:
        data = _blank_first(data, value)
        md = extract(data, mtime=JUNE_15_1230_UTC)
        assert (md.taken_at, md.taken_offset, md.taken_source) == want
        assert md.error is None


def test_zero_date_and_blank_offset_are_absent_not_errors() -> None:
    assert REF["zero_date.jpg"]["DateTimeOriginal"] == "0000:00:00 00:00:00"
    md = extract(mf.read("zero_date.jpg"), mtime=None)
    assert (md.taken_at, md.taken_offset, md.taken_source) == (
        "2024-06-15T09:08:07", None, "CreateDate")
    assert md.error is None


def test_mtime_last_resort_in_the_local_zone() -> None:
    assert taken("bare.jpg", mtime=JUNE_15_1230_UTC, local_zone=TOKYO) == (
        "2024-06-15T21:30:45.250", "+09:00", "mtime")
    assert taken("bare.jpg") == (None, None, None)
    assert taken("bare.jpg", mtime=float("nan")) == (None, None, None)


def test_mtime_in_the_zone_of_the_gps_position() -> None:
    data = mf.read("null_island.jpg")  # 0,0 is no position: the local zone is used
    assert extract(data, mtime=JUNE_15_1230_UTC, local_zone=TOKYO).taken_offset == "+09:00"
    md = extract(mf.read("north_east_below.jpg"), mtime=JUNE_15_1230_UTC)
    assert (md.taken_at, md.taken_offset) == ("2024-06-15T21:30:45.250", "+09:00")


def test_mtime_default_zone_is_the_servers() -> None:
    local = datetime.fromtimestamp(JUNE_15_1230_UTC).astimezone()
    md = extract(mf.read("bare.jpg"), mtime=JUNE_15_1230_UTC)
    assert md.taken_at == local.replace(tzinfo=None).isoformat(timespec="milliseconds")


@pytest.mark.parametrize(("raw", "want"), [
    ("2024", "2024-01-01T00:00:00"), ("2024-06", "2024-06-01T00:00:00"),
    ("2024-06-15", "2024-06-15T00:00:00"), ("2024-06-15T14:30", "2024-06-15T14:30:00"),
    ("2024-06-15T14:30:45.1+05:30", "2024-06-15T14:30:45.100"),
])
def test_xmp_date_forms(raw: str, want: str) -> None:
    stamp = dates.xmp(raw)
    assert stamp is not None and stamp.iso() == want


@pytest.mark.parametrize("raw", ["", "    :  :     :  :  ", "0000:00:00 00:00:00", None,
                                 "\x00\x00"])
def test_absent_dates(raw: str | None) -> None:
    assert dates.exif(raw) is None


@pytest.mark.parametrize("raw", ["2024:13:45 10:00:00", "yesterday", "2024:06:15"])
def test_corrupt_dates_raise(raw: str) -> None:
    with pytest.raises(ValueError, match="not a date"):
        dates.exif(raw)


def test_corrupt_date_noted_and_next_used() -> None:
    data = mf.read("full.jpg")
    at = data.index(b"2024:06:15 14:30:45\x00")
    md = extract(data[:at] + b"2024:13:45 99:99:99\x00" + data[at + 20:], mtime=None)
    assert md.taken_source == "CreateDate"
    assert md.error is not None and "DateTimeOriginal '2024:13:45 99:99:99' is not a date" \
        in md.error


@pytest.mark.parametrize(("raw", "want"), [("+02:00", "+02:00"), ("-0530", "-05:30"),
                                           ("    :  ", None), ("", None), ("+00:00", "+00:00")])
def test_offsets(raw: str, want: str | None) -> None:
    assert dates.offset(raw) == want


def test_bad_offset_tag_leaves_offset_unknown() -> None:
    stamp = dates.exif("2024:06:15 14:30:45", "123", "+99:00")
    assert stamp is not None and stamp.offset is None and stamp.iso().endswith(".123")
