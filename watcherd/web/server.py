"""Run the app under uvicorn on ``[web] listen``; READY to systemd once the index is warm."""

from __future__ import annotations

import asyncio
import socket

import uvicorn

from watcherd import sdnotify
from watcherd.config import Config
from watcherd.web.app import Server


class TokenRequired(Exception):
    pass


def check(cfg: Config) -> None:
    """``[web] token`` is required off loopback (raises TokenRequired naming the key)."""
    if not cfg.web.loopback and not cfg.web.token:
        where = f" in {cfg.file}" if cfg.file else ""
        raise TokenRequired(
            f"web.token: required{where} because web.listen ({cfg.web.listen}) is not a "
            "loopback address: set [web] token, or listen on 127.0.0.1")


def listen(cfg: Config) -> socket.socket:
    """The listening socket, bound before anything is loaded: a port in use is a one-line
    error (RuntimeError), not a traceback after seconds of loading torch."""
    host = cfg.web.host
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, cfg.web.port), family=family, backlog=2048)
    except OSError as exc:
        raise RuntimeError(f"cannot listen on {cfg.web.listen} (web.listen in {cfg.file}): "
                           f"{exc.strerror or exc}") from None


def serve(cfg: Config) -> None:
    check(cfg)
    sock = listen(cfg)
    app = Server(cfg).app()
    config = uvicorn.Config(app, host=cfg.web.host, port=cfg.web.port, log_config=None,
                            access_log=False, server_header=False, lifespan="on",
                            timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)

    async def main() -> None:
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started and not task.done():
            await asyncio.sleep(0.05)
        if server.started:
            sdnotify.notify(f"READY=1\nSTATUS=serving on {cfg.web.listen}")
        await task

    asyncio.run(main())
    if not server.started:
        raise RuntimeError(f"could not serve on {cfg.web.listen} (see the log)")
