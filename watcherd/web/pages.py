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

if TYPE_CHECKING:
    from watcherd.config import Config

PAGE = 60
NEAREST = 24
_ENV = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
                          autoescape=True, undefined=jinja2.StrictUndefined)


def _date(ts: float | None) -> str:
    if ts is None:
        return "?"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


_ENV.filters["date"] = _date
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
        p.only(qp, ("q", "like", "under", "page"))
        texts = p.texts(qp, "q")
        like = p.image_id(qp["like"], "like") if "like" in qp else None
        if texts and like is not None:
            raise p.BadRequest("give either q (a text) or like (a photo id), not both")
        under = p.folder(qp)
        searching_ = bool(texts) or like is not None
        max_page = 1_000_000 if not searching_ else p.MAX_N // PAGE
        page = p.opt_int(qp, "page", 1, 1, max_page)
        error = note = None
        tiles: list[Tile] = []
        more = False
        if searching_:
            n = min(p.MAX_N, PAGE * page + 1)
            if texts:
                query = Query(texts=(" ".join(texts),), n=n, under=under)
            else:
                assert like is not None  # searching_: a text or a photo to be like
                query = Query(images=(like,), n=n, under=under, exclude=(like,))
            try:
                results = self.server.search(query, None)
                hits, note = results.hits, results.note
            except (p.BadRequest, searching.Unavailable) as exc:
                error, hits = str(exc), []
            window = hits[PAGE * (page - 1):PAGE * page]
            more = len(hits) > PAGE * page and page < max_page
            thumbs = self.lib.with_thumbs([h.image_id for h in window])
            tiles = [Tile(h.image_id, h.path, h.score, None, h.image_id in thumbs)
                     for h in window]
        else:
            tiles = self.lib.newest(PAGE * (page - 1), PAGE + 1, under)
            more = len(tiles) > PAGE
            tiles = tiles[:PAGE]

        def link(to: int) -> str:
            args = {k: v for k, v in (("q", " ".join(texts)), ("like", like or ""),
                                      ("under", under or "")) if v}
            return "/?" + urlencode({**args, "page": to})

        return render("home.html", q=" ".join(texts), like=like, under=under or "", tiles=tiles,
                      note=note,
                      size=self.small, page=page, error=error,
                      prev=link(page - 1) if page > 1 else None,
                      next=link(page + 1) if more else None)

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
                thumbs = self.lib.with_thumbs([h.image_id for h in hits])
                tiles = [Tile(h.image_id, h.path, h.score, None, h.image_id in thumbs)
                         for h in hits]
            except (p.BadRequest, searching.Unavailable) as exc:
                error = str(exc)
        sizes = [t["size"] for t in row["thumbnails"]]
        large = max((s for s in sizes if s <= self.large), default=None)
        inline = str(row["format"] or "").lower() in {"jpeg", "png", "gif", "webp", "avif", "bmp"}
        return render("photo.html", row=row, large=large, tiles=tiles, size=self.small,
                      error=error, inline=inline,
                      original=self.lib.inside_roots(row["path"]) is not None)

    def status(self, request: Request) -> Response:
        p.only(request.query_params, ())
        return render("status.html", s=self.server.status())
