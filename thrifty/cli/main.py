"""The ``thrifty`` command: one Typer app, one module per subcommand, imported when it runs."""

from __future__ import annotations

import logging
import sys

import click
import typer

from thrifty.cli.commands import LazyGroup
from thrifty.errors import ThriftyError

app = typer.Typer(
    name="thrifty",
    help="Meter, attribute, control and cut what you spend on LLM APIs.",
    cls=LazyGroup,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def root() -> None:
    # A callback makes Typer build a group; LazyGroup supplies its commands.
    pass


def main() -> None:
    """Run the CLI; usage errors and Thrifty errors print one line and exit 2."""
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        # Without standalone mode, click returns the code of a typer.Exit
        # instead of exiting with it.
        code = app(standalone_mode=False)
    # Typer 0.29 raises its own vendored click exceptions; catch both families.
    except (click.exceptions.Exit, typer.Exit) as exc:
        sys.exit(exc.exit_code)
    except (click.exceptions.Abort, typer.Abort):
        sys.exit(130)
    except (click.ClickException, typer.TyperException) as exc:
        print(f"thrifty: error: {_one_line(exc.format_message())}", file=sys.stderr)
        sys.exit(2)
    except ThriftyError as exc:
        print(f"thrifty: error: {_one_line(str(exc))}", file=sys.stderr)
        sys.exit(2)
    if isinstance(code, int) and code != 0:
        sys.exit(code)


def _one_line(message: str) -> str:
    return " ".join(message.split())
