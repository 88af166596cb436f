"""Camera, place and description fields: GPS signs, placeholders, IPTC character sets, XMP
title/description/subject/rating, and an XMP sidecar winning field by field."""

from __future__ import annotations

import pytest

from tests import metadatafiles as mf
from watcherd.metadata import describe, exif, iptc, places, xmp
from watcherd.metadata.extract import extract
from watcherd.metadata.found import Found

REF = mf.reference()


def test_south_west_negative() -> None:
    md = extract(mf.read("full.jpg"), mtime=None)
    assert (md.latitude, md.longitude) == (REF["full.jpg"]["GPSLatitude"],
                                           REF["full.jpg"]["GPSLongitude"]) == (-38.72, -9.14)


def test_north_east_and_below_sea_level() -> None:
    md = extract(mf.read("north_east_below.jpg"), mtime=None)
    assert (md.latitude, md.longitude, md.altitude) == (35.6762, 139.6503, -28.5)
    assert REF["north_east_below.jpg"]["GPSAltitude"] == -28.5


@pytest.mark.parametrize(("value", "ref", "negative", "want"), [
    (38.72, "S", "S", -38.72), (-38.72, "S", "S", -38.72), (-38.72, "N", "S", 38.72),
    (9.14, b"W", "W", -9.14), (9.14, None, "W", 9.14)])
def test_ref_applied_to_the_absolute_value(value: float, ref: object, negative: str,
                                           want: float) -> None:
    """A negative value plus a ref is not negated twice."""
    assert exif.signed(value, ref, negative) == want


def test_out_of_range_position_is_unknown_with_a_note() -> None:
    found, notes = Found(), []
    exif.settle(found, 91.0, 10.0, 5.0, notes)
    assert found.latitude is None and notes == ["GPS position 91,10 out of range"]


def test_xmp_coordinates_in_the_sidecar_form() -> None:
    assert xmp.coordinate("38,43.2N") == pytest.approx(38.72)
    assert xmp.coordinate("9,8,24W") == pytest.approx(-9.14)
    assert xmp.coordinate("-12.5") == -12.5
    assert xmp.coordinate("north") != xmp.coordinate("north")  # NaN: noted by settle


def test_placeholder_description_dropped() -> None:
    assert REF["placeholder.jpg"]["ImageDescription"].strip() == "OLYMPUS DIGITAL CAMERA"
    assert extract(mf.read("placeholder.jpg"), mtime=None).description is None


@pytest.mark.parametrize("text", ["OLYMPUS DIGITAL CAMERA", "SONY DSC", "DCIM", "default",
                                  "KONICA MINOLTA DIGITAL CAMERA", "PENTAX DIGITAL CAMERA",
                                  "  sony   dsc ", "E-M5"])
def test_placeholders(text: str) -> None:
    assert describe.is_placeholder(text, "OLYMPUS IMAGING CORP.", "E-M5")


@pytest.mark.parametrize("text", ["Sunset over the Tagus", "My camera bag", "DSC of the party"])
def test_real_descriptions(text: str) -> None:
    assert not describe.is_placeholder(text, "SONY", "ILCE-7M3")


def test_description_order_xmp_iptc_exif() -> None:
    assert extract(mf.read("full.jpg"), mtime=None).description == "XMP description"
    data = mf.read("full.jpg").replace(b"XMP description", b"               ")
    assert extract(data, mtime=None).description == "IPTC caption"
    data = data.replace(b"IPTC caption", b"OLYMPUS DSC!")
    assert extract(data, mtime=None).description == "OLYMPUS DSC!"  # not a placeholder


def test_iptc_utf8_declared() -> None:
    md = extract(mf.read("iptc_utf8.jpg"), mtime=None)
    assert md.keywords == ("café", "Zürich")  # de-duplicated, order kept
    assert md.description == REF["iptc_utf8.jpg"]["Caption-Abstract"] == "Überall"


