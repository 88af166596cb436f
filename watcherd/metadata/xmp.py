"""XMP packets (embedded, or a sidecar) parsed with defusedxml (no DTD, no entities), in both
the attribute and the element forms of RDF: dates, title, description, subject, rating, lens,
camera and GPS. The caller caps the size (``containers.MAX_XMP``) before this sees it."""

from __future__ import annotations

import math
import re
from typing import Any
from xml.etree.ElementTree import Element

from defusedxml import ElementTree

from watcherd.metadata import dates, exif, values
from watcherd.metadata.found import Found

RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
NS = {
    "dc": "http://purl.org/dc/elements/1.1/",
    "xmp": "http://ns.adobe.com/xap/1.0/",
    "exif": "http://ns.adobe.com/exif/1.0/",
    "exifEX": "http://cipa.jp/exif/1.0/",
    "aux": "http://ns.adobe.com/exif/1.0/aux/",
    "photoshop": "http://ns.adobe.com/photoshop/1.0/",
    "tiff": "http://ns.adobe.com/tiff/1.0/",
}
_NAMES = {f"{{{uri}}}": prefix for prefix, uri in NS.items()}
#: XMP dates in order of trust, and the taken_source each gives.
DATES = (("exif:DateTimeOriginal", "XMP:DateTimeOriginal"),
         ("photoshop:DateCreated", "XMP:DateCreated"),
         ("xmp:CreateDate", "XMP:CreateDate"))
_COORD = re.compile(r"(\d{1,3}(?:\.\d+)?),(\d{1,2}(?:\.\d+)?)(?:,(\d{1,2}(?:\.\d+)?))?([NSEW])")


def _short(tag: str) -> str | None:
    """``{http://purl.org/dc/elements/1.1/}title`` → ``dc:title`` for the namespaces read."""
    uri, _, local = tag.rpartition("}")
    prefix = _NAMES.get(uri + "}")
    return f"{prefix}:{local}" if prefix else None


def _value(el: Element) -> str | list[str]:
    """An element's text, or its rdf:Alt (x-default first) / Bag / Seq items."""
    for container in el:
        if container.tag in (f"{{{RDF}}}Alt", f"{{{RDF}}}Bag", f"{{{RDF}}}Seq"):
            items = [li for li in container if li.tag == f"{{{RDF}}}li"]
            if container.tag == f"{{{RDF}}}Alt":
                items.sort(key=lambda li: li.get(XML_LANG) != "x-default")
            return [li.text or "" for li in items]
    return el.text or ""


def properties(packet: bytes) -> dict[str, Any]:
    """Every property of the namespaces read, first occurrence kept. Raises for a packet
    that is not XML or declares a DTD/entities (defusedxml)."""
    root = ElementTree.fromstring(packet.strip(b"\x00 \t\r\n"), forbid_dtd=True)
    out: dict[str, Any] = {}
    for desc in root.iter(f"{{{RDF}}}Description"):
        for attr, raw in desc.attrib.items():
            name = _short(attr)
            if name:
                out.setdefault(name, raw)
        for child in desc:
            name = _short(child.tag)
            if name:
                out.setdefault(name, _value(child))
    return out


def _first(value: Any) -> Any:
    return value[0] if isinstance(value, list) and value else value


def coordinate(value: Any) -> float | None:
    """``'38,43.2N'``, ``'38,43,12N'`` or a signed decimal as degrees; NaN when garbage."""
    raw = values.text(_first(value))
    if raw is None:
        return None
    m = _COORD.fullmatch(raw.replace(" ", ""))
    if m is None:
        number = values.number(raw)
        return math.nan if number is None else number
    degrees = float(m[1]) + float(m[2]) / 60 + (float(m[3]) / 3600 if m[3] else 0)
    return -degrees if m[4] in "SW" else degrees


def read(packet: bytes, found: Found, notes: list[str], where: str = "XMP") -> None:
    """Everything an XMP packet says, into ``found``."""
    try:
        props = properties(packet)
    except Exception as e:  # ParseError, DTDForbidden, EntitiesForbidden, …
        notes.append(f"{where} unreadable ({type(e).__name__})")
        return
    for prop, source in DATES:
        try:
            stamp = dates.xmp(_first(props.get(prop)))
        except ValueError as e:
            notes.append(f"{where} {prop} {e}")
            continue
        if stamp is not None:
            found.stamps.append((source, stamp))
    exif.guarded(notes, f"{where} GPS time", lambda: _gps_time(props, found))
    exif.guarded(notes, f"{where} GPS", lambda: _position(props, found, notes))
    _camera(props, found)
    _description(props, found)


def _gps_time(props: dict[str, Any], found: Found) -> None:
    stamp = dates.xmp(_first(props.get("exif:GPSTimeStamp")))
    if stamp is not None and stamp.offset is not None:
        found.gps_stamp = ("XMP:GPSDateTime", stamp)


def _position(props: dict[str, Any], found: Found, notes: list[str]) -> None:
    lat, lon = coordinate(props.get("exif:GPSLatitude")), coordinate(props.get("exif:GPSLongitude"))
    if lat is None or lon is None:
        return
    alt = values.number(_first(props.get("exif:GPSAltitude")))
    if alt is not None and values.text(_first(props.get("exif:GPSAltitudeRef"))) == "1":
        alt = -abs(alt)
    exif.settle(found, lat, lon, alt, notes)


def _camera(props: dict[str, Any], found: Found) -> None:
    found.camera_make = values.text(_first(props.get("tiff:Make")))
    found.camera_model = values.text(_first(props.get("tiff:Model")))
    found.lens = values.text(_first(props.get("exifEX:LensModel"))) or values.text(
        _first(props.get("aux:Lens")))
    found.focal_length = values.positive(_first(props.get("exif:FocalLength")))
    found.f_number = values.positive(_first(props.get("exif:FNumber")))
    found.exposure_time = values.positive(_first(props.get("exif:ExposureTime")))
    iso = props.get("exifEX:PhotographicSensitivity") or props.get("exif:ISOSpeedRatings")
    found.iso = values.integer(_first(iso), 1, 10**7)


def _description(props: dict[str, Any], found: Found) -> None:
    found.rating = values.integer(_first(props.get("xmp:Rating")), -1, 5)
    found.title = values.text(_first(props.get("dc:title")))
    desc = values.text(_first(props.get("dc:description")))
    if desc:
        found.descriptions.append(desc)
    subject = props.get("dc:subject")
    found.keywords = values.unique_texts(subject if isinstance(subject, list) else [subject])
