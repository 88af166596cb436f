"""The server-rendered pages: search grid / newest photos, one photo with its nearest ones, the
status view, login. Jinja2 with autoescaping; no JavaScript needed."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlencode

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from watcherd import status as status_model
from watcherd.search.engine import Query, Results
from watcherd.web import params as p
from watcherd.web import searching
from watcherd.web.library import Library, Tile
from watcherd.web.media_types import playable

if TYPE_CHECKING:
    from watcherd.config import Config

PAGE = 60
NEAREST = 24
_ENV = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
                          autoescape=True, undefined=jinja2.StrictUndefined)


def _clock(seconds: float | None) -> str:
    """A video's duration as m:ss (h:mm:ss from an hour)."""
    if seconds is None or seconds != seconds or seconds < 0:
        return ""
    total = round(seconds)
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _date(ts: float | None) -> str:
    if ts is None:
        return "?"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _exposure(seconds: float | None) -> str:
    if not seconds:
        return ""
    return f"1/{round(1 / seconds)} s" if seconds < 0.5 else f"{seconds:g} s"


_ENV.filters["date"] = _date
_ENV.filters["clock"] = _clock
_ENV.filters["exposure"] = _exposure
_ENV.filters["basename"] = os.path.basename
_ENV.filters["eta"] = status_model.eta_text


def render(name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(_ENV.get_template(name).render(**context), status_code=status_code)


class Site(Protocol):
    """What the pages need of the server (``web.app.Server``)."""

    cfg: Config
    lib: Library

    def search(self, query: Query, model: str | None) -> Results: ...

    def status(self) -> dict[str, Any]: ...


class Pages:
    def __init__(self, server: Site) -> None:
        self.server = server
        self.lib = server.lib
        sizes = server.cfg.thumbnails.sizes
        self.small, self.large = min(sizes), max(sizes)

    def home(self, request: Request) -> Response:
        qp = request.query_params
        p.only(qp, ("q", "like", "under", "page", *searching.FILTER_PARAMS))
        texts = p.texts(qp, "q")
        like = p.image_id(qp["like"], "like") if "like" in qp else None
        if texts and like is not None:
            raise p.BadRequest("give either q (a text) or like (a photo id), not both")
        under = p.folder(qp)
        wanted = searching.filters(qp)
        kept = {name: qp[name] for name in searching.FILTER_PARAMS if qp.get(name, "").strip()}
        searching_ = bool(texts) or like is not None or bool(wanted)
        max_page = 1_000_000 if not searching_ else p.MAX_N // PAGE
        page = p.opt_int(qp, "page", 1, 1, max_page)
        error = note = None
        if searching_:
            query = Query(texts=(" ".join(texts),) if texts else (),
                          images=(like,) if like is not None else (),
                          exclude=(like,) if like is not None else (),
                          n=min(p.MAX_N, PAGE * page + 1), under=under, filters=wanted)
            tiles, more, note, error = self._found(query, page, max_page)
        else:
            tiles = self.lib.newest(PAGE * (page - 1), PAGE + 1, under)
            more = len(tiles) > PAGE
            tiles = tiles[:PAGE]

        def link(to: int) -> str:
            args = {k: v for k, v in (("q", " ".join(texts)), ("like", like or ""),
                                      ("under", under or "")) if v}
            return "/?" + urlencode({**args, **kept, "page": to})

        return render("home.html", q=" ".join(texts), like=like, under=under or "", tiles=tiles,
                      note=note, filters=kept, keep=urlencode(kept),
                      listing=searching_ and not (texts or like),
                      size=self.small, page=page, error=error,
                      prev=link(page - 1) if page > 1 else None,
                      next=link(page + 1) if more else None)

    def _found(self, query: Query, page: int, max_page: int
               ) -> tuple[list[Tile], bool, str | None, str | None]:
        """One page of a search's (or a listing's) tiles, whether more follow, note, error."""
        try:
            results = self.server.search(query, None)
            hits, note, error = results.hits, results.note, None
        except (p.BadRequest, searching.Unavailable) as exc:
            hits, note, error = [], None, str(exc)
        window = hits[PAGE * (page - 1):PAGE * page]
        more = len(hits) > PAGE * page and page < max_page
        tiles = self.lib.tiles([(h.image_id, h.path, h.score, None, h.taken_at)
                                for h in window])
        return tiles, more, note, error

    def timeline(self, request: Request) -> Response:
        """Years, newest first, each with its months and their counts."""
        p.only(request.query_params, ())
        years: dict[str, list[tuple[str, int]]] = {}
        for month, count in self.lib.timeline():
            years.setdefault(month[:4], []).append((month, count))
        return render("timeline.html", years=[
            (year, sum(c for _, c in months), months) for year, months in years.items()])

    def photo(self, request: Request) -> Response:
        p.only(request.query_params, ())
        image_id = p.image_id(request.path_params["image_id"])
        row = self.lib.image(image_id)
        if row is None:
            return render("message.html", status_code=404, title="Not found",
                          message=f"No photo #{image_id}.")
        error, tiles = None, []
        if row["deleted_at"] is None:
            try:
                hits = self.server.search(Query(images=(image_id,), n=NEAREST,
                                                exclude=(image_id,)), None).hits
                tiles = self.lib.tiles([(h.image_id, h.path, h.score, None, None)
                                        for h in hits])
            except (p.BadRequest, searching.Unavailable) as exc:
                error = str(exc)
        sizes = [t["size"] for t in row["thumbnails"]]
        large = max((s for s in sizes if s <= self.large), default=None)
        meta = self.lib.metadata(image_id)
        inline = playable(row["path"], row["format"], (meta or {}).get("video_codec"))
        return render("photo.html", row=row, large=large, tiles=tiles, size=self.small,
                      error=error, inline=inline, meta=meta,
                      original=self.lib.inside_roots(row["path"]) is not None)

    def status(self, request: Request) -> Response:
        p.only(request.query_params, ())
        return render("status.html", s=self.server.status())
