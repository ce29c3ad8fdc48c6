"""The head revision of each branch of the ledger's migrations, listed without loading Alembic.

``upgrade_to_head`` compares a database's stored revisions with this list in
plain SQL, so a process whose database is up to date never imports Alembic
(about 0.1 s of import time on a 2-core x86_64 machine). A test checks the list against
Alembic's script directory: a new revision must replace its parent here.
"""

from __future__ import annotations

HEAD_REVISIONS = frozenset({"0006", "b001", "c001", "cache_0001", "pricing_0001"})
