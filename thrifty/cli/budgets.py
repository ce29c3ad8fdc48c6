"""``thrifty budgets ...``: budgets and rate limits per scope, through the admin API."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from thrifty.cli.keys import GatewayOption, print_json
from thrifty.control.client import AdminClient

app = typer.Typer(
    help="Budgets and rate limits of keys, teams, projects, users, features, tags.",
    no_args_is_help=True,
)

ScopeOption = Annotated[
    str, typer.Option(help="all, key:ID, team:T, project:P, user:U, feature:F or tag:NAME=VALUE.")
]


@app.command("create")
def create(
    scope: ScopeOption,
    limit_usd: Annotated[str, typer.Option(help="The limit in USD, e.g. 100.00.")],
    period: Annotated[
        str, typer.Option(help="daily, weekly, monthly, quarterly, lifetime or rolling:24h.")
    ] = "monthly",
    threshold: Annotated[
        list[str], typer.Option(help="Alert threshold as a fraction, e.g. 0.8; repeatable.")
    ] = [],  # noqa: B006
    gateway: GatewayOption = None,
) -> None:
    """Create a budget on a scope."""
    body: dict[str, Any] = {"scope": scope, "limit_usd": limit_usd, "period": period}
    if threshold:
        body["thresholds"] = threshold
    print_json(AdminClient(gateway).call("POST", "/budgets", body))


@app.command("list")
def list_budgets(gateway: GatewayOption = None) -> None:
    """List budgets with their current spend, reservations and reset time."""
    print_json(AdminClient(gateway).call("GET", "/budgets"))


@app.command("show")
def show(budget_id: str, gateway: GatewayOption = None) -> None:
    """Show one budget with its current spend."""
    print_json(AdminClient(gateway).call("GET", f"/budgets/{budget_id}"))


@app.command("update")
def update(
    budget_id: str,
    limit_usd: Annotated[str | None, typer.Option(help="New limit in USD.")] = None,
    period: Annotated[str | None, typer.Option(help="New period.")] = None,
    gateway: GatewayOption = None,
) -> None:
    """Change a budget's limit or period."""
    body = {"limit_usd": limit_usd, "period": period}
    print_json(
        AdminClient(gateway).call(
            "PATCH", f"/budgets/{budget_id}", {k: v for k, v in body.items() if v is not None}
        )
    )


@app.command("delete")
def delete(budget_id: str, gateway: GatewayOption = None) -> None:
    """Delete a budget."""
    print_json(AdminClient(gateway).call("DELETE", f"/budgets/{budget_id}"))


@app.command("limit")
def limit(
    scope: ScopeOption,
    rpm: Annotated[int | None, typer.Option(help="Requests per minute; omit for none.")] = None,
    tpm: Annotated[int | None, typer.Option(help="Tokens per minute; omit for none.")] = None,
    gateway: GatewayOption = None,
) -> None:
    """Set a scope's rate limits (both omitted removes them)."""
    print_json(
        AdminClient(gateway).call("PUT", "/rate-limits", {"scope": scope, "rpm": rpm, "tpm": tpm})
    )


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="budgets")
