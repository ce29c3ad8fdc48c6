"""Serving the sandbox with uvicorn: in the foreground, or in a thread for tests and benchmarks."""

from __future__ import annotations

import logging
import socket
import threading
import time
from types import TracebackType

import uvicorn

from thrifty.errors import SandboxError
from thrifty.sandbox.app import create_app
from thrifty.sandbox.settings import SandboxSettings
from thrifty.tokens import preload_encodings

logger = logging.getLogger(__name__)

START_TIMEOUT_S = 20.0


def run(host: str, port: int, settings: SandboxSettings) -> None:
    """Serve the sandbox on ``host:port`` until interrupted."""
    preload_encodings()
    server = uvicorn.Server(_config(settings, log_level="info", host=host, port=port))
    logger.info("sandbox listening on http://%s:%d", host, port)
    server.run()


def _config(
    settings: SandboxSettings, *, log_level: str, host: str = "127.0.0.1", port: int = 0
) -> uvicorn.Config:
    return uvicorn.Config(
        create_app(settings),
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        lifespan="off",
        ws="none",
        timeout_keep_alive=30,
    )


class SandboxServer:
    """A sandbox on a free loopback port, served from a background thread.

    Use it as a context manager; ``url`` is ``http://127.0.0.1:PORT``.
    """

    def __init__(self, settings: SandboxSettings | None = None, host: str = "127.0.0.1") -> None:
        self.settings = settings or SandboxSettings()
        self.host = host
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> str:
        """Bind a free port, start serving and return the base URL."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((self.host, 0))
        self.port = int(sock.getsockname()[1])
        server = uvicorn.Server(_config(self.settings, log_level="warning"))
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name=f"sandbox-{self.port}", daemon=True
        )
        self._server, self._thread = server, thread
        thread.start()

        deadline = time.monotonic() + START_TIMEOUT_S
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise SandboxError(f"the sandbox on {self.url} did not start; see the log above")
            time.sleep(0.005)
        return self.url

    def stop(self) -> None:
        """Stop serving and wait for the thread to end."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=START_TIMEOUT_S)
        self._server = self._thread = None

    def __enter__(self) -> SandboxServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
