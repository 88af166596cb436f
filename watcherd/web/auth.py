"""The token rule and the security headers, as one ASGI middleware.

With ``[web] token`` set, every route except the login page and the static files needs either
``Authorization: Bearer TOKEN`` or the session cookie the login page sets. The cookie holds an
HMAC of the token, not the token itself: it proves the login and stops working when the token
changes. Pages without credentials are sent to /login; the API, /thumb, /original and
/metrics get 401."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from starlette.datastructures import Headers
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

COOKIE = "watcherd_session"
OPEN_PATHS = ("/login", "/static/")
PAGE_PREFIXES = ("/photo/", "/status")

CSP = ("default-src 'none'; img-src 'self'; style-src 'self'; script-src 'self'; "
       "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]


def session_value(token: str) -> str:
    return hmac.new(token.encode(), b"watcherd-session-v1", hashlib.sha256).hexdigest()


def authorised(token: str, headers: Headers, cookies: dict[str, str]) -> bool:
    if not token:
        return True
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer ") and hmac.compare_digest(
            auth[7:].strip().encode(), token.encode()):
        return True
    cookie = cookies.get(COOKIE, "")
    return bool(cookie) and hmac.compare_digest(cookie.encode(), session_value(token).encode())


def is_page(path: str) -> bool:
    return path == "/" or path.startswith(PAGE_PREFIXES)


def safe_next(value: str | None) -> str:
    """Where to go after logging in: a path on this server only (no open redirect)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


def adding_headers(send: Send, headers: Sequence[tuple[bytes, bytes]]) -> Send:
    """``send`` with ``headers`` added to the response's start (ASGI middlewares here)."""

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", []), *headers]
        await send(message)

    return wrapped


class Guard:
    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app, self.token = app, token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        send_with_headers = adding_headers(send, SECURITY_HEADERS)
        path: str = scope["path"]
        if not path.startswith(OPEN_PATHS):
            headers = Headers(scope=scope)
            if not authorised(self.token, headers, _cookies(headers)):
                await _refuse(scope, path)(scope, receive, send_with_headers)
                return
        await self.app(scope, receive, send_with_headers)


def _refuse(scope: Scope, path: str) -> Response:
    if is_page(path) and scope.get("method") == "GET":
        target = path + ("?" + scope["query_string"].decode("latin-1")
                         if scope.get("query_string") else "")
        return RedirectResponse("/login?next=" + quote(target, safe=""), status_code=303)
    return JSONResponse({"error": "a token is needed: Authorization: Bearer TOKEN, or log in "
                                  "at /login"}, status_code=401,
                        headers={"WWW-Authenticate": "Bearer"})


def _cookies(headers: Headers) -> dict[str, str]:
    out: dict[str, Any] = {}
    for part in headers.get("cookie", "").split(";"):
        name, _, value = part.strip().partition("=")
        if name:
            out[name] = value
    return out
