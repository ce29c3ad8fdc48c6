"""The `thrifty sandbox` command: run the provider emulator alone."""

from __future__ import annotations

from typing import Annotated

import typer

from thrifty.sandbox import SandboxSettings, run

DEFAULT_PORT = 4010


def register(app: typer.Typer) -> None:
    app.command("sandbox")(sandbox_command)


def sandbox_command(
    *,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port to listen on.")] = DEFAULT_PORT,
    ttft_ms: Annotated[
        float, typer.Option(help="Time to first output token, in milliseconds.")
    ] = 0.0,
    tokens_per_second: Annotated[
        float, typer.Option(help="Output pace in tokens per second; 0 sends output at once.")
    ] = 0.0,
    default_max_tokens: Annotated[
        int, typer.Option(help="Output tokens when an OpenAI request sets no max_tokens.")
    ] = 16,
    flex_rejection_rate: Annotated[
        float, typer.Option(help="Share of flex requests rejected with 429, from 0 to 1.")
    ] = 0.0,
    seed: Annotated[int, typer.Option(help="Seed of the flex rejection draws.")] = 0,
) -> None:
    """Run the offline emulator of the OpenAI and Anthropic APIs (filler text, real usage)."""
    settings = SandboxSettings(
        default_max_tokens=default_max_tokens,
        time_to_first_token_ms=ttft_ms,
        tokens_per_second=tokens_per_second,
        flex_rejection_rate=flex_rejection_rate,
        seed=seed,
    )
    typer.echo(
        f"thrifty sandbox on http://{host}:{port} "
        f"(OpenAI base_url http://{host}:{port}/v1, Anthropic base_url http://{host}:{port})"
    )
    run(host, port, settings)
