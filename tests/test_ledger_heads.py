"""The list of migration heads that lets an up-to-date ledger open without Alembic."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from alembic.script import ScriptDirectory

from thrifty.ledger import open_ledger
from thrifty.ledger.database import create_ledger_engine
from thrifty.ledger.migrate import alembic_config, stored_revisions, upgrade_to_head
from thrifty.ledger.migration_heads import HEAD_REVISIONS


def test_head_list_matches_alembic_script_directory() -> None:
    script = ScriptDirectory.from_config(alembic_config())
    assert frozenset(script.get_heads()) == HEAD_REVISIONS


def test_stored_revisions_before_and_after_upgrade(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    engine = create_ledger_engine(url)
    try:
        with engine.connect() as connection:
            assert stored_revisions(connection) == frozenset()
        upgrade_to_head(engine)
        with engine.connect() as connection:
            assert stored_revisions(connection) == HEAD_REVISIONS
    finally:
        engine.dispose()


def test_up_to_date_ledger_opens_without_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    open_ledger(url).close()
    script = (
        "import sys\n"
        "from thrifty.ledger import open_ledger\n"
        f"open_ledger({url!r}).close()\n"
        "print(sorted(name for name in sys.modules if name.split('.')[0] == 'alembic'))\n"
        "print('sqlalchemy.dialects.postgresql' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["[]", "False"]
