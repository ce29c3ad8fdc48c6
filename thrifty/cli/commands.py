"""Register every subcommand module on the Typer app."""

from __future__ import annotations

import importlib

import typer

# Each module defines ``register(app: typer.Typer) -> None``.
COMMAND_MODULES = (
    "thrifty.cli.cost",
    "thrifty.cli.report",
    "thrifty.cli.replay",
    "thrifty.cli.sandbox",
    "thrifty.cli.serve",
    "thrifty.cli.demo",
)


def register_all(app: typer.Typer) -> None:
    for name in COMMAND_MODULES:
        module = importlib.import_module(name)
        module.register(app)
