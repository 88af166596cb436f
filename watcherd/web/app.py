"""The ASGI application: routes for the JSON API, thumbnails and originals, the pages, login
and /metrics, built around one warm :class:`~watcherd.web.library.Library`."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from watcherd import status as status_model
from watcherd.config import Config
from watcherd.search.duplicates import report as duplicates_report
from watcherd.search.engine import Query, hits_json
from watcherd.web import auth, client, pages, searching
from watcherd.web import params as p
from watcherd.web.library import Library
from watcherd.web.media_types import original_type
from watcherd.web.metrics import LibraryCollector, Metrics

log = logging.getLogger("watcherd.web")
HERE = Path(__file__).parent

#: Formats a browser shows inline; anything else is offered as a download.
THUMB_TYPES = {"webp": "image/webp", "jpeg": "image/jpeg", "jpg": "image/jpeg",
               "png": "image/png"}


def bad(reason: str, status: int = 400, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": reason}, status_code=status, headers=headers)


def guarded(fn: Callable[[Request], Response]) -> Callable[[Request], Response]:
    """Bad parameters and unavailable searches become JSON errors with their reason."""

    def endpoint(request: Request) -> Response:
        try:
            return fn(request)
        except p.BadRequest as exc:
            return bad(str(exc))
        except searching.Unavailable as exc:
            return bad(str(exc), exc.status)

    endpoint.__name__ = fn.__name__
    return endpoint


class Server:
    def __init__(self, cfg: Config, *, warm: bool = True) -> None:
        self.cfg = cfg
        self.lib = Library(cfg)
        self.warm = warm
        self._celery: Any = None
        self.metrics = Metrics(LibraryCollector(self.lib.conn, self.queues, self.workers,
                                                self.alerts))

    # ------------------------------------------------------------------ status and metrics
    def queues(self) -> dict[str, int] | None:
        from watcherd.broker.app import make_app, queue_depths

        try:
            if self._celery is None:
                self._celery = make_app(self.cfg)
            return queue_depths(self._celery, self.cfg)
        except Exception:
            return None

    def workers(self) -> list[dict[str, Any]]:
        from watcherd.store import browse

        return status_model.with_liveness(self.cfg, browse.workers(self.lib.conn()))

    def alerts(self) -> list[dict[str, str]]:
        return status_model.alerts(self.cfg, self.lib.conn())

    def status(self) -> dict[str, Any]:
        report = status_model.collect(self.cfg, self.lib.conn(),
                                      server_model=self.lib.model_loaded, with_queues=False)
        from watcherd.broker.app import make_app, queue_depths

        try:
            if self._celery is None:
                self._celery = make_app(self.cfg)
            report["queues"] = queue_depths(self._celery, self.cfg)
        except Exception as exc:
            report["queues"] = None
            report["broker_error"] = str(exc)
        report["server"] = {"indexes": self.lib.index_stats()}
        return report

    # ------------------------------------------------------------------------------ API
    def search(self, query: Query, model: str | None) -> Any:
        results, seconds = searching.run(self.lib, query, model)
        self.metrics.search_seconds.labels(searching.kind_of(query)).observe(seconds)
        return results

    def api_search(self, request: Request) -> Response:
        query, model = searching.parse(request.query_params)
        results = self.search(query, model)
        return JSONResponse({
            "model": {"model": results.model.model, "pretrained": results.model.pretrained},
            "considered": results.considered,
            "note": results.note,
            "results": hits_json(results.hits)})

    def api_image(self, request: Request) -> Response:
        p.only(request.query_params, ())
        image_id = p.image_id(request.path_params["image_id"])
        row = self.lib.image(image_id)
        if row is None:
            return bad(f"no photo #{image_id}", 404)
        return JSONResponse(row)

    def api_similar(self, request: Request) -> Response:
        p.only(request.query_params, ("n", "min_score", "under", "model"))
        image_id = p.image_id(request.path_params["image_id"])
        qp = request.query_params
        query = Query(images=(image_id,), n=p.opt_int(qp, "n", 20, 1, p.MAX_N),
                      min_score=p.score(qp, "min_score"), under=p.folder(qp),
                      exclude=(image_id,))
        results = self.search(query, p.model(qp))
        return JSONResponse({"image_id": image_id, "results": hits_json(results.hits)})

    def api_duplicates(self, request: Request) -> Response:
        """What `watcherd duplicates --json` prints; the note it prints on stderr (which model,
        during a re-embed) and the number of photos compared come as headers."""
        qp = request.query_params
        p.only(qp, searching.DUPLICATES_PARAMS)
        threshold = p.score(qp, "threshold")
        if threshold is None:
            threshold = self.cfg.search.duplicate_threshold
        choice = searching.duplicates_choice(self.lib, p.model(qp), p.model(qp, "pretrained"))
        headers = {client.NOTE_HEADER: quote(choice.note)} if choice.note else {}
        try:
            found = searching.duplicates(self.lib, choice, threshold)
        except p.BadRequest as exc:
            return bad(str(exc), headers=headers)
        except searching.Unavailable as exc:
            return bad(str(exc), exc.status, headers=headers)
        headers[client.COMPARED_HEADER] = str(found.compared)
        return JSONResponse(duplicates_report(found), headers=headers)

    def api_status(self, request: Request) -> Response:
        p.only(request.query_params, ())
        return JSONResponse(self.status())

    def metrics_text(self, request: Request) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(self.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    # ---------------------------------------------------------------------------- files
    def thumb(self, request: Request) -> Response:
        image_id = p.image_id(request.path_params["image_id"])
        size = p.integer(request.path_params["size"], "size", 1, 8192)
        found = self.lib.thumbnail(image_id, size)
        if found is None:
            return bad(f"no {size} px thumbnail of photo #{image_id}", 404)
        data, fmt, created = found
        etag = f'"{image_id}-{size}-{created}"'
        headers = {"ETag": etag, "Cache-Control": "private, max-age=86400"}
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        return Response(data, media_type=THUMB_TYPES.get(fmt.lower(), "application/octet-stream"),
                        headers=headers)

    def original(self, request: Request) -> Response:
        image_id = p.image_id(request.path_params["image_id"])
        row = self.lib.image(image_id)
        if row is None or row["deleted_at"] is not None:
            return bad(f"no photo #{image_id}", 404)
        real = self.lib.inside_roots(row["path"])
        if real is None:
            return bad(f"photo #{image_id} is not inside a watched folder", 403)
        if not os.path.isfile(real):
            return bad(f"the file of photo #{image_id} is gone", 404)
        codec = (self.lib.metadata(image_id) or {}).get("video_codec")
        media, inline = original_type(real, row["format"], codec)
        return FileResponse(real, media_type=media if inline else "application/octet-stream",
                            filename=os.path.basename(real),
                            content_disposition_type="inline" if inline else "attachment",
                            headers={"Cache-Control": "private, max-age=3600"})

    # ---------------------------------------------------------------------------- login
    def login_page(self, request: Request) -> Response:
        return pages.render("login.html", next=auth.safe_next(request.query_params.get("next")),
                            error=None, needed=bool(self.cfg.web.token))

    async def login(self, request: Request) -> Response:
        body = (await request.body())[:8192].decode("utf-8", "replace")
        form = {k: v[0] for k, v in parse_qs(body).items()}
        target = auth.safe_next(form.get("next"))
        token = self.cfg.web.token
        if token and not auth.authorised(token, request.headers, {}) and not (
                form.get("token") and auth.hmac.compare_digest(
                    form["token"].encode(), token.encode())):
            return pages.render("login.html", next=target, error="wrong token", needed=True,
                                status_code=403)
        response = Response(status_code=303, headers={"Location": target})
        if token:
            response.set_cookie(auth.COOKIE, auth.session_value(token), httponly=True,
                                samesite="strict", max_age=180 * 86400)
        return response

    # ------------------------------------------------------------------------------ app
    def app(self) -> ASGIApp:
        @contextlib.asynccontextmanager
        async def lifespan(_: Starlette) -> AsyncIterator[None]:
            if self.warm:
                from starlette.concurrency import run_in_threadpool

                await run_in_threadpool(self.lib.warm)
            yield

        page = pages.Pages(self)
        routes = [
            Route("/", guarded(page.home)),
            Route("/photo/{image_id}", guarded(page.photo)),
            Route("/status", guarded(page.status)),
            Route("/timeline", guarded(page.timeline)),
            Route("/login", self.login_page, methods=["GET"]),
            Route("/login", self.login, methods=["POST"]),
            Route("/api/search", guarded(self.api_search)),
            Route("/api/images/{image_id}", guarded(self.api_image)),
            Route("/api/similar/{image_id}", guarded(self.api_similar)),
            Route("/api/status", guarded(self.api_status)),
            Route("/api/duplicates", guarded(self.api_duplicates)),
            Route("/thumb/{image_id}/{size}", guarded(self.thumb)),
            Route("/original/{image_id}", guarded(self.original)),
            Route("/metrics", self.metrics_text),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ]
        app = Starlette(routes=routes, lifespan=lifespan,
                        exception_handlers={Exception: _internal_error})
        tagged = _Tagged(app, client.library_tag(self.cfg))
        return auth.Guard(tagged, self.cfg.web.token)


class _Tagged:
    """Every answer to an authorised request says which library this server serves, so that
    `watcherd search` and `duplicates` use only a server of their own config
    (:mod:`watcherd.web.client`)."""

    def __init__(self, app: ASGIApp, tag: str) -> None:
        self.app = app
        self.header = (client.LIBRARY_HEADER.lower().encode(), tag.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.app(scope, receive, auth.adding_headers(send, [self.header]))


async def _internal_error(request: Request, exc: Exception) -> Response:
    log.exception("internal error on %s", request.url.path, exc_info=exc)
    return bad("internal error (see the server's log)", 500)
