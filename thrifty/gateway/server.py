"""Running the gateway under uvicorn."""

from __future__ import annotations

import socket
from dataclasses import replace

import uvicorn
from starlette.applications import Starlette

from thrifty.config import GatewayConfig, sandbox_providers
from thrifty.gateway.app import SANDBOX_MOUNT, create_app


def with_sandbox(config: GatewayConfig, host: str, port: int) -> GatewayConfig:
    """Point every provider at the emulator mounted in the gateway itself."""
    local = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    base_url = f"http://{local}:{port}{SANDBOX_MOUNT}"
    return replace(config, providers=sandbox_providers(base_url), sandbox=True)


def uvicorn_server(
    config: GatewayConfig, host: str, port: int, *, log_level: str = "info", tune: bool = False
) -> uvicorn.Server:
    """Build (but do not start) a uvicorn server for the gateway (see ``create_app``)."""
    return uvicorn_server_for(create_app(config, tune=tune), host, port, log_level=log_level)


def uvicorn_server_for(
    app: Starlette, host: str, port: int, *, log_level: str = "info"
) -> uvicorn.Server:
    """Build a uvicorn server for an already created gateway app."""
    settings = uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level=log_level,
        lifespan="on",
        timeout_keep_alive=30,
    )
    return uvicorn.Server(settings)


def port_is_free(host: str, port: int) -> bool:
    """Return whether a server could listen on ``host:port`` now."""
    with socket.socket() as sock:
        # As uvicorn does, so a port left in TIME_WAIT by a stopped server counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free on ``host`` at the time of the call."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
