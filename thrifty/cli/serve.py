"""The ``thrifty serve`` command."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from thrifty.config import load_config
from thrifty.gateway.server import uvicorn_server, with_sandbox
from thrifty.gateway.workers import Supervisor, WorkerSpec, check_shared_state

logger = logging.getLogger(__name__)


def serve(
    *,
    host: Annotated[
        str, typer.Option(help="Address to bind; 0.0.0.0 exposes the gateway to the network.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port to listen on.")] = 4000,
    db: Annotated[
        str | None, typer.Option(help="Ledger database URL (default: a SQLite file in ./.thrifty).")
    ] = None,
    config: Annotated[Path | None, typer.Option(help="Path of thrifty.yaml.")] = None,
    sandbox: Annotated[
        bool, typer.Option(help="Use the built-in provider emulator as every upstream.")
    ] = False,
    workers: Annotated[
        int,
        typer.Option(
            help="Gateway processes sharing the port; more than 1 needs control.redis "
            "so that budgets and rate limits hold across them."
        ),
    ] = 1,
) -> None:
    """Run the metering gateway."""
    settings = load_config(config, db_url=db)
    check_shared_state(settings, workers)
    if sandbox:
        settings = with_sandbox(settings, host, port)
    console = Console(stderr=True)
    upstream = (
        "sandbox (offline emulator)"
        if sandbox
        else ", ".join(f"{p.name}={p.base_url}" for p in settings.providers.values())
    )
    console.print(f"Thrifty gateway on [bold]http://{host}:{port}[/bold]  upstream: {upstream}")
    console.print(f"ledger: {settings.db_url}")
    if workers > 1:
        console.print(f"workers: {workers}, sharing port {port} (SO_REUSEPORT)")
    if host not in ("127.0.0.1", "localhost", "::1"):
        console.print(
            "[yellow]warning:[/yellow] bound beyond loopback and no master key is set yet"
        )
    logging.getLogger("thrifty").setLevel(logging.INFO)
    if workers > 1:
        Supervisor(WorkerSpec(host, port, config, db, sandbox), workers).run()
        return
    uvicorn_server(settings, host, port, tune=True).run()


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
