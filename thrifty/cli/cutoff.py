"""``thrifty cutoff on|off|list``: the emergency brake, through the admin API."""

from __future__ import annotations

from typing import Annotated

import typer

from thrifty.cli.budgets import ScopeOption
from thrifty.cli.keys import GatewayOption, print_json
from thrifty.control.client import AdminClient

app = typer.Typer(help="Stop, or restore, all traffic of a scope at once.", no_args_is_help=True)


@app.command("on")
def on(
    scope: ScopeOption,
    reason: Annotated[
        str | None, typer.Option(help="Why, for the audit log and the error.")
    ] = None,
    gateway: GatewayOption = None,
) -> None:
    """Refuse every request in a scope, in every replica within a second."""
    print_json(AdminClient(gateway).call("POST", "/cutoffs", {"scope": scope, "reason": reason}))


@app.command("off")
def off(
    scope: ScopeOption,
    reason: Annotated[str | None, typer.Option(help="Why, for the audit log.")] = None,
    gateway: GatewayOption = None,
) -> None:
    """Restore a scope's traffic."""
    print_json(
        AdminClient(gateway).call("POST", "/cutoffs/off", {"scope": scope, "reason": reason})
    )


@app.command("list")
def list_cutoffs(gateway: GatewayOption = None) -> None:
    """List the cutoffs in force."""
    print_json(AdminClient(gateway).call("GET", "/cutoffs"))


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="cutoff")
