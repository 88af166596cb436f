"""amqps:// and rediss:// with the broker's certificate verified: a throwaway CA (openssl CLI)
signs a certificate for ``localhost``; a small asyncio TLS proxy in front of the local RabbitMQ or
Redis serves it. Celery's app (queue depths, what the outbox and workers use) and watcherd's own
connections (fleet, results) connect through it with ``[broker] ca_file``; a certificate from
another CA, or for another host name, is refused; the password is never printed."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import cli, require_broker, write_config
from watcherd import config
from watcherd.broker.app import make_app, queue_depths
from watcherd.broker.channel import Publisher, connect, fleet_queue

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(folder: Path, name: str, host: str) -> tuple[Path, Path, Path]:
    """(ca.pem, cert.pem, key.pem): a CA and a server certificate for ``host`` signed by it."""
    folder.mkdir()
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
             f"/CN={name} test CA", "-keyout", "ca.key", "-out", "ca.pem", cwd=folder)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={host}", "-keyout",
             "key.pem", "-out", "req.csr", cwd=folder)
    (folder / "ext.cnf").write_text(f"subjectAltName=DNS:{host}\n")
    _openssl("x509", "-req", "-in", "req.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "1", "-extfile", "ext.cnf", "-out", "cert.pem",
             cwd=folder)
    return folder / "ca.pem", folder / "cert.pem", folder / "key.pem"


@contextlib.contextmanager
def tls_proxy(cert: Path, key: Path, target_port: int) -> Iterator[int]:
    """TLS on 127.0.0.1:<returned port>, plain TCP to 127.0.0.1:target_port; stopped after."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    port: list[int] = []

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def main() -> asyncio.Server:
        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
        port.append(server.sockets[0].getsockname()[1])
        ready.set()
        return server

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = asyncio.run_coroutine_threadsafe(main(), loop).result(10)
    ready.wait(10)
    try:
        yield port[0]
    finally:
        loop.call_soon_threadsafe(server.close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


@pytest.mark.parametrize("broker", ["amqp", "redis"])
def test_tls_broker_with_certificate_verification(broker: str, tmp_path: Path) -> None:
    require_broker(broker)
    ca, cert, key = make_ca(tmp_path / "ca", "good", "localhost")
    other_ca, _, _ = make_ca(tmp_path / "other", "other", "localhost")
    _, wrong_host_cert, wrong_host_key = make_ca(tmp_path / "wrong", "wrong", "elsewhere.lan")
    target = 5672 if broker == "amqp" else 6379

    def url(port: int) -> str:
        return (f"amqps://guest:guest@localhost:{port}//" if broker == "amqp"
                else f"rediss://localhost:{port}/0")

    def cfg_for(port: int, ca_file: Path) -> config.Config:
        folder = tmp_path / f"c{port}-{ca_file.parent.name}"
        folder.mkdir()
        return config.load(write_config(folder, broker_url=url(port),
                                        broker={"ca_file": str(ca_file)}))

    with tls_proxy(cert, key, target) as port:
        cfg = cfg_for(port, ca)
        assert set(queue_depths(make_app(cfg), cfg).values()) == {0}
        publisher = Publisher(cfg)
        assert publisher.publish({"said": "over TLS"})
        publisher.close()
        with connect(cfg) as conn:
            q = fleet_queue(cfg)(conn.channel())
            message = q.get(no_ack=True, accept=["json"])
            assert message is not None and message.payload == {"said": "over TLS"}
            q.delete()
        out = cli(cfg.file, "status")  # type: ignore[arg-type]
        assert out.returncode == 0 and f"localhost:{port}" in out.stdout
        assert "guest:guest" not in out.stdout + out.stderr

        untrusted = cfg_for(port, other_ca)
        with pytest.raises(Exception, match=r"(?i)certificate verify failed"):
            queue_depths(make_app(untrusted), untrusted)
        assert not Publisher(untrusted).publish({"said": "must not arrive"})

    with tls_proxy(wrong_host_cert, wrong_host_key, target) as port:
        wrong = cfg_for(port, tmp_path / "wrong" / "ca.pem")
        with pytest.raises(Exception, match=r"(?i)hostname|certificate verify failed"):
            queue_depths(make_app(wrong), wrong)
