"""The top-level CLI: every command listed in its help, each module imported only when it runs."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest
import typer
import typer.main

from thrifty.cli.commands import COMMANDS, LazyCommands
from thrifty.cli.main import main

HEAVY_MODULES = ("numpy", "plotly", "sqlalchemy", "openai", "aiohttp", "httpx", "thrifty.ledger")


def help_output(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(sys, "argv", ["thrifty", "--help"])
    main()
    return capsys.readouterr().out


def test_help_lists_every_command_without_imports() -> None:
    script = (
        "import sys\n"
        "sys.argv = ['thrifty', '--help']\n"
        "from thrifty.cli.main import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exit_:\n"
        "    assert exit_.code in (0, None), exit_.code\n"
        f"print(sorted(name for name in {HEAVY_MODULES!r} if name in sys.modules))\n"
        "print(sorted(name for name in sys.modules if name.startswith('thrifty.cli.')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[-2] == "[]"
    assert lines[-1] == "['thrifty.cli.commands', 'thrifty.cli.main']"
    for spec in COMMANDS:
        assert f"│ {spec.name} " in done.stdout


def test_help_text_matches_each_module(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    lazy_help = help_output(capsys, monkeypatch)
    # With the stand-ins replaced by the real commands, the help shows each module's own text.
    monkeypatch.setattr(LazyCommands, "placeholder", LazyCommands.__getitem__)
    loaded_help = help_output(capsys, monkeypatch)
    assert "Commands" in lazy_help
    assert lazy_help == loaded_help


def test_help_lists_commands_in_table_order(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    text = help_output(capsys, monkeypatch)
    positions = [text.index(f"│ {spec.name} ") for spec in COMMANDS]
    assert positions == sorted(positions)


def test_command_runs_after_lazy_import(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "argv", ["thrifty", "report", "--help"])
    main()
    out = capsys.readouterr().out
    assert "--by" in out
    assert "chargeback" in out


def test_unknown_command_suggests_close_names(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "argv", ["thrifty", "reporr"])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "No such command 'reporr'" in err
    assert "'report'" in err


def test_lazy_commands_unknown_name_is_missing() -> None:
    commands = LazyCommands(COMMANDS)
    assert commands.get("no-such-command") is None
    assert commands.placeholder("no-such-command") is None
    assert len(commands) == len(COMMANDS)


def test_table_lists_every_registered_command() -> None:
    names = {spec.name for spec in COMMANDS}
    for module_name in sorted({spec.module for spec in COMMANDS}):
        scratch = typer.Typer()
        importlib.import_module(module_name).register(scratch)
        registered = set(typer.main.get_group(scratch).commands)
        assert registered <= names, f"{module_name} registers {sorted(registered - names)}"
