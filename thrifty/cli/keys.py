"""``thrifty keys create|list|show|update|revoke``: virtual keys, through the admin API."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import orjson
import typer

from thrifty.control.client import AdminClient

app = typer.Typer(help="Create, list, show, update and revoke virtual keys.", no_args_is_help=True)

GatewayOption = Annotated[
    str | None,
    typer.Option(help="Gateway URL (default: $THRIFTY_GATEWAY_URL or http://127.0.0.1:4000)."),
]


def print_json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")


def parse_tags(values: list[str]) -> dict[str, str]:
    tags: dict[str, str] = {}
    for value in values:
        name, sep, tag = value.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"tag {value!r} is not NAME=VALUE", param_hint="--tag")
        tags[name] = tag
    return tags


def key_fields(
    *,
    name: str | None,
    team: str | None,
    project: str | None,
    user: str | None,
    feature: str | None,
    tags: list[str],
    models: list[str],
    providers: list[str],
    tiers: list[str],
    expires: str | None,
    rpm: int | None,
    tpm: int | None,
) -> dict[str, Any]:
    """Return the admin API fields for the options that were given."""
    fields: dict[str, Any] = {
        "name": name,
        "team": team,
        "project": project,
        "user": user,
        "feature": feature,
        "expires_at": expires,
        "rpm": rpm,
        "tpm": tpm,
    }
    fields = {key: value for key, value in fields.items() if value is not None}
    if tags:
        fields["tags"] = parse_tags(tags)
    if models:
        fields["allowed_models"] = models
    if providers:
        fields["allowed_providers"] = providers
    if tiers:
        fields["allowed_tiers"] = tiers
    return fields


@app.command("create")
def create(
    *,
    name: Annotated[str | None, typer.Option(help="A label for people.")] = None,
    team: Annotated[str | None, typer.Option(help="Default team of the key's requests.")] = None,
    project: Annotated[str | None, typer.Option(help="Default project.")] = None,
    user: Annotated[str | None, typer.Option(help="Default user.")] = None,
    feature: Annotated[str | None, typer.Option(help="Default feature.")] = None,
    tag: Annotated[list[str], typer.Option(help="Default tag NAME=VALUE; repeatable.")] = [],  # noqa: B006
    model: Annotated[list[str], typer.Option(help="Allowed model or pattern; repeatable.")] = [],  # noqa: B006
    provider: Annotated[list[str], typer.Option(help="Allowed provider; repeatable.")] = [],  # noqa: B006
    tier: Annotated[list[str], typer.Option(help="Allowed service tier; repeatable.")] = [],  # noqa: B006
    expires: Annotated[
        str | None, typer.Option(help="Expiry, ISO 8601 (UTC if no offset).")
    ] = None,
    rpm: Annotated[int | None, typer.Option(help="Requests per minute.")] = None,
    tpm: Annotated[int | None, typer.Option(help="Tokens per minute.")] = None,
    budget_usd: Annotated[str | None, typer.Option(help="A budget of the key, in USD.")] = None,
    period: Annotated[str, typer.Option(help="Period of --budget-usd.")] = "monthly",
    gateway: GatewayOption = None,
) -> None:
    """Create a virtual key; its secret is printed once, in the "key" field."""
    body = key_fields(
        name=name,
        team=team,
        project=project,
        user=user,
        feature=feature,
        tags=tag,
        models=model,
        providers=provider,
        tiers=tier,
        expires=expires,
        rpm=rpm,
        tpm=tpm,
    )
    if budget_usd is not None:
        body["budgets"] = [{"limit_usd": budget_usd, "period": period}]
    print_json(AdminClient(gateway).call("POST", "/keys", body))


@app.command("list")
def list_keys(gateway: GatewayOption = None) -> None:
    """List every virtual key (never their secrets)."""
    print_json(AdminClient(gateway).call("GET", "/keys"))


@app.command("show")
def show(key_id: str, gateway: GatewayOption = None) -> None:
    """Show one key with its budgets and rate limits."""
    print_json(AdminClient(gateway).call("GET", f"/keys/{key_id}"))


@app.command("update")
def update(
    key_id: str,
    *,
    name: Annotated[str | None, typer.Option(help="A label for people.")] = None,
    team: Annotated[str | None, typer.Option(help="Default team.")] = None,
    project: Annotated[str | None, typer.Option(help="Default project.")] = None,
    user: Annotated[str | None, typer.Option(help="Default user.")] = None,
    feature: Annotated[str | None, typer.Option(help="Default feature.")] = None,
    tag: Annotated[list[str], typer.Option(help="Default tags NAME=VALUE (replaces all).")] = [],  # noqa: B006
    model: Annotated[list[str], typer.Option(help="Allowed models (replaces all).")] = [],  # noqa: B006
    provider: Annotated[list[str], typer.Option(help="Allowed providers (replaces all).")] = [],  # noqa: B006
    tier: Annotated[list[str], typer.Option(help="Allowed tiers (replaces all).")] = [],  # noqa: B006
    expires: Annotated[str | None, typer.Option(help="New expiry, ISO 8601.")] = None,
    rpm: Annotated[int | None, typer.Option(help="Requests per minute.")] = None,
    tpm: Annotated[int | None, typer.Option(help="Tokens per minute.")] = None,
    gateway: GatewayOption = None,
) -> None:
    """Change the given fields of a key."""
    body = key_fields(
        name=name,
        team=team,
        project=project,
        user=user,
        feature=feature,
        tags=tag,
        models=model,
        providers=provider,
        tiers=tier,
        expires=expires,
        rpm=rpm,
        tpm=tpm,
    )
    print_json(AdminClient(gateway).call("PATCH", f"/keys/{key_id}", body))


@app.command("revoke")
def revoke(key_id: str, gateway: GatewayOption = None) -> None:
    """Revoke a key; every replica refuses it from its next request."""
    print_json(AdminClient(gateway).call("POST", f"/keys/{key_id}/revoke"))


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="keys")