def test_iptc_latin1_undeclared() -> None:
    md = extract(mf.read("iptc_latin1.jpg"), mtime=None)
    assert (md.keywords, md.description) == (("café",), "façade")
    assert REF["iptc_latin1.jpg"]["Keywords"] == "café"


def test_iptc_declared_utf8_with_bad_bytes_does_not_raise() -> None:
    block = b"\x1c\x01\x5a\x00\x03\x1b%G" + b"\x1c\x02\x19\x00\x04caf\xe9"
    assert iptc.read(block).keywords == ("caf\ufffd",)


def test_iptc_extended_size_and_garbage() -> None:
    assert iptc.records(b"\x1c\x02\x78\x80\x02\x00\x03abc") == {(2, 120): [b"abc"]}
    assert iptc.records(b"garbage") == {}


def test_xmp_element_and_attribute_forms() -> None:
    packet = (mf.XMP_HEAD.replace(b"<rdf:Description ", b'<rdf:Description '
              b'xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:Rating="-1" ')
              + b"<dc:title><rdf:Alt><rdf:li xml:lang='fr'>Titre</rdf:li>"
              b"<rdf:li xml:lang='x-default'>Title</rdf:li></rdf:Alt></dc:title>"
              b"<dc:subject><rdf:Bag><rdf:li>b</rdf:li><rdf:li>a</rdf:li><rdf:li>b</rdf:li>"
              b"</rdf:Bag></dc:subject>" + mf.XMP_TAIL)
    found, notes = Found(), []
    xmp.read(packet, found, notes)
    assert (found.rating, found.title, found.keywords, notes) == (-1, "Title", ("b", "a"), [])


def test_sidecar_wins_field_by_field() -> None:
    md = extract(mf.read("full.jpg"), mtime=None, sidecar=mf.read(mf.SIDECAR))
    side = REF[mf.SIDECAR]
    assert (md.title, md.rating, md.lens) == (side["Title"], side["Rating"], side["Lens"])
    assert md.keywords == ("side",)
    assert (md.latitude, md.longitude) == (side["GPSLatitude"], side["GPSLongitude"])
    assert md.altitude is None  # the position is the sidecar's, as a whole
    assert (md.taken_at, md.taken_offset, md.taken_source) == (
        "2023-12-24T18:00:00", "+01:00", "XMP:DateTimeOriginal")
    # what the sidecar does not say comes from the file
    assert (md.camera_make, md.iso, md.description) == ("Canon", 400, "XMP description")
    assert md.error is None


def test_sidecar_alone_over_a_bare_file() -> None:
    md = extract(mf.read("bare.bmp"), mtime=0, sidecar=mf.read(mf.SIDECAR))
    assert (md.title, md.taken_source) == ("Sidecar title", "XMP:DateTimeOriginal")


def test_places_not_ready_leaves_place_fields_none(monkeypatch: pytest.MonkeyPatch) -> None:
    md = extract(mf.read("full.jpg"), mtime=None)
    assert (md.country, md.country_code, md.region, md.place) == (None,) * 4

    def lisbon(lat: float, lon: float) -> places.Place:
        return places.Place("Europe/Lisbon", "Portugal", "PT", "Lisbon", "Lisbon")

    monkeypatch.setattr(places, "locate", lisbon)
    md = extract(mf.read("lisbon_june.jpg"), mtime=None)
    assert (md.country, md.country_code, md.region, md.place) == (
        "Portugal", "PT", "Lisbon", "Lisbon")

    def broken(lat: float, lon: float) -> places.Place:
        raise RuntimeError("table missing")

    monkeypatch.setattr(places, "locate", broken)
    assert extract(mf.read("lisbon_june.jpg"), mtime=None).country is None


def test_iptc_undeclared_utf8_read_as_utf8() -> None:
    """No 1:90 record but valid UTF-8 (what most writers put there now): not read as Latin-1
    ('cafÃ©'); bytes that are not UTF-8 are Latin-1 (iptc_latin1.jpg)."""
    assert iptc.read(b"\x1c\x02\x19\x00\x05caf\xc3\xa9").keywords == ("café",)
