"""The table of subcommands, and the group that imports each one only when it runs.

Importing every command module at start-up costs seconds, because the
modules pull in SQLAlchemy, the OpenAI SDK, numpy and more. ``LazyGroup``
takes each command's name, module and one-line help from ``COMMANDS``, so
``thrifty --help`` lists them all without an import, and a command's module
is imported when that command is resolved. A new command must be added to
``COMMANDS``; tests check that the table lists every command the modules
register, with the same help.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any

import typer
import typer.main

# Typer 0.29 vendors Click, and its groups and commands use the vendored classes.
from typer import _click as click
from typer.core import TyperCommand, TyperGroup


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """A top-level command: its name, the module whose ``register(app)`` adds it, its help."""

    name: str
    module: str
    help: str


# In the order ``thrifty --help`` lists them: commands, then command groups.
COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec(
        "cost", "thrifty.cli.cost", "Price one request and print its cost as a JSON object."
    ),
    CommandSpec(
        "reprice",
        "thrifty.cli.prices",
        "Price stored requests again with the current prices; keep the figures replaced.",
    ),
    CommandSpec(
        "replay",
        "thrifty.cli.replay",
        "Replay a trace through a gateway, reproducing each row's input and output tokens.",
    ),
    CommandSpec(
        "sandbox",
        "thrifty.cli.sandbox",
        "Run the offline emulator of the OpenAI and Anthropic APIs (filler text, real usage).",
    ),
    CommandSpec("serve", "thrifty.cli.serve", "Run the metering gateway."),
    CommandSpec(
        "demo",
        "thrifty.cli.demo",
        "Start the sandbox and the gateway, replay a workload, print its report.",
    ),
    CommandSpec(
        "advise",
        "thrifty.cli.advise",
        "Print a savings plan ranked by dollars saved per month, with evidence and config.",
    ),
    CommandSpec(
        "whatif",
        "thrifty.cli.advise",
        "Re-price the same traffic under another policy; print before and after by feature.",
    ),
    CommandSpec(
        "forecast",
        "thrifty.cli.advise",
        "Project this month's spend to its end from the daily series, with an interval.",
    ),
    CommandSpec(
        "import",
        "thrifty.cli.imports",
        "Import spend records from OpenAI, Anthropic, LiteLLM or Langfuse exports.",
    ),
    CommandSpec("export", "thrifty.cli.exports", "Export ledger records as CSV or Parquet."),
    CommandSpec(
        "prices",
        "thrifty.cli.prices",
        "Show the price catalog, and the models the ledger has no price for.",
    ),
    CommandSpec(
        "report",
        "thrifty.cli.report",
        "Print request counts, tokens and cost from the ledger, in total and by group.",
    ),
    CommandSpec("keys", "thrifty.cli.keys", "Create, list, show, update and revoke virtual keys."),
    CommandSpec(
        "budgets",
        "thrifty.cli.budgets",
        "Budgets and rate limits of keys, teams, projects, users, features, tags.",
    ),
    CommandSpec(
        "cutoff", "thrifty.cli.cutoff", "Stop, or restore, all traffic of a scope at once."
    ),
    CommandSpec(
        "batch",
        "thrifty.cli.batch",
        "Submit OpenAI and Anthropic batch jobs (half price), follow them and collect results.",
    ),
    CommandSpec(
        "cache",
        "thrifty.cli.cache",
        "Response cache and provider prompt caching: stats, clear, eval, advise.",
    ),
    CommandSpec(
        "prompts", "thrifty.cli.prompts", "Find the input tokens requests waste, and remove them."
    ),
    CommandSpec(
        "route",
        "thrifty.cli.route",
        "Train a learned router and evaluate it against random and oracle routing.",
    ),
    CommandSpec("bench", "thrifty.cli.bench", "Benchmark models on quality, cost and latency."),
)


def load_command(spec: CommandSpec) -> click.Command:
    """Import the module of ``spec`` and return the Click command it registers under that name.

    The module registers on a scratch app, because some modules add several
    commands (``advise``, ``whatif`` and ``forecast``) and only one is needed.
    """
    module = importlib.import_module(spec.module)
    scratch = typer.Typer()
    module.register(scratch)
    command = typer.main.get_group(scratch).commands.get(spec.name)
    if command is None:
        raise LookupError(f"module {spec.module} registers no command named {spec.name!r}")
    return command


class LazyCommands(MutableMapping[str, click.Command]):
    """Commands by name, each imported on first access; iteration lists names only."""

    def __init__(self, specs: tuple[CommandSpec, ...]) -> None:
        self.specs = {spec.name: spec for spec in specs}
        self._loaded: dict[str, click.Command] = {}

    def __getitem__(self, name: str) -> click.Command:
        command = self._loaded.get(name)
        if command is None:
            command = load_command(self.specs[name])
            self._loaded[name] = command
        return command

    def placeholder(self, name: str) -> click.Command | None:
        """Return the loaded command, or a stand-in with the name and help of ``COMMANDS``."""
        if name in self._loaded:
            return self._loaded[name]
        spec = self.specs.get(name)
        return None if spec is None else TyperCommand(name=spec.name, help=spec.help)

    def __setitem__(self, name: str, command: click.Command) -> None:
        self._loaded[name] = command

    def __delitem__(self, name: str) -> None:
        if name not in self.specs and name not in self._loaded:
            raise KeyError(name)
        self.specs.pop(name, None)
        self._loaded.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        yield from self.specs
        yield from (name for name in self._loaded if name not in self.specs)

    def __len__(self) -> int:
        return len(self.specs) + sum(1 for name in self._loaded if name not in self.specs)


class LazyGroup(TyperGroup):
    """The top-level group: commands from ``COMMANDS``, imported when resolved.

    Its own help lists the stand-ins of ``LazyCommands.placeholder``, so
    printing it imports no command module.
    """

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.commands = LazyCommands(COMMANDS)
        self._listing = False

    def list_commands(self, ctx: click.Context) -> list[str]:
        # TyperGroup's version iterates over items(), which would import every command.
        return list(self.commands)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if self._listing and isinstance(self.commands, LazyCommands):
            return self.commands.placeholder(cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False
