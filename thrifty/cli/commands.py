"""Register every subcommand module on the Typer app."""

from __future__ import annotations

import importlib

import typer

# Each module defines ``register(app: typer.Typer) -> None``.
COMMAND_MODULES = (
    "thrifty.cli.cost",
    "thrifty.cli.prices",
    "thrifty.cli.report",
    "thrifty.cli.replay",
    "thrifty.cli.sandbox",
    "thrifty.cli.serve",
    "thrifty.cli.keys",
    "thrifty.cli.budgets",
    "thrifty.cli.cutoff",
    "thrifty.cli.demo",
    "thrifty.cli.batch",
    "thrifty.cli.cache",
    "thrifty.cli.advise",
    "thrifty.cli.imports",
    "thrifty.cli.exports",
    "thrifty.cli.prompts",
    "thrifty.cli.route",
    "thrifty.cli.bench",
)


def register_all(app: typer.Typer) -> None:
    for name in COMMAND_MODULES:
        module = importlib.import_module(name)
        module.register(app)
